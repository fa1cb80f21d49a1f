"""The driver side of training: check everything, plan the data, start a Ray Train V2 TorchTrainer.

All bad input (unknown arch/task, a size the arch cannot take, missing images table or label column, an empty
or single-class split, no GPUs for --gpu) fails here, before any worker starts. Re-running with the same
storage path and run name resumes from the last checkpoint (Train V2 reloads the run's checkpoint snapshot).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ich_ray.config import config_to_dict
from ich_ray.train.config import TrainConfig
from ich_ray.train.data import DataPlan, build_datasets, local_shuffle_rows, should_cache
from ich_ray.train.driver import (
    check_cluster,
    object_store_bytes,
    prepare,
    run_config,
    scaling_config,
    sharded_eval_data_config,
)
from ich_ray.train.lr_find_run import find_lr

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_name: str
    run_path: str  # Ray Train's run folder (checkpoints)
    checkpoint_path: str | None
    metrics: dict
    lr: float
    n_train: int
    n_valid: int
    seconds: float


def finished_run(cfg: TrainConfig, plan: DataPlan) -> TrainResult | None:
    """The result of an earlier run of this name that already trained every epoch, read from its last
    checkpoint (re-running a finished command then trains nothing and opens no empty MLflow run)."""
    from ich_ray.models.checkpoint import checkpoint_dir_name, load_checkpoint

    last = Path(cfg.storage_path) / cfg.run_name / checkpoint_dir_name(cfg.epochs - 1)
    if not last.is_dir():
        return None
    # memory-mapped: only the history and the optimizer's settings are read, not the weights
    state = load_checkpoint(last, mmap=True)
    metrics = {k: v for k, v in state["history"][-1].items() if k not in ("epoch", "size")}
    lr = state["optimizer"]["param_groups"][0].get("max_lr", float("nan"))
    log.info("run %s already trained all %d epochs (%s): nothing to do; pass another --run-name to train again",
             cfg.run_name, cfg.epochs, last)
    return TrainResult(cfg.run_name, str(last.parent), str(last), metrics, lr, plan.n_train, plan.n_valid, 0.0)


def train(cfg: TrainConfig) -> TrainResult:
    """Train `cfg.arch` on ROOT/images with Ray Train; returns the last epoch's metrics and checkpoint."""
    from ray.train.torch import TorchTrainer

    from ich_ray.ray_utils import init_ray
    from ich_ray.tracking.tracker import tracking_tags
    from ich_ray.train.worker import train_worker

    started = time.perf_counter()
    cfg, plan = prepare(cfg)
    done = finished_run(cfg, plan)
    if done is not None:
        return done
    init_ray(cfg.address)
    nodes = check_cluster(cfg)
    found = find_lr(cfg, plan) if cfg.lr == "auto" else None
    lr = found.suggested_lr if found is not None else cfg.lr
    cache = should_cache(cfg.cache, plan, object_store_bytes())
    cfg = dataclasses.replace(cfg, shuffle_buffer=local_shuffle_rows(cfg.shuffle_buffer, cache))
    params = {**config_to_dict(cfg), "lr": lr, "lr_source": "auto" if cfg.lr == "auto" else "given",
              "n_train": plan.n_train, "n_valid": plan.n_valid, "in_channels": plan.in_channels}
    tags = tracking_tags(cfg.data, cluster_size=nodes, arch=cfg.arch, task=cfg.task) if cfg.track else {}
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"cfg": config_to_dict(cfg), "plan": dataclasses.asdict(plan), "lr": lr,
                           "params": params, "tags": tags,
                           "lr_find": dataclasses.asdict(found) if found is not None else None},
        scaling_config=scaling_config(cfg),
        run_config=run_config(cfg),
        datasets=build_datasets(plan, cache=cache, seed=cfg.seed),
        dataset_config=sharded_eval_data_config(),
    )
    result = trainer.fit()
    seconds = time.perf_counter() - started
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    log.info("train %s: %d epochs in %.1f s; last checkpoint %s", cfg.run_name, cfg.epochs, seconds, checkpoint)
    return TrainResult(cfg.run_name, str(Path(cfg.storage_path) / cfg.run_name), checkpoint,
                       dict(result.metrics or {}), lr, plan.n_train, plan.n_valid, seconds)
