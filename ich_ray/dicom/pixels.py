"""Pixels -> Hounsfield units, with the pixel-representation fix for the bad-intercept scanner group.

Decoding goes through `pydicom.pixels`, so every transfer syntax an installed plugin handles works: native
in pydicom itself, RLE through pylibjpeg-rle, JPEG 2000 through pylibjpeg-openjpeg, JPEG baseline/lossless
and JPEG-LS through GDCM (README: the table of decoders per transfer syntax).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGExtended12Bit,
    RLELossless,
)

from ich_ray.dicom.checks import check_hu_range, check_image_header, stored_range_hu
from ich_ray.dicom.errors import TruncatedFileError, UnsupportedImageError, UnsupportedTransferSyntaxError
from ich_ray.dicom.header import tag_value

# The fix (fastai / Appian, RSNA 2019): these files store signed 12-bit values read as unsigned.
FIX_OFFSET = 1000
FIX_WRAP = 4096
FIX_INTERCEPT = -1000.0

# pydicom tries a syntax's installed plugins in its own order, GDCM first for JPEG 2000. pylibjpeg-rle decodes
# RLE ~5x faster than pydicom's numpy decoder (bench/preprocess.py). For JPEG 2000, GDCM runs threads: in one
# idle process it is faster by the clock (23-24 ms against 28-34 ms a 512 px slice), but it uses more CPU
# (35-39 ms against 28-34 ms, same output), and a stage that keeps every core busy pays CPU time; so
# pylibjpeg-openjpeg. Use those when installed, else pydicom's order.
PREFERRED_PLUGINS = {RLELossless: "pylibjpeg", JPEG2000Lossless: "pylibjpeg", JPEG2000: "pylibjpeg"}
# Uncompressed little-endian pixel data is read in place (`native_stored`), without pydicom's decoder.
NATIVE_LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_PIXEL_DATA = 0x7FE00010


def needs_pxrepr_fix(ds: Dataset) -> bool:
    """PixelRepresentation == 0 and BitsStored == 12 and RescaleIntercept > -100."""
    intercept = tag_value(ds, "rescale_intercept")
    return (
        tag_value(ds, "pixel_representation") == 0
        and tag_value(ds, "bits_stored") == 12
        and intercept is not None
        and intercept > -100
    )


@dataclass(frozen=True)
class StoredPixels:
    """A slice's stored integers (after the pixel-representation fix) and the rescale that makes them HU."""

    values: np.ndarray
    slope: float
    intercept: float
    fixed: bool  # whether the fix was applied
    value_range: tuple[int, int]  # (min, max) of `values`: found once per slice, read by the checks and stats
    warnings: tuple[str, ...] = ()  # odd but harmless header values (`checks.check_image_header`)

    def hu(self) -> np.ndarray:
        """float32 HU: the arithmetic of pydicom.pixels.apply_rescale, in float32 and in place."""
        hu = self.values.astype(np.float32)
        if self.slope != 1.0:
            hu *= np.float32(self.slope)
        if self.intercept:
            hu += np.float32(self.intercept)
        return hu


def stored_pixels(ds: Dataset, path: str) -> StoredPixels:
    """Check the header, decode the slice, apply the fix and check the HU range.

    Raises what `checks.check_image_header`, `decode_stored` and `checks.check_hu_range` raise.
    """
    warnings = check_image_header(ds, path)  # before decoding: a corrupt matrix must not reach the decoder
    native = native_stored(ds)
    if native is None:
        values = decode_stored(ds, path)
        native = values, _value_range(values)
    pixels = _rescaled(ds, *native, path, warnings)
    check_hu_range(*stored_range_hu(pixels.value_range, pixels.slope, pixels.intercept), path)
    return pixels


def _value_range(values: np.ndarray) -> tuple[int, int]:
    """(min, max) of a slice's values: one pass each, shared by the HU range check and the statistics."""
    return values.min().item(), values.max().item()


