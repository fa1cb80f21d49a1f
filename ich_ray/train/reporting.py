"""Rank-0 run artifacts: per-epoch metrics and the end-of-training figures, predictions and model."""

from __future__ import annotations

import numpy as np
from torch import nn

from ich_ray.metrics import compute_metrics
from ich_ray.tracking.tracker import Tracker
from ich_ray.train.loop import Predictions

PREDICTION_GRID_IMAGES = 16


def epoch_metrics(preds: Predictions, labels, train_loss: float, lr: float, images: int, seconds: float,
                  epoch_seconds: float) -> dict[str, float]:
    """The per-epoch metric dict with the contract's names."""
    metrics = {"train_loss": train_loss, "valid_loss": preds.loss, "lr": lr,
               "images_per_s": images / seconds if seconds > 0 else float("nan"), "epoch_time_s": epoch_seconds}
    metrics.update(compute_metrics(preds.y_true, preds.y_prob, labels, study_ids=preds.groups.get("study_hash")))
    return metrics


def log_final(tracker: Tracker, history: list[dict], preds: Predictions, images: np.ndarray, labels,
              model: nn.Module, metadata: dict, register_as: str | None) -> None:
    """Loss curves, ROC, confusion matrices, prediction grid, the held-out predictions, and the model with its
    metadata: all of the final epoch (the one rule: the logged model, its artifacts and `compare` agree)."""
    from ich_ray.tracking import plots
    from ich_ray.tracking.predictions import log_predictions, predictions_frame

    labels = list(labels)
    tracker.log_figure(plots.loss_curves(history), "loss_curves.png")
    tracker.log_figure(plots.roc_curves(preds.y_true, preds.y_prob, labels), "roc_curves.png")
    tracker.log_figure(plots.confusion_matrices(preds.y_true, preds.y_prob, labels), "confusion_matrices.png")
    n = min(len(images), PREDICTION_GRID_IMAGES)
    if n:
        # images were kept from this rank's first validation batches, which lead the gathered predictions
        tracker.log_figure(plots.prediction_grid(images[:n], preds.y_true[:n], preds.y_prob[:n], labels),
                           "prediction_grid.png")
    tracker.log_dict({"history": history}, "history.json")
    ids = {"uid_hash": preds.uid_hash, **preds.groups}
    log_predictions(tracker, predictions_frame(preds.y_true, preds.y_prob, labels, ids, history[-1]["epoch"]))
    tracker.log_model(model, name="model", metadata=metadata, registered_model_name=register_as)
