"""The header pass gives the same ordered rows in the driver and in Ray tasks; the one-read path (recipes
without context) gives the rows of the header pass and of the slice predictor."""

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


def _spec_and_state(recipe):
    from ich_ray.labels import LABELS
    from ich_ray.models.loading import ModelSpec, model_metadata
    from ich_ray.models.registry import create_model, get_spec

    mean, std = get_spec("resnet18").normalization(recipe.channels)
    metadata = model_metadata("resnet18", "multilabel", LABELS, recipe.to_json(), recipe.channels, recipe.size, mean, std)
    return ModelSpec.from_metadata(metadata, "test"), create_model("resnet18", len(LABELS), recipe.channels).state_dict()


def test_one_read_per_file_gives_the_header_pass_and_the_slice_predictor_rows(real_ct_dir, tmp_path):
    import numpy as np
    import polars as pl

    from ich_ray.imaging.recipe import CleanRecipe
    from ich_ray.predict.slices import HEADER_SCHEMA, header_rows

    (tmp_path / "junk.dcm").write_bytes(b"not dicom" * 50)
    paths = [*list_inputs(real_ct_dir)["path"].to_list()[:3], str(tmp_path / "junk.dcm"), str(tmp_path / "gone.dcm")]
    spec, state = _spec_and_state(CleanRecipe(size=32))
    one = pl.from_arrow(inference.FilePredictor(spec, state)({"path": np.array(paths)}))
    assert one.select(list(HEADER_SCHEMA)).equals(header_rows(paths))
    assert one["status"].to_list() == ["ok"] * 3 + ["failed"] * 2
    ok = np.array(paths[:3])
    two = pl.from_arrow(inference.SlicePredictor(spec, state)(
        {"path": ok, "prev_path": np.full(3, ""), "next_path": np.full(3, "")}))
    columns = ["path", "blank", *(c for c in two.columns if c.startswith("prob_"))]
    assert one.head(3).select(columns).equals(two.select(columns))
    assert one["prepare_error_type"].head(3).is_null().all()


def test_one_read_per_file_refuses_a_context_recipe():
    from ich_ray.imaging.recipe import CleanRecipe

    spec, state = _spec_and_state(CleanRecipe(size=32, context=True))
    with pytest.raises(ValueError, match="has context"):
        inference.FilePredictor(spec, state)


@pytest.mark.ray
@pytest.mark.parametrize("context", [False, True], ids=["one-read", "2.5d"])
def test_the_driver_and_the_actor_pool_give_the_same_predictions(ray_session, real_ct_dir, tmp_path, context):

    from ich_ray.imaging.recipe import CleanRecipe

    (tmp_path / "junk.dcm").write_bytes(b"not dicom" * 50)
    paths = [*list_inputs(real_ct_dir)["path"].to_list()[:6], str(tmp_path / "junk.dcm")]
    spec, state = _spec_and_state(CleanRecipe(size=32, context=context))
    ordered, driver = inference.predict_files(paths, spec, state, batch_size=4)  # no actor count: the driver
    ordered_pool, pool = inference.predict_files(paths, spec, state, batch_size=4, actors=1)
    assert ordered.equals(ordered_pool)
    assert driver.height == 6 and driver["error_type"].is_null().all()
    probs = [c for c in driver.columns if c.startswith("prob_")]
    driver, pool = driver.sort("path"), pool.sort("path")
    assert driver.select("path", "blank").equals(pool.select("path", "blank"))
    for column in probs:  # the same model and inputs; only the batch composition may differ
        assert (driver[column] - pool[column]).abs().max() < 1e-5
