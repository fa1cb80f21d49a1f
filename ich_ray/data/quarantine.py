"""ROOT/quarantine/: one row per file a stage could not use (path, stage, error_type, error, run_id).

`error_type` and `error` are the columns of every failure table (metadata/, quarantine/, predict's
failures.csv), filled by `ich_ray.dicom.errors.failure_fields`; `quarantine_row` builds one row of this table.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from ich_ray.dicom.errors import failure_fields

QUARANTINE_SCHEMA = pa.schema(
    [("path", pa.string()), ("stage", pa.string()), ("error_type", pa.string()), ("error", pa.string()), ("run_id", pa.string())]
)
QUARANTINE_PART = "part-0.parquet"
_OLD_REASON_COLUMN = "message"  # the `error` column's name before 0.2: snapshots written then still load


def quarantine_row(path: str, stage: str, exc: BaseException, run_id: str) -> dict:
    """One QUARANTINE_SCHEMA row for a file `stage` could not use because of `exc`."""
    error_type, error = failure_fields(exc)
    return {"path": path, "stage": stage, "error_type": error_type, "error": error, "run_id": run_id}


def empty_quarantine() -> pl.LazyFrame:
    return pl.from_arrow(QUARANTINE_SCHEMA.empty_table()).lazy()


def metadata_failures(raw: pl.LazyFrame, run_id: str) -> pl.LazyFrame:
    """Quarantine rows for the `failed` rows of a raw metadata table."""
    return raw.filter(pl.col("status") == "failed").select(
        "path", pl.lit("metadata").alias("stage"), "error_type", "error", pl.lit(run_id).alias("run_id"),
    )


def publish_quarantine(
    dest: Path, new_rows: pl.LazyFrame, previous: pl.LazyFrame | None, redone: pl.LazyFrame | None = None
) -> int:
    """Write a snapshot's quarantine table: `previous` minus the rows `redone` by this run, plus `new_rows`.

    `redone` has columns (path, stage): work this run did again, whose old verdict no longer holds.
    Returns the number of rows written.
    """
    rows = new_rows
    if previous is not None:
        if _OLD_REASON_COLUMN in previous.collect_schema().names():
            previous = previous.rename({_OLD_REASON_COLUMN: "error"})
        kept = previous.join(redone, on=["path", "stage"], how="anti") if redone is not None else previous
        rows = pl.concat([kept, new_rows], how="vertical_relaxed")
    rows = rows.unique(subset=["path", "stage"], keep="last", maintain_order=True)
    dest.mkdir(parents=True, exist_ok=True)
    frame_path = dest / QUARANTINE_PART
    rows.sink_parquet(frame_path)
    return pl.scan_parquet(frame_path).select(pl.len()).collect().item()
