import dataclasses
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage

from ich_ray.synthetic.phantom import render_study
from ich_ray.synthetic.plan import plan_dataset
from ich_ray.synthetic.writer import (
    PIXEL_FORMATS,
    SeriesWriter,
    dataset_bytes,
    encode_pixels,
    expected_hu,
    slice_dataset,
)

HU = np.array([[-1024, -1000, -3, 0], [37, 80, 1500, 3000]], dtype=np.int16)


def test_encode_signed16():
    stored, module = encode_pixels(HU, "signed16")
    assert stored.dtype == np.int16 and module["PixelRepresentation"] == 1 and module["BitsStored"] == 16
    np.testing.assert_array_equal(stored.astype(np.int32) + module["RescaleIntercept"], HU)


def test_encode_unsigned12_clips_to_12_bits():
    stored, module = encode_pixels(HU, "unsigned12")
    assert stored.dtype == np.uint16 and stored.max() <= 4095
    assert (module["BitsStored"], module["HighBit"], module["PixelRepresentation"]) == (12, 11, 0)
    np.testing.assert_array_equal(stored + module["RescaleIntercept"], expected_hu(HU, "unsigned12"))


def test_encode_bad_intercept_stores_signed_12_bit_as_unsigned():
    stored, module = encode_pixels(HU, "bad_intercept", bad_intercept=1.0)
    assert module["RescaleIntercept"] > -100 and module["BitsStored"] == 12 and module["PixelRepresentation"] == 0
    # -1000 is 3096 in 12-bit two's complement, -3 is 4093; a naive reader sees them as bright bone.
    np.testing.assert_array_equal(stored[0], [3096, 3096, 4093, 0])
    with pytest.raises(ValueError, match="intercept"):
        encode_pixels(HU, "bad_intercept", bad_intercept=-1024)


def test_unknown_format():
    with pytest.raises(ValueError, match="signed16"):
        encode_pixels(HU, "float32")


@pytest.mark.parametrize("compression", ["none", "mixed"])
def test_fast_writer_is_byte_identical_to_pydicom(compression):
    for plan in plan_dataset(4, 64, 8, seed=1, compression=compression):
        hu, _ = render_study(np.random.default_rng(plan.index), plan.header.rows, 8, subtypes=())
        slow = dataset_bytes(slice_dataset(plan.header, hu[4], 4, "1.2.3.4.5"))
        assert SeriesWriter(plan.header).slice_bytes(hu[4], 4, "1.2.3.4.5") == slow


@pytest.mark.parametrize("syntax", ["none", "rle", "jpeg2000"])
@pytest.mark.parametrize("pixel_format", PIXEL_FORMATS)
def test_written_file_reads_back(syntax, pixel_format):
    plan = plan_dataset(3, 64, 8, seed=2, compression=syntax)[0]
    header = plan.header.__class__(**{**plan.header.__dict__, "pixel_format": pixel_format})
    hu, _ = render_study(np.random.default_rng(0), header.rows, 8, subtypes=())
    data = SeriesWriter(header).slice_bytes(hu[3], 3, "1.2.3.4.6")
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == CTImageStorage and ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.6"
    assert ds.Modality == "CT" and ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(header.z_top - 3 * header.thickness)
    stored, _ = encode_pixels(hu[3], pixel_format, header.bad_intercept)
    np.testing.assert_array_equal(ds.pixel_array, stored)


def test_shape_mismatch_is_an_error():
    plan = plan_dataset(1, 64, 8, seed=0, compression=None)[0]
    with pytest.raises(ValueError, match="matrix"):
        slice_dataset(plan.header, np.zeros((32, 32), np.int16), 0, "1.2.3")


DCIODVFY = shutil.which("dciodvfy")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dciodvfy"
WINDOWS = {"window_single": ((40.0,), (80.0,)), "window_multi": ((40.0, 600.0), (80.0, 2800.0))}


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed (Debian package dicom3tools; `make system-deps`)")
@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("syntax", ["none", "rle", "jpeg2000"])
@pytest.mark.parametrize("pixel_format", PIXEL_FORMATS)
def test_dciodvfy_finds_no_errors(tmp_path, pixel_format, syntax, window):
    """Every variant the generator writes is a valid CT Image Storage object (dicom3tools' IOD checker).

    Its warnings (invented PHI such as PatientAddress outside the CT IOD) are expected; the output of each
    variant is kept in test-artifacts/dciodvfy/.
    """
    plan = plan_dataset(1, 64, 8, seed=2, compression=syntax)[0]
    centre, width = WINDOWS[window]
    header = dataclasses.replace(plan.header, pixel_format=pixel_format, window_center=centre, window_width=width)
    hu, _ = render_study(np.random.default_rng(0), header.rows, 8, subtypes=())
    path = tmp_path / "slice.dcm"
    path.write_bytes(SeriesWriter(header).slice_bytes(hu[3], 3, "1.2.3.4.7"))
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{pixel_format}-{syntax}-{window}.txt").write_text(output)
    assert "CTImage" in output, output  # dciodvfy recognised the IOD it checks against
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert not errors, output
