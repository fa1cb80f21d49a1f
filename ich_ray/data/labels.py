"""RSNA labels: the long-form label file -> one row per image, and the join onto metadata/.

The RSNA 2019 file (`stage_2_train.csv`, 4.5M rows) is long form::

    ID,Label
    ID_12cadc6af_epidural,0
    ID_12cadc6af_any,1

The image key is everything before the LAST underscore, the subtype everything after it. In RSNA the
DICOM tag SOPInstanceUID is itself `ID_12cadc6af`, so the key is kept as is. Our synthetic and hospital
files carry ordinary dotted UIDs (`1.2.826.0.1...`) and the label file writes them as
`ID_<dotted uid>_<subtype>`; there the `ID_` prefix is not part of the tag and is dropped. Either way the
key equals the SOPInstanceUID tag, which is what `metadata/` stores in `sop_instance_uid`.

Conflicting duplicates (the same ID with both 0 and 1) resolve to 1: a positive call by any reader is a
finding, and for a triage tool a missed bleed costs far more than a false alarm (it is also how `any`
relates to the subtypes: an OR). They are counted and logged so they can be reviewed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ich_ray.labels import LABEL_COLUMNS, LABELS

log = logging.getLogger(__name__)

HEADER = ("ID", "Label")
PREFIX = "ID_"
_DOTTED_UID = r"^[0-9]+(\.[0-9]+)+$"
_EXAMPLES = 5  # how many offending IDs a warning names


@dataclass
class LabelTable:
    """One row per image: `sop_instance_uid` + six Int8 `label_<name>` columns (null if that subtype was absent)."""

    frame: pl.DataFrame
    n_rows_in: int
    n_duplicate_rows: int
    n_conflicts: int
    conflicting_ids: list[str] = field(default_factory=list)


@dataclass
class LabelJoinReport:
    n_images: int  # distinct sop_instance_uid in metadata
    n_labelled_images: int
    n_images_without_labels: int
    n_labels_without_image: int  # labelled sop_instance_uids absent from metadata


def _check_header(csv_path: Path) -> None:
    with csv_path.open(encoding="utf-8", errors="replace") as f:
        first = f.readline().strip().lstrip("\ufeff")
    if tuple(c.strip() for c in first.split(",")) != HEADER:
        raise ValueError(f"{csv_path}: line 1: expected header 'ID,Label', got {first!r}")


def _read_rows(csv_path: Path) -> pl.DataFrame:
    """The raw rows with their file line number and the label as Int8 (null where it is not 0 or 1)."""
    try:
        return (
            pl.scan_csv(csv_path, schema={"ID": pl.String, "Label": pl.String})
            .with_row_index("line", offset=2)  # line 1 is the header
            .filter(pl.col("ID").is_not_null() | pl.col("Label").is_not_null())  # blank lines carry nothing
            .with_columns(
                pl.col("Label").replace_strict({"0": 0, "1": 1}, default=None, return_dtype=pl.Int8).alias("label")
            )
            .collect()
        )
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"{csv_path}: not a two-column ID,Label CSV: {exc}") from exc


def _per_id(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per distinct ID: first line, row count, which labels it has, the resolved label, key, subtype.

    Plain suffix/prefix checks instead of a regex: on the 4.5M-row RSNA file a regex extract costs more than
    everything else together. `subtype` or `sop_instance_uid` is null where the ID is malformed.
    """
    subtype = pl.coalesce(pl.when(pl.col("ID").str.ends_with(f"_{name}")).then(pl.lit(name)) for name in LABELS)
    # everything before the last underscore (str.head with a negative length drops that many characters)
    key = pl.col("ID").str.head(-(pl.col("subtype").str.len_chars().cast(pl.Int64) + 1))
    rest = pl.col("_key").str.strip_prefix(PREFIX)
    valid_key = pl.col("_key").str.starts_with(PREFIX) & (rest.str.len_chars() > 0)
    return (
        rows.lazy()
        .with_columns((pl.col("label") == 0).alias("has_0"), (pl.col("label") == 1).alias("has_1"))
        .group_by("ID")
        .agg(
            pl.col("line").min(),
            pl.len().alias("n_rows"),
            pl.col("has_0", "has_1").any(),
            pl.col("label").max(),  # a conflict resolves to 1: positive wins (module docstring)
        )
        .with_columns(subtype.alias("subtype"))
        .with_columns(key.alias("_key"))
        .with_columns(
            pl.when(~valid_key).then(None).when(rest.str.contains(_DOTTED_UID)).then(rest).otherwise("_key")
            .alias("sop_instance_uid"),
        )
        .drop("_key")
        .collect()
    )


def _describe(bad_id: str | None, label: str | None) -> str:
    """What is wrong with one malformed line (plain Python: only ever run on the first one)."""
    if bad_id is not None and bad_id.startswith(PREFIX) and "_" in bad_id[len(PREFIX):]:
        key, subtype = bad_id.rsplit("_", 1)
        if subtype not in LABELS and len(key) > len(PREFIX):
            return f"unknown subtype {subtype!r} in {bad_id} (expected one of {', '.join(LABELS)})"
        if subtype in LABELS and len(key) > len(PREFIX):
            return f"label must be 0 or 1, got {label or ''!r} for {bad_id}"
    return f"bad ID (expected ID_<sop uid>_<subtype>): {bad_id or ''!r}"


