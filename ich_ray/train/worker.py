"""The Ray Train V2 worker: rebuild the typed config, train, evaluate, gather, checkpoint, track (rank 0).

Every rank runs the same code; only rank 0 talks to MLflow and writes checkpoints. Validation is sharded
unevenly (every row scored exactly once) and the predictions of all ranks are gathered to rank 0 in rank
order, then audited against the driver's count.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ich_ray.models.checkpoint import checkpoint_dir_name, load_checkpoint, save_checkpoint
from ich_ray.models.loading import model_metadata
from ich_ray.models.registry import ArchSpec, create_model, get_spec
from ich_ray.train.amp import AmpStepper
from ich_ray.train.augment import BatchAugment
from ich_ray.train.config import TrainConfig
from ich_ray.train.data import DataPlan
from ich_ray.train.loop import EpochStats, Predictions, predict, train_epoch
from ich_ray.train.losses import make_criterion
from ich_ray.train.reporting import epoch_metrics, log_final
from ich_ray.train.schedule import OneCycle, body_frozen, size_for_epoch, steps_per_epoch
from ich_ray.train.tasks import SliceTask

log = logging.getLogger(__name__)

GRID_IMAGES = 16


@dataclass
class Parts:
    """Everything one worker trains with."""

    spec: ArchSpec
    model: nn.Module  # the unwrapped module (DDP wrappers are rebuilt when freezing changes)
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: OneCycle
    stepper: AmpStepper
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device


def build_parts(cfg: TrainConfig, plan: DataPlan, lr: float, world_size: int, device: torch.device) -> Parts:
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    spec = get_spec(cfg.arch)
    model = create_model(cfg.arch, len(plan.labels), plan.in_channels, cfg.pretrained, cfg.weights_path).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps_per_epoch(plan.n_train, world_size, cfg.batch_size)
    mean, std = spec.normalization(plan.in_channels)
    return Parts(
        spec, model, make_criterion(plan.labels).to(device), optimizer,
        OneCycle(optimizer, lr, total, cfg.pct_start), AmpStepper(device.type, cfg.precision, cfg.max_grad_norm),
        mean, std, device,
    )


def gather_objects(obj) -> list:
    """Objects of all ranks in rank order (just [obj] without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_predictions(preds: Predictions, expected: int) -> Predictions:
    """All ranks' validation predictions; raises if rows were dropped or scored twice."""
    merged = Predictions.concat(gather_objects(preds))
    unique = len(np.unique(merged.uid_hash))
    if len(merged.uid_hash) != expected or unique != expected:
        raise RuntimeError(f"validation gather: {len(merged.uid_hash)} predictions ({unique} unique) for {expected} slices")
    return merged


def _states(parts: Parts) -> dict[str, dict]:
    return {"model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(), "stepper": parts.stepper.state_dict()}


def restore_states(checkpoint, device, stateful: dict) -> tuple[int, list[dict]]:
    """(first epoch to run, history so far) from a Ray checkpoint, loading each of `stateful` (model,
    optimizer, scheduler, stepper) from it; (0, []) for a fresh run."""
    if checkpoint is None:
        return 0, []
    with checkpoint.as_directory() as directory:
        state = load_checkpoint(directory, map_location=device)
    for key, obj in stateful.items():
        obj.load_state_dict(state[key])
    log.info("resuming after epoch %d", state["epoch"])
    return state["epoch"] + 1, state["history"]


def _epoch(parts: Parts, cfg: TrainConfig, plan: DataPlan, epoch: int, wrapped: nn.Module, shards, rank: int):
    size = size_for_epoch(cfg.sizes, cfg.size_epochs, epoch)
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch * 10 + rank)
    task = SliceTask(size, parts.mean, parts.std, channels_last=parts.device.type == "cuda",
                     augment=partial(BatchAugment(), generator=generator) if cfg.augment else None)
    train_batches = shards["train"].iter_torch_batches(
        batch_size=cfg.batch_size, device=parts.device, prefetch_batches=4, local_shuffle_buffer_size=cfg.shuffle_buffer or None,
        local_shuffle_seed=cfg.seed + epoch * 100 + rank)
    stats = train_epoch(wrapped, train_batches, task, parts.criterion, parts.optimizer, parts.stepper, parts.scheduler)
    valid_batches = shards["valid"].iter_torch_batches(batch_size=cfg.batch_size, device=parts.device)
    preds, images = predict(parts.model, valid_batches, task, parts.criterion, parts.stepper,
                            len(plan.labels), keep_images=GRID_IMAGES if rank == 0 else 0)
    return size, stats, preds, images


def train_worker(config: dict) -> None:
    """`train_loop_per_worker`: config = {"cfg": TrainConfig dict, "plan": DataPlan dict, "lr", "params", "tags"}."""
    import ray.train
    import ray.train.torch

    from ich_ray.tracking.tracker import make_tracker

    cfg, plan = TrainConfig(**config["cfg"]), DataPlan(**config["plan"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    parts = build_parts(cfg, plan, config["lr"], world, ray.train.torch.get_device())
    start, history = restore_states(ray.train.get_checkpoint(), parts.device,
                                    {"model": parts.model, "optimizer": parts.optimizer,
                                     "scheduler": parts.scheduler, "stepper": parts.stepper})
    shards = {name: ray.train.get_dataset_shard(name) for name in ("train", "valid")}
    tracker = make_tracker(cfg.tracking_uri, cfg.experiment, cfg.run_name, rank, enabled=cfg.track)
    with tracker:
        tracker.log_params(config["params"])
        tracker.set_tags(config["tags"])
        if config.get("lr_find") and start == 0 and rank == 0:
            from ich_ray.tracking.plots import lr_finder_plot

            found = config["lr_find"]
            tracker.log_figure(lr_finder_plot(found["lrs"], found["losses"], config["lr"]), "lr_find.png")
        wrapped, frozen = None, None
        for epoch in range(start, cfg.epochs):
            if body_frozen(epoch, cfg.body_frozen_epochs) != frozen or wrapped is None:
                frozen = body_frozen(epoch, cfg.body_frozen_epochs)
                parts.spec.set_body_frozen(parts.model, frozen)
                # DDP registers only parameters that require grad: re-wrap whenever the frozen set changes.
                wrapped = ray.train.torch.prepare_model(parts.model, move_to_device=False)
            started = time.perf_counter()
            size, stats, preds, images = _epoch(parts, cfg, plan, epoch, wrapped, shards, rank)
            merged = gather_predictions(preds, plan.n_valid)
            train_parts: list[EpochStats] = gather_objects(stats)
            metrics = epoch_metrics(
                merged, plan.labels,
                train_loss=sum(s.loss * s.images for s in train_parts) / max(sum(s.images for s in train_parts), 1),
                lr=parts.scheduler.lr, images=sum(s.images for s in train_parts),
                seconds=max(s.seconds for s in train_parts), epoch_seconds=time.perf_counter() - started)
            history.append({"epoch": epoch, "size": size, **metrics})
            tracker.log_metrics(metrics, step=epoch)
            metadata = model_metadata(cfg.arch, cfg.task, plan.labels, plan.recipe_json, plan.in_channels, size,
                                      parts.mean, parts.std, plan.fold)
            report_epoch(epoch, history, metadata, metrics, rank, _states(parts) if rank == 0 else {})
            log.info("epoch %d size %d: %s", epoch, size, {k: round(v, 4) for k, v in metrics.items()})
        if rank == 0 and history and start < cfg.epochs:
            log_final(tracker, history, merged, images, plan.labels, parts.model.cpu(), metadata, cfg.register_as)


def report_epoch(epoch: int, history: list[dict], metadata: dict, metrics: dict, rank: int,
                 states: dict[str, dict]) -> None:
    """Every rank reports (it is a barrier); rank 0 attaches the checkpoint (`models.checkpoint` format)."""
    import ray.train

    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp), epoch, history, metadata, states)
        ray.train.report({**metrics, "epoch": epoch}, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=checkpoint_dir_name(epoch))
