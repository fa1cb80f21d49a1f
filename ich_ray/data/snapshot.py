"""Atomic, versioned outputs under a data root: a run's tables appear all at once or not at all.

Layout::

    ROOT/metadata    -> .ich-ray/current/metadata      (relative symlinks, made once)
    ROOT/images      -> .ich-ray/current/images
    ROOT/quarantine  -> .ich-ray/current/quarantine
    ROOT/manifest    -> .ich-ray/current/manifest
    ROOT/.ich-ray/current -> versions/<run_id>          (the one pointer a commit swaps)
    ROOT/.ich-ray/versions/<run_id>/<table>/*.parquet  (complete, immutable snapshots)
    ROOT/.ich-ray/staging/<run_id>/                    (a run in progress; never read by anyone)

A run builds its whole snapshot in staging: tables it recomputes are written there, parts it keeps are
hard-linked from the current snapshot (no copy: image shards are large). `commit` renames the staging folder
into versions/ and swaps `current` with one `os.replace` of a symlink, which is atomic on POSIX. A crash at
any point before that swap leaves the previous snapshot visible and untouched; the next run deletes the
leftovers (`recover`) and does the work again, so no reader ever sees a partial or duplicated table.
Readers simply read `ROOT/<table>/` (polars, pandas, DuckDB, Ray all follow the link). The previous
snapshot is kept after a commit so a reader that started on it can finish; older ones are deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

TABLES = ("metadata", "images", "quarantine", "manifest")
_INTERNAL = ".ich-ray"


def new_run_id() -> str:
    """Sortable and unique: UTC time to the second plus a random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


class DataRoot:
    """The versioned tables under one data root. Writers must hold `WriterLock(root)`."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.internal = self.root / _INTERNAL
        self.versions = self.internal / "versions"
        self.staging = self.internal / "staging"
        self.current_link = self.internal / "current"

    def current(self) -> Path | None:
        """The committed snapshot folder, or None before the first commit."""
        if not self.current_link.is_symlink():
            return None
        return self.versions / Path(os.readlink(self.current_link)).name

    def table(self, name: str) -> Path | None:
        """The committed folder of one table, or None when the current snapshot has none."""
        current = self.current()
        folder = current / name if current is not None else None
        return folder if folder is not None and folder.is_dir() else None

    def check_layout(self) -> None:
        """Refuse to write over table folders this module did not make (e.g. copied in by hand)."""
        for name in TABLES:
            path = self.root / name
            ours = path.is_symlink() and os.readlink(path) == self._link_target(name)
            if not ours and (path.exists() or path.is_symlink()):
                raise ValueError(
                    f"{path} exists and is not managed by ich-ray (expected a link to {self._link_target(name)}); "
                    "move it away or choose another data root"
                )

    def recover(self) -> None:
        """Delete what crashed runs left: staging folders and uncommitted or stale versions."""
        if self.staging.is_dir():
            for leftover in self.staging.iterdir():
                log.warning("removing the unfinished run %s (it never committed)", leftover.name)
                shutil.rmtree(leftover)
        self._prune()

    def begin(self, run_id: str) -> Path:
        """A fresh staging folder for `run_id`'s snapshot."""
        self.check_layout()
        self.recover()
        folder = self.staging / run_id
        folder.mkdir(parents=True)
        return folder

    def commit(self, staged: Path) -> Path:
        """Publish the staged snapshot atomically; returns its final folder."""
        final = self.versions / staged.name
        self.versions.mkdir(parents=True, exist_ok=True)
        os.rename(staged, final)
        self._swap_current(final)
        for name in TABLES:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(self._link_target(name), link, target_is_directory=True)
        self._prune()
        log.debug("committed snapshot %s", final.name)
        return final

    def _swap_current(self, final: Path) -> None:
        tmp = self.internal / f".current-{final.name}"
        os.symlink(f"versions/{final.name}", tmp, target_is_directory=True)
        os.replace(tmp, self.current_link)
        _fsync_dir(self.internal)

    def _prune(self, keep_previous: int = 1) -> None:
        """Keep the current snapshot and `keep_previous` older ones; anything newer never committed."""
        if not self.versions.is_dir():
            return
        current = self.current()
        names = sorted(p.name for p in self.versions.iterdir() if p.is_dir())
        older = [n for n in names if current is not None and n < current.name]
        stale = set(names) - set(older[-keep_previous:] if keep_previous else []) - {current.name if current else ""}
        for name in sorted(stale):
            shutil.rmtree(self.versions / name)
        for tmp in self.internal.glob(".current-*"):
            tmp.unlink()

    @staticmethod
    def _link_target(name: str) -> str:
        return f"{_INTERNAL}/current/{name}"


def link_parts(parts: list[Path], dest: Path) -> None:
    """Carry unchanged Parquet parts into a new snapshot by hard link (a copy where links are unsupported)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        try:
            os.link(part, dest / part.name)
        except OSError:
            shutil.copy2(part, dest / part.name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
