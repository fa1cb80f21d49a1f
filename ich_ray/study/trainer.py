"""The driver of `ich-ray train-study`: embed the kept slices with the slice model, assemble and split the
series, check that the split holds out the slice model's own held-out patients, then train the sequence
model with Ray Train (DDP across workers, mixed precision where the device has it)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ich_ray.config import config_to_dict
from ich_ray.data.splits import check_split
from ich_ray.models.loading import MLFLOW_SCHEMES, load_model
from ich_ray.study.config import StudyConfig
from ich_ray.study.embed import embed_images
from ich_ray.study.features import with_study_inputs
from ich_ray.study.folds import check_fold_models, out_of_fold_table
from ich_ray.study.loading import sequence_metadata
from ich_ray.study.series import all_patients, read_embeddings, series_rows, split_series, valid_patients

log = logging.getLogger(__name__)


TRAINING_FEATURES_NOTE = {
    "out_of_fold": " (training patients: out of fold, {k} models)",
    "stacking": " (a stacking root: the slice model's own features of patients it never trained on)",
    "in_sample": " (in-sample: the slice model trained on these training patients)",
}


@dataclass
class StudyResult:
    run_name: str
    checkpoint_path: str | None
    metrics: dict
    n_train_series: int
    n_valid_series: int
    seconds: float


def slice_run_id(source: str, tracking_uri: str | None) -> str | None:
    """The MLflow run that trained `source`, None for a checkpoint folder.

    MLflow resolves every model URI form (runs:/, models:/<name>/<version|latest>, models:/<name>@<alias>,
    and the models:/m-<id> URI `log_model` returns) and reads the run from the model's MLmodel file.
    """
    if not source.startswith(MLFLOW_SCHEMES):
        return None
    import mlflow

    from ich_ray.tracking.tracker import scoped_tracking_uri

    with scoped_tracking_uri(tracking_uri):
        return mlflow.models.get_model_info(source).run_id


def check_held_out(cfg: StudyConfig, series) -> None:
    """Refuse a split whose held-out patients differ from those the slice model was validated on; for a
    stacking root, refuse one that holds any of them (it is then the slice model's own data)."""
    run_id = slice_run_id(cfg.slice_model, cfg.tracking_uri) if cfg.track else None
    if run_id is None:
        log.info("slice model %s is not an MLflow run: its held-out patients cannot be checked; the study split "
                 "uses valid_fraction=%g seed=%d as `ich-ray train` does", cfg.slice_model, cfg.valid_fraction, cfg.seed)
        return
    from mlflow import MlflowClient

    from ich_ray.tracking.predictions import load_predictions

    frame = load_predictions(MlflowClient(cfg.tracking_uri), run_id)
    if frame is None:
        log.warning("slice run %s logged no held-out predictions: its split cannot be checked", run_id)
        return
    theirs = set(frame["patient_hash"].unique().to_list())
    if cfg.stacking:
        shared = theirs & all_patients(series)
        if shared:
            raise ValueError(
                f"{cfg.data} holds {len(shared)} of the {len(theirs)} patients the slice model {cfg.slice_model} was "
                f"validated on, so it is (part of) the slice model's own data, whose training patients it has fitted: "
                f"a stacking root holds only patients the slice model never saw; on its own root use --oof-models")
        return
    ours = valid_patients(series, cfg.valid_fraction, cfg.seed)
    if theirs != ours:
        raise ValueError(
            f"the study split holds out {len(ours)} patients but the slice model {cfg.slice_model} was validated on "
            f"{len(theirs)} others ({len(theirs & ours)} shared): train both with the same valid_fraction and seed, "
            f"or the study model would be scored on patients the slice model trained on")


def embeddings_dir(data: str, model: str) -> Path:
    return Path(data) / "embeddings" / re.sub(r"[^0-9A-Za-z._-]", "_", model.strip("/"))[-120:]


def slice_features(cfg: StudyConfig, spec, state):
    """Every labelled slice's row with its study input `features`: the slice model's embedding or logits,
    or with out-of-fold models, each training patient's from the fold model that never saw it."""
    folder = embed_images(cfg.data, spec, state, embeddings_dir(cfg.data, cfg.slice_model), cfg.embed_batch_size,
                          cfg.embed_actors)
    table = read_embeddings(folder, spec.labels)
    if cfg.oof_models:
        loaded = [load_model(uri, cfg.tracking_uri) for uri in cfg.oof_models]
        folds = check_fold_models([s for s, _ in loaded], spec, cfg.valid_fraction, cfg.seed)
        tables = [(int(s.fold["fold"]), read_embeddings(embed_images(
            cfg.data, s, w, embeddings_dir(cfg.data, s.source), cfg.embed_batch_size, cfg.embed_actors), spec.labels))
            for s, w in loaded]
        table = out_of_fold_table(table, tables, folds, cfg.valid_fraction, cfg.seed)
    return with_study_inputs(table, cfg.features, spec.labels)


def train_study(cfg: StudyConfig) -> StudyResult:
    from ray.train.torch import TorchTrainer

    from ich_ray.ray_utils import init_ray
    from ich_ray.study.worker import study_worker
    from ich_ray.tracking.tracker import tracking_tags
    from ich_ray.tracking.uri import check_tracking_uri
    from ich_ray.train.data import epoch_order
    from ich_ray.train.driver import check_cluster, run_config, scaling_config, sharded_eval_data_config

    started = time.perf_counter()
    cfg = cfg.resolved()
    if cfg.track:
        check_tracking_uri(cfg.tracking_uri)
    spec, state = load_model(cfg.slice_model, cfg.tracking_uri)
    init_ray(cfg.address)
    nodes = check_cluster(cfg)
    table = slice_features(cfg, spec, state)
    series = series_rows(table, spec.labels)
    check_held_out(cfg, series)
    train_table, valid_table = split_series(series, cfg.valid_fraction, cfg.seed)
    _check_classes(train_table, valid_table, spec.labels)
    embedding_dim = len(table["features"][0])
    metadata = sequence_metadata(cfg.arch, spec.labels, embedding_dim, cfg.hidden, cfg.dropout, cfg.slice_model,
                                 cfg.features)
    n_valid_slices = int(np.sum(valid_table["length"].to_numpy()))
    plan = {"labels": list(spec.labels), "embedding_dim": embedding_dim, "n_train_series": train_table.num_rows,
            "n_valid_slices": n_valid_slices, "metadata": metadata}
    params = {**config_to_dict(cfg), "n_train_series": train_table.num_rows, "n_valid_series": valid_table.num_rows,
              "n_valid": n_valid_slices, "embedding_dim": embedding_dim, "slice_arch": spec.arch}
    tags = {**tracking_tags(cfg.data, cluster_size=nodes, arch=cfg.arch, task="study"),
            "slice_model": cfg.slice_model, "features": cfg.features, "training_features": cfg.training_features,
            **({"oof_models": ",".join(cfg.oof_models)} if cfg.oof_models else {})} if cfg.track else {}
    log.info("train-study %s: %d train / %d held-out series (%d held-out slices), %d-d %s from %s%s", cfg.arch,
             train_table.num_rows, valid_table.num_rows, n_valid_slices, embedding_dim, cfg.features, cfg.slice_model,
             TRAINING_FEATURES_NOTE[cfg.training_features].format(k=len(cfg.oof_models)))
    import ray.data

    trainer = TorchTrainer(
        study_worker,
        train_loop_config={"cfg": config_to_dict(cfg), "plan": plan, "params": params, "tags": tags},
        scaling_config=scaling_config(cfg), run_config=run_config(cfg),
        datasets={"train": ray.data.from_arrow(train_table).randomize_block_order(seed=epoch_order(cfg.seed)),
                  "valid": ray.data.from_arrow(valid_table)},
        dataset_config=sharded_eval_data_config(),
    )
    result = trainer.fit()
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    return StudyResult(cfg.run_name, checkpoint, dict(result.metrics or {}), train_table.num_rows,
                       valid_table.num_rows, time.perf_counter() - started)


def _check_classes(train_table, valid_table, labels) -> None:
    """Both splits must hold both classes of some label (the slice trainer's rule), at slice level."""
    import pyarrow.compute as pc

    def targets(table):
        flat = pc.list_flatten(table["labels"]).to_numpy(zero_copy_only=False)
        return flat.reshape(-1, len(labels))

    train, valid = targets(train_table), targets(valid_table)
    check_split(np.concatenate([train, valid]), np.r_[np.zeros(len(train), bool), np.ones(len(valid), bool)], labels)
