"""A synthetic dataset in the real FUME on-disk format (`fume-edge synth OUT_DIR`), so pairing and training run on
it unchanged.

Layout of OUT_DIR: `annotations.csv`, `images/{co2,ch4}/*.png` (8-bit), `masks/{co2,ch4}/*.png` (class ids) and
`synthetic.yaml` (the seed and settings that made it). Each animal has several recording sessions; each session
is one tube at one pH, filmed by both cameras once per `capture_interval_s`. The CH4 camera fires on a subset of
the CO2 captures (a few tens of ms apart, within the pairing tolerance), so CO2 frames outnumber CH4 frames as in
the real data and the extra CO2 frames become single-gas samples.

Pairs are divided among the pH classes exactly in the requested proportions, and every class with pairs gets at
least `min_sessions_per_class` sessions on different animals, so an animal-wise split can place the rare
Transitional class in train, val and test. Each session renders from its own seed, so the output is identical for
any number of worker processes; the folder appears only when complete.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np
import yaml

from fume_edge.data.config import PhClasses, SyntheticConfig
from fume_edge.data.csvio import staged_directory, write_tables
from fume_edge.data.records import Frame, annotation_table
from fume_edge.data.synthetic import SyntheticScene
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import GASES, PH_CLASS_NAMES

ANNOTATIONS_NAME = "annotations.csv"
_FIRST_SESSION_START = 1709280000.0  # 2024-03-01T08:00:00Z; sessions are a day apart per round, staggered per animal
# PNG encoding dominates the generation time. Noisy frames barely compress, so Huffman coding after a SUB filter
# (where OpenCV offers the filter choice) is as small as deflate and three times faster; masks are runs of labels.
_FRAME_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    _FRAME_PNG += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
_MASK_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


@dataclasses.dataclass(frozen=True)
class SessionPlan:
    """One recording session to render: who, which pH, how many pairs and extra CO2 frames, and its own seed."""

    index: int
    animal_id: str
    session_id: str
    ph: float
    activity: float
    pairs: int
    extra_co2: int
    start: float
    seed: int

    @property
    def frames(self) -> int:
        return 2 * self.pairs + self.extra_co2


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder; ties to the earlier entry)."""
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    remainder = exact - counts
    for i in sorted(range(len(w)), key=lambda i: -remainder[i])[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _sessions_per_class(config: SyntheticConfig, quotas: list[int], n_slots: int) -> list[int]:
    """Sessions for each class: proportional to its frequency, at least the minimum, never more than its pairs."""
    freqs = np.array([config.class_frequencies.get(name, 0.0) for name in PH_CLASS_NAMES]) / sum(
        config.class_frequencies.values()
    )
    wanted = freqs * n_slots
    needed = sum(1 for q in quotas if q)
    if needed > n_slots:
        raise FumeEdgeError(
            f"synthetic: {n_slots} session(s) cannot hold {needed} pH classes; "
            "raise synthetic.animals or synthetic.sessions_per_animal"
        )
    counts = [
        min(q, max(config.min_sessions_per_class, round(w))) if q else 0 for q, w in zip(quotas, wanted, strict=True)
    ]
    while sum(counts) > n_slots:
        counts[int(np.argmax(counts))] -= 1
    while sum(counts) < n_slots:
        room = [w - c if c < q else -np.inf for w, c, q in zip(wanted, counts, quotas, strict=True)]
        if max(room) == -np.inf:
            break
        counts[int(np.argmax(room))] += 1
    return counts


def plan_sessions(config: SyntheticConfig, classes: PhClasses, pairs: int, seed: int) -> list[SessionPlan]:
    """Which sessions to render for `pairs` CO2/CH4 pairs; deterministic in `seed`."""
    if pairs < 1:
        raise FumeEdgeError(f"--pairs must be at least 1, got {pairs}")
    rng = np.random.default_rng(seed)
    quotas = apportion(pairs, [config.class_frequencies.get(name, 0.0) for name in PH_CLASS_NAMES])
    levels = {c: [ph for ph in config.ph_levels if classes.classify(ph) == c] for c in range(len(PH_CLASS_NAMES))}
    for c, quota in enumerate(quotas):
        if quota and not levels[c]:
            raise FumeEdgeError(f"synthetic.ph_levels: no level falls in class {PH_CLASS_NAMES[c]}; add one")
    n_slots = config.animals * config.sessions_per_animal
    per_class = _sessions_per_class(config, quotas, n_slots)
    animals = rng.permutation(config.animals)
    slots = [(int(a), s) for s in range(config.sessions_per_animal) for a in animals]  # a round visits each animal
    extra_total = round(pairs * config.co2_share / (1.0 - config.co2_share)) - pairs
    plans: list[SessionPlan] = []
    for c in sorted(range(len(quotas)), key=lambda c: (quotas[c], c)):  # rarest first: spread over animals
        for session_pairs in apportion(quotas[c], [1.0] * per_class[c]) if per_class[c] else []:
            animal, session = slots[len(plans)]
            plans.append(
                SessionPlan(
                    index=len(plans),
                    animal_id=f"A{animal + 1:02d}",
                    session_id=f"S{session + 1}",
                    ph=float(rng.choice(levels[c])),
                    activity=float(rng.uniform(*config.activity_range)),
                    pairs=session_pairs,
                    extra_co2=0,
                    start=_FIRST_SESSION_START + session * 86400.0 + animal * 1800.0,
                    seed=int(rng.integers(2**31)),
                )
            )
    extras = apportion(extra_total, [p.pairs for p in plans])
    return [dataclasses.replace(p, extra_co2=e) for p, e in zip(plans, extras, strict=True)]


def _write_png(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        raise FumeEdgeError(f"{path}: could not write the image; check free disk space and permissions")


def render_session(plan: SessionPlan, config: SyntheticConfig, folder: Path) -> list[Frame]:
    """Render and write one session's frames and masks under `folder`; return their annotation records."""
    rng = np.random.default_rng(plan.seed)
    scene = SyntheticScene(plan.seed, config.width, config.height, config.response, plan.activity)
    amounts = dict(zip(GASES, scene.amounts(plan.ph), strict=True))
    n_co2 = plan.pairs + plan.extra_co2
    with_ch4 = set(rng.choice(n_co2, plan.pairs, replace=False).tolist())
    frames = []
    for k in range(n_co2):
        t = k * config.capture_interval_s
        shots = [("co2", t)]
        if k in with_ch4:
            shots.append(("ch4", t + rng.uniform(-config.pair_jitter_s, config.pair_jitter_s)))
        for gas, when in shots:
            name = f"{plan.animal_id}_{plan.session_id}_{gas}_{k:04d}.png"
            image, mask = (folder / kind / gas / name for kind in ("images", "masks"))
            frame, labels = scene.render(gas, amounts[gas], when)
            _write_png(image, frame, _FRAME_PNG)
            _write_png(mask, labels, _MASK_PNG)
            frames.append(Frame(image, mask, gas, plan.ph, plan.animal_id, plan.session_id, plan.start + when))
    return frames


def _single_threaded_opencv() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


def write_synthetic_dataset(
    out_dir: str | Path,
    plans: Sequence[SessionPlan],
    config: SyntheticConfig,
    seed: int,
    workers: int = 1,
    overwrite: bool = False,
    on_frames: Callable[[int], None] = lambda n: None,
) -> Path:
    """Render `plans` into `out_dir` with `workers` processes; returns the annotation CSV's path.

    `on_frames(n)` is called as sessions finish, with the number of frames just written (for a progress bar).
    """
    out_dir = Path(out_dir)
    with staged_directory(out_dir, overwrite) as folder:
        for kind in ("images", "masks"):
            for gas in GASES:
                (folder / kind / gas).mkdir(parents=True)
        results: dict[int, list[Frame]] = {}
        if workers <= 1:
            for plan in plans:
                results[plan.index] = render_session(plan, config, folder)
                on_frames(plan.frames)
        else:
            context = multiprocessing.get_context("spawn")  # no fork: the caller may run threads (progress bar)
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded_opencv) as pool:
                jobs = {pool.submit(render_session, plan, config, folder): plan for plan in plans}
                for job in as_completed(jobs):
                    results[jobs[job].index] = job.result()
                    on_frames(jobs[job].frames)
        frames = [frame for plan in plans for frame in results[plan.index]]
        settings = {"seed": seed, "pairs": sum(p.pairs for p in plans), "synthetic": config.model_dump(mode="json")}
        (folder / "synthetic.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(settings)), sort_keys=False))
        write_tables({folder / ANNOTATIONS_NAME: annotation_table(frames, folder)})
    return out_dir / ANNOTATIONS_NAME
