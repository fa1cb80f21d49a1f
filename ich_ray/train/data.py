"""Training data: the images/ index on the driver (split, checks) and Ray Data pipelines that decode slices.

The driver reads only the small columns (ids, labels, shape, recipe) to split by patient and to fail fast on
bad input; image bytes are read and decoded by Ray Data tasks (`map_batches`), never on the driver.
Each batch leaving the pipeline is `image` uint8 [B, C, H, W], `labels` float32 [B, L], and int64 [B] stable
63-bit hashes of the ids: `uid_hash` (sop_instance_uid: gathered validation predictions are audited with it),
`study_hash` and `patient_hash` (study-level metrics and the patient-level bootstrap of `compare`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ich_ray.data.io import parquet_files
from ich_ray.data.splits import check_split, make_split, patient_folds
from ich_ray.imaging.recipe import CleanRecipe, decode_slices
from ich_ray.labels import ID_COLUMNS, label_column
from ich_ray.ray_utils import fused_stage_context

log = logging.getLogger(__name__)

# batch key -> the id column it hashes
HASH_KEYS = {"uid_hash": "sop_instance_uid", "study_hash": "study_instance_uid", "patient_hash": "patient_id"}
SHAPE_COLUMNS = ("height", "width", "channels", "recipe")
CACHE_MODES = ("auto", "always", "never")
# cache="auto" keeps the decoded splits in the object store only when they take at most this share of it:
# the rest stays free for Ray Data's streaming blocks and for checkpoints.
AUTO_CACHE_SHARE = 0.25
# The streaming train split's read tasks get one random number per shard in this column, new every epoch
# (`build_datasets`); the task permutes the shard's rows with it.
ROW_SEED = "row_seed"
# Rows a training worker shuffles locally (Ray Data's local shuffle buffer) when the config leaves it unset,
# for cached splits: their blocks keep the order they were decoded in. A streaming split needs none
# (`local_shuffle_rows`).
CACHED_SHUFFLE_ROWS = 1024


def image_files(root: str | Path) -> list[Path]:
    files = parquet_files(Path(root) / "images")
    if not files:
        raise FileNotFoundError(f"no images table: {Path(root) / 'images'} holds no Parquet files (run `ich-ray clean`)")
    return [f.resolve() for f in files]


def uid_hash(uids) -> np.ndarray:
    """Stable int64 id per uid string (blake2b, 63 bits: never negative, same on every worker)."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "big") >> 1 for u in uids],
        dtype=np.int64,
    )


@dataclass(frozen=True)
class DataPlan:
    """What the driver decided before any worker starts."""

    files: tuple[str, ...]
    labels: tuple[str, ...]
    split_key: str  # column the validation keys refer to
    valid_keys: tuple[str, ...]
    positives_only: bool
    in_channels: int
    recipe_json: str
    stored_size: int
    n_train: int
    n_valid: int
    # patients of the training split left out of training (an out-of-fold model's own fold)
    excluded_keys: tuple[str, ...] = ()
    fold: dict | None = None  # {"fold", "folds", "seed", "valid_fraction"} of an out-of-fold model


def _read_index(files: list[Path], labels: tuple[str, ...]) -> pl.DataFrame:
    columns = [*ID_COLUMNS, *SHAPE_COLUMNS, *(label_column(n) for n in labels)]
    schema = pl.read_parquet_schema(files[0])
    missing = [c for c in columns if c not in schema]
    if missing:
        raise ValueError(f"images table {files[0].parent} lacks column(s) {', '.join(missing)}")
    return pl.read_parquet(files, columns=columns)


def _single(index: pl.DataFrame, column: str):
    values = index[column].unique().to_list()
    if len(values) != 1:
        raise ValueError(f"images table mixes {len(values)} values of {column!r} ({values[:3]}...); train on one recipe")
    return values[0]


