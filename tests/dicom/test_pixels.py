"""to_hu: equals pydicom's rescale on real files, the pixel-representation fix recovers HU exactly."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_rescale, get_decoder, get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from ich_ray.dicom import (
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
    needs_pxrepr_fix,
    pixels,
    read_dicom,
    read_slice,
    to_hu,
)


def test_hu_equals_apply_rescale_on_every_ge_file(real_ct_files):
    for path in real_ct_files:
        ds = pydicom.dcmread(path)
        hu, fixed = to_hu(read_dicom(path), str(path))
        assert fixed is False
        assert hu.dtype == np.float32 and hu.shape == (512, 512)
        np.testing.assert_array_equal(hu, apply_rescale(ds.pixel_array, ds), err_msg=str(path))


@pytest.mark.parametrize(
    ("representation", "bits_stored", "intercept", "expected"),
    [
        (0, 12, "0", True),
        (0, 12, "1", True),
        (0, 12, "-99", True),
        (0, 12, "-100", False),  # strictly greater than -100
        (0, 12, "-1024", False),
        (1, 12, "0", False),
        (0, 16, "0", False),
    ],
)
def test_needs_pxrepr_fix_rule(make_ct, ramp, representation, bits_stored, intercept, expected):
    ds = make_ct(
        ramp.clip(0, 4095), pixel_representation=representation, bits_stored=bits_stored, intercept=intercept
    )
    assert needs_pxrepr_fix(ds) is expected


def test_pxrepr_fix_recovers_hu_exactly(write_ct):
    """Signed 12-bit values stored as unsigned with a wrong intercept (the RSNA bad-intercept group)."""
    true_hu = np.linspace(-1000, 3000, 64 * 64).round().astype(np.int32).reshape(64, 64)
    true_hu[0, :4] = (-1000, -1, 0, 3095)  # both ends of the range and the wrap point
    stored = np.mod(true_hu, 4096)  # what those scanners wrote: two's complement in 12 bits
    path = write_ct("bad_intercept.dcm", stored, pixel_representation=0, bits_stored=12, intercept="0")
    record, hu = read_slice(path)
    assert record["pxrepr_fixed"] is True
    np.testing.assert_array_equal(hu, true_hu.astype(np.float32))


@pytest.mark.parametrize("case", ["signed", "bad_intercept", "unused_high_bits", "rle"])
def test_stored_pixels_carry_the_range_of_the_values_they_hold(write_ct, make_ct, ramp, case):
    """The (min, max) found once per slice is that of the values after the fix, the unused-bit correction and
    any decode: the HU range check and the statistics read it instead of scanning the slice again."""
    if case == "bad_intercept":
        true_hu = np.linspace(-100, 500, ramp.size).round().astype(np.int32).reshape(ramp.shape)
        # stored 0..500 and 3996..4095; after the fix 900..1500: the range moves
        path = write_ct("fix.dcm", np.mod(true_hu, 4096), pixel_representation=0, bits_stored=12, intercept="0")
    elif case == "unused_high_bits":
        stored = np.mod(ramp.astype(np.int32), 4096).astype(np.uint16)
        stored[0, 0] |= 0xF000  # garbage in the 4 bits above BitsStored, which pydicom's decoder masks off
        path = write_ct("bits.dcm", stored, pixel_representation=0, bits_stored=12, intercept="-1024")
    elif case == "rle":
        ds = make_ct(ramp)
        ds.compress(RLELossless)
        path = write_ct("rle.dcm", ds)
    else:
        path = write_ct("signed.dcm", ramp)
    ds = read_dicom(path)
    stored = pixels.stored_pixels(ds, str(path))
    assert stored.value_range == (stored.values.min(), stored.values.max())
    expected = ds.pixel_array if case != "bad_intercept" else np.mod(ds.pixel_array.astype(np.int32) + 1000, 4096)
    np.testing.assert_array_equal(stored.values, expected)


def test_slope_and_intercept(write_ct, ramp):
    path = write_ct("slope.dcm", ramp, intercept="-1024", slope="0.5")
    hu, fixed = to_hu(read_dicom(path), str(path))
    assert not fixed
    np.testing.assert_array_equal(hu, ramp.astype(np.float32) * 0.5 - 1024)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_syntaxes_decode_to_the_same_hu(write_ct, make_ct, ramp, syntax):
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no encoder installed for {syntax.name}")
    ds = make_ct(ramp)
    ds.compress(syntax)
    path = write_ct("compressed.dcm", ds)
    record, hu = read_slice(path)
    assert record["transfer_syntax_uid"] == syntax
    np.testing.assert_array_equal(hu, ramp.astype(np.float32) - 1024)


def test_truncated_compressed_stream(write_ct, make_ct, ramp):
    ds = make_ct(ramp)
    ds.compress(RLELossless)
    frame = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)
    data = next(frame)
    ds.PixelData = pydicom.encaps.encapsulate([data[: len(data) // 2]])
    path = write_ct("short_rle.dcm", ds)
    with pytest.raises(TruncatedFileError, match="compressed|decoded") as info:
        read_slice(path)
    assert info.value.path == str(path)


@pytest.fixture
def jpeg_ls_file(write_ct, make_ct):
    """A JPEG-LS slice whose codestream is garbage (a valid header around it is all the parser needs)."""
    ds = make_ct(None, transfer_syntax=JPEGLSLossless)
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xf7" + bytes(60)])
    ds["PixelData"].VR = "OB"
    return write_ct("jpegls.dcm", ds)


def test_corrupt_stream_with_a_decoder_is_truncated_error(jpeg_ls_file):
    assert get_decoder(JPEGLSLossless).is_available  # GDCM (and pyjpegls, in dev) handle JPEG-LS here
    with pytest.raises(TruncatedFileError, match="could not be decoded"):
        read_slice(jpeg_ls_file)


def test_syntax_without_an_installed_plugin(jpeg_ls_file):
    decoder = get_decoder(JPEGLSLossless)
    installed = decoder.available_plugins
    for name in installed:  # as if no JPEG-LS package were installed (pydicom's plugin API)
        decoder.remove_plugin(name)
    try:
        with pytest.raises(UnsupportedTransferSyntaxError, match="JPEG-LS") as info:
            read_slice(jpeg_ls_file)
        # removed plugins list no missing package (pydicom's "requires ..." text comes only from a real absence)
        assert info.value.path == str(jpeg_ls_file) and "no installed plugin" in info.value.reason
    finally:
        for name in installed:
            decoder.add_plugin(name, (f"pydicom.pixels.decoders.{name}", "_decode_frame"))
    assert decoder.available_plugins == installed


def test_dataset_without_transfer_syntax(make_ct, ramp):
    ds = make_ct(ramp)
    del ds.file_meta.TransferSyntaxUID
    with pytest.raises(UnsupportedTransferSyntaxError, match="in-memory: no Transfer Syntax UID"):
        to_hu(ds, "in-memory")


class PanicException(BaseException):
    """What pyo3 raises when a Rust decoder panics (pylibjpeg-rle on a corrupt RLE stream, found by fuzzing)."""


@pytest.mark.parametrize(("raised", "expected"), [(PanicException("index out of bounds"), TruncatedFileError),
                                                   (KeyboardInterrupt(), KeyboardInterrupt)])
def test_a_decoder_panic_is_this_files_failure_but_an_interrupt_is_not(write_ct, ramp, monkeypatch, raised, expected):
    def decode(ds, **kwargs):
        raise raised

    monkeypatch.setattr(pixels, "pixel_array", decode)
    monkeypatch.setattr(pixels, "native_stored", lambda ds: None)  # decode as a compressed slice is decoded
    with pytest.raises(expected):
        to_hu(pydicom.dcmread(write_ct("p.dcm", ramp)), "p.dcm")
