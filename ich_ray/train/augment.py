"""Batch augmentation on tensors, on the training device (the model input itself: `models.inputs`).

torchvision.transforms.v2 applies ONE set of random parameters to a whole batch tensor; augmentation needs
per-sample randomness, so each op picks its own random subset (flip, blur) or per-sample angles (rotation,
one batched affine grid), all on the GPU when the batch is there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torch.nn import functional as F


def _rotate(x: torch.Tensor, max_degrees: float, generator: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    angles = (torch.rand(n, generator=generator, device="cpu") * 2 - 1) * math.radians(max_degrees)
    cos, sin = angles.cos(), angles.sin()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    # Border padding: corners rotated in get the edge values (air), not a normalised "0" that is mid-grey.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class BatchAugment:
    """Horizontal flip, rotation within +-max_degrees, Gaussian blur on a random fraction of the batch."""

    flip_p: float = 0.5
    max_degrees: float = 15.0
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.1, 1.0)

    def __post_init__(self):
        for name in ("flip_p", "blur_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_degrees < 0:
            raise ValueError(f"max_degrees must be >= 0, got {self.max_degrees}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]
        x = x.clone()  # the caller's batch stays untouched
        flip = torch.rand(n, generator=generator) < self.flip_p
        if flip.any():
            x[flip.to(x.device)] = TF.horizontal_flip(x[flip.to(x.device)])
        if self.max_degrees > 0:
            x = _rotate(x, self.max_degrees, generator)
        blur = torch.rand(n, generator=generator) < self.blur_p
        if blur.any():
            lo, hi = self.blur_sigma
            sigma = float(lo + (hi - lo) * torch.rand(1, generator=generator))
            kernel = 2 * math.ceil(2 * sigma) + 1
            x[blur.to(x.device)] = TF.gaussian_blur(x[blur.to(x.device)], [kernel, kernel], [sigma, sigma])
        return x
