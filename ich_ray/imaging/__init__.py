"""Layer 1: pure array code (numpy, scipy, Pillow): windows, stats, head crop, resize, encode, the recipe."""

from ich_ray.imaging.crop import crop, head_bbox, head_mask
from ich_ray.imaging.encode import decode_image, encode_image, to_uint8
from ich_ray.imaging.recipe import CleanRecipe, decode_slice, encode_slice, prepare_slice
from ich_ray.imaging.resize import resize_square
from ich_ray.imaging.stats import brain_fraction, pixel_stats
from ich_ray.imaging.windows import WINDOWS, Window, apply_window, parse_window, parse_windows, stack_windows

__all__ = [
    "WINDOWS",
    "CleanRecipe",
    "Window",
    "apply_window",
    "brain_fraction",
    "crop",
    "decode_image",
    "decode_slice",
    "encode_image",
    "encode_slice",
    "head_bbox",
    "head_mask",
    "parse_window",
    "parse_windows",
    "pixel_stats",
    "prepare_slice",
    "resize_square",
    "stack_windows",
    "to_uint8",
]
