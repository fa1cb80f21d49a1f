"""The clean recipe and THE slice preparation shared by the clean stage and predict.

Training and inference must see identical pixels, so both call `prepare_slice` with the recipe stored
next to the images (the `recipe` column of images/ is `CleanRecipe.to_json()`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ich_ray.imaging.crop import crop, head_box
from ich_ray.imaging.encode import (
    NATIVE_CHANNELS,
    check_format,
    decode_image,
    decode_raw,
    encode_image,
    raw_batch,
    to_uint8,
)
from ich_ray.imaging.resize import resize_planes, square_canvas
from ich_ray.imaging.windows import Window, apply_window, parse_window

MIN_SIZE = 32


@dataclass(frozen=True)
class CleanRecipe:
    """How a HU slice becomes the stored image.

    windows: names of `WINDOWS` or `name:center:width` specs, one channel each.
    context: 2.5D; for each window the previous slice, this slice and the next slice (slice_index order),
        so channels = 3 * len(windows), ordered [w0 prev, w0 this, w0 next, w1 prev, ...].
    crop: crop to the head's bounding box before resizing (whole slice when no head is found).
    format / quality: raw (the default: the uint8 values, lossless; decoding is a reshape, so the training
        input, which decodes every epoch, fed 2.5x more images per core than from PNG: bench/gpu_train.py
        --ingest-only), png (lossless, as small; shards a viewer opens) or jpeg at `quality`.
    min_brain_fraction: the blank-slice filter: a slice with a smaller `img_pct_window` (fraction of pixels
        with 0 < HU < 80) is blank (above or below the head) and gets no image; stored with the recipe so
        predict marks exactly the slices clean drops (`is_blank`).

    These are the recipe's only defaults: `clean` and `reprocess` options take theirs from here.
    """

    windows: tuple[str, ...] = ("brain", "subdural", "bone")
    size: int = 256
    crop: bool = True
    context: bool = False
    format: str = "raw"
    quality: int = 95
    min_brain_fraction: float = 0.02

    def __post_init__(self):
        windows = (self.windows,) if isinstance(self.windows, str) else tuple(self.windows)
        if not windows:
            raise ValueError("CleanRecipe: at least one window is needed")
        for spec in windows:
            parse_window(spec)  # raises ValueError naming the bad spec
        object.__setattr__(self, "windows", windows)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < MIN_SIZE:
            raise ValueError(f"CleanRecipe: size must be an int >= {MIN_SIZE}, got {self.size!r}")
        object.__setattr__(self, "format", check_format(self.format))
        if not 0.0 <= self.min_brain_fraction <= 1.0:
            raise ValueError(f"CleanRecipe: min_brain_fraction must be in [0, 1], got {self.min_brain_fraction!r}")
        if (
            isinstance(self.quality, bool)
            or not isinstance(self.quality, int)
            or not 1 <= self.quality <= 100
        ):
            raise ValueError(f"CleanRecipe: quality must be an int in 1..100, got {self.quality!r}")
        if self.format == "jpeg" and self.channels not in NATIVE_CHANNELS:
            raise ValueError(
                f"CleanRecipe: jpeg holds 1 or 3 channels, this recipe makes {self.channels}; use png"
            )

    @property
    def channels(self) -> int:
        return len(self.windows) * (3 if self.context else 1)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every stored image."""
        return self.size, self.size, self.channels

    def is_blank(self, img_pct_window: float) -> bool:
        """The blank-slice filter, for one slice's `img_pct_window` (clean applies the same rule in polars)."""
        return not img_pct_window >= self.min_brain_fraction

    @property
    def window_objects(self) -> tuple[Window, ...]:
        return tuple(parse_window(spec) for spec in self.windows)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CleanRecipe:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"CleanRecipe JSON must be an object, got {text!r}")
        if "fmt" in data:  # tables written before the field was named `format`
            data["format"] = data.pop("fmt")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"CleanRecipe JSON has unknown keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)


def prepare_slice(
    hu: np.ndarray,
    recipe: CleanRecipe,
    neighbours: tuple[np.ndarray | None, np.ndarray | None] | None = None,
) -> np.ndarray:
    """HU slice -> uint8 size x size x channels image, exactly as stored in images/.

    The crop box comes from this slice's head mask and is applied to the neighbours too. With
    recipe.context, `neighbours` = (previous, next) slices in slice_index order, each HxW HU like `hu`;
    a missing one (series end) is replaced by this slice. Without context, neighbours are ignored.
    """
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim != 2:
        raise ValueError(f"prepare_slice expects an HxW HU slice, got shape {hu.shape}")
    bbox = head_box(hu) if recipe.crop else None
    if recipe.context:
        before, after = neighbours if neighbours is not None else (None, None)
        planes = [_neighbour(before, hu, "previous"), hu, _neighbour(after, hu, "next")]
    else:
        planes = [hu]
    planes = [crop(plane, bbox) for plane in planes]
    # each window of each plane goes straight into its place on the padded square canvas (pad 0: a window's
    # low end), in channel order: for each window, every plane (prev, this, next)
    canvas, (rows, cols) = square_canvas(*planes[0].shape, recipe.channels)
    for w, window in enumerate(recipe.window_objects):
        for p, plane in enumerate(planes):
            apply_window(plane, window, out=canvas[w * len(planes) + p, rows, cols])
    return to_uint8(resize_planes(canvas, recipe.size))


def encode_slice(img: np.ndarray, recipe: CleanRecipe) -> bytes:
    return encode_image(img, recipe.format, recipe.quality)


def decode_slice(data: bytes, recipe: CleanRecipe) -> np.ndarray:
    """One stored image -> uint8 size x size x channels."""
    if recipe.format == "raw":
        return decode_raw(data, recipe.shape)
    return decode_image(data, channels=recipe.channels)


def decode_slices(column: pa.Array | pa.ChunkedArray, recipe: CleanRecipe) -> np.ndarray:
    """A column of stored images -> uint8 [B, C, H, W] (the training and embedding batch), possibly a
    read-only or non-contiguous view: raw images are a view on the column's bytes, no per-image decode."""
    if recipe.format == "raw":
        return raw_batch(column, recipe.shape)
    images = [decode_slice(data, recipe) for data in column.to_pylist()]
    if not images:
        return np.empty((0, recipe.channels, recipe.size, recipe.size), np.uint8)
    return np.stack(images).transpose(0, 3, 1, 2)


def _neighbour(plane: np.ndarray | None, hu: np.ndarray, which: str) -> np.ndarray:
    if plane is None:
        return hu
    plane = np.asarray(plane, dtype=np.float32)
    if plane.shape != hu.shape:
        raise ValueError(f"prepare_slice: {which} slice has shape {plane.shape}, this slice {hu.shape}")
    return plane
