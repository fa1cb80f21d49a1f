"""Plausibility checks on a CT slice: the one place that decides whether header values can describe a CT image.

`check_image_header` runs before the pixel data is decoded (so a corrupt matrix size cannot make a decoder
allocate gigabytes), `check_hu_range` after the rescale. Both are called by `pixels.stored_pixels`, which
every pixel path goes through (the metadata record, clean's and predict's HU images).

A refusal raises `ImplausibleValueError` or `UnsupportedImageError` naming the file, the element and its
value. A value that is odd but changes no pixel (HighBit other than BitsStored - 1: the decoders use
BitsStored) is returned as a warning instead, and the file is kept.

Bounds, and why (docs/errors.md repeats them):
- RescaleSlope in [0.01, 100]: below 0.01 HU per stored step, 16-bit storage spans under 660 HU (air to bone
  needs ~2,000); above 100, one stored step is wider than the 40-80 HU contrast of blood against brain.
- |RescaleIntercept| <= 32768: the whole signed 16-bit range; every CT intercept seen (-1024, -1000, -8192,
  0, 1) is far inside.
- HU in [-8192, 32767] after rescale: nothing physical is below air (-1000), but scanners pad outside the
  field of view with -2000, -3024 (GE) or -3072; extended-scale CT reports metal up to ~30,700 HU, and 32767
  is the largest value signed 16-bit storage holds.
- Rows x Columns <= 4096 x 4096: CT matrices are 512 or 1024 (2048 at most); the cap bounds a decode to
  16 Mpixel (64 MiB of float32 HU).
"""

from __future__ import annotations

import math

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ich_ray.dicom.errors import ImplausibleValueError, TruncatedFileError, UnsupportedImageError
from ich_ray.dicom.header import column_tag, tag_name, tag_value

SLOPE_RANGE = (0.01, 100.0)
MAX_ABS_INTERCEPT = 32768.0
HU_RANGE = (-8192.0, 32767.0)
MAX_PIXELS = 4096 * 4096
BITS_ALLOCATED = (8, 16, 32)
GREYSCALE = ("MONOCHROME2", "MONOCHROME1")

_PIXEL_DATA = 0x7FE00010
_SAMPLES = (0x00280002, "SamplesPerPixel (0028,0002)")
_FRAMES = (0x00280008, "NumberOfFrames (0028,0008)")


def element_name(column: str) -> str:
    """How failures and warnings name the element of a `HEADER_FIELDS` column: keyword and tag."""
    tag = column_tag(column)
    return f"{keyword_for_tag(tag)} {tag_name(tag)}"


def check_image_header(ds: Dataset, path: str) -> tuple[str, ...]:
    """Refuse a pixel module or rescale no CT slice can have; returns the warnings for odd, harmless values."""
    _check_greyscale_frame(ds, path)
    _check_matrix(ds, path)
    warnings = _check_bits(ds, path)
    _check_pixel_length(ds, path)
    _check_rescale(ds, path)
    return warnings


def check_hu_range(lowest: float, highest: float, path: str) -> None:
    """Refuse a slice whose rescaled values leave `HU_RANGE` (e.g. a corrupt intercept or slope)."""
    for value in (lowest, highest):
        if not (math.isfinite(value) and HU_RANGE[0] <= value <= HU_RANGE[1]):
            raise ImplausibleValueError(
                path, "HU after rescale", float(value),
                f"outside the physical range [{HU_RANGE[0]:g}, {HU_RANGE[1]:g}] (stored values x RescaleSlope "
                f"+ RescaleIntercept span [{lowest:g}, {highest:g}])",
            )


def stored_range_hu(value_range: tuple[float, float], slope: float, intercept: float) -> tuple[float, float]:
    """(lowest, highest) HU of stored values spanning `value_range` (min, max) under the rescale, without
    building the HU image."""
    lo, hi = float(value_range[0]) * slope + intercept, float(value_range[1]) * slope + intercept
    return (lo, hi) if lo <= hi else (hi, lo)


def _value(ds: Dataset, name: str, path: str):
    """The column value, refusing an element that is present but holds no parseable value."""
    value = tag_value(ds, name, path)
    if value is None and _present(ds, column_tag(name)):
        raise ImplausibleValueError(path, element_name(name), _raw(ds, column_tag(name)), "not a valid value")
    return value


def _present(ds: Dataset, tag: int) -> bool:
    return tag in ds and _raw(ds, tag) not in (None, "", b"")


def _raw(ds: Dataset, tag: int):
    value = ds.get_item(tag).value
    if isinstance(value, bytes):
        value = value.strip(b" \x00").decode("ascii", "replace")
    return value


