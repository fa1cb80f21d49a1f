"""The training checkpoint format: one owner for the file name, folder names and the saved keys.

A checkpoint folder (`epoch-0003/`) holds `checkpoint.pt`, a dict with `epoch`, `history` (per-epoch
metric dicts), `metadata` (the model's contract, `models.loading.model_metadata`), and the state dicts
`model`, `optimizer`, `scheduler`, `stepper`. Written by the training worker, read to resume, to report a
finished run, by `predict --model <folder>` and by the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import torch

CHECKPOINT_FILE = "checkpoint.pt"
STATE_KEYS = ("model", "optimizer", "scheduler", "stepper")


def checkpoint_dir_name(epoch: int) -> str:
    """Name of epoch `epoch`'s checkpoint folder inside the run's storage folder."""
    return f"epoch-{epoch:04d}"


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file of a checkpoint folder (or the file itself); FileNotFoundError naming the path."""
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {CHECKPOINT_FILE} in this checkpoint folder")
    return file


def save_checkpoint(directory: str | Path, epoch: int, history: list[dict], metadata: dict,
                    states: dict[str, dict]) -> Path:
    """Write `directory/checkpoint.pt`; `states` maps each of STATE_KEYS to a state dict."""
    missing = [k for k in STATE_KEYS if k not in states]
    if missing:
        raise ValueError(f"checkpoint for epoch {epoch} lacks state(s) {missing}")
    file = Path(directory) / CHECKPOINT_FILE
    torch.save({"epoch": epoch, "history": history, "metadata": metadata, **states}, file)
    return file


def load_checkpoint(path: str | Path, map_location="cpu", weights_only: bool = False, mmap: bool = False) -> dict:
    """The checkpoint dict of a folder or file. `weights_only` for untrusted files (predict); `mmap` to read
    only the small parts (history) of a large checkpoint without loading the weights."""
    file = checkpoint_file(path)
    state = torch.load(file, map_location=map_location, weights_only=weights_only, mmap=mmap)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{file}: not an ich-ray training checkpoint (no 'model' state dict)")
    return state