def plan_data(root: str | Path, labels: tuple[str, ...], split: str, valid_fraction: float, seed: int,
              positives_only: bool = False, fold: int | None = None, folds: int = 2) -> DataPlan:
    """Read the index, drop unlabelled rows, split, and check both splits (empty / single-class -> error).
    With `fold`, the training patients of that fold (`patient_folds`) are left out of training."""
    files = image_files(root)
    index = _read_index(files, labels)
    label_cols = [label_column(n) for n in labels]
    usable = index.drop_nulls(label_cols)
    if positives_only:
        if "label_any" not in usable.columns:
            raise ValueError("positives_only needs the label_any column")
        usable = usable.filter(pl.col("label_any") == 1)
    log.info("images table: %d rows, %d labelled%s", index.height, usable.height,
             ", bleed-positive only" if positives_only else "")
    if usable.height == 0:
        raise ValueError(f"no usable labelled slices in {Path(root) / 'images'} (labels {', '.join(labels)})")
    is_valid = make_split(usable["patient_id"].to_numpy(), split, valid_fraction, seed)
    excluded: tuple[str, ...] = ()
    if fold is not None:
        # folds over the labelled rows' patients, as train-study assigns them (before positives_only)
        labelled = index.drop_nulls(label_cols)
        in_fold = patient_folds(labelled["patient_id"].to_numpy(),
                                make_split(labelled["patient_id"].to_numpy(), split, valid_fraction, seed), folds,
                                seed) == fold
        excluded = tuple(sorted(set(labelled.filter(pl.Series(in_fold))["patient_id"].to_list())))
        keep = ~usable["patient_id"].is_in(excluded).to_numpy()
        usable, is_valid = usable.filter(pl.Series(keep)), is_valid[keep]
        log.info("out-of-fold model: fold %d of %d leaves %d training patients out", fold, folds, len(excluded))
    check_split(usable.select(label_cols).to_numpy(), is_valid, labels)
    key = "patient_id" if split == "patient" else "sop_instance_uid"
    height, width = _single(usable, "height"), _single(usable, "width")
    if height != width:
        raise ValueError(f"images are {height}x{width}; training expects square images (CleanRecipe.size)")
    return DataPlan(
        files=tuple(str(f) for f in files),
        labels=tuple(labels),
        split_key=key,
        valid_keys=tuple(sorted(set(usable.filter(pl.Series(is_valid))[key].to_list()))),
        positives_only=positives_only,
        in_channels=int(_single(usable, "channels")),
        recipe_json=str(_single(usable, "recipe")),
        stored_size=int(height),
        n_train=int((~is_valid).sum()),
        n_valid=int(is_valid.sum()),
        excluded_keys=excluded,
        fold=None if fold is None else {"fold": fold, "folds": folds, "seed": seed, "valid_fraction": valid_fraction},
    )


def select_rows(batch: pa.Table, plan: DataPlan, valid: bool) -> pa.Table:
    """The rows of `batch` in the requested split, labelled (and bleed-positive when asked)."""
    return batch.filter(split_mask(batch, plan, valid))


def split_mask(batch: pa.Table, plan: DataPlan, valid: bool) -> pa.BooleanArray | pa.ChunkedArray:
    """Which rows of `batch` `select_rows` keeps (no nulls)."""
    in_valid = pc.is_in(batch[plan.split_key], value_set=pa.array(plan.valid_keys, type=pa.string()))
    mask = in_valid if valid else pc.invert(in_valid)
    if plan.excluded_keys and not valid:
        out_of_fold = pc.is_in(batch["patient_id"], value_set=pa.array(plan.excluded_keys, type=pa.string()))
        mask = pc.and_(mask, pc.invert(out_of_fold))
    for name in plan.labels:
        mask = pc.and_(mask, pc.is_valid(batch[label_column(name)]))
    if plan.positives_only:
        mask = pc.and_(mask, pc.equal(batch["label_any"], 1))
    return pc.fill_null(mask, False)


def decode_batch(rows: pa.Table, plan: DataPlan) -> dict[str, np.ndarray]:
    """Ray Data batch fn: decode the image bytes of `rows` (one split's, see `select_rows`) to uint8
    [B, C, H, W] and stack their labels."""
    if not rows.num_rows:
        raise ValueError("decode_batch got no rows: select the split first (select_rows), so batches are never empty")
    images = decode_slices(rows["image"], CleanRecipe.from_json(plan.recipe_json))
    labels = np.stack([rows[label_column(n)].to_numpy(zero_copy_only=False) for n in plan.labels], axis=1)
    return {
        "image": np.ascontiguousarray(images),
        "labels": labels.astype(np.float32).reshape(len(images), len(plan.labels)),
        **{key: uid_hash(rows[column].to_pylist()) for key, column in HASH_KEYS.items()},
    }


def decoded_bytes(plan: DataPlan) -> int:
    """Object-store bytes of both splits once decoded (uint8 images, float32 labels, int64 id hashes)."""
    per_row = plan.in_channels * plan.stored_size ** 2 + 4 * len(plan.labels) + 8 * len(HASH_KEYS)
    return (plan.n_train + plan.n_valid) * per_row


def check_cache_mode(mode: str) -> None:
    if mode not in CACHE_MODES:
        raise ValueError(f"unknown cache mode {mode!r}; valid: {', '.join(CACHE_MODES)}")


def should_cache(mode: str, plan: DataPlan, object_store_bytes: float) -> bool:
    """Whether to decode once and keep the splits in the object store (`mode` auto | always | never)."""
    check_cache_mode(mode)
    need = decoded_bytes(plan)
    cache = need <= AUTO_CACHE_SHARE * object_store_bytes if mode == "auto" else mode == "always"
    log.info("decoded splits: %.1f MiB, object store %.1f MiB: %s", need / 2**20, object_store_bytes / 2**20,
             "decoded once and cached" if cache else "decoded every epoch (streaming)")
    return cache


def read_and_decode(paths: dict[str, np.ndarray], plan: DataPlan, valid: bool, batch_rows: int,
                    columns: list[str]):
    """Ray Data batch fn over a block of images/ shard paths: keep the split's rows of each shard
    (`select_rows`) and yield them decoded (`decode_batch`), `batch_rows` at a time.

    With a `ROW_SEED` column (the streaming train split), each shard is read whole and its rows come in a
    random order drawn from that seed; otherwise in stored order, read `batch_rows` at a time.
    """
    seeds = paths.get(ROW_SEED)
    for i, path in enumerate(paths["path"]):
        if seeds is None:
            yield from _stored_order(str(path), plan, valid, batch_rows, columns)
        else:
            yield from _shuffled(str(path), plan, valid, batch_rows, columns, float(seeds[i]))


