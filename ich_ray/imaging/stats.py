"""Whole-slice pixel statistics for the metadata table, computed on the stored integers or on HU."""

from __future__ import annotations

import math
import threading

import numpy as np

BRAIN_LOW_HU = 0.0
BRAIN_HIGH_HU = 80.0
_CHUNK = 65536  # pixels per window test: 64 KiB boolean masks, half glibc's mmap threshold


def brain_fraction(hu: np.ndarray, low: float = BRAIN_LOW_HU, high: float = BRAIN_HIGH_HU) -> float:
    """Fraction of pixels with low < HU < high (open interval); 0.0 for an empty image."""
    hu = np.asarray(hu)
    if hu.size == 0:
        return 0.0
    inside = np.count_nonzero((hu > low) & (hu < high))
    return float(inside / hu.size)


def pixel_stats(
    values: np.ndarray, slope: float = 1.0, intercept: float = 0.0, value_range: tuple[float, float] | None = None
) -> dict[str, float]:
    """img_min, img_max, img_mean, img_std and img_pct_window (fraction of pixels with 0 < HU < 80) of the
    image HU = values * slope + intercept.

    `values` may be the stored integers of a slice (the metadata stage's case: the HU image is never built)
    or a HU image (slope 1, intercept 0). `value_range`, the (min, max) of `values` when the caller has it
    (`StoredPixels.value_range`), saves the two passes that find them. Sums are float64 (exact for integer
    pixels): for 8/16-bit integers dot products over cache-sized float64 chunks (`_integer_sums`), for wider
    or float values through numpy's buffered casts; the window test is one wrapped subtraction and compare
    on the stored integers (this runs once per file).
    """
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        raise ValueError(f"pixel_stats: empty image of shape {np.shape(values)}")
    if slope == 0:
        raise ValueError(f"pixel_stats: rescale slope must not be 0, got {slope}")
    if np.issubdtype(flat.dtype, np.integer) and flat.dtype.itemsize <= 2:
        total, squares = _integer_sums(flat)
        mean = total / flat.size
    else:
        mean = float(flat.sum(dtype=np.float64)) / flat.size
        squares = float(np.einsum("i,i->", flat, flat, dtype=np.float64))
    std = float(np.sqrt(max(squares / flat.size - mean * mean, 0.0)))
    low, high = (flat.min(), flat.max()) if value_range is None else value_range
    lo, hi = sorted((float(low) * slope + intercept, float(high) * slope + intercept))
    return {
        "img_min": lo,
        "img_max": hi,
        "img_mean": mean * slope + intercept,
        "img_std": std * abs(slope),
        "img_pct_window": window_fraction(flat, slope, intercept),
    }


def _integer_sums(flat: np.ndarray) -> tuple[float, float]:
    """(sum, sum of squares) of 8/16-bit integers, exact, in cache-sized float64 chunks.

    Each chunk is cast into this thread's `_SUM_CHUNK`-value scratch vector, then summed and squared as two
    dot products (BLAS, ~3x faster than numpy's pairwise sum, no squared copy). Every product and partial
    sum is an integer below 2**53 for 16-bit values on up to 1024 x 1024 pixels, so both sums are exact in
    any order. A whole-slice float64 copy (2 MB for 512 px) left the CPU caches on every file and cost
    2.5x the chunked sums inside the metadata stage's per-file loop (0.70 ms against 0.27 ms a slice).
    """
    scratch, ones = _scratch(), _ones(_SUM_CHUNK)
    total = squares = 0.0
    for start in range(0, flat.size, _SUM_CHUNK):
        chunk = flat[start : start + _SUM_CHUNK]
        wide = scratch[: chunk.size]
        np.copyto(wide, chunk)
        total += float(np.dot(wide, ones[: chunk.size]))
        squares += float(np.dot(wide, wide))
    return total, squares


_SUM_CHUNK = 16384  # float64 values per chunk: 128 KiB, inside a core's L2 cache
_LOCAL = threading.local()


def _scratch() -> np.ndarray:
    """This thread's float64 scratch vector of `_SUM_CHUNK` values (pixel_stats runs in any thread)."""
    scratch = getattr(_LOCAL, "scratch", None)
    if scratch is None:
        scratch = _LOCAL.scratch = np.empty(_SUM_CHUNK, np.float64)
    return scratch


def window_fraction(values: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> float:
    """`img_pct_window` alone: the fraction of pixels with 0 < HU < 80, HU = values * slope + intercept
    (what the blank-slice filter of clean and predict reads)."""
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0 or slope == 0:
        raise ValueError(f"window_fraction: empty image ({flat.size} pixels) or zero slope ({slope})")
    return _count_in_window(flat, slope, intercept) / flat.size


def _ones(size: int) -> np.ndarray:
    """A read-only float64 vector of ones (the sum as a dot product), one per length asked for."""
    ones = _ONES.get(size)
    if ones is None:
        ones = _ONES[size] = np.ones(size, np.float64)
        ones.flags.writeable = False
    return ones


_ONES: dict[int, np.ndarray] = {}


def _count_in_window(flat: np.ndarray, slope: float, intercept: float) -> int:
    """Pixels with BRAIN_LOW_HU < v * slope + intercept < BRAIN_HIGH_HU, tested in stored units."""
    low, high = sorted(((BRAIN_LOW_HU - intercept) / slope, (BRAIN_HIGH_HU - intercept) / slope))
    if np.issubdtype(flat.dtype, np.integer):  # the open interval as integer bounds: a same-type compare
        info = np.iinfo(flat.dtype)
        low, high = max(math.floor(low) + 1, info.min), min(math.ceil(high) - 1, info.max)
        if low > high:
            return 0
        if flat.dtype.itemsize <= 2:
            # low <= v <= high  <=>  (v - low) mod 2**bits <= high - low: one wrapped subtraction and one
            # unsigned compare instead of two compares and an AND
            unsigned = np.dtype(f"u{flat.dtype.itemsize}")
            shifted = np.subtract(flat.view(unsigned), unsigned.type(low % (1 << 8 * flat.dtype.itemsize)))
            return int(np.count_nonzero(shifted <= unsigned.type(high - low)))
        low, high = flat.dtype.type(low), flat.dtype.type(high)
        return sum(int(np.count_nonzero((c >= low) & (c <= high))) for c in _chunks(flat))
    return sum(int(np.count_nonzero((c > low) & (c < high))) for c in _chunks(flat))


def _chunks(flat: np.ndarray):
    return (flat[start : start + _CHUNK] for start in range(0, flat.size, _CHUNK))
