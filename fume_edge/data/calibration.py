"""Calibration sets for INT8 quantization: which paired frames, why those, and their model-ready tensors.

Post-training quantization picks each tensor's int8 range from the activations it sees on a few hundred inputs,
so those inputs must cover what the device will see. `build_calibration_set` therefore takes pairs (both cameras
present) from the paired *training* CSV, stratified by pH class × gas presence with an equal share per stratum
(a stratum with fewer pairs gives all it has and the rest is shared out): proportional sampling would leave the rare
Transitional class (2.6 %) to a handful of frames and its activations outside the ranges.

A calibration folder holds `manifest.json` (committed: which frames, the seed, every image's sha256, the input
size, the counts, the command that made it) and `tensors.npz` (git-ignored, rebuilt by that command): `co2`, `ch4`
float32 (N,1,H,W) made by the model's preprocessing (`runtime.pre.Preprocessing`, the device's own, recorded in the
manifest) from `data.images`' frames, plus the labels
(`ph_class`, `co2_mask`, `ch4_mask`) so a held-back part can check INT8 accuracy without the dataset.
`load_calibration` validates a folder and names what is wrong in one line. numpy/OpenCV only: no torch here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fume_edge import __version__
from fume_edge.data.csvio import relative_to, staged_directory
from fume_edge.data.images import load_frame, load_mask
from fume_edge.data.records import Sample, read_samples
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file
from fume_edge.labels import GAS_CLASS_ID, INPUT_HEIGHT, INPUT_WIDTH, PH_CLASS_NAMES
from fume_edge.runtime.pre import Preprocessing, modality_mask

FORMAT = "fume-edge-calibration"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TENSORS = "tensors.npz"
DEFAULT_COUNT = 300

Progress = Callable[[int, int], None]  # (done, total)
StageProgress = Callable[[str], Progress | None]  # stage name -> its callback


@dataclass(frozen=True)
class LabelledInput:
    """One model input with its truth: what calibration, sensitivity search and the INT8 report consume."""

    co2: np.ndarray  # (1,1,H,W) float32 in [0,1]; zeros when the modality is absent
    ch4: np.ndarray
    modality_mask: np.ndarray  # (1,2) float32
    ph_class: int
    co2_mask: np.ndarray | None  # (H,W) uint8 class ids; None when the modality is absent
    ch4_mask: np.ndarray | None


def labelled_input(sample: Sample, preprocessing: Preprocessing) -> LabelledInput:
    """A paired-CSV sample as model input (absent modality: zeros, mask 0) with its labels at the input size."""
    size = preprocessing.input_size
    arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for gas in ("co2", "ch4"):
        frame = sample.frame(gas)
        if frame is None:
            arrays[gas] = (np.zeros((1, 1, size[1], size[0]), np.float32), None)
            continue
        arrays[gas] = (load_frame(frame.image, preprocessing)[None, None], load_mask(frame.mask, size))
    return LabelledInput(
        co2=arrays["co2"][0],
        ch4=arrays["ch4"][0],
        modality_mask=modality_mask(sample.co2 is not None, sample.ch4 is not None),
        ph_class=sample.ph_class,
        co2_mask=arrays["co2"][1],
        ch4_mask=arrays["ch4"][1],
    )


def csv_inputs(path: str | Path, preprocessing: Preprocessing) -> tuple[int, Iterator[LabelledInput]]:
    """Every sample of a paired CSV (each with its own modality mask), loaded lazily: (count, iterator)."""
    samples = read_samples(path)
    return len(samples), (labelled_input(s, preprocessing) for s in samples)


def allocate(sizes: Sequence[int], count: int) -> list[int]:
    """Equal shares of `count` over strata of `sizes`, water-filled: a small stratum gives all it has.

    Smallest first, each takes the fair share of what is left; the largest takes the rounding remainder, so the
    quotas always sum to min(count, sum(sizes)).
    """
    quotas = [0] * len(sizes)
    remaining = min(count, sum(sizes))
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, i in enumerate(order):
        quotas[i] = min(sizes[i], remaining // (len(sizes) - position))
        remaining -= quotas[i]
    return quotas


def select_stratified(strata: Sequence[Hashable], count: int, seed: int) -> list[int]:
    """Sorted indices: `allocate`'d quotas per stratum, drawn at random (seeded) inside each stratum."""
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(strata):
        groups.setdefault(key, []).append(index)
    keys = sorted(groups, key=repr)
    quotas = allocate([len(groups[k]) for k in keys], count)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for key, quota in zip(keys, quotas, strict=True):
        chosen += rng.choice(groups[key], size=quota, replace=False).tolist()
    return sorted(chosen)


