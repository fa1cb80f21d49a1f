"""Column names of the prediction tables, shared by inference, worklist, submission and report."""

from __future__ import annotations

import polars as pl

from ich_ray.labels import ID_COLUMNS, LABELS

PROB_COLUMNS = tuple(f"prob_{name}" for name in LABELS)
# What a blank slice (no brain: above or below the head, the slices clean drops and no model saw in
# training) is given for every label, in predictions.csv and the RSNA submission: it holds no brain to bleed
# in, and a small non-zero value keeps the log loss finite should a label say otherwise.
BLANK_PROBABILITY = 0.001

# One row per predicted slice. A binary (`any`) model leaves the five subtype columns null. `blank` slices
# carry BLANK_PROBABILITY and take no part in the study score, the top slice or the heat maps.
PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.String,
    **{name: pl.String for name in ID_COLUMNS},
    "slice_index": pl.Int32,
    "blank": pl.Boolean,
    **{name: pl.Float64 for name in PROB_COLUMNS},
}

# One row per input file that could not be predicted (read, prepare or inference failure); `error_type` and
# `error` as in metadata/ and quarantine/ (`ich_ray.dicom.errors.failure_fields`).
FAILURE_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.String,
    "stage": pl.String,
    "error_type": pl.String,
    "error": pl.String,
    "study_instance_uid": pl.String,
    "patient_id": pl.String,
}


def prob_column(label: str) -> str:
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; valid labels: {', '.join(LABELS)}")
    return f"prob_{label}"

