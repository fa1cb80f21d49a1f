"""ROOT/quarantine/: one row per file a stage could not use (path, stage, error_type, message, run_id)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

QUARANTINE_SCHEMA = pa.schema(
    [("path", pa.string()), ("stage", pa.string()), ("error_type", pa.string()), ("message", pa.string()), ("run_id", pa.string())]
)
QUARANTINE_PART = "part-0.parquet"


def empty_quarantine() -> pl.LazyFrame:
    return pl.from_arrow(QUARANTINE_SCHEMA.empty_table()).lazy()


def metadata_failures(raw: pl.LazyFrame, run_id: str) -> pl.LazyFrame:
    """Quarantine rows for the `failed` rows of a raw metadata table."""
    return raw.filter(pl.col("status") == "failed").select(
        "path", pl.lit("metadata").alias("stage"), "error_type", pl.col("error").alias("message"),
        pl.lit(run_id).alias("run_id"),
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
        kept = previous.join(redone, on=["path", "stage"], how="anti") if redone is not None else previous
        rows = pl.concat([kept, new_rows], how="vertical_relaxed")
    rows = rows.unique(subset=["path", "stage"], keep="last", maintain_order=True)
    dest.mkdir(parents=True, exist_ok=True)
    frame_path = dest / QUARANTINE_PART
    rows.sink_parquet(frame_path)
    return pl.scan_parquet(frame_path).select(pl.len()).collect().item()