def _gas_present(sample: Sample) -> bool:
    return any(np.any(load_mask(f.mask) == GAS_CLASS_ID) for f in (sample.co2, sample.ch4) if f is not None)


def _stratum_name(ph_class: int, gas: bool) -> str:
    return f"{PH_CLASS_NAMES[ph_class]}, {'gas' if gas else 'no gas'}"


def _counts(keys: Sequence[tuple[int, bool]]) -> dict[str, dict[str, int]]:
    return {
        "ph_class": {PH_CLASS_NAMES[c]: n for c, n in sorted(Counter(k[0] for k in keys).items())},
        "gas_present": {("gas" if g else "no gas"): n for g, n in sorted(Counter(k[1] for k in keys).items())},
        "strata": {_stratum_name(*k): n for k, n in sorted(Counter(keys).items())},
    }


def _frame_entry(sample: Sample, gas_present: bool, folder: Path) -> dict[str, Any]:
    """The manifest's record of one chosen pair: paths relative to the CSV's folder, image hashes, its stratum."""
    entry: dict[str, Any] = {}
    for gas in ("co2", "ch4"):
        frame = sample.frame(gas)
        assert frame is not None  # only pairs are chosen
        entry |= {
            f"{gas}_image": relative_to(frame.image, folder),
            f"{gas}_mask": relative_to(frame.mask, folder),
            f"{gas}_sha256": sha256_file(frame.image),
        }
    return entry | {
        "ph_class": PH_CLASS_NAMES[sample.ph_class],
        "gas_present": gas_present,
        "animal_id": sample.animal_id,
        "session_id": sample.session_id,
    }


@dataclass(frozen=True)
class CalibrationRequest:
    """What `fume-edge calibrate` was asked for; recorded in the manifest with the command that repeats it."""

    data: Path
    output: Path
    count: int = DEFAULT_COUNT
    seed: int = 0
    size: tuple[int, int] = (INPUT_WIDTH, INPUT_HEIGHT)
    uint16_range: tuple[float, float] = (0.0, 65535.0)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(input_size=self.size, uint16_range=self.uint16_range)

    @property
    def command(self) -> str:
        return (
            f"fume-edge calibrate --data {self.data} -o {self.output} --count {self.count} --seed {self.seed} "
            f"--size {self.size[0]}x{self.size[1]}"
        )


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress:
        progress(done, total)


