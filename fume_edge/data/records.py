"""The two on-disk tables of the data pipeline (documented in docs/data-format.md).

- Annotation CSV, one row per frame: `image, mask, gas, ph, animal_id, session_id, timestamp`.
- Paired CSV (`paired_{train,val,test}.csv`), one row per training sample: `animal_id, session_id, ph, ph_class,
  co2_image, co2_mask, co2_timestamp, ch4_image, ch4_mask, ch4_timestamp`; the three cells of a gas the sample
  lacks are empty, which is what makes it a single-modality sample.

Paths are stored relative to the CSV's own folder, so a dataset folder can be moved or copied as a whole.
Timestamps are seconds or ISO-8601 (UTC when no zone is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fume_edge.data.csvio import Row, Table, read_rows, relative_to
from fume_edge.labels import GASES, PH_CLASS_NAMES

ANNOTATION_COLUMNS: tuple[str, ...] = ("image", "mask", "gas", "ph", "animal_id", "session_id", "timestamp")
PAIRED_COLUMNS: tuple[str, ...] = (
    "animal_id",
    "session_id",
    "ph",
    "ph_class",
    *(f"{gas}_{part}" for gas in GASES for part in ("image", "mask", "timestamp")),
)


@dataclass(frozen=True)
class Frame:
    """One camera frame: its image and mask files, gas, the sample's pH, who and when it was recorded."""

    image: Path
    mask: Path
    gas: str
    ph: float
    animal_id: str
    session_id: str
    timestamp: float
    row: int = 0  # line in the annotation CSV, for messages

    @property
    def session(self) -> tuple[str, str]:
        return (self.animal_id, self.session_id)


@dataclass(frozen=True)
class Sample:
    """One training sample: a CO2/CH4 pair, or a single frame when the other gas has no partner."""

    animal_id: str
    session_id: str
    ph: float
    ph_class: int
    co2: Frame | None
    ch4: Frame | None

    def frame(self, gas: str) -> Frame | None:
        return self.co2 if gas == "co2" else self.ch4

    @property
    def modality_mask(self) -> tuple[float, float]:
        """[use_co2, use_ch4], the model's modality mask."""
        return (float(self.co2 is not None), float(self.ch4 is not None))


def iso_utc(seconds: float) -> str:
    """Seconds since the epoch as ISO-8601 UTC with milliseconds (how fume-edge writes timestamps)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds")


def _gas(row: Row) -> str:
    gas = row.text("gas").lower()
    if gas not in GASES:
        raise row.error("gas", f"unknown gas {row.cells.get('gas')!r}; write one of {', '.join(GASES)}")
    return gas


def _ph_class(row: Row) -> int:
    name = row.text("ph_class")
    if name not in PH_CLASS_NAMES:
        raise row.error("ph_class", f"unknown class {name!r}; write one of {', '.join(PH_CLASS_NAMES)}")
    return PH_CLASS_NAMES.index(name)


def read_annotations(path: str | Path) -> list[Frame]:
    """Frames of an annotation CSV; every row is checked (files exist, gas known, pH and time parse)."""
    frames = []
    for row in read_rows(path, ANNOTATION_COLUMNS):
        image, mask = row.file("image"), row.file("mask")
        assert image is not None and mask is not None  # required cells: `file` raised on an empty one
        frames.append(
            Frame(
                image=image,
                mask=mask,
                gas=_gas(row),
                ph=row.number("ph"),
                animal_id=row.text("animal_id"),
                session_id=row.text("session_id"),
                timestamp=row.timestamp("timestamp"),
                row=row.line,
            )
        )
    return frames


def annotation_table(frames: Sequence[Frame], folder: Path) -> Table:
    """Annotation rows for a CSV that will live in `folder`."""
    rows = [
        (
            relative_to(f.image, folder),
            relative_to(f.mask, folder),
            f.gas,
            f"{f.ph:g}",
            f.animal_id,
            f.session_id,
            iso_utc(f.timestamp),
        )
        for f in frames
    ]
    return ANNOTATION_COLUMNS, rows


def _sample_frame(row: Row, gas: str, ph: float, animal_id: str, session_id: str) -> Frame | None:
    image = row.file(f"{gas}_image", allow_empty=True)
    if image is None:
        return None
    mask = row.file(f"{gas}_mask")
    assert mask is not None
    return Frame(image, mask, gas, ph, animal_id, session_id, row.timestamp(f"{gas}_timestamp"), row.line)


def read_samples(path: str | Path) -> list[Sample]:
    """Samples of a paired CSV; a row must hold at least one gas."""
    samples = []
    for row in read_rows(path, PAIRED_COLUMNS):
        animal_id, session_id, ph = row.text("animal_id"), row.text("session_id"), row.number("ph")
        co2, ch4 = (_sample_frame(row, gas, ph, animal_id, session_id) for gas in GASES)
        if co2 is None and ch4 is None:
            raise row.error("co2_image", "the row has neither a CO2 nor a CH4 image; give at least one")
        samples.append(Sample(animal_id, session_id, ph, _ph_class(row), co2, ch4))
    return samples


def sample_table(samples: Sequence[Sample], folder: Path) -> Table:
    """Paired rows for a CSV that will live in `folder`."""
    rows = []
    for s in samples:
        cells: list[object] = [s.animal_id, s.session_id, f"{s.ph:g}", PH_CLASS_NAMES[s.ph_class]]
        for gas in GASES:
            f = s.frame(gas)
            cells += (
                ["", "", ""]
                if f is None
                else [relative_to(f.image, folder), relative_to(f.mask, folder), iso_utc(f.timestamp)]
            )
        rows.append(cells)
    return PAIRED_COLUMNS, rows
