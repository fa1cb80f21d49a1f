"""Grad-CAM on a tiny registry model, and the overlay PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ich_ray.models.registry import create_model, get_spec, list_models
from ich_ray.predict.heatmap import HeatmapPanel, grad_cam, write_study_heatmap


@pytest.mark.parametrize("arch", list_models())
def test_grad_cam_on_each_architecture(arch):
    """The registry's CAM layer is spatial for every architecture; maps are full-size, in [0, 1], non-flat."""
    torch.manual_seed(0)
    model = create_model(arch, num_outputs=6, in_channels=3)
    cams = grad_cam(model, get_spec(arch).cam_module(model), torch.randn(2, 3, 64, 64), target=5)
    assert cams.shape == (2, 64, 64)
    assert cams.min() >= 0.0 and cams.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())  # explanation leaves the weights' grads alone


def test_grad_cam_finds_the_evidence():
    """A net that only responds to the top-left quadrant: the map must peak there."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten())
    image = torch.zeros(1, 1, 32, 32)
    image[..., 4:10, 4:10] = 1.0
    cam = grad_cam(model, conv, image, target=0)[0]
    assert cam[4:10, 4:10].mean() > 0.5 > cam[16:, 16:].mean()
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, conv, image, target=3)


def test_heatmap_png(tmp_path):
    panel = HeatmapPanel(np.full((64, 64), 120, np.uint8), np.linspace(0, 1, 64 * 64).reshape(64, 64), "slice 3")
    path = write_study_heatmap(tmp_path / "heatmaps" / "s.png", "s", [panel, panel])
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > img.height
    with pytest.raises(ValueError, match="no slice"):
        write_study_heatmap(tmp_path / "x.png", "s", [])