def _stored_order(path: str, plan: DataPlan, valid: bool, batch_rows: int, columns: list[str]):
    for record_batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        rows = select_rows(pa.Table.from_batches([record_batch]), plan, valid)
        if rows.num_rows:  # a batch with no row of the split yields nothing (see `build_datasets`)
            yield decode_batch(rows, plan)


def _shuffled(path: str, plan: DataPlan, valid: bool, batch_rows: int, columns: list[str], row_seed: float):
    """The split's rows of one shard in the order of a permutation drawn from `row_seed` (in [0, 1)). The
    task holds the shard (at most `SHARD_IMAGE_BYTES` of image values, as clean writes them) while it
    yields; each block is one copy of its rows (`take`), the split's rows picked by index, not filtered
    into a second copy of the shard first."""
    shard = pq.read_table(path, columns=columns)
    keep = np.flatnonzero(split_mask(shard, plan, valid).to_numpy(zero_copy_only=False))
    order = np.random.default_rng(int(row_seed * 2**53)).permutation(keep)
    for start in range(0, len(order), batch_rows):
        yield decode_batch(shard.take(order[start:start + batch_rows]), plan)


def local_shuffle_rows(configured: int | None, cache: bool) -> int:
    """The training worker's local shuffle buffer in rows (0: none): `configured` when set, else
    `CACHED_SHUFFLE_ROWS` for cached splits and 0 for streaming ones, whose read tasks shuffle each shard."""
    if configured is not None:
        return configured
    return CACHED_SHUFFLE_ROWS if cache else 0


def build_datasets(plan: DataPlan, batch_rows: int = 64, cache: bool = False, seed: int | None = None) -> dict:
    """Ray Datasets {"train", "valid"} over the images/ shards, decoded in parallel tasks.

    One task per shard reads it, selects the split's rows and decodes them (`read_and_decode`), so the
    encoded bytes never pass through the object store and decoded blocks stream to the trainer as they are
    made. Batches with no row of the split yield nothing, where an empty decoded batch would make Ray store
    the image column as pickled Python objects (its tensor type cannot hold zero rows), slowing every
    consumer. The streaming train split is shuffled every epoch, seeded by `seed` (`epoch_order`), in the
    read tasks, never on decoded blocks: its shards come in a new random order, and each task yields its
    shard's rows in a new random order (a `ROW_SEED` drawn per shard with Ray Data's `random()` expression).
    So a batch is a random draw from one or two shards (clean writes ~1,000 slices of ~30 series a shard)
    without a local shuffle buffer in the training worker, whose copies of every row cost that one process
    ~0.2 ms an image (`bench/gpu_train.py --ingest-only`). A block shuffle after decoding would be an
    all-to-all barrier: the first batch would wait for the whole epoch to be decoded, and an epoch larger
    than the object store would spill.
    With `cache`, both splits are decoded now, on every CPU, and kept in the object store: each epoch then
    streams decoded blocks (their order shuffled per epoch) instead of re-reading and re-decoding the PNGs
    on the CPUs training shares (measured on 2 cores: the trainer waited 6-9 s per 40 s epoch for batches
    without it, 0.1 s with it). Without it they stay lazy and are decoded every epoch, for data larger than
    the object store.
    """
    import ray.data
    from ray.data.expressions import random

    order = epoch_order(seed)
    columns = sorted({*ID_COLUMNS, "image", *(label_column(n) for n in plan.labels),
                      *(["label_any"] if plan.positives_only else [])})
    out = {}
    with fused_stage_context():  # read_and_decode is the plan's one working operator
        for name, valid in (("train", False), ("valid", True)):
            paths = ray.data.from_items([{"path": f} for f in plan.files], override_num_blocks=len(plan.files))
            if name == "train" and not cache:
                paths = paths.randomize_block_order(seed=order).with_column(
                    ROW_SEED, random(seed=seed, reseed_after_execution=True))  # a new row order every epoch
            out[name] = paths.map_batches(read_and_decode, batch_size=1, fn_kwargs={
                "plan": plan, "valid": valid, "batch_rows": batch_rows, "columns": columns})
            if cache:
                # in shard order, so the cached block list (which the seeded shuffle permutes) is the same in
                # every run; the tasks still run in parallel
                out[name].context.execution_options.preserve_order = True
                out[name] = out[name].materialize()
        if cache:
            out["train"] = out["train"].randomize_block_order(seed=order)
    return out


def epoch_order(seed: int | None):
    """The train split's block order: a new one every epoch (every execution of the dataset), the same
    sequence of orders for the same seed; None: unseeded."""
    import ray.data

    return None if seed is None else ray.data.RandomSeedConfig(seed=seed, reseed_after_execution=True)
