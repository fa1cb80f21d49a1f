from __future__ import annotations

import math

import numpy as np
import pytest

from ich_ray.metrics import accuracy_multi, bootstrap_interval, compute_metrics, weighted_log_loss


def test_accuracy_multi_is_the_mean_over_all_entries():
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.9, 0.6], [0.2, 0.4]])  # entries right: yes, no, yes, no
    assert accuracy_multi(y, p) == 0.5


def test_binary_metrics_and_auc():
    y = np.array([[0], [0], [1], [1]])
    p = np.array([[0.1], [0.6], [0.4], [0.9]])
    m = compute_metrics(y, p, ["any"])
    assert m["accuracy"] == 0.5 and m["error_rate"] == 0.5
    assert m["auc_any"] == pytest.approx(0.75)
    assert m["logloss_weighted"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.9])))


def test_single_class_label_gives_nan_auc_not_an_error():
    y = np.array([[0, 1], [0, 0], [0, 1]])
    p = np.array([[0.2, 0.8], [0.1, 0.3], [0.3, 0.7]])
    m = compute_metrics(y, p, ["epidural", "any"])
    assert math.isnan(m["auc_epidural"]) and m["auc_any"] == 1.0


def test_weighted_log_loss_weights_any_twice():
    y = np.array([[1, 1]])
    p = np.array([[np.exp(-1), np.exp(-2)]])  # per-label losses 1 and 2
    assert weighted_log_loss(y, p, ["epidural", "any"]) == pytest.approx((1 * 1 + 2 * 2) / 3)


def test_weighted_log_loss_equals_sklearns_per_label_log_loss():
    from sklearn.metrics import log_loss

    from ich_ray.labels import LABELS, rsna_weights

    rng = np.random.default_rng(0)
    y = (rng.random((300, 6)) < 0.3).astype(np.float64)
    p = rng.random((300, 6))
    p[:5] = 0.0  # clipped, not infinite
    p[5:10] = 1.0
    per_label = [log_loss(y[:, j], np.clip(p[:, j], 1e-7, 1 - 1e-7), labels=[0, 1]) for j in range(6)]
    expected = np.dot(rsna_weights(LABELS), per_label) / np.sum(rsna_weights(LABELS))
    assert weighted_log_loss(y, p, LABELS) == pytest.approx(expected, rel=1e-12)


def test_roc_auc_equals_sklearns_with_ties():
    from sklearn.metrics import roc_auc_score

    from ich_ray.metrics import roc_auc

    rng = np.random.default_rng(1)
    for size in (2, 7, 50, 400):
        y = rng.random(size) < 0.3
        y[:2] = [True, False]
        p = np.round(rng.random(size), 1)  # many ties
        assert roc_auc(y.astype(np.uint8), p) == pytest.approx(roc_auc_score(y, p), rel=1e-12)


def test_bad_shapes_and_empty_sets_are_errors():
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        compute_metrics(np.zeros((3, 1)), np.zeros((3, 1)), ["epidural", "any"])
    with pytest.raises(ValueError, match="empty validation set"):
        compute_metrics(np.zeros((0, 1)), np.zeros((0, 1)), ["any"])


def test_study_auc_takes_the_max_over_each_studys_slices():
    # studies a (negative), b (one positive slice), c (negative but one bright slice)
    studies = np.array(["a", "a", "b", "b", "c", "c"])
    y = np.array([[0], [0], [0], [1], [0], [0]])
    p = np.array([[0.1], [0.2], [0.05], [0.7], [0.1], [0.8]])
    m = compute_metrics(y, p, ["any"], study_ids=studies)
    # study scores: a 0.2, b 0.7, c 0.8 -> the one positive study ranks below c: AUC 0.5
    assert m["study_auc_any"] == pytest.approx(0.5)
    assert m["auc_any"] == pytest.approx(0.8)  # slice level: the positive 0.7 beats 4 of 5 negatives
    assert "study_auc_any" not in compute_metrics(y, p, ["any"])
    with pytest.raises(ValueError, match="one study id per prediction"):
        compute_metrics(y, p, ["any"], study_ids=studies[:3])


def _patients(n_patients: int, seed: int):
    """Slices of n patients whose scores separate bleeds from normals imperfectly."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_patients), 10)
    y = (rng.random(len(groups)) < 0.3).astype(float)[:, None]
    p = np.clip(0.35 * y + rng.normal(0.4, 0.2, y.shape), 0.001, 0.999)
    return y, p, groups


def _auc_any(y, p):
    return compute_metrics(y, p, ["any"])["auc_any"]


def test_patient_bootstrap_interval_contains_the_estimate_and_narrows_with_more_patients():
    widths = []
    for n in (10, 40, 160):
        y, p, groups = _patients(n, seed=n)
        low, high = bootstrap_interval(y, p, groups, _auc_any, n_resamples=300, seed=1)
        assert low <= _auc_any(y, p) <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_needs_groups_and_skips_undefined_resamples():
    y = np.array([[0], [1], [0], [0]])
    p = np.array([[0.2], [0.9], [0.1], [0.3]])
    with pytest.raises(ValueError, match="at least 2 groups"):
        bootstrap_interval(y, p, np.zeros(4), _auc_any)
    # patient 1 holds the only positive: resamples without it have no AUC and are left out
    low, high = bootstrap_interval(y, p, np.array([0, 1, 2, 2]), _auc_any, n_resamples=200)
    assert low == high == 1.0
