"""Epoch metrics on gathered validation predictions (numpy in, floats out; sklearn for the statistics).

Names match the MLflow contract: error_rate, accuracy (binary `any`), accuracy_multi (the paper's
definition: mean over all entries of (sigmoid > 0.5) == target), auc_<label>, logloss_weighted (RSNA).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from ich_ray.train.losses import label_weights

log = logging.getLogger(__name__)


def _check(y_true: np.ndarray, y_prob: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_prob = np.asarray(y_true, dtype=np.float64), np.asarray(y_prob, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_prob.shape or y_true.shape[1] != len(labels):
        raise ValueError(f"expected y_true and y_prob of shape [N, {len(labels)}], got {y_true.shape} and {y_prob.shape}")
    if y_true.shape[0] == 0:
        raise ValueError("no predictions to score (empty validation set)")
    return y_true, y_prob


def accuracy_multi(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> float:
    return float(((y_prob > threshold) == (y_true > 0.5)).mean())


def roc_auc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """ROC AUC of one label; NaN (not an exception) when the validation set holds a single class."""
    if len(np.unique(y_true)) < 2:
        return math.nan
    return float(roc_auc_score(y_true, y_prob))


def weighted_log_loss(y_true: np.ndarray, y_prob: np.ndarray, labels) -> float:
    """RSNA weighted log loss: per-label log loss averaged with weights (`any` = 2)."""
    weights = label_weights(labels).numpy().astype(np.float64)
    per_label = [log_loss(y_true[:, j], np.clip(y_prob[:, j], 1e-7, 1 - 1e-7), labels=[0, 1]) for j in range(len(labels))]
    return float(np.dot(weights, per_label) / weights.sum())


def compute_metrics(y_true, y_prob, labels, threshold: float = 0.5) -> dict[str, float]:
    """All per-epoch validation metrics for `labels` (the model's output order)."""
    labels = list(labels)
    y_true, y_prob = _check(y_true, y_prob, labels)
    out: dict[str, float] = {"accuracy_multi": accuracy_multi(y_true, y_prob, threshold)}
    if "any" in labels:
        j = labels.index("any")
        out["accuracy"] = float(((y_prob[:, j] > threshold) == (y_true[:, j] > 0.5)).mean())
        out["error_rate"] = 1.0 - out["accuracy"]
    for j, name in enumerate(labels):
        out[f"auc_{name}"] = roc_auc(y_true[:, j], y_prob[:, j])
    out["logloss_weighted"] = weighted_log_loss(y_true, y_prob, labels)
    return out
