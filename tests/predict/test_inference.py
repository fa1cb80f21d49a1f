"""The header pass gives the same ordered rows in the driver (small inputs) and in Ray tasks (large ones)."""

from __future__ import annotations

import pytest

from ich_ray.data.io import list_inputs
from ich_ray.predict import inference


@pytest.mark.ray
def test_header_pass_in_ray_tasks_matches_the_driver(ray_session, real_ct_dir, tmp_path, monkeypatch):
    (tmp_path / "junk.dcm").write_bytes(b"not dicom" * 50)
    paths = [*list_inputs(real_ct_dir)["path"].to_list(), str(tmp_path / "junk.dcm")]
    local = inference.read_headers(paths)
    monkeypatch.setattr(inference, "LOCAL_HEADER_FILES", 0)
    distributed = inference.read_headers(paths)
    assert local.sort("path").equals(distributed.sort("path"))
    assert local.filter(local["status"] == "ok")["slice_index"].sort().to_list() == list(range(28))
    assert local.filter(local["status"] == "failed")["path"].to_list() == [str(tmp_path / "junk.dcm")]
