"""Figures logged as run artifacts. Each function returns a matplotlib Figure (Agg backend, no display).

The caller hands the figure to `Tracker.log_figure`, which saves and closes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# Radiology shorthand keeps prediction-grid titles short enough to read.
SHORT_NAMES = {
    "epidural": "EDH", "intraparenchymal": "IPH", "intraventricular": "IVH",
    "subarachnoid": "SAH", "subdural": "SDH", "any": "ICH",
}
RIGHT, WRONG = "tab:green", "tab:red"


def _as_2d(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be [N] or [N, labels], got shape {array.shape}")
    return array


def _check_labels(y_true: np.ndarray, y_prob: np.ndarray, labels: Sequence[str]) -> None:
    if y_true.shape != y_prob.shape:
        raise ValueError(f"y_true shape {y_true.shape} != y_prob shape {y_prob.shape}")
    if y_true.shape[1] != len(labels):
        raise ValueError(f"{y_true.shape[1]} label columns but {len(labels)} labels: {list(labels)}")


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(n / cols), cols


def loss_curves(history: list[dict]) -> Figure:
    """train_loss and valid_loss per epoch (`epoch` key if present, else the list position)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [row.get("epoch", i) for i, row in enumerate(history)]
    for key in ("train_loss", "valid_loss"):
        points = [(e, row[key]) for e, row in zip(epochs, history, strict=True) if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=key)
    ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    return fig


def roc_curves(y_true, y_prob, labels: Sequence[str]) -> Figure:
    """One ROC curve per label with its AUC; a label with a single class in y_true is marked n/a."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true, y_prob = _as_2d(y_true, "y_true"), _as_2d(y_prob, "y_prob")
    _check_labels(y_true, y_prob, labels)
    fig, ax = plt.subplots(figsize=(6, 6))
    for j, label in enumerate(labels):
        if len(np.unique(y_true[:, j])) < 2:
            ax.plot([], [], linestyle="none", label=f"{label}: n/a (one class)")
            continue
        fpr, tpr, _ = roc_curve(y_true[:, j], y_prob[:, j])
        ax.plot(fpr, tpr, label=f"{label}: AUC {roc_auc_score(y_true[:, j], y_prob[:, j]):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def confusion_matrices(y_true, y_prob, labels: Sequence[str], threshold: float = 0.5) -> Figure:
    """A 2x2 count matrix per label (rows truth, columns prediction at `threshold`)."""
    from sklearn.metrics import confusion_matrix

    y_true, y_prob = _as_2d(y_true, "y_true"), _as_2d(y_prob, "y_prob")
    _check_labels(y_true, y_prob, labels)
    rows, cols = _grid(len(labels), 3)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    for j, (label, ax) in enumerate(zip(labels, axes.flat, strict=False)):
        matrix = confusion_matrix(y_true[:, j].astype(int), (y_prob[:, j] >= threshold).astype(int), labels=[0, 1])
        ax.imshow(matrix, cmap="Blues")
        for (r, c), count in np.ndenumerate(matrix):
            colour = "white" if count > matrix.max() / 2 else "black"
            ax.text(c, r, str(count), ha="center", va="center", color=colour, fontsize=12)
        ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="truth", title=label)
    fig.suptitle(f"Confusion matrices (threshold {threshold:g})")
    fig.tight_layout()
    return fig


def _label_text(flags: np.ndarray, labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return str(int(flags[0]))
    names = [SHORT_NAMES.get(label, label) for label, on in zip(labels, flags, strict=True) if on]
    return ",".join(names) if names else "none"


def _display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    if image.ndim == 2:
        return image, "gray"
    if image.shape[-1] == 3:
        return image, None
    return image[..., 0], "gray"  # 1, 2 or 4+ channels: show the first window


def prediction_grid(images, y_true, y_prob, labels: Sequence[str], threshold: float = 0.5,
                    max_cols: int = 4) -> Figure:
    """The paper's figure: each image titled "prediction / truth", green when right, red when wrong."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W] or [N, H, W, C], got {images.dtype} {images.shape}")
    y_true, y_prob = _as_2d(y_true, "y_true"), _as_2d(y_prob, "y_prob")
    _check_labels(y_true, y_prob, labels)
    if len(images) != len(y_true):
        raise ValueError(f"{len(images)} images but {len(y_true)} label rows")
    rows, cols = _grid(len(images), max_cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for image, truth, prob, ax in zip(images, y_true, y_prob, axes.flat, strict=False):
        predicted = prob >= threshold
        right = bool(np.array_equal(predicted, truth.astype(bool)))
        shown, cmap = _display(image)
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=255)
        ax.set_title(f"{_label_text(predicted, labels)} / {_label_text(truth.astype(bool), labels)}",
                     color=RIGHT if right else WRONG, fontsize=10)
    fig.suptitle("prediction / truth")
    fig.tight_layout()
    return fig


def lr_finder_plot(lrs: Sequence[float], losses: Sequence[float], suggested_lr: float | None) -> Figure:
    """Loss against learning rate (log scale) with the suggested rate marked."""
    if len(lrs) != len(losses):
        raise ValueError(f"{len(lrs)} learning rates but {len(losses)} losses")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    if suggested_lr is not None:
        ax.axvline(suggested_lr, color=WRONG, linestyle="--", label=f"suggested {suggested_lr:.2e}")
        ax.legend()
    ax.set(xlabel="learning rate", ylabel="loss", title="LR finder")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def feature_importance(names: Sequence[str], importances: Sequence[float], top: int = 20) -> Figure:
    """Horizontal bars of the `top` most important features, largest on top."""
    if len(names) != len(importances):
        raise ValueError(f"{len(names)} feature names but {len(importances)} importances")
    order = np.argsort(np.asarray(importances, dtype=float))[::-1][:top]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(order) + 1.2))
    ax.barh([names[i] for i in order][::-1], [importances[i] for i in order][::-1])
    ax.set(xlabel="importance", title="Feature importance")
    fig.tight_layout()
    return fig
