"""Build small CT datasets in code (pydicom Dataset + FileMetaDataset + dcmwrite) for the dicom tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

FAKE_PHI = {
    "PatientName": "Doe^Jane",
    "PatientBirthDate": "19700101",
    "PatientAddress": "1 Secret Lane, Springfield",
    "AccessionNumber": "ACC123456",
    "InstitutionName": "Springfield General",
    "InstitutionAddress": "2 Hospital Road",
    "ReferringPhysicianName": "House^Gregory",
    "PerformingPhysicianName": "Wilson^James",
    "OperatorsName": "Cuddy^Lisa",
}


def build_ct(
    stored: np.ndarray | None = None,
    *,
    bits_stored: int = 16,
    pixel_representation: int = 1,
    intercept: str = "-1024",
    slope: str = "1",
    modality: str = "CT",
    transfer_syntax: str = ExplicitVRLittleEndian,
    phi: bool = True,
    **tags,
) -> Dataset:
    """A single-frame CT slice holding `stored` (the raw stored values), with fake PHI in its header."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID = "PSEUDO-1"
    ds.Modality = modality
    ds.Manufacturer = "ICH-RAY TEST"
    if phi:
        for keyword, value in FAKE_PHI.items():
            setattr(ds, keyword, value)
    if stored is not None:
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = pixel_representation
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = slope
        dtype = np.int16 if pixel_representation else np.uint16
        ds.PixelData = stored.astype(dtype).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture
def write_ct(tmp_path):
    """write_ct(name, ds_or_stored=None, **build_kwargs) -> Path of a DICOM file with preamble and meta."""

    def write(name: str, ds: Dataset | np.ndarray | None = None, **kwargs) -> Path:
        if not isinstance(ds, Dataset):
            ds = build_ct(ds, **kwargs)
        path = tmp_path / name
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        return path

    return write


@pytest.fixture
def ramp() -> np.ndarray:
    """64x64 stored values -1024..3071 (a ramp), as int16 would store them."""
    return (np.arange(64 * 64, dtype=np.int32).reshape(64, 64) - 1024).astype(np.int16)


@pytest.fixture(scope="session")
def real_ct_files(real_ct_dir) -> list[Path]:
    files = sorted(real_ct_dir.glob("*.dcm"))
    if len(files) != 28:
        pytest.fail(f"expected 28 real GE slices in {real_ct_dir}, found {len(files)}")
    return files


@pytest.fixture
def make_ct():
    """The `build_ct` factory (test modules cannot import conftest under --import-mode=importlib)."""
    return build_ct
