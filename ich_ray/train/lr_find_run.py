"""The LR range test on the cluster: one Ray Train worker, the same data pipeline and model as training.

The result travels back as a checkpoint (Train V2 persists only what is attached to one): `lr_find.json`
and the loss-vs-LR plot, copied into the run folder ROOT/runs/<run_name>/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from ich_ray.config import config_to_dict
from ich_ray.train.config import LRFindConfig, TrainConfig
from ich_ray.train.data import DataPlan, build_datasets, local_shuffle_rows
from ich_ray.train.driver import prepare, run_config, scaling_config, sharded_eval_data_config
from ich_ray.train.lr_finder import LRFindResult, lr_range_test
from ich_ray.train.tasks import SliceTask

log = logging.getLogger(__name__)

RESULT_FILE = "lr_find.json"
PLOT_FILE = "lr_find.png"


def lr_find_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from ich_ray.tracking.plots import lr_finder_plot
    from ich_ray.train.worker import build_parts

    cfg, plan = LRFindConfig(**config["cfg"]), DataPlan(**config["plan"])
    parts = build_parts(cfg, plan, cfg.start_lr, 1, ray.train.torch.get_device())
    parts.spec.set_body_frozen(parts.model, cfg.body_frozen_epochs > 0)  # test the LR of the first training phase
    shard = ray.train.get_dataset_shard("train")
    result = lr_range_test(
        parts.model, lambda: shard.iter_torch_batches(batch_size=cfg.batch_size, device=parts.device,
                                                     local_shuffle_buffer_size=cfg.shuffle_buffer or None,
                                                     local_shuffle_seed=cfg.seed),
        SliceTask(cfg.sizes[0], parts.mean, parts.std), parts.criterion,
        lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay), parts.stepper,
        start_lr=cfg.start_lr, end_lr=cfg.end_lr, num_iter=cfg.num_iter,
    )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, RESULT_FILE).write_text(json.dumps(dataclasses.asdict(result)))
        lr_finder_plot(result.lrs, result.losses, result.suggested_lr).savefig(Path(tmp, PLOT_FILE), dpi=100)
        ray.train.report({"suggested_lr": result.suggested_lr}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def find_lr(cfg: TrainConfig, plan: DataPlan, **test_args) -> LRFindResult:
    """Run the range test (Ray must be up). Files land in <storage_path>/<run_name>/; returns the result."""
    from ray.train.torch import TorchTrainer

    lr_cfg = LRFindConfig(**{**config_to_dict(cfg), **test_args, "workers": 1,
                             "shuffle_buffer": local_shuffle_rows(cfg.shuffle_buffer, cache=False)})
    # a unique Ray run per test: a fixed name would "resume" the finished test instead of running it again
    name = f"{cfg.run_name}-lr-find-{time.strftime('%Y%m%dT%H%M%S')}"
    trainer = TorchTrainer(
        lr_find_worker,
        train_loop_config={"cfg": config_to_dict(lr_cfg), "plan": dataclasses.asdict(plan)},
        scaling_config=scaling_config(lr_cfg), run_config=run_config(lr_cfg, name=name),
        datasets={"train": build_datasets(plan, seed=cfg.seed)["train"]},
        dataset_config=sharded_eval_data_config(),
    )
    checkpoint = trainer.fit().checkpoint
    if checkpoint is None:
        raise RuntimeError(f"the LR range test {name} reported no result")
    out_dir = Path(cfg.storage_path) / cfg.run_name
    out_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as directory:
        for file in (RESULT_FILE, PLOT_FILE):
            shutil.copyfile(Path(directory, file), out_dir / file)
    result = LRFindResult(**json.loads((out_dir / RESULT_FILE).read_text()))
    log.info("lr-find: suggested lr %.2e (steepest %.2e, min/10 %.2e); plot %s",
             result.suggested_lr, result.lr_steep, result.lr_min_div10, out_dir / PLOT_FILE)
    return result


def run_lr_find(cfg: LRFindConfig) -> LRFindResult:
    """`ich-ray lr-find`: the range test, its plot in the run folder and in MLflow (run `<run_name>-lr-find`)."""
    from ich_ray.ray_utils import init_ray
    from ich_ray.tracking.tracker import make_tracker

    resolved, plan = prepare(cfg)
    init_ray(resolved.address)
    result = find_lr(resolved, plan, start_lr=cfg.start_lr, end_lr=cfg.end_lr, num_iter=cfg.num_iter)
    tracker = make_tracker(resolved.tracking_uri, resolved.experiment, f"{resolved.run_name}-lr-find", rank=0,
                           enabled=resolved.track, resume=False)
    with tracker:
        tracker.log_params({**config_to_dict(resolved), "suggested_lr": result.suggested_lr})
        tracker.log_metrics({"suggested_lr": result.suggested_lr, "lr_steep": result.lr_steep,
                             "lr_min_div10": result.lr_min_div10})
        tracker.log_artifact(Path(resolved.storage_path) / resolved.run_name / PLOT_FILE)
    return result
