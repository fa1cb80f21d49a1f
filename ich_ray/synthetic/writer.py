"""One HU slice -> one CT Image Storage DICOM file, in the pixel formats the RSNA data mixes.

Pixel formats (`PIXEL_FORMATS`):

- `signed16`: BitsStored 16, PixelRepresentation 1, stored = HU + 1024, intercept -1024.
- `unsigned12`: BitsStored 12, PixelRepresentation 0, stored = clip(HU + 1024, 0, 4095), intercept -1024.
- `bad_intercept`: BitsStored 12, PixelRepresentation 0, intercept 1 or 0 (> -100), stored = HU mod 4096
  with HU clipped to [-1000, 3095]: signed 12-bit numbers read as unsigned. The pixel-representation fix
  (add 1000, subtract 4096 from values >= 4096, intercept -1000) recovers the clipped HU exactly.
"""

from __future__ import annotations

import heapq
import io
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.pixels import get_encoder
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

PIXEL_FORMATS = ("signed16", "unsigned12", "bad_intercept")
TRANSFER_SYNTAXES = {"none": ExplicitVRLittleEndian, "rle": RLELossless, "jpeg2000": JPEG2000Lossless}
PIXEL_DATA = 0x7FE00010


def encode_pixels(hu: np.ndarray, pixel_format: str, bad_intercept: float = 1.0) -> tuple[np.ndarray, dict]:
    """Stored values and the pixel-module attributes that describe them, for one HU slice."""
    hu = np.asarray(hu, dtype=np.int32)
    if pixel_format == "signed16":
        stored = (hu + 1024).astype(np.int16)
        return stored, _pixel_module(16, 1, -1024.0)
    if pixel_format == "unsigned12":
        stored = np.clip(hu + 1024, 0, 4095).astype(np.uint16)
        return stored, _pixel_module(12, 0, -1024.0)
    if pixel_format == "bad_intercept":
        if not bad_intercept > -100:
            raise ValueError(f"bad_intercept={bad_intercept}: the bad-intercept group needs an intercept > -100")
        stored = np.mod(np.clip(hu, -1000, 3095), 4096).astype(np.uint16)
        return stored, _pixel_module(12, 0, float(bad_intercept))
    raise ValueError(f"unknown pixel format {pixel_format!r}; valid: {', '.join(PIXEL_FORMATS)}")


def expected_hu(hu: np.ndarray, pixel_format: str) -> np.ndarray:
    """The HU a correct reader recovers from `encode_pixels(hu, pixel_format)` (the formats clip differently)."""
    hu = np.asarray(hu, dtype=np.int32)
    if pixel_format == "bad_intercept":
        return np.clip(hu, -1000, 3095)
    if pixel_format == "unsigned12":
        return np.clip(hu, -1024, 3071)
    return hu


def _pixel_module(bits_stored: int, representation: int, intercept: float) -> dict:
    return {
        "BitsAllocated": 16, "BitsStored": bits_stored, "HighBit": bits_stored - 1,
        "PixelRepresentation": representation, "RescaleIntercept": intercept, "RescaleSlope": 1.0,
    }


@dataclass(frozen=True)
class SeriesHeader:
    """Everything one series' files share: identity, scanner, geometry, display and the invented PHI."""

    patient_id: str
    study_uid: str
    series_uid: str
    frame_uid: str
    series_number: int
    pixel_format: str
    bad_intercept: float
    window_center: tuple[float, ...]
    window_width: tuple[float, ...]
    transfer_syntax: str  # a key of TRANSFER_SYNTAXES
    rows: int
    cols: int
    spacing: float
    thickness: float
    z_top: float
    manufacturer: str
    model: str
    kvp: float
    study_date: str
    study_time: str
    phi: dict  # DICOM keyword -> invented value (PatientName, InstitutionName, ...)


