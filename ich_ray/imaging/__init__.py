"""Layer 1: pure array code (numpy, scipy, Pillow): windows, stats, head crop, resize, encode, the recipe.

The names below load on first use (PEP 562): the metadata stage's workers need only `stats`, and importing
`crop` eagerly would load scipy.ndimage (~0.25 s a process) into every one of them.
"""

from __future__ import annotations

import importlib

# The head-crop function stays `ich_ray.imaging.crop.crop`: as a lazy name it would clash with its own
# module, which Python binds to `ich_ray.imaging.crop` once anything imports it.
_EXPORTS = {
    "head_bbox": "crop",
    "head_mask": "crop",
    "decode_image": "encode",
    "encode_image": "encode",
    "to_uint8": "encode",
    "CleanRecipe": "recipe",
    "decode_slice": "recipe",
    "encode_slice": "recipe",
    "prepare_slice": "recipe",
    "resize_square": "resize",
    "brain_fraction": "stats",
    "pixel_stats": "stats",
    "WINDOWS": "windows",
    "Window": "windows",
    "apply_window": "windows",
    "parse_window": "windows",
    "parse_windows": "windows",
    "stack_windows": "windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return __all__