def _int_element(ds: Dataset, tag: int, name: str, path: str) -> int | None:
    """An IS/US element outside `HEADER_FIELDS` (SamplesPerPixel, NumberOfFrames), None when absent."""
    if not _present(ds, tag):
        return None
    try:
        value = ds[tag].value
        if isinstance(value, MultiValue):
            value = value[0] if len(value) else None
        return None if value in (None, "") else int(value)
    except (ValueError, TypeError, IndexError, OverflowError, NotImplementedError) as exc:  # NotImplemented: corrupt VR
        raise ImplausibleValueError(path, name, _raw(ds, tag), f"not an integer ({exc})") from exc


def _check_greyscale_frame(ds: Dataset, path: str) -> None:
    samples = _int_element(ds, *_SAMPLES, path)
    if samples is not None and samples != 1:
        raise UnsupportedImageError(path, _SAMPLES[1], samples, "a CT slice has one sample per pixel")
    photometric = _value(ds, "photometric_interpretation", path)
    if photometric not in GREYSCALE:
        # MONOCHROME1 is accepted as is: it only inverts the display (after windowing); the rescale gives the
        # same HU, and the windows we render are MONOCHROME2 by construction.
        raise UnsupportedImageError(
            path, element_name("photometric_interpretation"), photometric, "a CT slice is MONOCHROME2 (or MONOCHROME1)"
        )
    frames = _int_element(ds, *_FRAMES, path)
    if frames is not None and frames != 1:
        raise UnsupportedImageError(path, _FRAMES[1], frames, "multi-frame images are not read; one slice per file")


def _check_matrix(ds: Dataset, path: str) -> None:
    rows, cols = _value(ds, "rows", path), _value(ds, "columns", path)
    for name, value in (("rows", rows), ("columns", cols)):
        if not value:
            raise ImplausibleValueError(path, element_name(name), value, "the image needs at least one row and column")
    if rows * cols > MAX_PIXELS:
        raise ImplausibleValueError(
            path, "Rows x Columns (0028,0010/0011)", f"{rows}x{cols}",
            f"more than {MAX_PIXELS} pixels (4096 x 4096); CT slices are 512 or 1024 square",
        )


def _check_bits(ds: Dataset, path: str) -> tuple[str, ...]:
    allocated = _value(ds, "bits_allocated", path)
    if allocated not in BITS_ALLOCATED:
        raise ImplausibleValueError(path, element_name("bits_allocated"), allocated, f"must be one of {BITS_ALLOCATED}")
    stored = _value(ds, "bits_stored", path)
    if stored is None or not 8 <= stored <= allocated:
        raise ImplausibleValueError(
            path, element_name("bits_stored"), stored, f"must be between 8 and BitsAllocated ({allocated})"
        )
    representation = _value(ds, "pixel_representation", path)
    if representation not in (0, 1):
        raise ImplausibleValueError(path, element_name("pixel_representation"), representation, "must be 0 or 1")
    high_bit = tag_value(ds, "high_bit", path)
    if high_bit != stored - 1:
        return (f"{element_name('high_bit')} is {high_bit!r}, expected BitsStored - 1 = {stored - 1}; "
                f"ignored (pixels are read with BitsStored)",)
    return ()


def _check_pixel_length(ds: Dataset, path: str) -> None:
    """Native pixel data must hold exactly Rows x Columns values (plus the pad byte of an odd length)."""
    tsyntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if _PIXEL_DATA not in ds or tsyntax is None or not tsyntax.is_transfer_syntax or tsyntax.is_compressed:
        # a header-only read, an unknown encoding or a UID that is no transfer syntax (both refused by
        # `pixels.decode_stored`), or encapsulated pixel data (the
        # decoder checks the stream against the matrix)
        return
    rows, cols = tag_value(ds, "rows", path), tag_value(ds, "columns", path)
    bits = tag_value(ds, "bits_allocated", path)
    expected = rows * cols * bits // 8
    got = len(ds.get_item(_PIXEL_DATA).value or b"")
    if got < expected:
        raise TruncatedFileError(path, f"pixel data is {got} bytes, expected {expected} ({rows}x{cols}x{bits} bit)")
    if got > expected + expected % 2:
        raise ImplausibleValueError(
            path, "Rows x Columns (0028,0010/0011)", f"{rows}x{cols}",
            f"{rows} x {cols} x {bits} bit is {expected} bytes, but the pixel data holds {got}",
        )


def _check_rescale(ds: Dataset, path: str) -> None:
    slope = _value(ds, "rescale_slope", path)
    if slope is not None and not (math.isfinite(slope) and SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]):
        why = "must be a finite number > 0" if not (math.isfinite(slope) and slope > 0) else (
            f"outside the plausible range [{SLOPE_RANGE[0]:g}, {SLOPE_RANGE[1]:g}] HU per stored value")
        raise ImplausibleValueError(path, element_name("rescale_slope"), slope, why)
    intercept = _value(ds, "rescale_intercept", path)
    if intercept is not None and not (math.isfinite(intercept) and abs(intercept) <= MAX_ABS_INTERCEPT):
        raise ImplausibleValueError(
            path, element_name("rescale_intercept"), intercept,
            f"must be a finite number within +-{MAX_ABS_INTERCEPT:g} HU",
        )
