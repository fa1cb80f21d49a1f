"""ROOT/manifest/: which input files the current snapshot reflects (path, file_size, mtime, digest, run_id).

Change detection stays cheap: a file whose size and mtime match its manifest row is unchanged without
being read. Only a file whose size or mtime moved is hashed on the driver (blake2b of the content), and it
counts as changed only when the digest differs, so a `touch` or a copy that keeps the bytes reprocesses
nothing. New files are hashed by the metadata stage itself while their bytes are in memory.
Deleted inputs keep their rows in metadata/ and images/ (a scheduled job must not drop data because a
source folder was archived); they are counted and logged.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ich_ray.data.io import LISTING_SCHEMA, file_digest

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = {**LISTING_SCHEMA, "digest": pl.String, "run_id": pl.String}
MANIFEST_PART = "part-0.parquet"
_HASH_THREADS = 8  # hashlib releases the GIL: threads overlap file reads and hashing


@dataclass
class InputDiff:
    work: list[str]  # new or changed paths: parse and clean these
    n_new: int
    n_changed: int
    n_unchanged: int
    n_deleted: int
    refreshed: pl.DataFrame  # touched but identical files: only their manifest row (mtime) is updated
    listing: pl.DataFrame  # the whole input listing (path, file_size, mtime)

    @property
    def nothing_to_do(self) -> bool:
        return not self.work and self.refreshed.is_empty()


def diff_inputs(listing: pl.DataFrame, previous: pl.LazyFrame | None) -> InputDiff:
    """Compare the input listing with the committed manifest."""
    old = previous.collect() if previous is not None else pl.DataFrame(schema=MANIFEST_SCHEMA)
    joined = listing.join(old.select("path", "file_size", "mtime", "digest"), on="path", how="left", suffix="_old")
    is_new = pl.col("file_size_old").is_null()
    touched = joined.filter(~is_new & ((pl.col("file_size") != pl.col("file_size_old")) | (pl.col("mtime") != pl.col("mtime_old"))))
    with ThreadPoolExecutor(_HASH_THREADS) as pool:
        digests = list(pool.map(file_digest, touched["path"].to_list()))
    touched = touched.with_columns(pl.Series("digest_now", digests, dtype=pl.String))
    changed = touched.filter(pl.col("digest_now") != pl.col("digest").fill_null(""))
    refreshed = touched.filter(pl.col("digest_now") == pl.col("digest")).select(
        "path", "file_size", "mtime", pl.col("digest_now").alias("digest")
    )
    new = joined.filter(is_new)["path"].to_list()
    work = sorted(new + changed["path"].to_list())
    diff = InputDiff(
        work=work,
        n_new=len(new),
        n_changed=changed.height,
        n_unchanged=listing.height - len(work),
        n_deleted=old.join(listing, on="path", how="anti").height,
        refreshed=refreshed,
        listing=listing,
    )
    log.info(
        "inputs: %d new, %d changed, %d unchanged (%d touched but identical), %d deleted (their rows are kept)",
        diff.n_new, diff.n_changed, diff.n_unchanged, refreshed.height, diff.n_deleted,
    )
    return diff


def publish_manifest(dest: Path, previous: pl.LazyFrame | None, updates: pl.LazyFrame, run_id: str) -> None:
    """Write a snapshot's manifest: `previous` rows, replaced by `updates` (path, file_size, mtime, digest)."""
    updates = updates.select(*LISTING_SCHEMA, "digest", pl.lit(run_id).alias("run_id")).cast(MANIFEST_SCHEMA)
    rows = updates
    if previous is not None:
        rows = pl.concat([previous.join(updates.select("path"), on="path", how="anti"), updates])
    dest.mkdir(parents=True, exist_ok=True)
    rows.sort("path").sink_parquet(dest / MANIFEST_PART)
