"""The Ray Train worker of the study model: the slice worker's pieces (AMP step, one-cycle schedule, the
shared epoch loops through `SequenceTask`, the validation gather and audit, metrics, checkpoints, rank-0
tracking) around a `models.sequence` model.
"""

from __future__ import annotations

import logging
import time

import torch

from ich_ray.study.config import StudyConfig
from ich_ray.study.loading import build_sequence_model
from ich_ray.study.series import series_collate
from ich_ray.train.amp import AmpStepper
from ich_ray.train.loop import predict, train_epoch
from ich_ray.train.losses import make_criterion
from ich_ray.train.reporting import epoch_metrics, log_final
from ich_ray.train.schedule import OneCycle, steps_per_epoch
from ich_ray.train.tasks import SequenceTask
from ich_ray.train.worker import gather_objects, gather_predictions, report_epoch, restore_states

log = logging.getLogger(__name__)


def study_worker(config: dict) -> None:
    """`train_loop_per_worker`: config = {"cfg": StudyConfig dict, "plan": {labels, embedding_dim, n_train_series,
    n_valid_slices, metadata}, "params", "tags"}."""
    import ray.train
    import ray.train.torch

    from ich_ray.tracking.tracker import make_tracker

    cfg, plan = StudyConfig(**config["cfg"]), config["plan"]
    labels = tuple(plan["labels"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)
    model = build_sequence_model(cfg.arch, plan["embedding_dim"], labels, cfg.hidden, cfg.dropout,
                                 cfg.features).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = OneCycle(optimizer, cfg.lr, cfg.epochs * steps_per_epoch(plan["n_train_series"], world, cfg.batch_size),
                         cfg.pct_start)
    stepper = AmpStepper(device.type, cfg.precision, cfg.max_grad_norm)
    criterion = make_criterion(labels).to(device)
    start, history = restore_states(ray.train.get_checkpoint(), device, {"model": model, "optimizer": optimizer,
                                                                         "scheduler": scheduler, "stepper": stepper})
    wrapped = ray.train.torch.prepare_model(model, move_to_device=False)
    collate = series_collate(plan["embedding_dim"], len(labels))
    shards = {name: ray.train.get_dataset_shard(name) for name in ("train", "valid")}
    task = SequenceTask()
    tracker = make_tracker(cfg.tracking_uri, cfg.experiment, cfg.run_name, rank, enabled=cfg.track)
    with tracker:
        tracker.log_params(config["params"])
        tracker.set_tags(config["tags"])
        for epoch in range(start, cfg.epochs):
            started = time.perf_counter()
            batches = shards["train"].iter_torch_batches(batch_size=cfg.batch_size, collate_fn=collate,
                                                         local_shuffle_buffer_size=256,
                                                         local_shuffle_seed=cfg.seed + epoch * 100 + rank)
            stats = train_epoch(wrapped, batches, task, criterion, optimizer, stepper, scheduler)
            valid = shards["valid"].iter_torch_batches(batch_size=cfg.batch_size, collate_fn=collate)
            preds, _ = predict(model, valid, task, criterion, stepper, len(labels))
            merged = gather_predictions(preds, plan["n_valid_slices"])
            parts = gather_objects(stats)
            images = sum(s.images for s in parts)
            metrics = epoch_metrics(merged, labels, train_loss=sum(s.loss * s.images for s in parts) / max(images, 1),
                                    lr=scheduler.lr, images=images, seconds=max(s.seconds for s in parts),
                                    epoch_seconds=time.perf_counter() - started)
            history.append({"epoch": epoch, **metrics})
            tracker.log_metrics(metrics, step=epoch)
            states = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "stepper": stepper.state_dict()} if rank == 0 else {}
            report_epoch(epoch, history, plan["metadata"], metrics, rank, states)
            log.info("study epoch %d: %s", epoch, {k: round(v, 4) for k, v in metrics.items()})
        if rank == 0 and history and start < cfg.epochs:
            log_final(tracker, history, merged, torch.zeros(0, 1, 1, 1, dtype=torch.uint8).numpy(), labels,
                      model.cpu(), plan["metadata"], cfg.register_as)
