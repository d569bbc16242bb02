"""Split metrics must equal scikit-learn's definitions on random data, including absent classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from fume_edge.metrics import MetricAccumulator, classification_metrics, confusion, segmentation_metrics

LABELS = [0, 1, 2]


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("absent", [None, 1])
def test_classification_metrics_equal_sklearn(seed: int, absent: int | None) -> None:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, 200)
    pred = np.where(rng.random(200) < 0.6, true, rng.integers(0, 3, 200))
    if absent is not None:  # a class missing from the truth (and the predictions) of a split
        true[true == absent] = 0
        pred[pred == absent] = 2
    got = classification_metrics(confusion(true, pred, 3))
    nan = np.nan
    expected = {
        "accuracy": skm.accuracy_score(true, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(true, pred),
        "macro_f1": skm.f1_score(true, pred, labels=LABELS, average="macro", zero_division=nan),
        "weighted_f1": skm.f1_score(true, pred, labels=LABELS, average="weighted", zero_division=nan),
        "kappa": skm.cohen_kappa_score(true, pred),
    }
    per_class = skm.f1_score(true, pred, labels=LABELS, average=None, zero_division=nan)
    expected.update({f"f1_{n}": v for n, v in zip(("healthy", "transitional", "acidotic"), per_class, strict=True)})
    for key, value in expected.items():
        assert _close(got[key], float(value)), (key, got[key], value)
    np.testing.assert_array_equal(confusion(true, pred, 3), skm.confusion_matrix(true, pred, labels=LABELS))


@pytest.mark.parametrize("seed", range(4))
def test_segmentation_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, (4, 12, 16))
    pred = np.where(rng.random(true.shape) < 0.7, true, rng.integers(0, 3, true.shape))
    if seed % 2:  # no gas anywhere in truth or prediction: gas IoU is undefined (NaN), not 0
        true[true == 2] = 1
        pred[pred == 2] = 0
    got = segmentation_metrics(confusion(true, pred, 3), "co2")
    t, p = true.ravel(), pred.ravel()
    seen = sorted(set(t) | set(p))  # sklearn's jaccard has no zero_division=nan: undefined classes are left out
    iou = dict(zip(seen, skm.jaccard_score(t, p, labels=seen, average=None), strict=True))
    dice = skm.f1_score(t, p, labels=LABELS, average=None, zero_division=np.nan)
    assert _close(got["co2_miou"], float(skm.jaccard_score(t, p, labels=seen, average="macro")))
    assert _close(got["co2_pixel_acc"], float(skm.accuracy_score(t, p)))
    for i, name in enumerate(("background", "tube", "gas")):
        assert _close(got[f"co2_iou_{name}"], float(iou.get(i, np.nan)))
        assert _close(got[f"co2_dice_{name}"], float(dice[i]))


def test_accumulator_over_batches_and_ranks_equals_whole_split() -> None:
    rng = np.random.default_rng(7)
    true = rng.integers(0, 3, (6, 8, 10))
    pred = rng.integers(0, 3, (6, 8, 10))
    ph_true, ph_pred = rng.integers(0, 3, 6), rng.integers(0, 3, 6)
    whole, first, second = MetricAccumulator(), MetricAccumulator(), MetricAccumulator()
    whole.update_ph(ph_true, ph_pred)
    whole.update_seg("ch4", true, pred)
    for acc, sl in ((first, slice(0, 2)), (second, slice(2, 6))):
        acc.update_ph(ph_true[sl], ph_pred[sl])
        acc.update_seg("ch4", true[sl], pred[sl])
    first.load_array(first.as_array() + second.as_array())  # what summing over DDP ranks does
    a, b = whole.compute(), first.compute()
    assert a.keys() == b.keys()
    assert all(_close(a[k], b[k]) for k in a)
    assert "co2_iou_gas" not in a and _close(a["gas_iou"], a["ch4_iou_gas"])
    assert _close(a["joint"], (a["balanced_accuracy"] + a["gas_iou"]) / 2)
