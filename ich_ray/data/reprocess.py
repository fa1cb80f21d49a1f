"""Stage 8: the scheduled incremental job: metadata + clean on new or changed input files only.

One run, under the root's writer lock (a second concurrent run fails at once with `RootBusyError`):

1. list the input and diff it against manifest/ (`ich_ray.data.manifest`); nothing new -> say so, stop;
2. parse exactly the new/changed files (Ray Data); the new metadata table = old rows of other paths + the new
   rows, with `slice_index` recomputed over the whole table (a series that gained slices is renumbered) and
   labels joined when a label file is given;
3. clean the affected series (those holding a new/changed file): slice numbers and 2.5D neighbours depend on
   the whole series, so its images are rebuilt; image shards without an affected series are carried over by
   hard link, shards holding one are rewritten without it;
4. quarantine/ and, last, manifest/ are written, then the snapshot is committed in one atomic swap
   (`ich_ray.data.snapshot`). A crash anywhere before leaves the previous snapshot in place; the next run
   removes the leftovers and redoes the work, so no row is ever duplicated or half-written.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ich_ray.data.clean import CleanConfig, RecipeOptions, clean_slices
from ich_ray.data.io import WriterLock, list_inputs, parquet_files, require, scan_table
from ich_ray.data.manifest import diff_inputs, publish_manifest
from ich_ray.data.metadata import FILES_PER_BATCH, parse_files, parsed_digests, scan_raw
from ich_ray.data.quarantine import metadata_failures, publish_quarantine
from ich_ray.data.snapshot import DataRoot, link_parts, new_run_id
from ich_ray.data.summary import StageSummary
from ich_ray.data.tables import publish_metadata
from ich_ray.imaging.recipe import CleanRecipe

log = logging.getLogger(__name__)

SERIES = "series_instance_uid"


@dataclass
class ReprocessConfig(RecipeOptions):
    input: str = ""
    data: str = ""
    labels: str | None = None
    address: str | None = None
    batch_size: int = FILES_PER_BATCH

    def __post_init__(self):
        require(self, "input", "data")

    def clean_config(self) -> CleanConfig:
        return CleanConfig(data=self.data, address=self.address, **self.recipe_options())


@dataclass
class ReprocessSummary:
    run_id: str | None  # None: nothing to do, nothing written
    n_new: int
    n_changed: int
    n_unchanged: int
    n_deleted: int
    seconds: float
    metadata: StageSummary | None = None
    clean: StageSummary | None = None
    affected_series: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"reprocess: {self.n_new} new, {self.n_changed} changed, {self.n_unchanged} unchanged files"
        if self.run_id is None:
            return f"{head}; nothing to do ({self.seconds:.1f} s)"
        return f"{head}; {len(self.affected_series)} series rebuilt; committed {self.run_id} in {self.seconds:.1f} s"


def carry_images(previous: Path | None, affected: pl.DataFrame, dest: Path, run_id: str) -> None:
    """Carry the old image shards into the new snapshot, minus the rows of the affected series."""
    dest.mkdir(parents=True, exist_ok=True)
    untouched = []
    uids = affected[SERIES].to_list()
    for part in parquet_files(previous):
        series = pq.read_table(part, columns=[SERIES]).column(SERIES).to_pylist()
        if not set(series) & set(uids):
            untouched.append(part)
            continue
        kept = pl.scan_parquet(part).filter(~pl.col(SERIES).is_in(uids))
        if kept.select(pl.len()).collect().item():
            kept.sink_parquet(dest / f"{part.stem}-{run_id}.parquet")
    link_parts(untouched, dest)


def check_same_recipe(images: Path | None, recipe: CleanRecipe) -> None:
    """Refuse a run whose recipe differs from the one the root's images/ were made with: the carried-over
    images and the rebuilt ones would mix two recipes in one table, which training refuses (and a recipe
    default that changed between versions would do it silently). Names each differing field."""
    parts = parquet_files(images)
    if not parts:
        return
    stored = pl.scan_parquet(parts).select("recipe").unique().collect()["recipe"].to_list()
    for text in stored:
        old = CleanRecipe.from_json(text)
        if old == recipe:
            continue
        fields = [f.name for f in dataclasses.fields(CleanRecipe) if getattr(old, f.name) != getattr(recipe, f.name)]
        differences = "; ".join(f"{name}: {getattr(old, name)!r} there, {getattr(recipe, name)!r} asked" for name in fields)
        raise ValueError(
            f"{images} holds images made with another recipe ({differences}): reprocess would mix two recipes "
            f"in one images/ table. Pass the options it was made with, or rebuild images/ with `ich-ray clean` first"
        )


def _affected_series(raw: pl.LazyFrame, previous: pl.LazyFrame | None) -> pl.DataFrame:
    """Series of the new rows, of the old rows those replace (a changed file may change series), and of old
    rows with a new row's SOPInstanceUID (which copy of a slice clean keeps may change)."""
    frames = [raw.select(SERIES)]
    if previous is not None:
        frames.append(previous.join(raw.select("path"), on="path", how="semi").select(SERIES))
        uids = raw.select("sop_instance_uid").drop_nulls()
        frames.append(previous.join(uids, on="sop_instance_uid", how="semi").select(SERIES))
    return pl.concat(frames).drop_nulls().unique().sort(SERIES).collect()


