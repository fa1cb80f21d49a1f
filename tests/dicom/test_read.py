"""read_dicom / read_slice: real files parse; every kind of bad input raises its typed error naming the file."""

from __future__ import annotations

import numpy as np
import pydicom
import pydicom.examples
import pytest
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.pixels import apply_rescale
from pydicom.uid import MPEG2MPML

from ich_ray.dicom import (
    HEADER_FIELDS,
    DicomReadError,
    EmptyFileError,
    NoPixelDataError,
    NotCTError,
    NotDicomError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
    read_dicom,
    read_record,
    read_slice,
)

STAT_KEYS = {"img_min", "img_max", "img_mean", "img_std", "img_pct_window"}


def raises_naming(exc_type, path):
    """pytest.raises for a DicomReadError whose message and .path name the file."""
    return pytest.raises(exc_type, match=str(path).replace("\\", "\\\\").replace(".", r"\."))


def test_real_file_from_path_and_from_bytes_agree(real_ct_files):
    path = real_ct_files[0]
    from_path = read_dicom(path)
    from_bytes = read_dicom(path.read_bytes(), path=str(path))
    assert from_path.SOPInstanceUID == from_bytes.SOPInstanceUID
    np.testing.assert_array_equal(from_path.pixel_array, from_bytes.pixel_array)


def test_header_only_read_skips_pixel_data(real_ct_files):
    ds = read_dicom(real_ct_files[0], pixels=False)
    assert "PixelData" not in ds
    assert ds.Rows == 512


def test_read_slice_record_and_hu(real_ct_files):
    path = real_ct_files[5]
    record, hu = read_slice(path.read_bytes(), str(path))
    assert set(record) == set(HEADER_FIELDS) | STAT_KEYS | {"pxrepr_fixed", "warning"}
    assert record["pxrepr_fixed"] is False
    assert hu.shape == (512, 512) and hu.dtype == np.float32
    assert record["img_min"] == float(hu.min()) == -1500.0  # GE padding value
    assert record["img_mean"] == pytest.approx(float(hu.mean(dtype=np.float64)))
    assert record["img_pct_window"] == pytest.approx(np.mean((hu > 0) & (hu < 80)))
    assert 0.05 < record["img_pct_window"] < 0.5  # a slice through the brain
    assert read_record(path) == record  # the metadata stage's call: same row, no HU image built


def test_pydicom_example_ct_parses():
    path = pydicom.examples.get_path("ct")
    record, hu = read_slice(path)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(hu, apply_rescale(ds.pixel_array, ds).astype(np.float32))
    assert record["modality"] == "CT" and record["rows"] == 128


def test_file_without_preamble_is_accepted(real_ct_files):
    ds = pydicom.dcmread(real_ct_files[0])
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)  # the bare dataset: no preamble, no 'DICM', no file meta
    record, hu = read_slice(fp.getvalue(), "bare.dcm")
    assert record["sop_instance_uid"] == ds.SOPInstanceUID
    assert record["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"  # explicit VR little endian, detected
    np.testing.assert_array_equal(hu, ds.pixel_array.astype(np.float32))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dicom(tmp_path / "nope.dcm")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with raises_naming(EmptyFileError, path) as info:
        read_dicom(path)
    assert info.value.path == str(path)
    with raises_naming(EmptyFileError, "s3://bucket/empty.dcm"):
        read_dicom(b"", "s3://bucket/empty.dcm")


@pytest.mark.parametrize("cut_bytes", [2, 1000, 300_000])
def test_file_cut_inside_pixel_data(real_ct_files, tmp_path, cut_bytes):
    data = real_ct_files[0].read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-cut_bytes])
    with raises_naming(TruncatedFileError, path) as info:
        read_slice(path)
    assert f"PixelData (7FE0,0010): {524288 - cut_bytes} of 524288 bytes present" in info.value.reason


@pytest.mark.parametrize("size", [1000, 1581, 1870])  # after a complete element / inside a value / a header
def test_file_cut_inside_header(real_ct_files, size):
    data = real_ct_files[0].read_bytes()
    with raises_naming(TruncatedFileError, "cut.dcm"):
        read_dicom(data[:size], "cut.dcm")


@pytest.mark.parametrize(
    "content", [b"patient,label\n1,0\n" * 20, b"\x00" * 300, bytes(range(256)) * 8, b"%PDF-1.4 not dicom"]
)
def test_non_dicom_content(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with raises_naming(NotDicomError, path):
        read_dicom(path)


def test_dicom_without_pixel_data(write_ct, make_ct):
    path = write_ct("nopix.dcm", make_ct(None))
    with raises_naming(NoPixelDataError, path):
        read_dicom(path)
    assert read_dicom(path, pixels=False).Modality == "CT"  # a header read does not need pixels


def test_non_ct_modality(write_ct, ramp):
    path = write_ct("mr.dcm", ramp, modality="MR")
    with raises_naming(NotCTError, path) as info:
        read_dicom(path, pixels=False)
    assert "'MR'" in info.value.reason


def test_unsupported_transfer_syntax(write_ct, make_ct):
    ds = make_ct(None, transfer_syntax=MPEG2MPML)
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    path = write_ct("video.dcm", ds)
    read_dicom(path)  # parses: the syntax only matters when decoding
    with raises_naming(UnsupportedTransferSyntaxError, path) as info:
        read_slice(path)
    assert "MPEG2" in info.value.reason


def test_errors_are_value_errors_with_path(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        read_slice(path)
    assert isinstance(info.value, DicomReadError)
    assert info.value.path == str(path) and info.value.reason


def test_bad_source_type():
    with pytest.raises(TypeError, match="int"):
        read_dicom(42)


def test_pixel_element_shorter_than_the_image(write_ct, ramp):
    """A complete file whose Pixel Data element itself is too short for Rows x Columns."""
    ds = pydicom.dcmread(write_ct("ok.dcm", ramp))
    ds.PixelData = ds.PixelData[: 64 * 40 * 2]
    path = write_ct("short.dcm", ds)
    with raises_naming(TruncatedFileError, path) as info:
        read_dicom(path)
    assert "pixel data is 5120 bytes, expected 8192" in info.value.reason
