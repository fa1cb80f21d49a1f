"""Grad-CAM heat maps (Selvaraju et al. 2017) and the per-study overlay figure.

The class-activation map is taken on the layer the model registry names for the architecture
(`ArchSpec.cam_layer`: the output of the last convolutional block).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


def grad_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for output `target`, upsampled to the input size.

    `images` is the normalised NCHW batch the model sees. The model is put in eval mode; gradients flow
    only for this call (parameters' .grad is untouched).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be NCHW, got shape {tuple(images.shape)}")
    saved: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        saved["act"] = output

    model.eval()
    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            logits = model(x)
            if not 0 <= target < logits.shape[1]:
                raise ValueError(f"target output {target} out of range for {logits.shape[1]} outputs")
            act_grad = torch.autograd.grad(logits[:, target].sum(), saved["act"])[0]
    finally:
        handle.remove()
    weights = act_grad.mean(dim=(2, 3), keepdim=True)  # global-average-pooled gradients per channel
    cam = torch.relu((weights * saved["act"]).sum(dim=1, keepdim=True)).detach()
    cam = nn.functional.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).numpy().astype(np.float32)


@dataclass(frozen=True)
class HeatmapPanel:
    """One slice of a study figure: the brain-window image (H, W uint8), its CAM (H, W in [0, 1]), a title."""

    image: np.ndarray
    cam: np.ndarray
    title: str


def write_study_heatmap(path: str | Path, study: str, panels: Sequence[HeatmapPanel], alpha: float = 0.4) -> Path:
    """One PNG: each panel the brain window in grey with the Grad-CAM map in `jet` on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError(f"study {study}: no slice to draw")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel.image.shape != panel.cam.shape:
            raise ValueError(f"study {study}: image {panel.image.shape} and CAM {panel.cam.shape} differ in shape")
        ax.imshow(panel.image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(panel.cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        ax.set_title(panel.title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"study {study}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def study_panels(model: nn.Module, spec, loader, slices: list[dict], target: str = "any") -> list[HeatmapPanel]:
    """Grad-CAM panels for `slices` (dicts with path, prev_path, next_path, slice_index, prob_any).

    The grey image is the same slice through the same recipe (crop, size) with the brain window only, so
    the map and the anatomy line up pixel for pixel.
    """
    from ich_ray.imaging.recipe import prepare_slice
    from ich_ray.models.registry import get_spec
    from ich_ray.predict.inference import model_input

    brain = dataclasses.replace(spec.recipe, windows=("brain",), context=False)
    images = np.stack([loader.image(s["path"], s.get("prev_path"), s.get("next_path")) for s in slices])
    layer = get_spec(spec.arch).cam_module(model)
    cams = grad_cam(model, layer, model_input(spec, images), spec.labels.index(target))
    panels = []
    for cam, s in zip(cams, slices, strict=True):
        grey = prepare_slice(loader.hu(s["path"]), brain)[..., 0]
        cam = _resize(cam, grey.shape)
        panels.append(HeatmapPanel(grey, cam, f"slice {s['slice_index']}  p({target})={s['prob_' + target]:.2f}"))
    return panels


def _resize(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if cam.shape == shape:
        return cam
    tensor = torch.from_numpy(cam)[None, None]
    return nn.functional.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
