"""The RSNA 2019 submission file: `ID,Label`, one row per slice and subtype (`ID_<sop>_<subtype>`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ich_ray.labels import LABELS
from ich_ray.predict.schema import prob_column

log = logging.getLogger(__name__)


def make_submission(predictions: pl.DataFrame, labels: Sequence[str] = LABELS) -> pl.DataFrame:
    """`ID`, `Label` rows: for every slice, one row per label in `labels` (in LABELS order).

    A full (multilabel) model gives six rows per slice, exactly RSNA's format. A binary model predicts `any`
    only: pass labels=("any",) and the file holds `any` rows only (it is then not a complete RSNA
    submission, and the caller says so), rather than inventing subtype probabilities.
    """
    unknown = [name for name in labels if name not in LABELS]
    if unknown:
        raise ValueError(f"unknown labels {unknown}; valid labels: {', '.join(LABELS)}")
    ordered = [name for name in LABELS if name in labels]
    # RSNA's own SOP UIDs already start with `ID_`: do not double the prefix.
    sop = pl.col("sop_instance_uid")
    stem = pl.when(sop.str.starts_with("ID_")).then(sop).otherwise(pl.lit("ID_") + sop)
    parts = [
        predictions.select(
            (stem + pl.lit(f"_{name}")).alias("ID"),
            pl.col(prob_column(name)).alias("Label"),
            pl.int_range(pl.len()).alias("_slice"),
            pl.lit(rank, dtype=pl.Int32).alias("_label"),
        )
        for rank, name in enumerate(ordered)
    ]
    table = pl.concat(parts).sort("_slice", "_label").drop("_slice", "_label")
    missing = table.filter(pl.col("Label").is_null()).height
    if missing:
        raise ValueError(f"{missing} submission rows have no probability; labels {ordered} must all be predicted")
    return table


def write_submission(predictions: pl.DataFrame, path: str | Path, labels: Sequence[str] = LABELS) -> pl.DataFrame:
    table = make_submission(predictions, labels)
    table.write_csv(path, float_precision=6)
    if tuple(labels) != LABELS:
        log.warning("submission %s holds %s rows only (the model predicts %s): not a full RSNA submission",
                    path, "/".join(labels), "/".join(labels))
    return table