def build_calibration_set(
    request: CalibrationRequest, overwrite: bool = False, progress: StageProgress | None = None
) -> dict[str, Any]:
    """Select pairs from the paired CSV, cache their tensors and labels, write the folder all or nothing; the manifest.

    `progress(stage)` gives the callback of each long stage ("reading masks", "caching tensors").
    """
    if request.count < 1:
        raise FumeEdgeError(f"--count {request.count}: must be at least 1")
    if request.size[0] % 32 or request.size[1] % 32 or min(request.size) <= 0:
        raise FumeEdgeError(
            f"--size {request.size[0]}x{request.size[1]}: width and height must be positive multiples "
            "of 32, as in `fume-edge export` (use the exported model's size)"
        )
    pairs = [s for s in read_samples(request.data) if s.co2 is not None and s.ch4 is not None]
    if not pairs:
        raise FumeEdgeError(
            f"{request.data}: no sample has both a CO2 and a CH4 image; calibration needs pairs "
            "(make them with `fume-edge pair`)"
        )
    scan = progress("reading masks") if progress else None
    keys = []
    for done, sample in enumerate(pairs, start=1):
        keys.append((sample.ph_class, _gas_present(sample)))
        _tick(scan, done, len(pairs))
    chosen = select_stratified(keys, request.count, request.seed)
    width, height = request.size
    arrays: dict[str, np.ndarray] = {
        "co2": np.empty((len(chosen), 1, height, width), np.float32),
        "ch4": np.empty((len(chosen), 1, height, width), np.float32),
        "co2_mask": np.empty((len(chosen), height, width), np.uint8),
        "ch4_mask": np.empty((len(chosen), height, width), np.uint8),
        "ph_class": np.array([pairs[i].ph_class for i in chosen], np.int64),
    }
    cache = progress("caching tensors") if progress else None
    for row, index in enumerate(chosen):
        item = labelled_input(pairs[index], request.preprocessing)
        arrays["co2"][row], arrays["ch4"][row] = item.co2[0], item.ch4[0]
        arrays["co2_mask"][row], arrays["ch4_mask"][row] = item.co2_mask, item.ch4_mask
        _tick(cache, row + 1, len(chosen))
    frames = [_frame_entry(pairs[i], keys[i][1], request.data.parent) for i in chosen]
    with staged_directory(request.output, overwrite=overwrite) as staging:
        np.savez(staging / TENSORS, **arrays)  # type: ignore[arg-type]  # numpy 2 stubs bind **arrays to allow_pickle
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fume_edge_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": request.command,
            "source_csv": str(request.data),
            "source_csv_sha256": sha256_file(request.data),
            "seed": request.seed,
            "requested_count": request.count,
            "count": len(chosen),
            "input_size": [width, height],
            "preprocessing": request.preprocessing.to_dict(),
            "counts": _counts([keys[i] for i in chosen]),
            "available": _counts(keys),
            "tensors": {"file": TENSORS, "sha256": sha256_file(staging / TENSORS)},
            "frames": frames,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


MODALITY_CASES: dict[str, tuple[bool, bool]] = {
    "both": (True, True),
    "co2 only": (True, False),
    "ch4 only": (False, True),
}


@dataclass(frozen=True)
class CalibrationSet:
    """A validated calibration folder in memory: its manifest and the cached tensors and labels."""

    folder: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    arrays: dict[str, np.ndarray]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    @property
    def preprocessing(self) -> Preprocessing:
        """How the cached tensors were made (older manifests: input size and 16-bit range only)."""
        return manifest_preprocessing(self.manifest, str(self.folder / MANIFEST))

    def __len__(self) -> int:
        return int(self.arrays["co2"].shape[0])

    def item(self, index: int, case: str = "both") -> LabelledInput:
        """Pair `index` as the model sees it in a modality case: an absent camera's frame is zeros, its mask None."""
        use_co2, use_ch4 = MODALITY_CASES[case]
        co2, ch4 = self.arrays["co2"][index : index + 1], self.arrays["ch4"][index : index + 1]
        return LabelledInput(
            co2=co2 if use_co2 else np.zeros_like(co2),
            ch4=ch4 if use_ch4 else np.zeros_like(ch4),
            modality_mask=modality_mask(use_co2, use_ch4),
            ph_class=int(self.arrays["ph_class"][index]),
            co2_mask=self.arrays["co2_mask"][index] if use_co2 else None,
            ch4_mask=self.arrays["ch4_mask"][index] if use_ch4 else None,
        )

    def split(self, holdout_fraction: float) -> tuple[list[int], list[int]]:
        """(calibration, held-back) indices: every k-th pair held back, so both spread over all strata and sessions."""
        if holdout_fraction <= 0:
            return list(range(len(self))), []
        step = max(2, round(1 / holdout_fraction))
        held = list(range(step - 1, len(self), step))
        return [i for i in range(len(self)) if i % step != step - 1], held


