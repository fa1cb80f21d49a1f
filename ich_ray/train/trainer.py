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
from ich_ray.train.data import DataPlan, build_datasets, plan_data, should_cache

log = logging.getLogger(__name__)


def sharded_eval_data_config(eval_names: tuple[str, ...] = ("valid",)):
    """Train V2 DataConfig: `train` split equally (DDP needs equal step counts), eval sets split unequally so
    every validation row is scored exactly once (the default equal split may drop rows)."""
    from ray.train import DataConfig

    from ich_ray.compat import train_ingest_copy

    class ShardedEvalDataConfig(DataConfig):
        def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
            rest = {n: ds for n, ds in datasets.items() if n not in eval_names}
            output = (super().configure(rest, world_size, worker_handles, worker_node_ids, **kwargs)
                      if rest else [{} for _ in range(world_size)])
            for name in datasets.keys() & set(eval_names):
                ds = train_ingest_copy(self, datasets[name], name)
                for i, split in enumerate(ds.streaming_split(world_size, equal=False)):
                    output[i][name] = split
            return output

    return ShardedEvalDataConfig()


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


def scaling_config(cfg: TrainConfig):
    from ray.train import ScalingConfig

    resources = {"CPU": cfg.cpus_per_worker} if cfg.cpus_per_worker else None
    if cfg.use_gpu and resources is not None:
        resources["GPU"] = 1
    return ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu, resources_per_worker=resources)


def run_config(cfg: TrainConfig, name: str | None = None):
    from ray.train import FailureConfig, RunConfig

    return RunConfig(name=name or cfg.run_name, storage_path=cfg.storage_path,
                     failure_config=FailureConfig(max_failures=cfg.max_failures))


def _check_cluster(cfg: TrainConfig) -> int:
    """Number of alive nodes; raises when --gpu asks for more GPUs than the cluster has."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.use_gpu and gpus < cfg.workers:
        raise ValueError(f"--gpu with {cfg.workers} workers needs {cfg.workers} GPUs; the cluster has {gpus:g}")
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _object_store_bytes() -> float:
    import ray

    return ray.cluster_resources().get("object_store_memory", 0.0)


def prepare(cfg: TrainConfig) -> tuple[TrainConfig, DataPlan]:
    """Resolve the config and plan the data; every input check happens here."""
    cfg = cfg.resolved()
    plan = plan_data(cfg.data, cfg.labels, cfg.split, cfg.valid_fraction, cfg.seed, cfg.positives_only)
    if cfg.track:
        from ich_ray.tracking.tracker import check_tracking_uri, resolve_tracking_uri

        check_tracking_uri(resolve_tracking_uri(cfg.tracking_uri, cfg.data))
    log.info("train %s/%s: %d train, %d valid slices, %d channels, stored %d px, sizes %s",
             cfg.arch, cfg.task, plan.n_train, plan.n_valid, plan.in_channels, plan.stored_size, cfg.sizes)
    return cfg, plan


def finished_run(cfg: TrainConfig, plan: DataPlan) -> TrainResult | None:
    """The result of an earlier run of this name that already trained every epoch, read from its last
    checkpoint (re-running a finished command then trains nothing and opens no empty MLflow run)."""
    import torch

    from ich_ray.train.worker import CHECKPOINT_FILE, checkpoint_dir_name

    last = Path(cfg.storage_path) / cfg.run_name / checkpoint_dir_name(cfg.epochs - 1)
    if not (last / CHECKPOINT_FILE).is_file():
        return None
    # memory-mapped: only the history and the optimizer's settings are read, not the weights
    state = torch.load(last / CHECKPOINT_FILE, map_location="cpu", weights_only=False, mmap=True)
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
    from ich_ray.train.lr_find_run import find_lr
    from ich_ray.train.worker import train_worker

    started = time.perf_counter()
    cfg, plan = prepare(cfg)
    done = finished_run(cfg, plan)
    if done is not None:
        return done
    init_ray(cfg.address)
    nodes = _check_cluster(cfg)
    found = find_lr(cfg, plan) if cfg.lr == "auto" else None
    lr = found.suggested_lr if found is not None else cfg.lr
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
        datasets=build_datasets(plan, cache=should_cache(cfg.cache, plan, _object_store_bytes())),
        dataset_config=sharded_eval_data_config(),
    )
    result = trainer.fit()
    seconds = time.perf_counter() - started
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    log.info("train %s: %d epochs in %.1f s; last checkpoint %s", cfg.run_name, cfg.epochs, seconds, checkpoint)
    return TrainResult(cfg.run_name, str(Path(cfg.storage_path) / cfg.run_name), checkpoint,
                       dict(result.metrics or {}), lr, plan.n_train, plan.n_valid, seconds)
