"""The driver-side plan (split, checks) and the Ray Data batch decoder, without Ray."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from ich_ray.train.data import decode_batch, plan_data, select_rows, uid_hash


def test_plan_splits_by_patient_and_counts_every_row(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    assert plan.n_train + plan.n_valid == 48 and plan.n_valid == 12  # 1 of 4 patients x 12 slices
    assert plan.split_key == "patient_id" and len(plan.valid_keys) == 1
    assert plan.in_channels == 3 and plan.stored_size == 64


def test_positives_only_keeps_bleeds(images_root):
    plan = plan_data(images_root, ("epidural", "intraparenchymal", "intraventricular", "subarachnoid",
                                   "subdural", "any"), "random", 0.25, seed=0, positives_only=True)
    assert plan.n_train + plan.n_valid == 24


def test_decode_batch_selects_the_split_and_decodes_images(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    table = pq.read_table(sorted((images_root / "images").glob("*.parquet")))
    valid = decode_batch(select_rows(table, plan, valid=True), plan)
    train = decode_batch(select_rows(table, plan, valid=False), plan)
    assert len(valid["image"]) + len(train["image"]) == table.num_rows
    assert train["image"].shape[1:] == (3, 64, 64) and train["image"].dtype == np.uint8
    assert train["labels"].shape == (len(train["image"]), 1)
    # positives carry a bright blob: their max pixel is far above the head's grey
    bright = train["image"].reshape(len(train["image"]), -1).max(axis=1) > 200
    assert np.array_equal(bright, train["labels"][:, 0] == 1)
    expected = set(uid_hash([u for u, p in zip(table["sop_instance_uid"].to_pylist(),
                                               table["patient_id"].to_pylist(), strict=True)
                             if p in plan.valid_keys]).tolist())
    assert set(valid["uid_hash"].tolist()) == expected


def test_decode_refuses_an_empty_batch(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    table = pq.read_table(sorted((images_root / "images").glob("*.parquet"))[0])
    with pytest.raises(ValueError, match="select the split first"):
        decode_batch(table.slice(0, 0), plan)


def test_uid_hash_is_stable_and_non_negative():
    a = uid_hash(["1.2.3", "1.2.4"])
    assert a.dtype == np.int64 and (a >= 0).all() and a[0] != a[1]
    assert np.array_equal(a, uid_hash(["1.2.3", "1.2.4"]))


def test_missing_images_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images table"):
        plan_data(tmp_path, ("any",), "patient", 0.2, 0)
