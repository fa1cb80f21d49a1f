"""Plausibility checks: values no CT slice has are refused by every reader, naming the file, the element and
the value; MONOCHROME1 and an odd HighBit are kept."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ich_ray.dicom import (
    DicomReadError,
    ImplausibleValueError,
    TruncatedFileError,
    UnsupportedImageError,
    failure_fields,
    read_dicom,
    read_hu,
    read_record,
    read_slice,
    to_hu,
)
from ich_ray.dicom.checks import HU_RANGE, MAX_PIXELS, SLOPE_RANGE
from ich_ray.imaging.recipe import CleanRecipe, prepare_slice

# Every pixel path the stages take: metadata's record, clean's / predict's HU, and the dataset-level one.
READERS = {
    "read_record": lambda path: read_record(path),
    "read_slice": lambda path: read_slice(str(path), str(path)),
    "read_hu": lambda path: read_hu(path),
    "to_hu": lambda path: to_hu(pydicom.dcmread(path), str(path)),
}

REFUSED = [
    # (build_ct kwargs, error type, element named, value as the message shows it)
    ({"slope": "inf"}, ImplausibleValueError, "RescaleSlope (0028,1053)", "inf"),
    ({"slope": "nan"}, ImplausibleValueError, "RescaleSlope (0028,1053)", "nan"),
    ({"slope": "-1"}, ImplausibleValueError, "RescaleSlope (0028,1053)", "-1.0"),
    ({"slope": "0"}, ImplausibleValueError, "RescaleSlope (0028,1053)", "0.0"),
    ({"slope": "1e-20"}, ImplausibleValueError, "RescaleSlope (0028,1053)", "1e-20"),
    ({"slope": "1000"}, ImplausibleValueError, "RescaleSlope (0028,1053)", "1000.0"),
    ({"intercept": "1e300"}, ImplausibleValueError, "RescaleIntercept (0028,1052)", "1e+300"),
    ({"intercept": "-inf"}, ImplausibleValueError, "RescaleIntercept (0028,1052)", "-inf"),
    ({"bits_stored": 1}, ImplausibleValueError, "BitsStored (0028,0101)", "1"),
    ({"bits_stored": 7}, ImplausibleValueError, "BitsStored (0028,0101)", "7"),
    ({"bits_stored": 20}, ImplausibleValueError, "BitsStored (0028,0101)", "20"),
    ({"BitsAllocated": 12}, ImplausibleValueError, "BitsAllocated (0028,0100)", "12"),
    ({"PixelRepresentation": 2}, ImplausibleValueError, "PixelRepresentation (0028,0103)", "2"),
    ({"SamplesPerPixel": 3}, UnsupportedImageError, "SamplesPerPixel (0028,0002)", "3"),
    ({"PhotometricInterpretation": "RGB"}, UnsupportedImageError, "PhotometricInterpretation (0028,0004)", "'RGB'"),
    ({"PhotometricInterpretation": "PALETTE COLOR"}, UnsupportedImageError, "PhotometricInterpretation",
     "'PALETTE COLOR'"),
    ({"NumberOfFrames": 2}, UnsupportedImageError, "NumberOfFrames (0028,0008)", "2"),
    ({"Rows": 32}, ImplausibleValueError, "Rows x Columns", "'32x64'"),  # pixel data holds 64 rows
    ({"Rows": 0}, ImplausibleValueError, "Rows (0028,0010)", "0"),
    ({"Rows": 65535, "Columns": 65535}, ImplausibleValueError, "Rows x Columns", "'65535x65535'"),
    # stored -1024..3071 with intercept -30000: a plausible intercept, an impossible image
    ({"intercept": "-30000"}, ImplausibleValueError, "HU after rescale", "-31024.0"),
]


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize(("tags", "error", "element", "shown"), REFUSED, ids=[str(r[0]) for r in REFUSED])
def test_implausible_values_are_refused_by_every_reader(write_ct, ramp, reader, tags, error, element, shown):
    path = write_ct("bad.dcm", ramp, **tags)
    with pytest.raises(error) as info:
        READERS[reader](path)
    exc = info.value
    assert exc.path == str(path) and exc.element.startswith(element)
    assert str(exc).startswith(f"{path}: {exc.element} is {shown}: ")
    error_type, message = failure_fields(exc)
    assert error_type == error.__name__ and element in message and shown in message


def test_a_value_that_is_not_a_number_is_named(write_ct, make_ct, ramp):
    ds = make_ct(ramp)
    del ds.RescaleSlope
    ds.add_new(0x00281053, "LO", "n/a")  # a corrupt element: text where a number belongs
    with pytest.raises(ImplausibleValueError, match=r"RescaleSlope \(0028,1053\) is 'n/a': not a valid value"):
        read_record(write_ct("nan.dcm", ds))


def test_the_matrix_cap_is_checked_before_decoding(write_ct, make_ct, ramp):
    from pydicom.uid import RLELossless

    ds = make_ct(ramp)
    ds.compress(RLELossless)
    ds.Rows = ds.Columns = 8192  # a decoder would allocate 128 MiB for this stream
    with pytest.raises(ImplausibleValueError, match=f"more than {MAX_PIXELS} pixels"):
        read_hu(write_ct("big.dcm", ds))


def test_short_pixel_data_stays_a_truncation(write_ct, ramp):
    with pytest.raises(TruncatedFileError, match="pixel data is 8192 bytes, expected 16384"):
        read_record(write_ct("short.dcm", ramp, Rows=128))


def test_high_bit_is_a_warning_and_the_file_is_kept(write_ct, ramp):
    record = read_record(write_ct("hb.dcm", ramp, HighBit=40))
    assert record["warning"] == ("HighBit (0028,0102) is 40, expected BitsStored - 1 = 15; "
                                 "ignored (pixels are read with BitsStored)")
    assert (record["img_min"], record["img_max"]) == (-2048.0, 2047.0)
    assert read_record(write_ct("ok.dcm", ramp))["warning"] is None


def test_monochrome1_gives_the_hu_and_image_of_its_monochrome2_twin(write_ct, ramp):
    """MONOCHROME1 inverts the display after windowing (PS3.3 C.7.6.3.1.2), not the rescale: the HU are the
    same, and the windows we render (bright = dense, i.e. MONOCHROME2) are identical; nothing is refused."""
    mono2 = read_hu(write_ct("m2.dcm", ramp))
    mono1 = read_hu(write_ct("m1.dcm", ramp, PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_array_equal(mono1, mono2)
    recipe = CleanRecipe(windows=("brain", "subdural", "bone"), size=64, crop=False)
    np.testing.assert_array_equal(prepare_slice(mono1, recipe), prepare_slice(mono2, recipe))


def test_bounds_keep_every_real_ge_slice(real_ct_files):
    for path in real_ct_files:
        record = read_record(path)
        assert HU_RANGE[0] <= record["img_min"] <= record["img_max"] <= HU_RANGE[1]
        assert SLOPE_RANGE[0] <= record["rescale_slope"] <= SLOPE_RANGE[1] and record["warning"] is None


def test_header_only_read_is_not_checked(write_ct, ramp):
    """Predict's header pass reads no pixels: the checks come with the pixel read that follows."""
    path = write_ct("inf.dcm", ramp, slope="inf")
    assert read_dicom(path, pixels=False).RescaleSlope == float("inf")


def test_failure_fields_for_every_kind_of_failure():
    assert failure_fields(DicomReadError("a.dcm", "why")) == ("DicomReadError", "why")
    assert failure_fields(PermissionError(13, "Permission denied")) == (
        "PermissionError", "could not read the file: [Errno 13] Permission denied")
    assert failure_fields(KeyError("x")) == ("KeyError", "unexpected KeyError: 'x'")
    assert len(failure_fields(RuntimeError("x" * 2000))[1]) == 500