def _static_dataset(header: SeriesHeader) -> Dataset:
    """The elements every slice of the series shares (all but identity, position and pixel data)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = header.study_date
    ds.StudyTime = ds.SeriesTime = header.study_time
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "CT", header.manufacturer, header.model
    for keyword, value in header.phi.items():
        setattr(ds, keyword, value)
    ds.PatientID, ds.PatientSex = header.patient_id, "O"
    ds.BodyPartExamined, ds.StudyDescription = "HEAD", "CT HEAD WITHOUT CONTRAST"
    ds.SliceThickness, ds.KVP, ds.XRayTubeCurrent = header.thickness, header.kvp, 250
    ds.ConvolutionKernel, ds.GantryDetectorTilt, ds.PatientPosition = "STANDARD", 0.0, "HFS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = header.study_uid, header.series_uid
    ds.FrameOfReferenceUID = header.frame_uid
    ds.PositionReferenceIndicator = ""  # Type 2 (Frame of Reference module): present, empty = no landmark
    ds.AcquisitionNumber = 1  # Type 2 (CT Image module): one acquisition per series
    ds.StudyID, ds.SeriesNumber = "1", header.series_number
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = header.rows, header.cols
    ds.PixelSpacing = [round(header.spacing, 6), round(header.spacing, 6)]
    _, module = encode_pixels(np.zeros((1, 1), np.int16), header.pixel_format, header.bad_intercept)
    for keyword, value in module.items():
        setattr(ds, keyword, value)
    ds.RescaleType = "HU"
    centre, width = header.window_center, header.window_width
    ds.WindowCenter = list(centre) if len(centre) > 1 else centre[0]
    ds.WindowWidth = list(width) if len(width) > 1 else width[0]
    return ds


def _slice_elements(header: SeriesHeader, hu: np.ndarray, index: int, sop_uid: str) -> Dataset:
    """The elements that differ from slice to slice, pixel data encoded in the series' transfer syntax."""
    if hu.shape != (header.rows, header.cols):
        raise ValueError(f"slice shape {hu.shape} does not match the series matrix {(header.rows, header.cols)}")
    ds = Dataset()
    ds.SOPInstanceUID, ds.InstanceNumber = sop_uid, index + 1
    corner = -(header.cols - 1) / 2 * header.spacing, -(header.rows - 1) / 2 * header.spacing
    z = round(header.z_top - index * header.thickness, 3)
    ds.ImagePositionPatient = [round(corner[0], 3), round(corner[1], 3), z]
    ds.SliceLocation = z
    stored, module = encode_pixels(hu, header.pixel_format, header.bad_intercept)
    if header.transfer_syntax == "none":
        ds.add(DataElement(PIXEL_DATA, "OW", stored.tobytes()))
        return ds
    frame = get_encoder(TRANSFER_SYNTAXES[header.transfer_syntax]).encode(
        stored, rows=header.rows, columns=header.cols, samples_per_pixel=1, number_of_frames=1,
        bits_allocated=16, bits_stored=module["BitsStored"], pixel_representation=module["PixelRepresentation"],
        photometric_interpretation="MONOCHROME2",
    )
    ds.add(DataElement(PIXEL_DATA, "OB", encapsulate([frame]), is_undefined_length=True))
    return ds


def _file_meta(header: SeriesHeader, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = TRANSFER_SYNTAXES[header.transfer_syntax]
    return meta


def slice_dataset(header: SeriesHeader, hu: np.ndarray, index: int, sop_uid: str) -> Dataset:
    """A complete CT Image Storage dataset (with file meta) for slice `index` (0 = top) of a series."""
    ds = _static_dataset(header)
    ds.update(_slice_elements(header, hu, index, sop_uid))
    ds.file_meta = _file_meta(header, sop_uid)
    return ds


def dataset_bytes(ds: Dataset) -> bytes:
    """The Part 10 file (preamble, file meta, dataset) as bytes."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


class SeriesWriter:
    """Encodes the slices of one series: the elements they share are encoded once, not once per file.

    The result is byte-for-byte `dataset_bytes(slice_dataset(...))` (a test holds it to that), about
    five times faster, because pydicom's per-element validation dominates the cost of small files.
    """

    def __init__(self, header: SeriesHeader):
        self.header = header
        self._static = [(tag, _element_bytes(elem)) for tag, elem in sorted(_static_dataset(header).items())]

    def slice_bytes(self, hu: np.ndarray, index: int, sop_uid: str) -> bytes:
        own = [(tag, _element_bytes(elem)) for tag, elem in sorted(_slice_elements(self.header, hu, index, sop_uid).items())]
        meta = DicomBytesIO()
        meta.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(meta, _file_meta(self.header, sop_uid), enforce_standard=True)
        body = b"".join(data for _, data in heapq.merge(self._static, own, key=lambda item: item[0]))
        return meta.getvalue() + body


def _element_bytes(elem: DataElement) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, elem)
    return fp.getvalue()