def native_stored(ds: Dataset) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(values, their (min, max)): the stored values of uncompressed little-endian 8- or 16-bit pixel data,
    exactly as pydicom's native decoder gives them, but as a read-only view on the bytes pydicom read: no
    decode, no copy (a decode copied the 512 KB of a slice, as long as the rest of the metadata stage's work
    on it). None for any other encoding (`decode_stored` handles those). Call after `check_image_header`,
    which checked that the pixel data holds Rows x Columns values of BitsAllocated bits. The range found for
    the unused-bits test is the one returned (found again only after a correction).
    """
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    bits = tag_value(ds, "bits_allocated")
    if tsyntax not in NATIVE_LITTLE_ENDIAN or bits not in (8, 16):
        return None
    data = ds.get_item(_PIXEL_DATA).value
    if not isinstance(data, bytes):
        return None
    signed = tag_value(ds, "pixel_representation") == 1
    shape = (tag_value(ds, "rows"), tag_value(ds, "columns"))
    values = np.frombuffer(data, dtype=f"<{'i' if signed else 'u'}{bits // 8}", count=shape[0] * shape[1])
    values = values.reshape(shape)
    value_range = _value_range(values)
    stored_bits = tag_value(ds, "bits_stored")
    if stored_bits < bits and _uses_unused_bits(value_range, stored_bits, signed):
        # pydicom's correction: drop the unused high bits (sign-extending signed values). It changes no
        # value that fits BitsStored, so it is only paid when some value does not.
        values = values.copy()
        np.left_shift(values, bits - stored_bits, out=values)
        np.right_shift(values, bits - stored_bits, out=values)
        value_range = _value_range(values)
    return values, value_range


def _uses_unused_bits(value_range: tuple[int, int], stored_bits: int, signed: bool) -> bool:
    """Whether values spanning `value_range` (min, max) leave the range BitsStored can hold."""
    low, high = (-(1 << (stored_bits - 1)), (1 << (stored_bits - 1)) - 1) if signed else (0, (1 << stored_bits) - 1)
    return value_range[0] < low or value_range[1] > high


def _rescaled(
    ds: Dataset, stored: np.ndarray, value_range: tuple[int, int], path: str, warnings: tuple[str, ...]
) -> StoredPixels:
    """The StoredPixels of `stored`, whose (min, max) is `value_range`, after the fix where it applies."""
    slope = tag_value(ds, "rescale_slope", path)
    slope = 1.0 if slope is None else slope
    if needs_pxrepr_fix(ds):
        # (v + 1000) with values >= 4096 wrapped down by 4096, i.e. (v + 1000) mod 4096 for 12-bit v: done in
        # place, because a fresh image-sized array costs more in page faults than the arithmetic. The modulus
        # is a power of two, so on unsigned values it is a bit mask: 0.02 ms against numpy's remainder 0.37 ms
        # on a 512 px slice (timeit, best of 5).
        values = stored if stored.flags.writeable and stored.dtype == np.uint16 else stored.astype(np.uint16)
        values += FIX_OFFSET
        np.bitwise_and(values, FIX_WRAP - 1, out=values)
        fixed = values.view(np.int16)
        return StoredPixels(fixed, slope, FIX_INTERCEPT, True, _value_range(fixed), warnings)
    intercept = tag_value(ds, "rescale_intercept", path) or 0.0
    return StoredPixels(stored, slope, intercept, False, value_range, warnings)


def to_hu(ds: Dataset, path: str) -> tuple[np.ndarray, bool]:
    """Decode the slice and rescale to float32 HU; returns (hu, whether the fix was applied).

    Raises UnsupportedTransferSyntaxError (no installed decoder), TruncatedFileError (the decoder failed:
    short or corrupt pixel data), UnsupportedImageError (not one greyscale frame) or ImplausibleValueError
    (a value no CT slice has, `checks`), each naming `path`.
    """
    pixels = stored_pixels(ds, path)
    return pixels.hu(), pixels.fixed


def decode_stored(ds: Dataset, path: str) -> np.ndarray:
    """The stored pixel values (before rescale) of a single greyscale frame."""
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax is None:
        raise UnsupportedTransferSyntaxError(path, "no Transfer Syntax UID: the pixel encoding is unknown")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(
            path, f"no pixel decoder for transfer syntax {_uid_name(tsyntax)}"
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise UnsupportedTransferSyntaxError(
            path, f"no installed plugin decodes {_uid_name(tsyntax)} ({missing})"
        )
    if tsyntax == JPEGExtended12Bit and (tag_value(ds, "bits_stored") or 0) > 8 and (
        "pylibjpeg" not in decoder.available_plugins
    ):
        # GDCM and Pillow decline 12-bit JPEG Extended; the one decoder that takes it is GPLv3, so optional.
        raise UnsupportedTransferSyntaxError(
            path, f"{_uid_name(tsyntax)} with 12-bit samples needs pylibjpeg-libjpeg (GPLv3), not installed by "
            f"default: pip install 'ich-ray[gpl-codecs]'"
        )
    try:
        arr = pixel_array(ds, decoding_plugin=decoding_plugin(decoder, tsyntax))
    except Exception as exc:  # pydicom/plugins raise ValueError, RuntimeError, OSError... for bad streams
        raise _undecodable(path, exc) from exc
    except BaseException as exc:
        # Decoders written in Rust (pylibjpeg-rle) turn a panic on a corrupt stream into pyo3's
        # PanicException, a BaseException that `except Exception` lets through: it is this file's failure.
        if type(exc).__name__ != "PanicException":
            raise
        raise _undecodable(path, exc) from exc
    if arr.ndim != 2:
        raise UnsupportedImageError(path, "pixel array shape", arr.shape, "expected one greyscale frame")
    return arr


def _undecodable(path: str, exc: BaseException) -> TruncatedFileError:
    return TruncatedFileError(
        path, f"pixel data could not be decoded, truncated or corrupt ({type(exc).__name__}: {exc})"
    )


def decoding_plugin(decoder, tsyntax: str) -> str:
    """The plugin to decode `tsyntax` with: the preferred one if installed, else "" (pydicom's order)."""
    preferred = PREFERRED_PLUGINS.get(tsyntax, "")
    return preferred if preferred in decoder.available_plugins else ""


def _uid_name(uid) -> str:
    name = getattr(uid, "name", "")
    return f"{name} ({uid})" if name and name != str(uid) else repr(str(uid))
