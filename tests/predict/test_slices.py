"""Predict's reading path: the header pass and the slice loader refuse what metadata and clean refuse."""

from __future__ import annotations

import pydicom
import pytest

from ich_ray.dicom.errors import ImplausibleValueError
from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.predict.slices import SliceLoader, header_rows


def _variant(real_ct_dir, tmp_path, name, delete=(), **tags):
    ds = pydicom.dcmread(real_ct_dir / "01.dcm")
    for keyword in delete:
        del ds[keyword]
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(tmp_path / name)
    return str(tmp_path / name)


def test_header_pass_fails_a_slice_without_series(real_ct_dir, tmp_path):
    path = _variant(real_ct_dir, tmp_path, "noseries.dcm", delete=("SeriesInstanceUID",))
    row = header_rows([path, str(real_ct_dir / "02.dcm")]).to_dicts()
    assert [r["status"] for r in row] == ["failed", "ok"]
    assert (row[0]["error_type"], row[0]["error"]) == (
        "MissingElementError", "SeriesInstanceUID (0020,000E) is None: predict orders slices by series")


def test_slice_loader_refuses_an_implausible_slice(real_ct_dir, tmp_path):
    path = _variant(real_ct_dir, tmp_path, "slope.dcm", RescaleSlope=float("inf"))
    loader = SliceLoader(CleanRecipe(size=32))
    assert header_rows([path])["status"].to_list() == ["ok"]  # the header-only pass reads no pixels
    with pytest.raises(ImplausibleValueError, match=r"RescaleSlope \(0028,1053\) is inf"):
        loader.image(path)
