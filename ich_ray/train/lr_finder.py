"""Leslie Smith's learning-rate range test: raise the LR exponentially each batch, record the smoothed loss,
stop when it diverges, suggest an LR (steepest descent of the smoothed curve, and the minimum / 10)."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ich_ray.train.amp import AmpStepper
from ich_ray.train.tasks import Task

log = logging.getLogger(__name__)


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # exponentially smoothed, bias-corrected
    lr_steep: float  # LR at the steepest descent of the smoothed loss
    lr_min_div10: float  # LR at the minimum loss, divided by 10

    @property
    def suggested_lr(self) -> float:
        """The more conservative of the two rules (fastai reports both; either is a sound start)."""
        return min(self.lr_steep, self.lr_min_div10)


def suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steepest-descent LR, minimum-loss LR / 10) of a recorded range test."""
    if len(lrs) < 3:
        raise ValueError(f"the range test recorded {len(lrs)} points; it needs at least 3 (more batches or a lower start_lr)")
    log_lrs = np.log10(np.asarray(lrs))
    grads = np.gradient(np.asarray(losses), log_lrs)
    return float(lrs[int(np.argmin(grads))]), float(lrs[int(np.argmin(losses))] / 10)


def _cycle(batches: Callable[[], Iterable]) -> Iterator:
    while True:
        produced = False
        for batch in batches():
            produced = True
            yield batch
        if not produced:
            raise ValueError("the range test got no training batches")


def lr_range_test(
    model: nn.Module,
    batches: Callable[[], Iterable[dict]],
    task: Task,
    criterion: nn.Module,
    make_optimizer: Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer],
    stepper: AmpStepper,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    smooth: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Run the test on a copy of `model` (the caller's weights are untouched). `batches()` yields one epoch."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_iter < 3:
        raise ValueError(f"num_iter must be >= 3, got {num_iter}")
    trial = copy.deepcopy(model).train()
    optimizer = make_optimizer(trial.parameters(), start_lr)
    ratio = (end_lr / start_lr) ** (1 / (num_iter - 1))
    lrs, losses, avg, best = [], [], 0.0, math.inf
    stream = _cycle(batches)
    for i in range(num_iter):
        lr = start_lr * ratio**i
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(stream)
        with stepper.autocast():
            loss = criterion(*task.outputs(batch, trial(task.inputs(batch, train=True))))
        value = loss.item()
        if not math.isfinite(value):
            break
        avg = smooth * avg + (1 - smooth) * value
        smoothed = avg / (1 - smooth ** (i + 1))
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if i > 2 and smoothed > diverge * best:
            break
        stepper.step(loss, optimizer, trial.parameters())
    steep, min_div10 = suggest(lrs, losses)
    log.info("lr range test: %d points, steepest %.2e, min/10 %.2e", len(lrs), steep, min_div10)
    return LRFindResult(lrs, losses, steep, min_div10)
