"""Input pairs for checking an exported graph: from a paired CSV (real data) or the synthetic generator.

Pairs cycle through the three modality cases (both, CO2 only, CH4 only) so every branch of the fusion is checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.pre import Preprocessing

MODALITY_CASES = ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0))
CHECK_PH_LEVELS = (5.4, 5.9, 6.3)  # one per pH class

Pair = tuple[np.ndarray, np.ndarray, np.ndarray]


def _pair(co2: np.ndarray, ch4: np.ndarray, case: tuple[float, float]) -> Pair:
    """(1,1,H,W) frames with a dropped gas zeroed, as the dataset and the pipeline feed the model."""
    co2_in = (co2 * case[0]).astype(np.float32)[None, None]
    ch4_in = (ch4 * case[1]).astype(np.float32)[None, None]
    return co2_in, ch4_in, np.array([case], dtype=np.float32)


def synthetic_check_pairs(count: int, preprocessing: Preprocessing, seed: int = 0) -> list[Pair]:
    from fume_edge.data.synthetic import SyntheticScene

    width, height = preprocessing.input_size
    pairs = []
    for i in range(count):
        scene = SyntheticScene(seed=seed + i, width=width, height=height)
        rendered = scene.render_pair(ph=CHECK_PH_LEVELS[i % len(CHECK_PH_LEVELS)], t=0.37 * i)
        pairs.append(
            _pair(
                preprocessing.to_input(rendered.co2)[0, 0],
                preprocessing.to_input(rendered.ch4)[0, 0],
                MODALITY_CASES[i % len(MODALITY_CASES)],
            )
        )
    return pairs


def csv_check_pairs(paired_csv: str | Path, count: int, preprocessing: Preprocessing) -> list[Pair]:
    """`count` checks from paired rows spread evenly over a paired CSV, each masked into the next modality case.

    Single-gas rows are skipped: masking a real pair gives all three cases, so the check never depends on how
    many pairs a split happens to hold or where they sit in the file.
    """
    from fume_edge.data.images import load_frame
    from fume_edge.data.records import read_samples

    samples = [s for s in read_samples(paired_csv) if s.co2 is not None and s.ch4 is not None]
    if not samples:
        raise FumeEdgeError(
            f"{paired_csv}: no row holds both gases, so the parity check cannot cover both-gas, "
            "CO2-only and CH4-only inputs; pass a paired CSV with pairs (`fume-edge pair`)"
        )
    picks = np.linspace(0, len(samples) - 1, num=count).round().astype(int)
    pairs = []
    for i, index in enumerate(picks):
        sample = samples[index]
        co2, ch4 = (load_frame(sample.frame(gas).image, preprocessing) for gas in ("co2", "ch4"))
        pairs.append(_pair(co2, ch4, MODALITY_CASES[i % len(MODALITY_CASES)]))
    return pairs
