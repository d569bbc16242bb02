"""CO2 <-> CH4 frame pairing and the animal-wise train/val/test split behind `fume-edge pair`.

Pairing is one-to-one inside one animal's recording session: candidate pairs (within the time tolerance) are taken
in order of increasing time difference, so every pair is the nearest one left for both frames and no CH4 frame is
reused (a reused frame would weigh twice in training and appear in two samples). Frames without a partner stay as
single-modality samples; their modality mask tells the model which gas is there.

The samples are then split by animal (`data/split.py`), and the three paired CSVs written together.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


from fume_edge.data.config import PairingConfig, PhClasses
from fume_edge.data.csvio import write_tables
from fume_edge.data.records import Frame, Sample, read_annotations, sample_table
from fume_edge.data.split import SPLITS, split_by_animal
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES

KINDS: tuple[str, ...] = ("pair", "co2", "ch4")  # a sample is a pair or a single-gas frame


def sample_kind(sample: Sample) -> str:
    if sample.co2 is not None and sample.ch4 is not None:
        return "pair"
    return "co2" if sample.co2 is not None else "ch4"


def match_session(co2: Sequence[Frame], ch4: Sequence[Frame], tolerance_s: float) -> list[tuple[int, int]]:
    """One-to-one (co2 index, ch4 index) matches within `tolerance_s`, nearest first; inputs sorted by time."""
    ch4_times = [f.timestamp for f in ch4]
    candidates = []
    for i, frame in enumerate(co2):
        lo = bisect.bisect_left(ch4_times, frame.timestamp - tolerance_s)
        hi = bisect.bisect_right(ch4_times, frame.timestamp + tolerance_s)
        candidates += [(abs(ch4_times[j] - frame.timestamp), i, j) for j in range(lo, hi)]
    used_co2: set[int] = set()
    used_ch4: set[int] = set()
    matches = []
    for _, i, j in sorted(candidates):
        if i not in used_co2 and j not in used_ch4:
            used_co2.add(i)
            used_ch4.add(j)
            matches.append((i, j))
    return sorted(matches)


def pair_frames(frames: Sequence[Frame], tolerance_s: float, classes: PhClasses) -> tuple[list[Sample], list[str]]:
    """Samples (pairs first matched per session, then the frames left single) and warnings about the data."""
    sessions: dict[tuple[str, str], dict[str, list[Frame]]] = defaultdict(lambda: {"co2": [], "ch4": []})
    for frame in frames:
        sessions[frame.session][frame.gas].append(frame)
    samples: list[Sample] = []
    ph_mismatches: list[tuple[Frame, Frame]] = []
    for (animal_id, session_id), by_gas in sorted(sessions.items()):
        co2 = sorted(by_gas["co2"], key=lambda f: (f.timestamp, f.row))
        ch4 = sorted(by_gas["ch4"], key=lambda f: (f.timestamp, f.row))
        matches = match_session(co2, ch4, tolerance_s)
        found: list[tuple[Frame | None, Frame | None]] = [(co2[i], ch4[j]) for i, j in matches]
        paired_co2, paired_ch4 = {i for i, _ in matches}, {j for _, j in matches}
        found += [(f, None) for i, f in enumerate(co2) if i not in paired_co2]
        found += [(None, f) for j, f in enumerate(ch4) if j not in paired_ch4]
        found.sort(key=lambda pair: min(f.timestamp for f in pair if f is not None))
        for c, h in found:
            if c is not None and h is not None and c.ph != h.ph:
                ph_mismatches.append((c, h))
            ph = c.ph if c is not None else h.ph  # type: ignore[union-attr]
            samples.append(Sample(animal_id, session_id, ph, classes.classify(ph), c, h))
    warnings = []
    if ph_mismatches:
        c, h = ph_mismatches[0]
        warnings.append(
            f"{len(ph_mismatches)} pair(s) join frames with different pH (first: rows {c.row} and {h.row}); "
            "the CO2 frame's pH is used"
        )
    return samples, warnings


def split_warnings(frames: Sequence[Frame], splits: dict[str, list[Sample]], fractions: Sequence[float]) -> list[str]:
    """What the split could not honour: empty splits, classes missing from a split, animals with one gas only."""
    warnings = []
    present = {s.ph_class for samples in splits.values() for s in samples}
    for name, fraction in zip(SPLITS, fractions, strict=True):
        have = {s.ph_class for s in splits[name]}
        if fraction > 0 and not splits[name]:
            warnings.append(f"split {name} is empty: too few animals for the requested fractions")
            continue
        for class_id in sorted(present - have):
            if fraction > 0:
                warnings.append(f"class {PH_CLASS_NAMES[class_id]} is missing from split {name}")
    gases_of: dict[str, set[str]] = defaultdict(set)
    for frame in frames:
        gases_of[frame.animal_id].add(frame.gas)
    for animal, gases in sorted(gases_of.items()):
        if len(gases) == 1:
            warnings.append(f"animal {animal} has {next(iter(gases)).upper()} frames only (no pairs possible)")
    return warnings


@dataclass
class PairingReport:
    """What `run_pairing` produced: samples per split, the files written, and warnings for the user."""

    splits: dict[str, list[Sample]]
    files: dict[str, Path]
    warnings: list[str] = field(default_factory=list)

    def counts(self, split: str) -> Counter[tuple[int, str]]:
        """Samples of `split` per (class id, kind), kind one of `KINDS`."""
        return Counter((s.ph_class, sample_kind(s)) for s in self.splits[split])


def run_pairing(
    annotations: str | Path, out_dir: str | Path, config: PairingConfig, classes: PhClasses
) -> PairingReport:
    """Read and check the annotation CSV, pair, split, and write `paired_{train,val,test}.csv` into `out_dir`.

    Everything is checked before the first byte is written; the three files then appear together.
    """
    frames = read_annotations(annotations)
    if not frames:
        raise FumeEdgeError(f"{annotations}: no frames; add one row per frame below the header")
    samples, warnings = pair_frames(frames, config.tolerance_s, classes)
    fractions = config.split.as_tuple()
    splits = split_by_animal(samples, fractions, config.seed)
    warnings += split_warnings(frames, splits, fractions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"paired_{name}.csv" for name in SPLITS}
    write_tables({files[name]: sample_table(splits[name], out) for name in SPLITS})
    return PairingReport(splits, files, warnings)
