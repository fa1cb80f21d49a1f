"""Input listing, the data root's writer lock, and small Parquet helpers shared by the stages.

Which files are inputs: every regular file under the input folder, with or without an extension (hospital
DICOM often has none, or a UID-like name such as `1.2.840.113619.2.55.3`), except
- hidden files and folders (a leading dot: `.DS_Store`, `.git/`, editors' swap files);
- files whose extension says they are not images (`SKIP_EXTENSIONS`: labels.csv, notes, archives, our own
  Parquet/PNG/JPEG outputs);
- `DICOMDIR` index files (a directory record, never an image) and the usual documentation files that ship
  with data sets (LICENSE, README, ...; matched by name, any case).
Everything else is handed to the DICOM reader, so a non-DICOM file with an unknown extension still ends as a
`failed` metadata row with a reason: nothing is silently dropped that could be an image.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import xxhash

SKIP_EXTENSIONS = frozenset(
    {
        ".csv", ".tsv", ".json", ".txt", ".md", ".xml", ".html", ".htm", ".pdf", ".yaml", ".yml", ".log",
        ".py", ".sh", ".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".parquet", ".png", ".jpg",
        ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".lock",
    }
)
SKIP_NAMES = frozenset({"DICOMDIR", "LICENSE", "LICENCE", "README", "COPYING", "NOTICE", "AUTHORS", "CHANGELOG"})
LOCK_NAME = ".reprocess.lock"

LISTING_SCHEMA = {"path": pl.String, "file_size": pl.Int64, "mtime": pl.Datetime("ns", "UTC")}


def require(cfg, *names: str) -> None:
    """Raise a ValueError naming the first required config field left empty (and its CLI flag)."""
    for name in names:
        if not getattr(cfg, name):
            raise ValueError(f"{type(cfg).__name__}: {name} is required (--{name.replace('_', '-')} or in --config)")


class RootBusyError(RuntimeError):
    """Another ich-ray run holds the data root's writer lock."""


def is_input_name(name: str) -> bool:
    if name.startswith(".") or name.upper() in SKIP_NAMES:
        return False
    return os.path.splitext(name)[1].lower() not in SKIP_EXTENSIONS


def list_inputs(input_dir: str | Path) -> pl.DataFrame:
    """Every input file under `input_dir` (absolute path, size, mtime), sorted by path."""
    root = Path(input_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"input folder not found: {input_dir}")
    paths: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=True) and is_input_name(entry.name):
                    st = entry.stat(follow_symlinks=True)
                    paths.append(entry.path)
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime_ns)
    frame = pl.DataFrame({"path": paths, "file_size": sizes, "mtime": mtimes}, schema_overrides={"file_size": pl.Int64})
    frame = frame.with_columns(pl.from_epoch(pl.col("mtime").cast(pl.Int64), time_unit="ns").dt.replace_time_zone("UTC"))
    return frame.sort("path")


def content_digest(data: bytes) -> str:
    """XXH3-128 of a file's bytes, hex (the manifest's `digest`).

    The digest only detects changed content (a file that was touched or copied keeps its digest), so it
    needs no cryptographic strength, and it runs once per input file in the metadata stage: XXH3 hashes a
    512 KB slice in ~0.02 ms, blake2b in ~1.5 ms, more than decoding the slice (measured on a 2-core VM).
    """
    return xxhash.xxh3_128_hexdigest(data)


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """`content_digest` of a file on disk, read in chunks."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def parquet_files(folder: str | Path | None) -> list[Path]:
    """The Parquet parts of a table folder (empty when the folder is None or does not exist)."""
    if folder is None:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))


def count_rows(folder: str | Path | None) -> int:
    """Rows in a table folder, from the Parquet footers (reads no data)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in parquet_files(folder))


def scan_table(folder: str | Path | None) -> pl.LazyFrame | None:
    """A lazy scan of a table folder, or None when it holds no parts."""
    files = parquet_files(folder)
    if not files:
        return None
    return pl.scan_parquet(files)


class WriterLock:
    """Exclusive, non-blocking `flock` on ROOT/.reprocess.lock, held by every stage that writes ROOT.

    A second writer fails at once with `RootBusyError` instead of waiting: the scheduled job must not pile
    up runs behind a slow one. The lock dies with the process, so a crashed run never leaves it stuck.
    """

    def __init__(self, root: str | Path):
        self.path = Path(root) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RootBusyError(f"another ich-ray run (pid {holder}) is writing {self.path.parent}; try later") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
