"""Pure-torch epoch loops, testable without Ray: train one epoch, predict over a validation stream.

Batches are dicts of tensors already on the device; a `train.tasks` task turns one into model input and the
model's output into per-slice logits, labels and ids (`uid_hash`, a stable id per slice so gathered
predictions can be checked for drops/duplicates, and, when the data has them, `study_hash` / `patient_hash`,
kept with the predictions as `groups`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ich_ray.train.amp import AmpStepper
from ich_ray.train.tasks import Task

Batch = dict[str, torch.Tensor]
GROUP_KEYS = ("study_hash", "patient_hash")


@dataclass
class EpochStats:
    loss: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    task: Task,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    stepper: AmpStepper,
    scheduler=None,
) -> EpochStats:
    """One pass over `batches`: the task's inputs (resize, normalise, augment), forward under autocast, one
    optimizer step each; `EpochStats.images` counts slices (the task's output rows)."""
    model.train()
    start, loss_sum, seen = time.perf_counter(), 0.0, 0
    for batch in batches:
        with stepper.autocast():
            logits, y = task.outputs(batch, model(task.inputs(batch, train=True)))
            loss = criterion(logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} after {seen} images; lower the learning rate")
        stepper.step(loss, optimizer, model.parameters())
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach().item() * len(y)
        seen += len(y)
    return EpochStats(loss_sum / max(seen, 1), seen, time.perf_counter() - start)


@dataclass
class Predictions:
    """Validation outputs of one worker (or all of them, once gathered)."""

    y_true: np.ndarray  # [N, L]
    y_prob: np.ndarray  # [N, L]
    uid_hash: np.ndarray  # [N]
    loss_sum: float
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # GROUP_KEYS present in the batches -> [N]

    @property
    def loss(self) -> float:
        return self.loss_sum / max(len(self.uid_hash), 1)

    @classmethod
    def concat(cls, parts: list[Predictions]) -> Predictions:
        # a rank whose shard held no batch knows no group keys: only parts with rows decide them
        filled = [p for p in parts if len(p.uid_hash)]
        keys = set.intersection(*(set(p.groups) for p in filled)) if filled else set()
        return cls(
            np.concatenate([p.y_true for p in parts]),
            np.concatenate([p.y_prob for p in parts]),
            np.concatenate([p.uid_hash for p in parts]),
            sum(p.loss_sum for p in parts),
            {k: np.concatenate([p.groups[k] for p in filled]) for k in sorted(keys)},
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[Batch],
    task: Task,
    criterion: nn.Module,
    stepper: AmpStepper,
    num_labels: int,
    keep_images: int = 0,
) -> tuple[Predictions, np.ndarray]:
    """Sigmoid probabilities over `batches`, plus the first `keep_images` uint8 images [N, H, W, C] for plots
    (for tasks whose batches hold images)."""
    model.eval()
    y_true, y_prob, kept = [], [], []
    ids: dict[str, list[np.ndarray]] = {}
    loss_sum, kept_n = 0.0, 0
    for batch in batches:
        with stepper.autocast():
            logits, y = task.outputs(batch, model(task.inputs(batch, train=False)))
        loss_sum += criterion(logits.float(), y).item() * len(y)
        y_true.append(y.float().cpu().numpy())
        y_prob.append(torch.sigmoid(logits.float()).cpu().numpy())
        for key, values in task.ids(batch).items():
            ids.setdefault(key, []).append(values.cpu().numpy())
        images = task.images(batch) if kept_n < keep_images else None
        if images is not None:
            take = images[: keep_images - kept_n].permute(0, 2, 3, 1).cpu().numpy()
            kept.append(take)
            kept_n += len(take)
    joined = {key: np.concatenate(parts) for key, parts in ids.items()}
    preds = Predictions(
        np.concatenate(y_true) if y_true else np.zeros((0, num_labels), np.float32),
        np.concatenate(y_prob) if y_prob else np.zeros((0, num_labels), np.float32),
        joined.pop("uid_hash", np.zeros((0,), np.int64)),
        loss_sum,
        {key: joined[key] for key in GROUP_KEYS if key in joined},
    )
    return preds, (np.concatenate(kept) if kept else np.zeros((0, 1, 1, 1), np.uint8))
