"""Typed errors for unreadable DICOM input. Each names the file and the reason."""


class DicomReadError(ValueError):
    """A file that cannot be turned into a CT slice. Stages turn it into a quarantine row."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class EmptyFileError(DicomReadError):
    """Zero-byte file."""


class NotDicomError(DicomReadError):
    """No DICOM preamble/header could be parsed."""


class TruncatedFileError(DicomReadError):
    """The file ends before its pixel data does (the corrupt RSNA file is like this)."""


class NoPixelDataError(DicomReadError):
    """A DICOM object without an image."""


class UnsupportedTransferSyntaxError(DicomReadError):
    """Compressed with a codec no installed decoder handles."""


class NotCTError(DicomReadError):
    """Modality other than CT."""


class UnsupportedImageError(DicomReadError):
    """Pixel data that is not one greyscale slice (multi-frame or colour)."""
