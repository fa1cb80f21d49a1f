"""Stage 2: ok slices -> ROOT/images/ (Parquet shards of PNG/JPEG bytes), on Ray Data.

polars picks the slices (ok, brain fraction >= `min_brain_fraction`, one file per SOPInstanceUID) and their
series neighbours for 2.5D;
Ray Data reads each file, calls `ich_ray.imaging.recipe.prepare_slice` (the one slice preparation, shared
with predict) and `encode_slice`, and writes the shards. A slice that fails here is written to a small
side table and ends in quarantine/ with stage=clean, so every input is accounted for:
files in = images ok + filtered + failed.

Why 0.02 by default: the seed paper says 20 % brain pixels, but its image count matches 2 %, and 20 % drops
about a quarter of all positive slices on the real data. Each run logs how many positives the filter drops.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ich_ray.data.io import WriterLock, count_rows, parquet_files, require, scan_table
from ich_ray.data.quarantine import QUARANTINE_SCHEMA, empty_quarantine, publish_quarantine, quarantine_row
from ich_ray.data.snapshot import DataRoot, link_parts, new_run_id
from ich_ray.data.summary import StageSummary
from ich_ray.dicom.read import read_hu
from ich_ray.imaging.encode import IMAGE_COMPRESSION
from ich_ray.imaging.recipe import CleanRecipe, encode_slice, prepare_slice
from ich_ray.labels import ID_COLUMNS, LABEL_COLUMNS
from ich_ray.ray_utils import fused_stage_context, init_ray

log = logging.getLogger(__name__)

IMAGES_SCHEMA = pa.schema(
    [
        *((name, pa.string()) for name in ID_COLUMNS),
        ("slice_index", pa.int32()),
        *((name, pa.int8()) for name in LABEL_COLUMNS),
        ("image", pa.binary()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("channels", pa.int32()),
        ("recipe", pa.string()),
    ]
)
SLICES_PER_BATCH = 16
ROWS_PER_SHARD = 1000  # ~70 MB a Parquet file of 256 px 3-window images (raw in zstd, or PNG)
# A clean task holds its shard's images until it writes them: at most this many bytes of uint8 values (the
# size of raw images, a bound for PNG/JPEG), so 2.5D or larger images make shards of fewer rows: 1,000 rows
# of 256 px x 3 channels (192 MiB), 455 of 256 px x 9, 341 of 512 px x 3.
SHARD_IMAGE_BYTES = 256 * 2**20
# Clean tasks per CPU while shards stay under their bounds: a run ends when its slowest CPU finishes, so the
# last round of tasks leaves a CPU idle for about half a task. On 2 CPUs (bench/preprocess.py's set, 856
# slices) 8 tasks per CPU took 8-12% less time than 4; 12 was no faster and 16 slower (a shard write a task).
TASKS_PER_CPU = 8


_RECIPE_DEFAULTS = CleanRecipe()


@dataclass
class RecipeOptions:
    """The image recipe (defaults: `CleanRecipe`'s, declared there once) plus the export option: what `clean`
    and `reprocess` both take."""

    size: int = _RECIPE_DEFAULTS.size
    min_brain_fraction: float = _RECIPE_DEFAULTS.min_brain_fraction
    windows: tuple[str, ...] = _RECIPE_DEFAULTS.windows
    context: bool = _RECIPE_DEFAULTS.context
    format: str = _RECIPE_DEFAULTS.format
    quality: int = _RECIPE_DEFAULTS.quality
    crop: bool = _RECIPE_DEFAULTS.crop
    export_jpg: str | None = None

    def recipe_options(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(RecipeOptions)}

    def recipe(self) -> CleanRecipe:
        recipe = CleanRecipe(**{f.name: getattr(self, f.name) for f in dataclasses.fields(CleanRecipe)})
        if self.export_jpg and recipe.channels != 3:
            raise ValueError(f"--export-jpg writes 3-channel .jpg files; this recipe makes {recipe.channels} channels")
        return recipe


@dataclass
class CleanConfig(RecipeOptions):
    data: str = ""
    address: str | None = None
    batch_size: int = SLICES_PER_BATCH
    rows_per_shard: int = ROWS_PER_SHARD

    def __post_init__(self):
        require(self, "data")


@dataclass
class CleanResult:
    selected: int  # ok slices considered
    filtered: int
    images: int
    failed: int
    failures: pl.LazyFrame  # quarantine rows (stage=clean)


def select_slices(metadata: pl.LazyFrame, series: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Ok slices (of `series` when given) with ids, labels, brain fraction, neighbour paths and
    `duplicate_sop`: the file repeats a SOPInstanceUID that another file (the first path) already carries."""
    names = metadata.collect_schema().names()
    labels = [pl.col(c) if c in names else pl.lit(None, pl.Int8).alias(c) for c in LABEL_COLUMNS]
    # A UID names one image: a copy of it (a study exported twice) is filtered, so images/ and the training
    # splits hold each slice once. Decided over all ok rows, so every run keeps the same file.
    sop = pl.col("sop_instance_uid")
    rows = metadata.filter(pl.col("status") == "ok").with_columns(
        (sop.is_not_null() & (pl.col("path") != pl.col("path").min().over(sop))).alias("duplicate_sop"))
    if series is not None:
        rows = rows.join(series, on="series_instance_uid", how="semi")
    # neighbours for 2.5D come from the kept slices of the series only
    by_series = ["series_instance_uid", "duplicate_sop"]
    return (
        rows.select("path", *ID_COLUMNS, "slice_index", *labels, "img_pct_window", "duplicate_sop")
        .sort("series_instance_uid", "slice_index")
        .with_columns(
            pl.col("path").shift(1).over(by_series).alias("path_prev"),
            pl.col("path").shift(-1).over(by_series).alias("path_next"),
        )
    )


def keep_slice(min_brain_fraction: float) -> pl.Expr:
    """Slices worth an image: not blank (`CleanRecipe.is_blank`, here in polars), and not a copy of a kept file."""
    return (pl.col("img_pct_window") >= min_brain_fraction) & ~pl.col("duplicate_sop")


def log_filtered(selection: pl.LazyFrame, min_brain_fraction: float) -> int:
    """Log what each filter drops (positives by label for the brain fraction); returns the slices filtered."""
    low_brain = (pl.col("img_pct_window") < min_brain_fraction) & ~pl.col("duplicate_sop")
    stats = selection.select(
        low_brain.sum().alias("low_brain"), pl.col("duplicate_sop").sum().alias("duplicates"),
        *((low_brain & (pl.col(c) == 1)).sum().alias(c) for c in LABEL_COLUMNS),
    ).collect()
    dropped = {c.removeprefix("label_"): stats[c].item() for c in LABEL_COLUMNS}
    log.info("clean: the brain-fraction filter drops %d slices, positives by label: %s", stats["low_brain"].item(), dropped)
    if stats["duplicates"].item():
        example = selection.filter("duplicate_sop").select("path", "sop_instance_uid").head(1).collect().row(0)
        log.warning("clean: %d files repeat the SOPInstanceUID of another file and are filtered, e.g. %s (%s)",
                    stats["duplicates"].item(), *example)
    return stats["low_brain"].item() + stats["duplicates"].item()


def _selection_blocks(selection: pl.LazyFrame, staged: Path, rows_per_block: int) -> list:
    """The slices to clean as Arrow blocks of `rows_per_block` rows in the object store, one per clean task.

    Only keys and paths travel (a few hundred bytes a slice), one block at a time through the driver. (Ray
    2.60's `read_parquet` packs small files into one read task, which would run the whole clean in one.)
    """
    import ray

    single = staged / "_selection.parquet"
    selection.sink_parquet(single)
    refs = [ray.put(pa.Table.from_batches([b])) for b in pq.ParquetFile(single).iter_batches(batch_size=rows_per_block)]
    single.unlink()
    return refs


def _export_jpg(img, sop: str, recipe: CleanRecipe, export_dir: str) -> None:
    data = encode_slice(img, dataclasses.replace(recipe, format="jpeg"))
    target = os.path.join(export_dir, f"{sop}.jpg")
    tmp = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


class RecentSlices:
    """The HU images of the last `keep` files read: a 2.5-D batch, in slice order, then reads each file once
    (slice i's next neighbour is slice i+1, whose previous one is slice i) instead of three times.

    A failed read is not kept: it raises again for the next slice that needs the file. `prepare_slice`
    never writes into its inputs, so one image can serve three slices.
    """

    def __init__(self, keep: int = 3):
        self.keep = keep
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()

    def hu(self, path: str) -> np.ndarray:
        image = self._images.get(path)
        if image is None:
            image = self._images[path] = read_hu(path)
            if len(self._images) > self.keep:
                self._images.popitem(last=False)
        return image


def clean_batch(batch: pa.Table, recipe_json: str, run_id: str, failures_dir: str, export_dir: str | None) -> pa.Table:
    """Ray `map_batches` UDF: selected slices -> `IMAGES_SCHEMA` rows; failures go to `failures_dir`."""
    recipe = CleanRecipe.from_json(recipe_json)
    paths = batch.column("path").to_pylist()
    sops = batch.column("sop_instance_uid").to_pylist()
    prevs, nexts = batch.column("path_prev").to_pylist(), batch.column("path_next").to_pylist()
    keep, images, sizes, failures = [], [], [], []
    recent = RecentSlices()
    for i, path in enumerate(paths):
        try:
            hu = recent.hu(path)
            neighbours = None
            if recipe.context:
                neighbours = tuple(recent.hu(p) if p else None for p in (prevs[i], nexts[i]))
            img = prepare_slice(hu, recipe, neighbours=neighbours)
            images.append(encode_slice(img, recipe))
            if export_dir:
                _export_jpg(img, sops[i], recipe, export_dir)
        except Exception as exc:  # any failure is this slice's, recorded in quarantine; the job goes on
            failures.append(quarantine_row(path, "clean", exc, run_id))
            continue
        keep.append(i)
        sizes.append(img.shape)
    if failures:
        table = pa.Table.from_pylist(failures, QUARANTINE_SCHEMA)
        pq.write_table(table, os.path.join(failures_dir, f"{uuid.uuid4().hex}.parquet"))
    out = batch.take(keep)
    columns = {name: out.column(name) for name in (*ID_COLUMNS, "slice_index", *LABEL_COLUMNS)}
    columns.update(
        image=images,
        height=[s[0] for s in sizes],
        width=[s[1] for s in sizes],
        channels=[s[2] for s in sizes],
        recipe=[recipe_json] * len(keep),
    )
    return pa.Table.from_pydict(columns, schema=IMAGES_SCHEMA)


def rows_per_shard(most: int, recipe: CleanRecipe) -> int:
    """Images per clean task and shard: at most `most`, and at most `SHARD_IMAGE_BYTES` of image values."""
    height, width, channels = recipe.shape
    return max(1, min(most, SHARD_IMAGE_BYTES // (height * width * channels)))


def rows_per_task(n_rows: int, cpus: int, cfg: CleanConfig, recipe: CleanRecipe) -> int:
    """Slices per clean task (= images per shard): `TASKS_PER_CPU` tasks per CPU for load balance, at least
    `cfg.batch_size` slices, at most `rows_per_shard`."""
    return min(max(cfg.batch_size, -(-n_rows // (TASKS_PER_CPU * cpus))), rows_per_shard(cfg.rows_per_shard, recipe))


def clean_slices(
    metadata: pl.LazyFrame, series: pl.LazyFrame | None, cfg: CleanConfig, staged: Path, run_id: str
) -> CleanResult:
    """Clean the ok slices (of `series`, or all) into `staged`/images; the Ray part of the stage."""
    import ray

    recipe = cfg.recipe()
    selection = select_slices(metadata, series)
    filtered = log_filtered(selection, recipe.min_brain_fraction)
    failures_dir, new_images = staged / "_clean_failures", staged / "_images_new"
    failures_dir.mkdir(parents=True)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    n_rows = selection.select(pl.len()).collect().item() - filtered
    # One block = one fused clean -> write task writing one images/ shard (map_batches without a batch_size
    # fuses with the write). (write_parquet's min_rows_per_file would bundle the tasks' inputs and run the
    # whole clean in one.)
    per_block = rows_per_task(n_rows, cpus, cfg, recipe)
    kept = selection.filter(keep_slice(recipe.min_brain_fraction)).drop("img_pct_window", "duplicate_sop")
    blocks = _selection_blocks(kept, staged, per_block)
    if blocks:
        if cfg.export_jpg:
            Path(cfg.export_jpg).mkdir(parents=True, exist_ok=True)
        with fused_stage_context():
            ds = ray.data.from_arrow_refs(blocks).map_batches(
                clean_batch,
                batch_format="pyarrow",
                batch_size=None,
                fn_kwargs={
                    "recipe_json": recipe.to_json(),
                    "run_id": run_id,
                    "failures_dir": str(failures_dir),
                    "export_dir": str(Path(cfg.export_jpg).resolve()) if cfg.export_jpg else None,
                },
            )
            ds.write_parquet(str(new_images), compression=IMAGE_COMPRESSION)
    images = count_rows(new_images)
    failures = scan_table(failures_dir)  # a retried task may have written a slice's failure twice
    failures = failures.unique("path").collect().lazy() if failures is not None else empty_quarantine()
    result = CleanResult(n_rows + filtered, filtered, images, failures.select(pl.len()).collect().item(), failures)
    (staged / "images").mkdir(exist_ok=True)
    for part in parquet_files(new_images):
        os.rename(part, staged / "images" / part.name)
    shutil.rmtree(new_images, ignore_errors=True)
    return result


def run_clean(cfg: CleanConfig) -> StageSummary:
    """`ich-ray clean`: (re)build images/ from the committed metadata/ of `cfg.data`, as a new snapshot."""

    start = time.perf_counter()
    cfg.recipe()  # validate before starting Ray
    init_ray(cfg.address)
    root = DataRoot(cfg.data)
    with WriterLock(root.root):
        if root.table("metadata") is None:
            raise FileNotFoundError(f"no metadata under {root.root}: run `ich-ray metadata --out {cfg.data}` first")
        run_id = new_run_id()
        staged = root.begin(run_id)
        for name in ("metadata", "manifest"):
            link_parts(parquet_files(root.table(name)), staged / name)
        metadata = scan_table(staged / "metadata")
        result = clean_slices(metadata, None, cfg, staged, run_id)
        previous = scan_table(root.table("quarantine"))
        redone = previous.filter(pl.col("stage") == "clean").select("path", "stage") if previous is not None else None
        publish_quarantine(staged / "quarantine", result.failures, previous, redone)
        shutil.rmtree(staged / "_clean_failures")
        metadata_failed = metadata.filter(pl.col("status") != "ok").select(pl.len()).collect().item()
        root.commit(staged)
    return StageSummary(
        "clean",
        files_in=result.selected + metadata_failed,
        ok=result.images,
        filtered=result.filtered,
        failed=result.failed + metadata_failed,
        seconds=time.perf_counter() - start,
        run_id=run_id,
    ).log()
