"""The paper's metadata-only baseline: a random forest on DICOM header features and pixel statistics.

It shows how much the headers alone "know" (scanner, protocol, slice position) and is a floor a CNN must beat.
Same patient-level split and metrics as the CNNs; tracked in `ich-ray/baseline`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl

from ich_ray.config import config_to_dict
from ich_ray.data.io import scan_table
from ich_ray.data.splits import check_split, make_split
from ich_ray.labels import label_column
from ich_ray.metrics import compute_metrics
from ich_ray.train.config import BaselineConfig

log = logging.getLogger(__name__)

FEATURES = (
    "rows", "columns", "slice_thickness", "image_position_z", "slice_index", "bits_stored",
    "pixel_representation", "rescale_intercept", "window_center", "window_width",
    "img_min", "img_max", "img_mean", "img_std", "img_pct_window",
)


def load_features(cfg: BaselineConfig) -> tuple[pl.DataFrame, list[str]]:
    """ok + labelled rows of ROOT/metadata with the feature columns present (missing ones are skipped)."""
    folder = Path(cfg.data) / "metadata"
    scan = scan_table(folder)
    if scan is None:
        raise FileNotFoundError(f"no metadata table: {folder} holds no Parquet files (run `ich-ray metadata`)")
    columns = scan.collect_schema().names()
    target = label_column(cfg.label)
    for needed in (target, "patient_id"):
        if needed not in columns:
            raise ValueError(f"metadata table {folder} lacks column {needed!r}")
    features = [f for f in FEATURES if f in columns]
    if not features:
        raise ValueError(f"metadata table {folder} has none of the feature columns {', '.join(FEATURES)}")
    ok = pl.col("status") == "ok" if "status" in columns else pl.lit(True)
    ids = [c for c in ("sop_instance_uid", "study_instance_uid") if c in columns]  # for the held-out predictions
    frame = scan.filter(ok & pl.col(target).is_not_null()).select("patient_id", *ids, target, *features).collect()
    if frame.height == 0:
        raise ValueError(f"metadata table {folder} has no ok, labelled rows for {target}")
    return frame, features


def run_baseline(cfg: BaselineConfig) -> dict[str, float]:
    """Fit, score on held-out patients, track; returns the validation metrics."""
    from sklearn.ensemble import RandomForestClassifier

    from ich_ray.tracking import plots
    from ich_ray.tracking.predictions import log_predictions, predictions_frame
    from ich_ray.tracking.tracker import make_tracker, tracking_tags
    from ich_ray.tracking.uri import resolve_tracking_uri

    started = time.perf_counter()
    frame, features = load_features(cfg)
    target = label_column(cfg.label)
    x = frame.select(features).cast(pl.Float64).fill_null(np.nan).to_numpy()
    y = frame[target].to_numpy().astype(int)
    is_valid = make_split(frame["patient_id"].to_numpy(), cfg.split, cfg.valid_fraction, cfg.seed)
    check_split(y[:, None], is_valid, [cfg.label])
    forest = RandomForestClassifier(
        n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
        random_state=cfg.seed, n_jobs=-1,
    ).fit(x[~is_valid], y[~is_valid])  # sklearn's forests accept NaN features since 1.4
    prob = forest.predict_proba(x[is_valid])[:, list(forest.classes_).index(1)]
    y_true, y_prob = y[is_valid][:, None], prob[:, None]
    metrics = compute_metrics(y_true, y_prob, [cfg.label])
    uri = resolve_tracking_uri(cfg.tracking_uri, cfg.data) if cfg.track else None
    tracker = make_tracker(uri, cfg.experiment, cfg.run_name or f"random-forest-{cfg.label}", rank=0,
                           enabled=cfg.track, resume=False)
    with tracker:
        tracker.log_params({**config_to_dict(cfg), "features": features, "n_train": int((~is_valid).sum()),
                            "n_valid": int(is_valid.sum())})
        tracker.set_tags(tracking_tags(cfg.data, cluster_size=0, arch="random_forest", task=f"baseline-{cfg.label}"))
        tracker.log_metrics(metrics, step=0)
        tracker.log_figure(plots.feature_importance(features, forest.feature_importances_), "feature_importance.png")
        tracker.log_figure(plots.roc_curves(y_true, y_prob, [cfg.label]), "roc_curves.png")
        tracker.log_figure(plots.confusion_matrices(y_true, y_prob, [cfg.label]), "confusion_matrices.png")
        held_out = _id_hashes(frame.filter(pl.Series(is_valid)))
        log_predictions(tracker, predictions_frame(y_true, y_prob, [cfg.label], held_out, epoch=0))
    log.info("baseline: %d train / %d valid slices, %d features, auc_%s %.3f, %.1f s", (~is_valid).sum(),
             is_valid.sum(), len(features), cfg.label, metrics[f"auc_{cfg.label}"], time.perf_counter() - started)
    return metrics


def _id_hashes(rows: pl.DataFrame) -> dict[str, np.ndarray]:
    """The held-out rows' id hashes, as training logs them (compare bootstraps over `patient_hash`)."""
    from ich_ray.train.data import HASH_KEYS, uid_hash

    return {key: uid_hash(rows[column].to_list()) for key, column in HASH_KEYS.items() if column in rows.columns}
