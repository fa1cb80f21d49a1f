"""Epoch-level schedules: progressive resizing, body freezing, the one-cycle learning rate."""

from __future__ import annotations

import torch


def size_for_epoch(sizes: tuple[int, ...], size_epochs: tuple[int, ...], epoch: int) -> int:
    """Image size of `epoch` (0-based): stage i lasts size_epochs[i] epochs; the last size runs on to the end.

    sizes=(64, 128, 256), size_epochs=(1, 1) -> 64, 128, 256, 256, ...
    """
    if not sizes:
        raise ValueError("sizes must name at least one image size")
    if len(size_epochs) not in (len(sizes) - 1, len(sizes)):
        raise ValueError(f"size_epochs {size_epochs} must give the length of each stage of sizes {sizes}")
    if any(n < 1 for n in size_epochs):
        raise ValueError(f"size_epochs must be >= 1 each, got {size_epochs}")
    boundary = 0
    for size, stage_epochs in zip(sizes, size_epochs, strict=False):
        boundary += stage_epochs
        if epoch < boundary:
            return size
    return sizes[-1]


def body_frozen(epoch: int, freeze_epochs: int) -> bool:
    """fastai's fine_tune: the body stays frozen for the first `freeze_epochs` epochs."""
    return epoch < freeze_epochs


def steps_per_epoch(rows: int, world_size: int, batch_size: int) -> int:
    """Batches each worker sees per epoch (Ray's equal split gives every worker floor(rows / world_size))."""
    per_worker = rows // world_size
    if per_worker < 1:
        raise ValueError(f"{rows} training rows cannot feed {world_size} workers")
    return -(-per_worker // batch_size)


class OneCycle:
    """torch's OneCycleLR that stops stepping at its last step instead of raising (a ragged last batch or
    a resumed run must never crash training)."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int, pct_start: float = 0.25):
        # torch divides by each phase's length: both phases need >= 1 step, so tiny runs get >= 3 steps and a
        # warm-up of at least 2 (OneCycleLR's phase ends at pct_start * total - 1).
        self.total_steps = max(3, total_steps)
        pct_start = min(max(pct_start, 2 / self.total_steps), (self.total_steps - 1) / self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=self.total_steps, pct_start=pct_start
        )

    def step(self) -> None:
        if self.scheduler.last_epoch < self.total_steps - 1:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)
