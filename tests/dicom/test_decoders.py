"""The default, permissively licensed decoders read every compressed syntax we claim (README's table).

Each file is decoded through `to_hu` and with the permissive plugin named explicitly, so the test shows that
syntax decodes without the GPL `pylibjpeg-libjpeg` even where that is installed too. The reference image is
pydicom's bundled `MR_small.dcm` (64 x 64, signed 16-bit): its RLE, JPEG 2000 and JPEG-LS copies ship with
pydicom; the JPEG lossless copy is made here with GDCM.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from ich_ray.dicom import UnsupportedTransferSyntaxError, to_hu
from ich_ray.dicom.pixels import decoding_plugin

BUNDLED = {RLELossless: "MR_small_RLE.dcm", JPEG2000Lossless: "MR_small_jp2klossless.dcm",
           JPEGLSLossless: "MR_small_jpeg_ls_lossless.dcm"}
PERMISSIVE = {RLELossless: "pylibjpeg", JPEG2000Lossless: "pylibjpeg", JPEGLSLossless: "gdcm",
              JPEGLosslessSV1: "gdcm"}  # pylibjpeg-rle (MIT), pylibjpeg-openjpeg (MIT), GDCM (BSD)


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"pydicom no longer bundles {name} in its wheel")
    return Path(path)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return pydicom.dcmread(bundled("MR_small.dcm")).pixel_array


def gdcm_jpeg_lossless(src: Path, dst: Path) -> Path:
    """Re-encode `src` as JPEG Lossless SV1 (process 14, selection value 1) with GDCM."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        raise RuntimeError(f"GDCM cannot read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError(f"GDCM cannot encode {src} as JPEG lossless")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"GDCM cannot write {dst}")
    return dst


@pytest.fixture(scope="module")
def compressed_files(tmp_path_factory) -> dict[str, Path]:
    files = {syntax: bundled(name) for syntax, name in BUNDLED.items()}
    out = tmp_path_factory.mktemp("jpeg-lossless") / "MR_small_jpeg_lossless.dcm"
    files[JPEGLosslessSV1] = gdcm_jpeg_lossless(bundled("MR_small.dcm"), out)
    return files


@pytest.mark.parametrize("syntax", list(PERMISSIVE), ids=lambda uid: uid.name)
def test_each_syntax_decodes_with_its_permissive_decoder(compressed_files, reference, syntax):
    path = compressed_files[syntax]
    ds = pydicom.dcmread(path)  # MR: read_dicom would refuse it as not CT
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert PERMISSIVE[syntax] in get_decoder(syntax).available_plugins
    np.testing.assert_array_equal(pixel_array(path, decoding_plugin=PERMISSIVE[syntax]), reference)
    hu, fixed = to_hu(ds, str(path))  # MR_small has no rescale: HU = stored values
    assert not fixed
    np.testing.assert_array_equal(hu, reference.astype(np.float32))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=lambda uid: uid.name)
def test_rle_and_jpeg2000_use_the_pylibjpeg_plugins(syntax):
    """pylibjpeg-rle is ~5x pydicom's numpy RLE decoder; pylibjpeg-openjpeg uses less CPU a slice than GDCM
    (bench/preprocess.py's per-CPU-second rates)."""
    assert decoding_plugin(get_decoder(syntax), syntax) == "pylibjpeg"


@contextlib.contextmanager
def without_plugin(decoder, name: str):
    """As if the package behind `name` were not installed (pydicom's public plugin API)."""
    if name not in decoder.available_plugins:
        yield
        return
    decoder.remove_plugin(name)
    try:
        yield
    finally:
        decoder.add_plugin(name, (f"pydicom.pixels.decoders.{name}", "_decode_frame"))


def test_12_bit_jpeg_extended_without_the_gpl_extra_names_it():
    path = bundled("JPGExtended.dcm")
    decoder = get_decoder(JPEGExtended12Bit)
    with without_plugin(decoder, "pylibjpeg"):
        with pytest.raises(UnsupportedTransferSyntaxError, match=r"12-bit.*gpl-codecs") as info:
            to_hu(pydicom.dcmread(path), str(path))
    assert info.value.path == str(path)
