"""Apply a study model in predict: each series' non-blank slices, in slice order, through the sequence model;
its per-slice probabilities replace the slice model's (the study score is their maximum)."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
from torch import nn

from ich_ray.models.loading import ModelSpec
from ich_ray.study.features import with_study_inputs
from ich_ray.study.loading import StudyModelSpec, refine_series

log = logging.getLogger(__name__)


def check_pair(slice_spec: ModelSpec, study_spec: StudyModelSpec) -> None:
    """The study model must read this slice model's embeddings and predict its labels."""
    if tuple(study_spec.labels) != tuple(slice_spec.labels):
        raise ValueError(f"study model {study_spec.source} predicts {list(study_spec.labels)} but slice model "
                         f"{slice_spec.source} predicts {list(slice_spec.labels)}")
    if study_spec.slice_model != slice_spec.source:
        log.warning("study model %s was trained on the embeddings of %s; predicting with %s (same weights?)",
                    study_spec.source, study_spec.slice_model, slice_spec.source)


def refine_predictions(predictions: pl.DataFrame, embeddings: pl.DataFrame | None, study_spec: StudyModelSpec,
                       model: nn.Module) -> pl.DataFrame:
    """`predictions` with the study model's probabilities on every non-blank slice. Its input per slice
    (`study.features`): the slice model's `prob_<label>` columns of `predictions` as logits, or the
    `embeddings` (path, embedding) when it reads embeddings."""
    rows = predictions.filter(~pl.col("blank"))
    if study_spec.features == "embedding":
        if embeddings is None:
            raise ValueError(f"study model {study_spec.source} reads embeddings but none were computed")
        rows = rows.select("path", "series_instance_uid", "slice_index").join(embeddings, on="path", how="inner")
    rows = with_study_inputs(rows, study_spec.features, study_spec.labels).sort("series_instance_uid", "slice_index")
    if rows.is_empty():
        return predictions
    refined: dict[str, list] = {"path": [], **{f"prob_{n}": [] for n in study_spec.labels}}
    for (_series,), group in rows.group_by("series_instance_uid", maintain_order=True):
        stacked = np.stack(group["features"].to_list()).astype(np.float32)
        if stacked.shape[1] != study_spec.embedding_dim:
            raise ValueError(f"study model {study_spec.source} reads {study_spec.embedding_dim}-d {study_spec.features};"
                             f" the slice model gives {stacked.shape[1]}-d")
        probs = refine_series(model, stacked)
        refined["path"] += group["path"].to_list()
        for j, name in enumerate(study_spec.labels):
            refined[f"prob_{name}"] += probs[:, j].astype(np.float64).tolist()
    columns = [f"prob_{n}" for n in study_spec.labels]
    update = pl.DataFrame(refined)
    return (predictions.join(update, on="path", how="left", suffix="_study")
            .with_columns(pl.coalesce(f"{c}_study", c).alias(c) for c in columns)
            .drop(f"{c}_study" for c in columns))
