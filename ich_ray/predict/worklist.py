"""Study-level triage worklist: one row per study, most urgent first.

Rules (also written on the summary page):
- `max_any` / `mean_any`: maximum / mean `any` probability over the study's predicted slices that are not
  blank (no brain: clean drops them and no model saw them); `max_<subtype>`: maximum subtype probability
  (null for a binary model). `n_slices` counts every predicted slice, `n_blank` the blank ones.
- The strongest-evidence slice is the one with the highest `any` probability (`top_sop_instance_uid`,
  `top_slice_index`, `top_series_instance_uid`).
- `flagged` = max_any >= threshold. A study whose every file failed (n_slices = 0, known from failures that
  still carried a study UID), or whose every slice is blank, is flagged too, with status `no_usable_slice`:
  the model gives no reassurance,
  so a human must read it. Those rows sort first, then the rest by max_any descending.
"""

from __future__ import annotations

import polars as pl

from ich_ray.labels import SUBTYPES
from ich_ray.predict.schema import PROB_COLUMNS

STATUS_OK = "ok"
STATUS_NO_SLICE = "no_usable_slice"


def _per_study(predictions: pl.DataFrame) -> pl.DataFrame:
    counts = predictions.group_by("study_instance_uid").agg(
        pl.col("patient_id").first(), pl.len().cast(pl.Int64).alias("n_slices"),
        pl.col("blank").sum().cast(pl.Int64).alias("n_blank"))
    top = pl.col("prob_any").arg_max()
    scored = predictions.filter(~pl.col("blank")).group_by("study_instance_uid").agg(
        pl.col("prob_any").max().alias("max_any"),
        pl.col("prob_any").mean().alias("mean_any"),
        *(pl.col(f"prob_{name}").max().alias(f"max_{name}") for name in SUBTYPES),
        pl.col("series_instance_uid").get(top).alias("top_series_instance_uid"),
        pl.col("sop_instance_uid").get(top).alias("top_sop_instance_uid"),
        pl.col("slice_index").get(top).cast(pl.Int32).alias("top_slice_index"),
    )
    return counts.join(scored, on="study_instance_uid", how="left")


def build_worklist(predictions: pl.DataFrame, failures: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Aggregate slice predictions (PREDICTION_SCHEMA) and failures (FAILURE_SCHEMA) into the worklist."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    missing = [c for c in ("study_instance_uid", "slice_index", "blank", *PROB_COLUMNS) if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions table lacks columns {missing}")
    studies = _per_study(predictions)
    failed = (
        failures.filter(pl.col("study_instance_uid").is_not_null())
        .group_by("study_instance_uid")
        .agg(pl.col("patient_id").drop_nulls().first(), pl.len().cast(pl.Int64).alias("n_failed"))
    )
    table = studies.join(failed.drop("patient_id"), on="study_instance_uid", how="left")
    unread = failed.join(studies, on="study_instance_uid", how="anti").with_columns(
        pl.lit(0, dtype=pl.Int64).alias("n_slices")
    )
    table = pl.concat([table, unread], how="diagonal_relaxed").with_columns(pl.col("n_failed").fill_null(0),
                                                                         pl.col("n_blank").fill_null(0))
    no_slice = (pl.col("n_slices") == 0) | pl.col("max_any").is_null()
    table = table.with_columns(
        pl.when(no_slice).then(pl.lit(STATUS_NO_SLICE)).otherwise(pl.lit(STATUS_OK)).alias("status"),
        (no_slice | (pl.col("max_any") >= threshold)).fill_null(False).alias("flagged"),
    )
    columns = [
        "patient_id", "study_instance_uid", "n_slices", "n_blank", "n_failed", "status", "flagged", "max_any",
        "mean_any",
        *(f"max_{name}" for name in SUBTYPES),
        "top_series_instance_uid", "top_sop_instance_uid", "top_slice_index",
    ]
    return table.select(columns).sort(
        ["max_any", "study_instance_uid"], descending=[True, False], nulls_last=False
    )
