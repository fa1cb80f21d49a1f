"""Typed errors for unusable DICOM input, and the one formatter that turns any failure into a row.

Each error names the file and the reason; the plausibility errors also name the element and its value.
`error_type` (the class name) is the stable name a user groups failures by (docs/errors.md lists them all).
"""

from __future__ import annotations

from typing import Any

MAX_ERROR_CHARS = 500


class DicomReadError(ValueError):
    """A file that cannot be turned into a CT slice. Stages turn it into a failure row."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class EmptyFileError(DicomReadError):
    """Zero-byte file."""


class NotDicomError(DicomReadError):
    """No DICOM preamble/header could be parsed."""


class TruncatedFileError(DicomReadError):
    """The file ends before its pixel data does (the corrupt RSNA file is like this), or the pixel stream is
    corrupt."""


class NoPixelDataError(DicomReadError):
    """A DICOM object without an image."""


class UnsupportedTransferSyntaxError(DicomReadError):
    """Compressed with a codec no installed decoder handles."""


class NotCTError(DicomReadError):
    """Modality other than CT."""


class ElementError(DicomReadError):
    """A refusal caused by one element's value: `element` (keyword and tag) and `value` say which."""

    def __init__(self, path: str, element: str, value: Any, why: str):
        self.element = element
        self.value = value
        super().__init__(path, f"{element} is {value!r}: {why}")


class UnsupportedImageError(ElementError):
    """Valid DICOM, but not one greyscale slice: colour, several samples per pixel, several frames."""


class ImplausibleValueError(ElementError):
    """A value no CT slice can have (rescale, bit depth, matrix size, HU range): the pixels would be wrong."""


class MissingElementError(ElementError):
    """A required element a stage cannot do without is absent or empty (predict orders slices by series)."""


def failure_fields(exc: BaseException) -> tuple[str, str]:
    """(error_type, error) for a failure row, in every table that has one (metadata/, quarantine/,
    predict's failures.csv): a DicomReadError's own reason, an OSError as an unreadable file, anything else
    with its type named. Truncated to MAX_ERROR_CHARS."""
    if isinstance(exc, DicomReadError):
        error = exc.reason
    elif isinstance(exc, OSError):  # the file itself could not be read (removed, permissions, I/O error)
        error = f"could not read the file: {exc}"
    else:
        error = f"unexpected {type(exc).__name__}: {exc}"
    return type(exc).__name__, error[:MAX_ERROR_CHARS]
