"""The dicom layer's pixel-representation fix recovers the generator's HU exactly (issue 2)."""

import numpy as np
import pydicom
import pytest

from ich_ray.dicom.pixels import to_hu
from ich_ray.synthetic.phantom import render_study
from ich_ray.synthetic.plan import plan_dataset
from ich_ray.synthetic.writer import SeriesWriter, expected_hu


def _header(pixel_format, compression="none", intercept=1.0):
    plan = plan_dataset(1, 64, 10, seed=4, compression=compression)[0]
    fields = {**plan.header.__dict__, "pixel_format": pixel_format, "bad_intercept": intercept}
    return plan.header.__class__(**fields)


@pytest.mark.parametrize("intercept", [1.0, 0.0])
@pytest.mark.parametrize("compression", ["none", "rle"])
def test_fix_recovers_bad_intercept_hu_exactly(tmp_path, intercept, compression):
    header = _header("bad_intercept", compression, intercept)
    hu, _ = render_study(np.random.default_rng(9), 64, 10, subtypes=("subdural",))
    writer = SeriesWriter(header)
    for z in range(len(hu)):
        path = tmp_path / f"{z}.dcm"
        path.write_bytes(writer.slice_bytes(hu[z], z, f"1.2.3.{z + 1}"))
        ds = pydicom.dcmread(path)
        assert ds.PixelRepresentation == 0 and ds.BitsStored == 12 and float(ds.RescaleIntercept) > -100
        got, fixed = to_hu(ds, str(path))
        assert fixed
        np.testing.assert_array_equal(got, expected_hu(hu[z], "bad_intercept").astype(np.float32))
        # Without the fix the brain (values just above 0 HU) is fine, but air would read as ~3000 HU bone.
        assert float(ds.pixel_array.max()) + float(ds.RescaleIntercept) > 3000


@pytest.mark.parametrize("pixel_format", ["signed16", "unsigned12"])
def test_other_formats_need_no_fix(tmp_path, pixel_format):
    header = _header(pixel_format)
    hu, _ = render_study(np.random.default_rng(9), 64, 10, subtypes=())
    path = tmp_path / "a.dcm"
    path.write_bytes(SeriesWriter(header).slice_bytes(hu[5], 5, "1.2.3.9"))
    got, fixed = to_hu(pydicom.dcmread(path), str(path))
    assert not fixed
    np.testing.assert_array_equal(got, expected_hu(hu[5], pixel_format).astype(np.float32))