def _rebuild_hint(manifest: dict[str, Any]) -> str:
    return f"rebuild it with `{manifest.get('command', 'fume-edge calibrate --data paired_train.csv -o FOLDER')}`"


def _read_manifest(folder: Path) -> tuple[dict[str, Any], str]:
    make = "make one with `fume-edge calibrate --data paired_train.csv -o calibration/NAME`"
    if not folder.is_dir():
        raise FumeEdgeError(f"{folder}: calibration folder not found; {make}")
    if not any(folder.iterdir()):
        raise FumeEdgeError(f"{folder}: calibration folder is empty; {make}")
    path = folder / MANIFEST
    if not path.is_file():
        raise FumeEdgeError(f"{folder}: no {MANIFEST}, not a calibration folder; {make}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FumeEdgeError(f"{path}: malformed JSON ({exc}); {make}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FumeEdgeError(f"{path}: not a fume-edge calibration manifest; {make}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FumeEdgeError(
            f"{path}: format version {manifest.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION}); {_rebuild_hint(manifest)}"
        )
    for key in ("input_size", "count", "tensors", "frames"):
        if key not in manifest:
            raise FumeEdgeError(f"{path}: field {key!r} is missing; {_rebuild_hint(manifest)}")
    return manifest, sha256_file(path)


def manifest_preprocessing(manifest: dict[str, Any], source: str) -> Preprocessing:
    if "preprocessing" in manifest:
        return Preprocessing.from_dict(manifest["preprocessing"], source)
    width, height = (int(v) for v in manifest["input_size"])
    low, high = manifest.get("uint16_range", (0.0, 65535.0))
    return Preprocessing((width, height), uint16_range=(float(low), float(high)))


def load_calibration(folder: str | Path, preprocessing: Preprocessing | None = None) -> CalibrationSet:
    """Load and check a calibration folder; `preprocessing` is the model's, when known: the set must match it."""
    folder = Path(folder)
    manifest, manifest_sha = _read_manifest(folder)
    made = manifest_preprocessing(manifest, str(folder / MANIFEST))
    width, height = made.input_size
    if preprocessing is not None and made != preprocessing:
        differs = ", ".join(
            f"{k} {v} (model: {preprocessing.to_dict()[k]})"
            for k, v in made.to_dict().items()
            if v != preprocessing.to_dict()[k]
        )
        want_w, want_h = preprocessing.input_size
        raise FumeEdgeError(
            f"{folder}: made with {differs}; calibrate with the model's preprocessing: `fume-edge calibrate --data "
            f"{manifest.get('source_csv', 'paired_train.csv')} -o {folder}-{want_w}x{want_h} --size {want_w}x{want_h}` "
            "(16-bit range: data.yaml images.uint16_range)"
        )
    tensors = folder / manifest["tensors"].get("file", TENSORS)
    if not tensors.is_file():
        raise FumeEdgeError(
            f"{tensors}: missing (tensors are git-ignored, only the manifest is committed); {_rebuild_hint(manifest)}"
        )
    if sha256_file(tensors) != manifest["tensors"].get("sha256"):
        raise FumeEdgeError(f"{tensors}: does not belong to this manifest (sha256 differs); {_rebuild_hint(manifest)}")
    with np.load(tensors) as data:
        arrays = {name: data[name] for name in data.files}
    expected = {
        "co2": (manifest["count"], 1, height, width),
        "ch4": (manifest["count"], 1, height, width),
        "co2_mask": (manifest["count"], height, width),
        "ch4_mask": (manifest["count"], height, width),
        "ph_class": (manifest["count"],),
    }
    for name, shape in expected.items():
        if name not in arrays or arrays[name].shape != shape:
            got = arrays[name].shape if name in arrays else "nothing"
            raise FumeEdgeError(
                f"{tensors}: array {name!r} is {got}, the manifest says {shape}; {_rebuild_hint(manifest)}"
            )
    return CalibrationSet(folder, manifest, manifest_sha, arrays)
