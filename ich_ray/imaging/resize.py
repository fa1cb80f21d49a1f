"""Square resize that keeps the aspect ratio: pad the short side, then resample.

Resampling uses Pillow's bilinear filter on float32 ('F' mode) planes. Pillow widens the filter's support
by the scale factor when shrinking, so downscaling is antialiased (no aliasing of the skull edge), and a
triangle filter has no negative lobes, so values stay inside the input range (no Lanczos ringing pushing
[0, 1] windows out of range). It is the filter torchvision's `Resize(antialias=True)` reproduces:
`torch.nn.functional.interpolate(mode="bilinear", antialias=True)` agrees to 1e-5 (tested), at the same
speed on CPU (~2 ms for 3 x 420 px -> 256 px). Pillow keeps the imaging layer free of torch.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def pad_to_square(img: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Centre `img` (HxW or HxWxC) on a square canvas of side max(H, W) filled with `fill`."""
    height, width = img.shape[:2]
    side = max(height, width)
    if height == width:
        return img
    out = np.full((side, side) + img.shape[2:], fill, dtype=img.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    out[top : top + height, left : left + width] = img
    return out


def resize_square(img: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """HxW or HxWxC -> size x size (x C) float32: pad to square with `fill`, then antialiased bilinear."""
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"resize_square: size must be a positive int, got {size!r}")
    img = np.asarray(img, dtype=np.float32)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"resize_square expects a non-empty HxW or HxWxC image, got shape {img.shape}")
    square = pad_to_square(img, fill)
    if square.shape[0] == size:
        return np.ascontiguousarray(square)
    if square.ndim == 2:
        return _resize_plane(square, size)
    out = np.empty((size, size, square.shape[2]), dtype=np.float32)
    for c in range(square.shape[2]):
        out[..., c] = _resize_plane(square[..., c], size)
    return out


def _resize_plane(plane: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(plane))  # float32 -> mode "F"
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
