from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.figure import Figure

from ich_ray.labels import LABELS
from ich_ray.tracking import plots


def _titles(fig: Figure) -> list[tuple[str, str]]:
    return [(ax.get_title(), mcolors.to_hex(ax.title.get_color())) for ax in fig.axes if ax.get_title()]


GREEN, RED = mcolors.to_hex(plots.RIGHT), mcolors.to_hex(plots.WRONG)


def test_loss_curves_one_point_per_epoch():
    fig = plots.loss_curves([{"epoch": 0, "train_loss": 0.9, "valid_loss": 1.0},
                             {"epoch": 1, "train_loss": 0.5, "valid_loss": 0.7}])
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert set(lines) == {"train_loss", "valid_loss"}
    assert list(lines["valid_loss"].get_xdata()) == [0, 1]
    assert list(lines["valid_loss"].get_ydata()) == [1.0, 0.7]


def test_roc_curves_report_auc_and_skip_single_class_labels():
    y_true = np.array([[0, 1], [0, 0], [0, 1], [0, 0]])
    y_prob = np.array([[0.1, 0.9], [0.2, 0.2], [0.3, 0.8], [0.4, 0.1]])
    fig = plots.roc_curves(y_true, y_prob, ["epidural", "any"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["epidural: n/a (one class)", "any: AUC 1.000"]


def test_confusion_matrices_count_per_label():
    y_true = np.array([1, 1, 0, 0, 0])
    y_prob = np.array([0.9, 0.2, 0.7, 0.1, 0.3])
    fig = plots.confusion_matrices(y_true, y_prob, ["any"])
    counts = [t.get_text() for t in fig.axes[0].texts]  # row-major: tn fp / fn tp
    assert counts == ["2", "1", "1", "1"]
    fig6 = plots.confusion_matrices(np.zeros((3, 6)), np.zeros((3, 6)), LABELS)
    assert [ax.get_title() for ax in fig6.axes] == list(LABELS)


def test_prediction_grid_titles_green_right_red_wrong():
    images = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    fig = plots.prediction_grid(images, [1, 0, 1], [0.8, 0.1, 0.3], ["any"])
    assert _titles(fig) == [("1 / 1", GREEN), ("0 / 0", GREEN), ("0 / 1", RED)]
    assert fig.texts[0].get_text() == "prediction / truth"


def test_prediction_grid_multilabel_and_single_channel():
    images = np.full((2, 32, 32, 2), 100, dtype=np.uint8)
    y_true = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    y_prob = np.array([[0, 0, 0, 0.9, 0.9, 0.9], [0.9, 0, 0, 0, 0, 0.9]])
    fig = plots.prediction_grid(images, y_true, y_prob, LABELS)
    assert _titles(fig) == [("SAH,SDH,ICH / SAH,SDH,ICH", GREEN), ("EDH,ICH / none", RED)]
    assert fig.axes[0].images[0].get_array().shape == (32, 32)  # first channel shown


def test_prediction_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        plots.prediction_grid(np.zeros((1, 8, 8, 3)), [1], [1.0], ["any"])
    with pytest.raises(ValueError, match="2 images but 1 label rows"):
        plots.prediction_grid(np.zeros((2, 8, 8), np.uint8), [1], [1.0], ["any"])
    with pytest.raises(ValueError, match="2 label columns but 1 labels"):
        plots.roc_curves(np.zeros((2, 2)), np.zeros((2, 2)), ["any"])


def test_lr_finder_marks_suggestion_and_feature_importance_sorted():
    fig = plots.lr_finder_plot([1e-5, 1e-4, 1e-3, 1e-2], [1.0, 0.8, 0.5, 2.0], 1e-3)
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "suggested 1.00e-03"
    fig = plots.feature_importance(["a", "b", "c"], [0.2, 0.5, 0.3], top=2)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["c", "b"]  # barh draws bottom-up: largest on top
    with pytest.raises(ValueError, match="3 learning rates but 2 losses"):
        plots.lr_finder_plot([1, 2, 3], [1, 2], None)
