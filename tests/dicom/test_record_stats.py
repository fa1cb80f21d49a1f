"""The metadata record's pixel statistics (read in place from the stored integers, rescaled afterwards) equal
the straightforward numpy ones on the HU image, on real CT and on variants of it."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pydicom.examples
import pytest

from ich_ray.dicom import read_record
from ich_ray.dicom.pixels import FIX_INTERCEPT, FIX_OFFSET, FIX_WRAP


def straightforward(hu: np.ndarray) -> dict[str, float]:
    hu = hu.astype(np.float64)
    return {
        "img_min": hu.min(),
        "img_max": hu.max(),
        "img_mean": hu.mean(),
        "img_std": hu.std(),
        "img_pct_window": np.count_nonzero((hu > 0) & (hu < 80)) / hu.size,
    }


def assert_stats_match(record: dict, expected: dict) -> None:
    for name, value in expected.items():
        assert record[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def to_bytes(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_real_ct_series_signed_pixels(real_ct_dir):
    paths = sorted(real_ct_dir.glob("*.dcm"))
    assert paths
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.PixelRepresentation == 1
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert_stats_match(read_record(path.read_bytes(), str(path)), straightforward(hu))


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, -1024.0), (0.5, -20.0), (2.5, -1000.0)])
def test_pydicom_ct_with_rescale(slope, intercept):
    ds = pydicom.examples.ct  # signed 16-bit
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    record = read_record(to_bytes(ds), "ct.dcm")
    assert record["rescale_slope"] == slope
    assert_stats_match(record, straightforward(ds.pixel_array * slope + intercept))


def twelve_bit(real_ct_dir, intercept: float, garbage: bool) -> pydicom.Dataset:
    """A real slice stored as unsigned 12-bit; `garbage` sets unused high bits, which pydicom masks off."""
    ds = pydicom.dcmread(real_ct_dir / "01.dcm")
    stored = np.clip(ds.pixel_array.astype(np.int32) + 1024, 0, 4095).astype(np.uint16)
    if garbage:
        stored[::7] |= 0xA000
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
    ds.PixelData = stored.tobytes()
    return ds


@pytest.mark.parametrize("garbage", [False, True])
def test_unsigned_12_bit_with_unused_bits(real_ct_dir, garbage):
    ds = twelve_bit(real_ct_dir, -1024.0, garbage)
    record = read_record(to_bytes(ds), "u12.dcm")
    assert not record["pxrepr_fixed"]
    assert_stats_match(record, straightforward(ds.pixel_array.astype(np.float64) - 1024))


def test_pixel_representation_fix(real_ct_dir):
    ds = twelve_bit(real_ct_dir, 0.0, garbage=True)  # the bad-intercept group: fixed
    record = read_record(to_bytes(ds), "fix.dcm")
    assert record["pxrepr_fixed"]
    fixed = ((ds.pixel_array.astype(np.int64) + FIX_OFFSET) % FIX_WRAP).astype(np.int16)
    assert_stats_match(record, straightforward(fixed + FIX_INTERCEPT))
