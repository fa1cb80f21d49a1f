"""Head mask and bounding box: crop away air, the head rest and the scanner's padding.

The head is the largest connected blob of tissue (HU above `threshold`, so padding at -1500 / -2000 and
air at -1000 are out). A binary opening first cuts thin structures (the head-rest line, cables, noise)
off the head, so they neither join the blob nor widen the box; holes (ventricles, sinuses) are filled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

TISSUE_HU = -300.0
MIN_HEAD_FRACTION = 0.005  # smaller blobs are noise or a slice above/below the head: no head


def head_mask(hu: np.ndarray, threshold: float = TISSUE_HU, opening: int | None = None) -> np.ndarray:
    """Boolean HxW mask of the head; all False when no blob covers MIN_HEAD_FRACTION of the slice.

    `opening` is the radius in pixels of the opening that removes thin lines; default 1 per 128 px of
    image side (4 at 512), enough for a head-rest line a few pixels thick.
    """
    hu = np.asarray(hu)
    if hu.ndim != 2:
        raise ValueError(f"head_mask expects an HxW slice, got shape {hu.shape}")
    radius = max(1, round(max(hu.shape) / 128)) if opening is None else opening
    tissue = hu > threshold
    if radius > 0:
        tissue = ndimage.binary_opening(tissue, structure=_disk(radius))
    labels, count = ndimage.label(tissue)
    if count == 0:
        return np.zeros(hu.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # background
    largest = int(sizes.argmax())
    if sizes[largest] < MIN_HEAD_FRACTION * hu.size:
        return np.zeros(hu.shape, dtype=bool)
    return ndimage.binary_fill_holes(labels == largest)


def head_bbox(mask: np.ndarray, margin: float = 0.02) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the mask, bottom/right exclusive, so `arr[top:bottom, left:right]`.

    `margin` widens the box on every side by that fraction of the larger image side (clipped to the image).
    None when the mask is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"head_bbox expects an HxW mask, got shape {mask.shape}")
    if margin < 0:
        raise ValueError(f"head_bbox: margin must be >= 0, got {margin}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    pad = round(margin * max(mask.shape))
    height, width = mask.shape
    return (
        max(0, int(rows[0]) - pad),
        min(height, int(rows[-1]) + 1 + pad),
        max(0, int(cols[0]) - pad),
        min(width, int(cols[-1]) + 1 + pad),
    )


def crop(arr: np.ndarray, bbox: tuple[int, int, int, int] | None) -> np.ndarray:
    """arr[top:bottom, left:right] (any trailing channel axes kept); the whole array when bbox is None."""
    if bbox is None:
        return arr
    top, bottom, left, right = bbox
    if not (0 <= top < bottom <= arr.shape[0] and 0 <= left < right <= arr.shape[1]):
        raise ValueError(f"crop: box {bbox} does not fit an image of shape {arr.shape}")
    return arr[top:bottom, left:right]


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius
