"""Series assembly, the patient split and padding, on a hand-made embeddings table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ich_ray.study.features import with_study_inputs
from ich_ray.study.series import pad_series, series_rows, split_series, valid_patients
from ich_ray.train.data import uid_hash


def _embeddings(patients=5, slices=4, dim=3):
    rows = []
    for p in range(patients):
        for s in reversed(range(slices)):  # stored out of order: assembly must sort by slice_index
            rows.append({"patient_id": f"P{p}", "study_instance_uid": f"st{p}", "series_instance_uid": f"se{p}",
                         "sop_instance_uid": f"{p}.{s}", "slice_index": s, "label_any": int(s == 1),
                         "embedding": [float(p), float(s), 0.5][:dim]})
    table = pl.DataFrame(rows).with_columns(pl.col("embedding").cast(pl.Array(pl.Float32, dim)))
    return with_study_inputs(table, "embedding", ("any",))


def test_series_rows_are_in_slice_order_with_every_slice_id():
    series = series_rows(_embeddings(), ("any",))
    assert series.height == 5 and series["length"].to_list() == [4] * 5
    first = series.filter(pl.col("series_instance_uid") == "se2").row(0, named=True)
    emb = np.asarray(first["features"]).reshape(4, 3)
    assert emb[:, 1].tolist() == [0, 1, 2, 3] and (emb[:, 0] == 2).all()
    assert first["labels"] == [0.0, 1.0, 0.0, 0.0]
    assert first["uid_hash"] == uid_hash([f"2.{s}" for s in range(4)]).tolist()


def test_split_holds_out_whole_patients_as_the_slice_split_does():
    series = series_rows(_embeddings(), ("any",))
    train, valid = split_series(series, 0.4, seed=0)
    assert train.num_rows + valid.num_rows == 5 and valid.num_rows == 2
    held = valid_patients(series, 0.4, seed=0)
    assert held == {int(h) for row in valid["patient_hash"].to_pylist() for h in row}
    assert not held & {int(h) for row in train["patient_hash"].to_pylist() for h in row}


def test_pad_series_masks_the_padding():
    rows = {"length": np.array([2, 3]), "features": np.array([np.arange(4.0), np.arange(6.0)], dtype=object),
            "labels": np.array([np.array([1.0, 0.0]), np.array([0.0, 0.0, 1.0])], dtype=object),
            **{k: np.array([np.array([1, 2]), np.array([3, 4, 5])], dtype=object)
               for k in ("uid_hash", "study_hash", "patient_hash")}}
    batch = pad_series(rows, embedding_dim=2, num_labels=1)
    assert batch["features"].shape == (2, 3, 2) and batch["mask"].tolist() == [[True, True, False], [True] * 3]
    assert batch["labels"][0, :, 0].tolist() == [1.0, 0.0, 0.0] and batch["uid_hash"][1].tolist() == [3, 4, 5]
    with pytest.raises(ValueError):
        pad_series({**rows, "length": np.array([3, 3])}, embedding_dim=2, num_labels=1)
