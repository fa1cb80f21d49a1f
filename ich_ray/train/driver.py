"""Driver-side pieces shared by training and the LR range test: resolve and check the config against the
data, and build Ray Train's scaling, run and dataset configs.

Everything is resolved here once, on the driver (data root, tracking URI, image sizes) and handed to the
workers as values: a worker never re-reads its own environment to decide where to log or what to train on.
"""

from __future__ import annotations

import dataclasses
import logging

from ich_ray.train.config import TrainConfig
from ich_ray.train.data import DataPlan, plan_data

log = logging.getLogger(__name__)


def prepare(cfg: TrainConfig) -> tuple[TrainConfig, DataPlan]:
    """Resolve the config and plan the data; every input check happens here, before Ray starts work."""
    cfg = cfg.resolved()
    plan = plan_data(cfg.data, cfg.labels, cfg.split, cfg.valid_fraction, cfg.seed, cfg.positives_only, cfg.fold,
                     cfg.folds)
    cfg = fit_sizes(cfg, plan.stored_size)
    if cfg.track:
        from ich_ray.tracking.uri import check_tracking_uri

        check_tracking_uri(cfg.tracking_uri)
    log.info("train %s/%s: %d train, %d valid slices, %d channels, stored %d px, sizes %s",
             cfg.arch, cfg.task, plan.n_train, plan.n_valid, plan.in_channels, plan.stored_size, cfg.sizes)
    return cfg, plan


def fit_sizes(cfg: TrainConfig, stored_size: int) -> TrainConfig:
    """No `sizes` given: train at the stored size. A size above it would only upsample the stored images
    (more compute, no more detail), so it is refused with both numbers."""
    if not cfg.sizes:
        return dataclasses.replace(cfg, sizes=(stored_size,), size_epochs=(cfg.epochs,))
    too_large = [s for s in cfg.sizes if s > stored_size]
    if too_large:
        raise ValueError(
            f"training sizes {list(cfg.sizes)} exceed the stored image size {stored_size} px of {cfg.data}/images: "
            f"re-run `ich-ray clean --size {max(too_large)}` or train at sizes <= {stored_size}"
        )
    return cfg


def sharded_eval_data_config(eval_names: tuple[str, ...] = ("valid",)):
    """Train V2 DataConfig: `train` split equally (DDP needs equal step counts), eval sets split unequally so
    every validation row is scored exactly once (the default equal split may drop rows).

    `train` is read in order (`preserve_order`): its blocks reach the workers in the seeded order
    `build_datasets` drew, not in the order parallel tasks happen to finish, so the same seed trains the
    same model (the rows of each shard come in a seeded order too, and a local shuffle, where one runs, is
    seeded per epoch).
    """
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

    return ShardedEvalDataConfig(execution_options={"train": train_ingest_options()})


def train_ingest_options():
    """The Ray Data options the train split is read with: Train's defaults, in order (see
    `sharded_eval_data_config`). In order cost ~4% of streaming ingest throughput on 2 CPUs (best of 3,
    498 against 518 images/s)."""
    from ray.train import DataConfig

    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    return options


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


def check_cluster(cfg: TrainConfig) -> int:
    """Number of alive nodes; raises when --gpu asks for more GPUs than the cluster has. Warns when a
    multi-node run tracks to a SQLite file, which workers on other nodes cannot reach."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.use_gpu and gpus < cfg.workers:
        raise ValueError(f"--gpu with {cfg.workers} workers needs {cfg.workers} GPUs; the cluster has {gpus:g}")
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if cfg.track and nodes > 1 and str(cfg.tracking_uri).startswith("sqlite:"):
        log.warning("tracking to %s on a %d-node cluster: only works when every node shares that filesystem; "
                    "pass --tracking-uri http://<mlflow server>", cfg.tracking_uri, nodes)
    return nodes


def object_store_bytes() -> float:
    import ray

    return ray.cluster_resources().get("object_store_memory", 0.0)
