"""Layer 2: the only code that reads DICOM with pydicom (`synthetic.writer` and `plan` write it). Typed read
errors, header -> record, plausibility checks, pixels -> HU."""

from ich_ray.dicom.errors import (
    DicomReadError,
    ElementError,
    EmptyFileError,
    ImplausibleValueError,
    MissingElementError,
    NoPixelDataError,
    NotCTError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
    failure_fields,
)
from ich_ray.dicom.header import HEADER_FIELDS, header_record
from ich_ray.dicom.pixels import needs_pxrepr_fix, to_hu
from ich_ray.dicom.read import read_dicom, read_hu, read_record, read_slice

__all__ = [
    "HEADER_FIELDS",
    "DicomReadError",
    "ElementError",
    "EmptyFileError",
    "ImplausibleValueError",
    "MissingElementError",
    "NoPixelDataError",
    "NotCTError",
    "NotDicomError",
    "TruncatedFileError",
    "UnsupportedImageError",
    "UnsupportedTransferSyntaxError",
    "failure_fields",
    "header_record",
    "needs_pxrepr_fix",
    "read_dicom",
    "read_hu",
    "read_record",
    "read_slice",
    "to_hu",
]