def _raise_on_malformed(rows: pl.DataFrame, ids: pl.DataFrame, csv_path: Path) -> None:
    """Name the first malformed line and how many malformed lines there are in all."""
    bad_ids = ids.filter(pl.col("subtype").is_null() | pl.col("sop_instance_uid").is_null())["ID"]
    bad = rows.filter(pl.col("label").is_null() | pl.col("ID").is_null() | pl.col("ID").is_in(bad_ids.implode()))
    if bad.height:
        first = bad.sort("line").row(0, named=True)
        more = f" (and {bad.height - 1} more malformed lines)" if bad.height > 1 else ""
        raise ValueError(f"{csv_path}: line {first['line']}: {_describe(first['ID'], first['Label'])}{more}")


def read_rsna_labels(csv_path: str | Path) -> LabelTable:
    """Read an RSNA-style label file into one row per image (see the module docstring for the rules)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"label file not found: {csv_path}")
    _check_header(csv_path)
    rows = _read_rows(csv_path)
    ids = _per_id(rows)
    _raise_on_malformed(rows, ids, csv_path)

    n_rows_in = rows.height
    n_distinct_rows = ids.select(pl.col("has_0").sum() + pl.col("has_1").sum()).item()
    conflicting_ids = ids.filter(pl.col("has_0") & pl.col("has_1"))["ID"].sort().to_list()
    if conflicting_ids:
        log.warning(
            "%s: %d IDs have conflicting labels (resolved to 1, positive wins), e.g. %s",
            csv_path, len(conflicting_ids), ", ".join(conflicting_ids[:_EXAMPLES]),
        )
    frame = (
        ids.lazy()
        # Spread each label into its subtype's column first: a plain max per group is far faster than
        # filtering inside the aggregation.
        .select(
            "sop_instance_uid",
            *(pl.when(pl.col("subtype") == name).then("label").alias(column) for name, column in zip(LABELS, LABEL_COLUMNS, strict=True)),
        )
        .group_by("sop_instance_uid")
        .agg(pl.col(LABEL_COLUMNS).max())
        .sort("sop_instance_uid")
        .collect()
    )
    table = LabelTable(
        frame=frame,
        n_rows_in=n_rows_in,
        n_duplicate_rows=n_rows_in - n_distinct_rows,
        n_conflicts=len(conflicting_ids),
        conflicting_ids=conflicting_ids,
    )
    n_incomplete = frame.select(pl.any_horizontal(pl.col(LABEL_COLUMNS).is_null()).sum()).item()
    log.info(
        "labels %s: %d rows in, %d exact duplicates, %d conflicting IDs -> %d images (%d missing some subtype)",
        csv_path, table.n_rows_in, table.n_duplicate_rows, table.n_conflicts, frame.height, n_incomplete,
    )
    return table


def label_join_report(metadata: pl.LazyFrame, labels: pl.DataFrame) -> LabelJoinReport:
    """How well the label keys and the images' SOPInstanceUIDs match (reads only that one column)."""
    images = (
        metadata.select(pl.col("sop_instance_uid").cast(pl.String)).drop_nulls().unique().collect()
    )
    keys = labels.select("sop_instance_uid")
    n_labelled = images.join(keys, on="sop_instance_uid", how="semi").height
    return LabelJoinReport(
        n_images=images.height,
        n_labelled_images=n_labelled,
        n_images_without_labels=images.height - n_labelled,
        n_labels_without_image=keys.join(images, on="sop_instance_uid", how="anti").height,
    )


def join_labels(metadata: pl.LazyFrame, labels: pl.DataFrame) -> pl.LazyFrame:
    """Left-join labels onto metadata by `sop_instance_uid`; images without labels keep null labels.

    Label columns already in `metadata` (e.g. null placeholders) are replaced. Logs a `LabelJoinReport`.
    """
    missing = [c for c in ("sop_instance_uid", *LABEL_COLUMNS) if c not in labels.columns]
    if missing:
        raise ValueError(f"labels frame lacks columns {missing}; use read_rsna_labels(...).frame")
    report = label_join_report(metadata, labels)
    level = logging.WARNING if report.n_labels_without_image or report.n_images_without_labels else logging.INFO
    log.log(
        level,
        "label join: %d images, %d labelled, %d without labels; %d labelled IDs have no image",
        report.n_images, report.n_labelled_images, report.n_images_without_labels, report.n_labels_without_image,
    )
    present = [c for c in LABEL_COLUMNS if c in metadata.collect_schema().names()]
    return (
        metadata.drop(present)
        .with_columns(pl.col("sop_instance_uid").cast(pl.String))
        .join(labels.lazy().select("sop_instance_uid", *LABEL_COLUMNS), on="sop_instance_uid", how="left", maintain_order="left")
    )
