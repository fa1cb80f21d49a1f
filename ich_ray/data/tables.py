"""The metadata table's polars post-pass: slice order within each series, labels, and the snapshot write.

`slice_index` is computed over the whole table every time the table is written, from a narrow projection
(path, series, position) joined back onto the rows, so it stays right when a later incremental run adds
slices to a series that already exists, and the wide rows are streamed, never collected on the driver.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ich_ray.labels import LABEL_COLUMNS

METADATA_PART = "part-0.parquet"


def slice_position() -> pl.Expr:
    """Position along the slice normal: the dot product of ImagePositionPatient with the normal
    (row cosines x column cosines). For an axial, untilted slice it is image_position_z; for a tilted
    gantry or an oblique stack it still orders slices along the stack. Without an orientation: z."""
    o = [pl.col(f"image_orientation_{i}") for i in range(6)]
    normal = (o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3])
    position = (pl.col("image_position_x"), pl.col("image_position_y"), pl.col("image_position_z"))
    projected = sum((p * n for p, n in zip(position, normal, strict=True)), pl.lit(0.0))
    return pl.coalesce(projected, pl.col("image_position_z"))


def with_slice_index(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Add `slice_index` (Int32, 0 = lowest position) to ok rows, per series; null for failed rows.

    Ties and missing positions are broken by SOP UID then path, so the order is deterministic.
    """
    order = (
        rows.filter((pl.col("status") == "ok") & pl.col("series_instance_uid").is_not_null())
        .select("path", "series_instance_uid", "sop_instance_uid", slice_position().alias("_position"))
        .sort(["series_instance_uid", "_position", "sop_instance_uid", "path"], nulls_last=True)
        .select("path", pl.int_range(pl.len(), dtype=pl.Int32).over("series_instance_uid").alias("slice_index"))
    )
    return rows.drop("slice_index", strict=False).join(order, on="path", how="left", maintain_order="left")


def publish_metadata(dest: Path, raw: pl.LazyFrame, previous: pl.LazyFrame | None, labels=None) -> tuple[int, int]:
    """Write the metadata table for a new snapshot; returns (ok, failed) among the `raw` (new) rows.

    `previous` is the committed table: its rows for paths in `raw` are replaced, the rest kept.
    `labels` (a `LabelTable`) relabels every row; without it, kept rows keep their labels and new rows get
    null labels when the table has label columns.
    """
    from ich_ray.data.labels import join_labels

    rows = raw
    if previous is not None:
        kept = previous.join(raw.select("path"), on="path", how="anti")
        rows = pl.concat([kept, raw], how="diagonal_relaxed")
    rows = with_slice_index(rows)
    if labels is not None:
        rows = join_labels(rows, labels.frame)
    label_columns = [c for c in LABEL_COLUMNS if c in rows.collect_schema().names()]
    rows = rows.with_columns(pl.col(label_columns).cast(pl.Int8))
    dest.mkdir(parents=True, exist_ok=True)
    rows.sink_parquet(dest / METADATA_PART)
    counts = dict(raw.group_by("status").len().collect().iter_rows())
    return counts.get("ok", 0), counts.get("failed", 0)
