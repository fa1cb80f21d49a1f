"""Code and data versions for run tags: which commit trained this, on which data."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DATA_TABLES = ("metadata", "images")


def git_commit(repo_dir: str | Path = PACKAGE_DIR) -> str:
    """HEAD of the ich-ray checkout (suffix `-dirty` with local changes); "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo_dir), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def data_version(data_root: str | Path, tables: tuple[str, ...] = DATA_TABLES) -> str:
    """Digest of the file listing (relative names + sizes) of ROOT/metadata and ROOT/images.

    Parquet files are immutable once written and new data means new files, so the listing changes exactly
    when the data does, without reading gigabytes. "none" when neither table exists yet.
    """
    root = Path(data_root)
    digest = hashlib.blake2b(digest_size=8)
    found = 0
    for table in tables:
        folder = root / table
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
            found += 1
    return digest.hexdigest() if found else "none"
