"""`predict --labels`: score the predictions against an RSNA-style label file, as a user would score a model
on an external labelled set. Slice metrics over every predicted slice as submitted (blank slices with their
documented value), study metrics over each study's non-blank slices (the worklist's rule)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import polars as pl

from ich_ray.labels import label_column
from ich_ray.metrics import compute_metrics

log = logging.getLogger(__name__)


def evaluate(predictions: pl.DataFrame, label_rows: pl.DataFrame, labels: tuple[str, ...]) -> dict:
    """Metrics dict (`n_slices`, `n_labelled`, `n_studies`, `slice` and `study` metric dicts); `label_rows`
    has `sop_instance_uid` and `label_<name>` columns (`data.labels.read_rsna_labels(...).table`)."""
    label_cols = [label_column(n) for n in labels]
    joined = predictions.join(label_rows.select("sop_instance_uid", *label_cols), on="sop_instance_uid",
                              how="inner").drop_nulls(label_cols)
    if joined.is_empty():
        raise ValueError("no predicted slice has a label in the label file (do the SOPInstanceUIDs match?)")
    y_true = joined.select(label_cols).to_numpy().astype(np.float64)
    y_prob = joined.select([f"prob_{n}" for n in labels]).to_numpy().astype(np.float64)
    slice_metrics = compute_metrics(y_true, y_prob, labels)
    kept = ~joined["blank"].to_numpy()
    study = compute_metrics(y_true[kept], y_prob[kept], labels, study_ids=joined["study_instance_uid"].to_numpy()[kept])
    study_metrics = {k.removeprefix("study_"): v for k, v in study.items() if k.startswith("study_")}
    return {"n_slices": predictions.height, "n_labelled": joined.height,
            "n_studies": int(joined["study_instance_uid"].n_unique()), "slice": slice_metrics, "study": study_metrics}


def _finite(value):
    """JSON has no NaN: an undefined metric (one class only) is written as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def write_metrics(path: Path, metrics: dict) -> Path:
    path.write_text(json.dumps(_finite(metrics), indent=1) + "\n")
    log.info("predict: labelled evaluation of %d slices (%d studies) -> %s: slice auc_any %.4f, study auc_any %.4f",
             metrics["n_labelled"], metrics["n_studies"], path, metrics["slice"].get("auc_any", math.nan),
             metrics["study"].get("auc_any", math.nan))
    return path
