from __future__ import annotations

import math

import numpy as np
import pytest

from ich_ray.train.metrics import accuracy_multi, compute_metrics, weighted_log_loss


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


def test_bad_shapes_and_empty_sets_are_errors():
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        compute_metrics(np.zeros((3, 1)), np.zeros((3, 1)), ["epidural", "any"])
    with pytest.raises(ValueError, match="empty validation set"):
        compute_metrics(np.zeros((0, 1)), np.zeros((0, 1)), ["any"])
