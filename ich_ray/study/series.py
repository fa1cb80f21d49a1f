"""Embeddings -> one row per series (slices ordered by `slice_index`), split by patient, and the collate
function that pads a batch of series to its longest one.

The split is `data.splits.split_by_patient` over the labelled slices' patients with the slice model's seed
and fraction: the same held-out patients as the slice model (checked against its logged predictions where
they exist), so neither stage ever trains on a held-out patient.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from ich_ray.data.io import parquet_files
from ich_ray.data.splits import split_by_patient
from ich_ray.labels import label_column
from ich_ray.train.data import HASH_KEYS, uid_hash

SERIES_KEY = "series_instance_uid"


def read_embeddings(folder, labels: tuple[str, ...]) -> pl.DataFrame:
    files = parquet_files(folder)
    if not files:
        raise FileNotFoundError(f"no embeddings under {folder}")
    table = pl.read_parquet(files)
    label_cols = [label_column(n) for n in labels]
    missing = [c for c in label_cols if c not in table.columns]
    if missing:
        raise ValueError(f"embeddings {folder} lack label column(s) {', '.join(missing)}")
    return table.drop_nulls(label_cols)


def series_rows(table: pl.DataFrame, labels: tuple[str, ...]) -> pl.DataFrame:
    """One row per series: `length` and, in slice order, flattened `features` (the study model's input per
    slice, `study.features.with_study_inputs`) / `labels` lists and the id hash lists of `HASH_KEYS` (every
    slice keeps its own ids)."""
    hashed = table.with_columns(
        *(pl.Series(key, uid_hash(table[column].to_list())) for key, column in HASH_KEYS.items()),
        pl.concat_list([pl.col(label_column(n)).cast(pl.Float32) for n in labels]).alias("labels"),
    )
    return (
        hashed.sort(SERIES_KEY, "slice_index")
        .group_by(SERIES_KEY, maintain_order=True)
        .agg(
            pl.len().alias("length"), pl.col("patient_id").first(),
            pl.col("features").explode().alias("features"),  # T x D, flattened
            pl.col("labels").explode().alias("labels"),  # T x L, flattened
            *(pl.col(key) for key in HASH_KEYS),
        )
    )


def split_series(series: pl.DataFrame, valid_fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """(train, valid) Arrow tables of series rows, held out by patient."""
    is_valid = split_by_patient(series["patient_id"].to_numpy(), valid_fraction, seed)
    columns = ["length", "features", "labels", *HASH_KEYS]
    return (series.filter(~pl.Series(is_valid)).select(columns).to_arrow(),
            series.filter(pl.Series(is_valid)).select(columns).to_arrow())


def all_patients(series: pl.DataFrame) -> set[int]:
    """Hashes of every patient of the series rows."""
    return set(uid_hash(series["patient_id"].unique().to_list()).tolist())


def valid_patients(series: pl.DataFrame, valid_fraction: float, seed: int) -> set[int]:
    """Hashes of the held-out patients (to compare with the slice model's logged predictions)."""
    is_valid = split_by_patient(series["patient_id"].to_numpy(), valid_fraction, seed)
    return set(uid_hash(series.filter(pl.Series(is_valid))["patient_id"].unique().to_list()).tolist())


def pad_series(batch: dict[str, np.ndarray], embedding_dim: int, num_labels: int) -> dict:
    """`iter_torch_batches` collate_fn: a numpy batch of series rows -> padded tensors [B, T, ...] + `mask`."""
    import torch

    lengths = batch["length"].astype(np.int64)
    size, longest = len(lengths), int(lengths.max())
    embedding = np.zeros((size, longest, embedding_dim), np.float32)
    targets = np.zeros((size, longest, num_labels), np.float32)
    mask = np.zeros((size, longest), bool)
    ids = {key: np.zeros((size, longest), np.int64) for key in HASH_KEYS}
    for b, n in enumerate(lengths):
        embedding[b, :n] = np.asarray(batch["features"][b], np.float32).reshape(n, embedding_dim)
        targets[b, :n] = np.asarray(batch["labels"][b], np.float32).reshape(n, num_labels)
        mask[b, :n] = True
        for key in HASH_KEYS:
            ids[key][b, :n] = batch[key][b]
    out = {"features": embedding, "labels": targets, "mask": mask, **ids}
    return {key: torch.from_numpy(value) for key, value in out.items()}


def series_collate(embedding_dim: int, num_labels: int):
    """`pad_series` as the callable class Ray's `iter_torch_batches(collate_fn=...)` takes."""
    from ray.data.collate_fn import NumpyBatchCollateFn

    class PadSeries(NumpyBatchCollateFn):
        def __call__(self, batch):
            return pad_series(batch, embedding_dim, num_labels)

    return PadSeries()
