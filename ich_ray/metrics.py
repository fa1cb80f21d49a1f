"""Validation metrics on predictions (numpy in, floats out), used by training,
the baseline, `compare` and the benchmarks.

Names match the MLflow contract: error_rate, accuracy (binary `any`), accuracy_multi (the paper's
definition: mean over all entries of (sigmoid > 0.5) == target), auc_<label>, logloss_weighted (RSNA), and
with study ids study_auc_<label>: a study is positive when any of its slices is, and scores the maximum of
its slices' probabilities (how a triage list ranks studies).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from ich_ray.labels import rsna_weights

LOG_LOSS_CLIP = 1e-7  # probabilities are clipped to [clip, 1 - clip] before the log (as RSNA's scorer)


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
    """ROC AUC of one label; NaN (not an exception) when the validation set holds a single class.

    The Mann-Whitney form (mean rank of the positives, ties ranked half), which equals sklearn's
    `roc_auc_score` (tests/test_metrics.py) at ~1/50 of its cost per call: `compare`'s patient bootstrap
    calls this 1,000 times per run, and sklearn's input validation cost ~7 ms a call there.
    """
    y = np.asarray(y_true).reshape(-1) > 0.5
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(np.asarray(y_prob, dtype=np.float64).reshape(-1))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def weighted_log_loss(y_true: np.ndarray, y_prob: np.ndarray, labels) -> float:
    """RSNA weighted log loss: per-label log loss averaged with weights (`any` = 2).

    Each label's loss is sklearn's `log_loss(y, clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])`, computed for all
    labels in one numpy pass: `compare`'s patient bootstrap calls this 1,000 times per run, and sklearn's
    input validation, six times per call, cost ~20 s a run there (the values are equal, tests/test_metrics.py).
    """
    weights = np.asarray(rsna_weights(labels), dtype=np.float64)
    y, p = _check(y_true, y_prob, labels)
    p = np.clip(p, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    per_label = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p), axis=0)
    return float(np.dot(weights, per_label) / weights.sum())


def study_level(y_true: np.ndarray, y_prob: np.ndarray, study_ids) -> tuple[np.ndarray, np.ndarray]:
    """Per-study labels and scores [S, L]: the maximum over each study's slices (studies in sorted id order)."""
    study_ids = np.asarray(study_ids)
    if study_ids.shape != (len(y_true),):
        raise ValueError(f"expected one study id per prediction ({len(y_true)}), got shape {study_ids.shape}")
    _, inverse = np.unique(study_ids, return_inverse=True)
    n = int(inverse.max()) + 1 if len(inverse) else 0
    out_true = np.full((n, y_true.shape[1]), -np.inf)
    out_prob = np.full((n, y_prob.shape[1]), -np.inf)
    np.maximum.at(out_true, inverse, y_true)
    np.maximum.at(out_prob, inverse, y_prob)
    return out_true, out_prob


def compute_metrics(y_true, y_prob, labels, threshold: float = 0.5, study_ids=None) -> dict[str, float]:
    """All per-epoch validation metrics for `labels` (the model's output order); study metrics when
    `study_ids` (one per row) are given."""
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
    if study_ids is not None:
        study_true, study_prob = study_level(y_true, y_prob, study_ids)
        for j, name in enumerate(labels):
            out[f"study_auc_{name}"] = roc_auc(study_true[:, j], study_prob[:, j])
    return out


def bootstrap_interval(y_true, y_prob, groups, metric, n_resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `metric(y_true, y_prob)` over resamples of whole groups with replacement.

    Resampling patients (not slices) keeps a patient's correlated slices together, as a new set of patients
    would arrive: slices of one head are not independent draws, and a slice-level bootstrap would give
    intervals that are too narrow. Resamples on which the metric is undefined (NaN: one class only) are
    left out; (nan, nan) when none is defined.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    y_true, y_prob, groups = np.asarray(y_true), np.asarray(y_prob), np.asarray(groups)
    if groups.shape != (len(y_true),):
        raise ValueError(f"expected one group id per prediction ({len(y_true)}), got shape {groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(int(inverse.max()) + 1)] if len(inverse) else []
    if len(members) < 2:
        raise ValueError(f"a bootstrap over groups needs at least 2 groups, got {len(members)}")
    rng = np.random.default_rng(seed)
    values = np.array([
        metric(y_true[rows], y_prob[rows])
        for rows in (np.concatenate([members[g] for g in rng.integers(len(members), size=len(members))])
                     for _ in range(n_resamples))
    ], dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
