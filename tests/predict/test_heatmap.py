"""Grad-CAM on a tiny registry model, and the overlay PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ich_ray.models.registry import create_model
from ich_ray.predict.heatmap import HeatmapPanel, find_cam_layer, grad_cam, write_study_heatmap


def test_grad_cam_shape_range_and_last_conv():
    torch.manual_seed(0)
    model = create_model("resnet18", num_outputs=6, in_channels=3)
    layer = find_cam_layer(model)
    assert layer is model.layer4[-1].conv2
    cams = grad_cam(model, layer, torch.randn(2, 3, 64, 64), target=5)
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
