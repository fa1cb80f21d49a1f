"""Stage 1: a DICOM tree -> ROOT/metadata/ (one row per input file) + ROOT/quarantine/, on Ray Data.

Each Ray task gets a block of paths; `parse_batch` reads each file and calls `ich_ray.dicom.read_record` on its
bytes, and builds the output as column lists turned into one `pyarrow.Table` with the fixed `RAW_SCHEMA`, so
blocks holding only failures concatenate with ordinary ones. Every failure becomes a `status="failed"` row
with `error_type` and `error` (`ich_ray.dicom.errors.failure_fields`, the formatter every failure table
uses): a `DicomReadError` names the file and the reason; any other exception is caught as well (with its
type name) because one odd file must never stop a hospital-sized job; a file that cannot even be read
(permissions, removed since the listing) is such a row too. An `ok` row may carry a `warning` (an odd but
harmless header value, `ich_ray.dicom.checks`).

The raw rows go to the run's staging folder; `ich_ray.data.tables.publish_metadata` then adds
`slice_index` and the labels with polars and writes the snapshot (see `ich_ray.data.snapshot`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from ich_ray.data.io import WriterLock, content_digest, list_inputs, parquet_files, require
from ich_ray.data.manifest import publish_manifest
from ich_ray.data.quarantine import metadata_failures, publish_quarantine
from ich_ray.data.snapshot import DataRoot, new_run_id
from ich_ray.data.summary import StageSummary
from ich_ray.data.tables import publish_metadata
from ich_ray.dicom.errors import failure_fields
from ich_ray.dicom.header import HEADER_FIELDS
from ich_ray.dicom.read import read_record
from ich_ray.ray_utils import fused_stage_context, init_ray

log = logging.getLogger(__name__)

STAT_FIELDS = ("img_min", "img_max", "img_mean", "img_std", "img_pct_window")
# Raw rows only (never published): which Ray node parsed the file, and the content digest for manifest/.
NODE_COLUMN = "_node_id"
DIGEST_COLUMN = "_digest"
_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
RAW_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("file_size", pa.int64()),
        ("status", pa.string()),
        ("error_type", pa.string()),
        ("error", pa.string()),
        *((name, _ARROW_TYPES[py_type]) for name, py_type in HEADER_FIELDS.items()),
        *((name, pa.float64()) for name in STAT_FIELDS),
        ("pxrepr_fixed", pa.bool_()),
        ("warning", pa.string()),
        (NODE_COLUMN, pa.string()),
        (DIGEST_COLUMN, pa.string()),
    ]
)
_RECORD_FIELDS = (*HEADER_FIELDS, *STAT_FIELDS, "pxrepr_fixed", "warning")
# Files per task, at most: a task's fixed cost (scheduling, one Parquet write) is ~0.1-0.2 s on a small
# machine, and a 512 x 512 slice reads in ~1-2 ms, so 2,048 files (2-4 s of work) make it a few percent.
# A task holds one file's bytes at a time and ~1 KB of row per file, so its size costs no memory.
FILES_PER_BATCH = 2048


@dataclass
class MetadataConfig:
    input: str = ""
    out: str = ""
    labels: str | None = None
    address: str | None = None
    batch_size: int = FILES_PER_BATCH

    def __post_init__(self):
        require(self, "input", "out")


def parse_batch(batch: pa.Table, with_digest: bool = False) -> pa.Table:
    """Ray `map_batches` UDF: a column `path` -> one `RAW_SCHEMA` row per file.

    with_digest: also hash each file's bytes (for manifest/), while they are in memory anyway.
    """
    import ray

    paths = batch.column("path").to_pylist()
    columns: dict[str, list] = {name: [] for name in RAW_SCHEMA.names}
    for path in paths:
        data = None
        try:
            with open(path, "rb") as f:
                data = f.read()
            record = read_record(data, path)
            status, error_type, error = "ok", None, None
        except Exception as exc:  # every failure, expected or not, becomes a row: the job never crashes
            record, (error_type, error) = {}, failure_fields(exc)
            status = "failed"
        columns["path"].append(path)
        columns["file_size"].append(None if data is None else len(data))
        columns["status"].append(status)
        columns["error_type"].append(error_type)
        columns["error"].append(error)
        for name in _RECORD_FIELDS:
            columns[name].append(record.get(name))
        # No digest (and no size) for a file that could not be read at all.
        columns[DIGEST_COLUMN].append(content_digest(data) if with_digest and data is not None else None)
    columns[NODE_COLUMN] = [ray.get_runtime_context().get_node_id()] * len(paths)
    return pa.Table.from_pydict(columns, schema=RAW_SCHEMA)


def parse_files(paths: list[str], dest: Path, batch_size: int = FILES_PER_BATCH, with_digest: bool = False) -> dict[str, int]:
    """Parse `paths` on Ray Data into Parquet parts under `dest`; returns files parsed per node."""
    import ray

    dest.mkdir(parents=True, exist_ok=True)
    if not paths:
        return {}
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # One block of paths per task: at most `batch_size` files, at least 2 blocks per CPU, and a multiple of
    # the CPU count, so the last round of tasks keeps every CPU busy. map_batches has no batch size of its
    # own, so Ray fuses parse -> write into one task: the file bytes never leave the worker that reads them.
    # (`read_binary_files` would ship them through Arrow blocks and fetch every file's size on the driver
    # first; map_batches with a batch_size would stop the fusion.)
    n_blocks = min(len(paths), cpus * max(2, -(-len(paths) // (cpus * batch_size))))
    per_block = -(-len(paths) // n_blocks)
    blocks = [ray.put(pa.table({"path": paths[i : i + per_block]})) for i in range(0, len(paths), per_block)]
    with fused_stage_context():
        ds = ray.data.from_arrow_refs(blocks)
        ds = ds.map_batches(parse_batch, batch_format="pyarrow", batch_size=None, fn_kwargs={"with_digest": with_digest})
        ds.write_parquet(str(dest))
    nodes = scan_raw(dest, keep_node=True).group_by(NODE_COLUMN).len().collect()
    return dict(nodes.iter_rows())


def scan_raw(folder: Path, keep_node: bool = False) -> pl.LazyFrame:
    """The raw rows `parse_files` wrote (an empty frame with the same schema when there were none);
    without keep_node, only the published columns."""
    files = parquet_files(folder)
    raw = pl.scan_parquet(files) if files else pl.from_arrow(RAW_SCHEMA.empty_table()).lazy()
    return raw if keep_node else raw.drop(NODE_COLUMN, DIGEST_COLUMN)


def parsed_digests(listing: pl.LazyFrame, raw_dir: Path) -> pl.LazyFrame:
    """manifest/ rows (path, file_size, mtime, digest) of the `listing` files that `parse_files` hashed."""
    digests = scan_raw(raw_dir, keep_node=True).select("path", pl.col(DIGEST_COLUMN).alias("digest"))
    return listing.join(digests, on="path", how="left")


def run_metadata(cfg: MetadataConfig) -> StageSummary:
    """`ich-ray metadata`: parse every input file and publish a fresh metadata/ + quarantine/ snapshot.

    The new snapshot replaces the root's previous one entirely (images/ described the old inputs, so it is
    not carried over; run `clean` next). It writes manifest/ too, so a later `reprocess` parses exactly the
    new and changed files.
    """
    from ich_ray.data.labels import read_rsna_labels

    start = time.perf_counter()
    listing = list_inputs(cfg.input)
    labels = read_rsna_labels(cfg.labels) if cfg.labels else None
    log.info("metadata: %d input files under %s", listing.height, cfg.input)
    init_ray(cfg.address)
    root = DataRoot(cfg.out)
    root.root.mkdir(parents=True, exist_ok=True)
    with WriterLock(root.root):
        run_id = new_run_id()
        staged = root.begin(run_id)
        raw_dir = staged / "_raw"
        nodes = parse_files(listing["path"].to_list(), raw_dir, cfg.batch_size, with_digest=True)
        raw = scan_raw(raw_dir)
        counts = publish_metadata(staged / "metadata", raw, previous=None, labels=labels)
        publish_quarantine(staged / "quarantine", metadata_failures(raw, run_id), previous=None)
        publish_manifest(staged / "manifest", None, parsed_digests(listing.lazy(), raw_dir), run_id)
        shutil.rmtree(raw_dir)
        root.commit(staged)
    ok, failed = counts
    if ok + failed != listing.height:
        raise RuntimeError(f"metadata: {listing.height} files listed but {ok + failed} rows written")
    return StageSummary("metadata", listing.height, ok, 0, failed, time.perf_counter() - start, nodes, run_id).log()
