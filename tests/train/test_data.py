"""The driver-side plan (split, checks, cache decision), the batch decoder, and the Ray Datasets built from them."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from ich_ray.train.data import (
    ROW_SEED,
    build_datasets,
    decode_batch,
    decoded_bytes,
    local_shuffle_rows,
    plan_data,
    read_and_decode,
    select_rows,
    should_cache,
    uid_hash,
)
from ich_ray.train.driver import train_ingest_options

from .conftest import write_images_table


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


def test_raw_and_png_shards_decode_to_the_same_batches(images_root, tmp_path):
    raw_root = write_images_table(tmp_path, fmt="raw")
    batches = {}
    for name, root in (("png", images_root), ("raw", raw_root)):
        plan = plan_data(root, ("any",), "patient", 0.25, seed=0)
        table = pq.read_table(sorted((root / "images").glob("*.parquet")))
        batches[name] = decode_batch(select_rows(table, plan, valid=False), plan)
    assert batches["raw"]["image"].shape == (36, 3, 64, 64)
    for key in ("image", "labels", "uid_hash"):
        np.testing.assert_array_equal(batches["raw"][key], batches["png"][key])


def test_decode_refuses_an_empty_batch(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    table = pq.read_table(sorted((images_root / "images").glob("*.parquet"))[0])
    with pytest.raises(ValueError, match="select the split first"):
        decode_batch(table.slice(0, 0), plan)


def test_read_and_decode_yields_each_split_row_once_and_no_empty_batch(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    paths = {"path": np.array(plan.files)}
    columns = ["image", "label_any", "patient_id", "series_instance_uid", "sop_instance_uid", "study_instance_uid"]
    for valid, count in ((True, plan.n_valid), (False, plan.n_train)):
        # 5-row reads: the held-out patient's 12 slices leave some reads with no row of the split
        batches = list(read_and_decode(paths, plan, valid, batch_rows=5, columns=columns))
        assert all(len(b["image"]) > 0 for b in batches)
        hashes = np.concatenate([b["uid_hash"] for b in batches])
        assert len(hashes) == len(np.unique(hashes)) == count


def test_a_row_seed_yields_a_shards_split_rows_once_each_in_the_order_it_draws(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    columns = ["image", "label_any", "patient_id", "series_instance_uid", "sop_instance_uid", "study_instance_uid"]

    def read(row_seed=None):
        paths = {"path": np.array(plan.files[:1]), **({ROW_SEED: np.array([row_seed])} if row_seed is not None else {})}
        batches = list(read_and_decode(paths, plan, False, batch_rows=5, columns=columns))
        assert all(0 < len(b["image"]) <= 5 for b in batches)
        return np.concatenate([b["uid_hash"] for b in batches]).tolist(), np.concatenate([b["image"] for b in batches])

    stored, stored_images = read()
    shuffled, shuffled_images = read(0.25)
    assert sorted(shuffled) == sorted(stored) and len(set(stored)) == len(stored) > 5
    assert shuffled != stored and read(0.25)[0] == shuffled and read(0.75)[0] != shuffled
    by_uid = dict(zip(stored, stored_images, strict=True))
    assert all(np.array_equal(image, by_uid[uid]) for uid, image in zip(shuffled, shuffled_images, strict=True))  # rows intact


def test_the_local_shuffle_defaults_to_none_when_streaming_and_is_kept_when_set():
    assert local_shuffle_rows(None, cache=False) == 0
    assert local_shuffle_rows(None, cache=True) == 1024
    assert local_shuffle_rows(0, cache=True) == 0 and local_shuffle_rows(64, cache=False) == 64


def test_uid_hash_is_stable_and_non_negative():
    a = uid_hash(["1.2.3", "1.2.4"])
    assert a.dtype == np.int64 and (a >= 0).all() and a[0] != a[1]
    assert np.array_equal(a, uid_hash(["1.2.3", "1.2.4"]))


def test_missing_images_table(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images table"):
        plan_data(tmp_path, ("any",), "patient", 0.2, 0)


def test_auto_cache_only_when_the_decoded_splits_fit_a_quarter_of_the_object_store(images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    assert decoded_bytes(plan) == 48 * (3 * 64 * 64 + 4 + 3 * 8)  # image, one float label, three id hashes
    assert should_cache("auto", plan, 4 * decoded_bytes(plan))
    assert not should_cache("auto", plan, 4 * decoded_bytes(plan) - 1)
    assert should_cache("always", plan, 0) and not should_cache("never", plan, 1e15)
    with pytest.raises(ValueError, match="unknown cache mode 'yes'"):
        should_cache("yes", plan, 1e15)


@pytest.mark.ray
def test_cached_and_streaming_datasets_hold_the_same_decoded_rows(ray_session, images_root):
    plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    streamed, cached = build_datasets(plan, cache=False), build_datasets(plan, cache=True)
    for name, count in (("train", plan.n_train), ("valid", plan.n_valid)):
        a = {int(r["uid_hash"]): r for r in streamed[name].iter_rows()}
        b = {int(r["uid_hash"]): r for r in cached[name].iter_rows()}
        assert len(a) == len(b) == count and a.keys() == b.keys()
        some = next(iter(a))
        assert np.array_equal(a[some]["image"], b[some]["image"]) and a[some]["image"].shape == (3, 64, 64)


@pytest.mark.ray
@pytest.mark.parametrize("cache", [True, False], ids=["cached", "streaming"])
def test_the_datasets_run_without_the_operator_reservation_and_leave_the_context_as_it_was(
        ray_session, images_root, cache):
    import ray.data

    from ich_ray.compat import op_reservation_enabled

    before = op_reservation_enabled(ray.data.DataContext.get_current())
    datasets = build_datasets(plan_data(images_root, ("any",), "patient", 0.25, seed=0), cache=cache, seed=0)
    assert {name: op_reservation_enabled(ds.context) for name, ds in datasets.items()} == {
        "train": False, "valid": False}
    assert op_reservation_enabled(ray.data.DataContext.get_current()) is before


def test_an_out_of_fold_plan_leaves_its_fold_out_of_training_only(images_root):
    full = plan_data(images_root, ("any",), "patient", 0.25, seed=0)
    table = pq.read_table(sorted((images_root / "images").glob("*.parquet")))
    left_out = []
    for fold in range(3):  # 3 training patients, one per fold
        plan = plan_data(images_root, ("any",), "patient", 0.25, seed=0, fold=fold, folds=3)
        assert plan.valid_keys == full.valid_keys and plan.n_valid == full.n_valid
        assert len(plan.excluded_keys) == 1 and plan.n_train == full.n_train - 12
        assert plan.fold == {"fold": fold, "folds": 3, "seed": 0, "valid_fraction": 0.25}
        trained = set(select_rows(table, plan, valid=False)["patient_id"].to_pylist())
        assert not trained & set(plan.excluded_keys) and not trained & set(plan.valid_keys)
        left_out += plan.excluded_keys
    assert sorted(left_out) == sorted(set(table["patient_id"].to_pylist()) - set(full.valid_keys))


def _epoch_orders(dataset, epochs: int = 3) -> list[list[int]]:
    return [[int(h) for batch in dataset.iter_batches(batch_size=8) for h in batch["uid_hash"]]
            for _ in range(epochs)]


@pytest.mark.ray
@pytest.mark.parametrize("cache", [True, False], ids=["cached", "streaming"])
def test_a_seed_gives_the_same_new_order_every_epoch_run_after_run(ray_session, tmp_path, cache):
    """Two builds with one seed stream the train split in the same sequence of orders; the epochs differ."""
    root = write_images_table(tmp_path, patients=4, slices=6, shards=6)
    plan = plan_data(root, ("any",), "patient", 0.25, seed=0)

    def orders(seed):
        train = build_datasets(plan, cache=cache, seed=seed)["train"]
        train.context.execution_options = train_ingest_options()  # as Ray Train reads it
        return _epoch_orders(train)

    first, again = orders(0), orders(0)
    assert first == again
    assert sorted(first[0]) == sorted(first[1]) and len(first[0]) == plan.n_train
    assert len({tuple(o) for o in first}) > 1  # a new order each epoch, not one frozen order
    assert orders(1) != first
