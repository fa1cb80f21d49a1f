"""What one kind of model trains on: how a batch becomes model input, and how the model's output becomes
per-slice logits, labels and ids. The epoch loops (`train.loop`), the LR finder and the worker call a task and
never look inside a batch, so a per-slice CNN and a study-level sequence model share every other piece
(AMP step, schedule, validation gather and audit, metrics, checkpoints, tracking).

Every task yields per-SLICE rows: `outputs` returns logits [N, L] and labels [N, L] and `ids` the matching [N]
int64 id hashes (`uid_hash` always; `study_hash` / `patient_hash` when the data has them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ich_ray.models.inputs import to_model_input

ID_KEYS = ("uid_hash", "study_hash", "patient_hash")


class Task(Protocol):
    def inputs(self, batch: dict[str, torch.Tensor], train: bool) -> Any: ...
    def outputs(self, batch: dict[str, torch.Tensor], output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def ids(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...
    def images(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None: ...


@dataclass
class SliceTask:
    """One slice image in, one row of logits out: uint8 [B, C, H, W] -> `to_model_input` (+ augment in
    training) -> the CNN."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels_last: bool = False
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None

    def inputs(self, batch, train: bool):
        x = to_model_input(batch["image"], self.size, self.mean, self.std, channels_last=self.channels_last)
        return self.augment(x) if train and self.augment is not None else x

    def outputs(self, batch, output):
        return output, batch["labels"]

    def ids(self, batch):
        return {key: batch[key] for key in ID_KEYS if key in batch}

    def images(self, batch):
        return batch["image"]


@dataclass
class SequenceTask:
    """A whole series in, one row of logits per slice out: `features` float [B, T, D] with `mask` bool
    [B, T] (False on padding) -> the sequence model -> [B, T, L]; padded positions are dropped, so the
    loss, metrics and gathered predictions count each real slice once."""

    def inputs(self, batch, train: bool):
        return batch["features"].float(), batch["mask"]

    def outputs(self, batch, output):
        mask = batch["mask"]
        return output[mask], batch["labels"][mask]

    def ids(self, batch):
        mask = batch["mask"]
        return {key: batch[key][mask] for key in ID_KEYS if key in batch}

    def images(self, batch):
        return None
