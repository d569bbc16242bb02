"""The export parity check feeds every fusion path: both gases, CO2 only and CH4 only, whatever the CSV holds."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from calibration_support import SIZE, make_paired_dataset

from fume_edge.deploy.onnx.check_pairs import MODALITY_CASES, csv_check_pairs
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.pre import Preprocessing


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paired_dataset(tmp_path_factory.mktemp("check_pairs"), pairs=40)


def _rewrite(source: Path, target: Path, keep: Callable[[dict[str, str]], bool]) -> Path:
    """`source` with the rows `keep` selects and CO2-only rows first (as a synthetic val split often is)."""
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows, columns = list(reader), reader.fieldnames
    rows = sorted((r for r in rows if keep(r)), key=lambda r: bool(r["ch4_image"]))
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_mostly_single_gas_csv_still_checks_all_three_cases(dataset: Path) -> None:
    paired = [r for r in csv.DictReader((dataset / "paired_train.csv").open()) if r["co2_image"] and r["ch4_image"]]
    co2_only = [r for r in csv.DictReader((dataset / "paired_train.csv").open()) if not r["ch4_image"]]
    assert len(paired) >= 2 and len(co2_only) >= 6
    # Evenly spaced picks over this file land on CO2-only rows only: the case the check used to miss.
    skewed = _rewrite(
        dataset / "paired_train.csv", dataset / "skewed.csv", lambda r: not r["ch4_image"] or r in paired[:2]
    )
    pairs = csv_check_pairs(skewed, 6, Preprocessing(SIZE))
    cases = [tuple(float(v) for v in mask[0]) for _, _, mask in pairs]
    assert len(pairs) == 6
    assert set(cases) == set(MODALITY_CASES)
    for co2, ch4, mask in pairs:
        use_co2, use_ch4 = mask[0]
        assert (co2.any() == bool(use_co2)) and (ch4.any() == bool(use_ch4))  # masked gases are zero, others real
        assert co2.shape == ch4.shape == (1, 1, SIZE[1], SIZE[0]) and co2.dtype == np.float32


def test_csv_without_any_pair_is_one_clear_error(dataset: Path) -> None:
    single = _rewrite(dataset / "paired_train.csv", dataset / "single.csv", lambda r: not r["ch4_image"])
    with pytest.raises(FumeEdgeError, match="single.csv.*both gases"):
        csv_check_pairs(single, 6, Preprocessing(SIZE))