def _redone(work: list[str], metadata: pl.LazyFrame, affected: pl.DataFrame) -> pl.LazyFrame:
    """(path, stage) pairs whose old quarantine verdict this run replaces."""
    paths = pl.LazyFrame({"path": work}, schema={"path": pl.String})
    rebuilt = metadata.join(affected.lazy(), on=SERIES, how="semi").select("path")
    return pl.concat(
        [
            paths.with_columns(stage=pl.lit("metadata")),
            paths.with_columns(stage=pl.lit("clean")),
            rebuilt.with_columns(stage=pl.lit("clean")),
        ]
    )


def _run(cfg: ReprocessConfig, root: DataRoot, diff, labels, start: float) -> ReprocessSummary:
    run_id = new_run_id()
    staged = root.begin(run_id)
    nodes = parse_files(diff.work, staged / "_raw", cfg.batch_size, with_digest=True)
    raw = scan_raw(staged / "_raw")
    previous = scan_table(root.table("metadata"))
    ok, failed = publish_metadata(staged / "metadata", raw, previous, labels)
    metadata_summary = StageSummary("metadata", len(diff.work), ok, 0, failed, time.perf_counter() - start, nodes, run_id)
    affected = _affected_series(raw, previous)
    metadata = scan_table(staged / "metadata")
    carry_images(root.table("images"), affected, staged / "images", run_id)
    clean_start = time.perf_counter()
    result = clean_slices(metadata, affected.lazy(), cfg.clean_config(), staged, run_id)
    clean_summary = StageSummary(
        "clean", result.selected, result.images, result.filtered, result.failed, time.perf_counter() - clean_start,
        run_id=run_id,
    )
    new_failures = pl.concat([metadata_failures(raw, run_id), result.failures])
    publish_quarantine(staged / "quarantine", new_failures, scan_table(root.table("quarantine")), _redone(diff.work, metadata, affected))
    listing_rows = pl.LazyFrame({"path": diff.work}, schema={"path": pl.String}).join(
        diff.listing.lazy(), on="path", how="left"
    )
    updates = pl.concat([parsed_digests(listing_rows, staged / "_raw"), diff.refreshed.lazy()],
                        how="diagonal_relaxed")
    publish_manifest(staged / "manifest", scan_table(root.table("manifest")), updates, run_id)  # last: marks done
    for scratch in ("_raw", "_clean_failures"):
        shutil.rmtree(staged / scratch, ignore_errors=True)
    root.commit(staged)
    return ReprocessSummary(
        run_id, diff.n_new, diff.n_changed, diff.n_unchanged, diff.n_deleted, time.perf_counter() - start,
        metadata_summary.log(), clean_summary.log(), affected[SERIES].to_list(),
    )


def run_reprocess(cfg: ReprocessConfig) -> ReprocessSummary:
    """`ich-ray reprocess`: bring ROOT up to date with the input folder, atomically. See the module docstring."""
    from ich_ray.data.labels import read_rsna_labels
    from ich_ray.ray_utils import init_ray

    start = time.perf_counter()
    recipe = cfg.clean_config().recipe()  # validate the clean options before any work
    labels = read_rsna_labels(cfg.labels) if cfg.labels else None
    root = DataRoot(cfg.data)
    root.root.mkdir(parents=True, exist_ok=True)
    with WriterLock(root.root):
        root.check_layout()
        root.recover()
        check_same_recipe(root.table("images"), recipe)
        listing = list_inputs(cfg.input)
        diff = diff_inputs(listing, scan_table(root.table("manifest")))
        if diff.nothing_to_do:
            summary = ReprocessSummary(None, 0, 0, diff.n_unchanged, diff.n_deleted, time.perf_counter() - start)
        else:
            init_ray(cfg.address)
            summary = _run(cfg, root, diff, labels, start)
    log.info("%s", summary.line())
    return summary
