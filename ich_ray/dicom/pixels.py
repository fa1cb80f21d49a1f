"""Pixels -> Hounsfield units, with the pixel-representation fix for the bad-intercept scanner group.

Decoding goes through `pydicom.pixels`, so every transfer syntax an installed plugin handles works:
native and RLE in pydicom itself, JPEG / JPEG-LS / JPEG 2000 through pylibjpeg (libjpeg, openjpeg).
"""

from __future__ import annotations

import logging

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, pixel_array

from ich_ray.dicom.errors import TruncatedFileError, UnsupportedImageError, UnsupportedTransferSyntaxError
from ich_ray.dicom.header import tag_value

log = logging.getLogger(__name__)

# The fix (fastai / Appian, RSNA 2019): these files store signed 12-bit values read as unsigned.
FIX_OFFSET = 1000
FIX_WRAP = 4096
FIX_INTERCEPT = -1000.0


def needs_pxrepr_fix(ds: Dataset) -> bool:
    """PixelRepresentation == 0 and BitsStored == 12 and RescaleIntercept > -100."""
    intercept = tag_value(ds, "rescale_intercept")
    return (
        tag_value(ds, "pixel_representation") == 0
        and tag_value(ds, "bits_stored") == 12
        and intercept is not None
        and intercept > -100
    )


def to_hu(ds: Dataset, path: str) -> tuple[np.ndarray, bool]:
    """Decode the slice and rescale to float32 HU; returns (hu, whether the fix was applied).

    Raises UnsupportedTransferSyntaxError (no installed decoder), TruncatedFileError (the decoder failed:
    short or corrupt pixel data) or UnsupportedImageError (not one greyscale frame), each naming `path`.
    """
    stored = decode_stored(ds, path)
    slope = tag_value(ds, "rescale_slope", path)
    intercept = tag_value(ds, "rescale_intercept", path)
    fixed = needs_pxrepr_fix(ds)
    if fixed:
        values = stored.astype(np.int32) + FIX_OFFSET
        values[values >= FIX_WRAP] -= FIX_WRAP
        hu = values.astype(np.float32)
        intercept = FIX_INTERCEPT
    else:
        hu = stored.astype(np.float32)
    # Same arithmetic as pydicom.pixels.apply_rescale, in float32 and in place (no float64 copy).
    if slope is not None and slope != 1.0:
        hu *= np.float32(slope)
    if intercept:
        hu += np.float32(intercept)
    return hu, fixed


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
    try:
        arr = pixel_array(ds)
    except Exception as exc:  # pydicom/plugins raise ValueError, RuntimeError, OSError... for bad streams
        raise TruncatedFileError(
            path, f"pixel data could not be decoded, truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if arr.ndim != 2:
        raise UnsupportedImageError(
            path, f"expected one greyscale frame, got pixel array of shape {arr.shape}"
        )
    return arr


def _uid_name(uid) -> str:
    name = getattr(uid, "name", "")
    return f"{name} ({uid})" if name and name != str(uid) else repr(str(uid))
