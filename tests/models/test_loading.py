"""The model contract: what training records is checked before any slice is read."""

from __future__ import annotations

import pytest
import torch

from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.labels import LABELS
from ich_ray.models.checkpoint import CHECKPOINT_FILE
from ich_ray.models.loading import ModelSpec, build_model, load_model, model_metadata
from ich_ray.models.registry import create_model

RECIPE = CleanRecipe(windows=("brain", "subdural", "bone"), size=64)


def _metadata(**changes):
    md = model_metadata("resnet18", "multilabel", LABELS, RECIPE.to_json(), 3, 64, (0.5,) * 3, (0.25,) * 3)
    md.update(changes)
    return md


def test_spec_from_training_metadata():
    spec = ModelSpec.from_metadata(_metadata(), "x")
    assert (spec.arch, spec.labels, spec.recipe, spec.in_channels, spec.mean) == (
        "resnet18", LABELS, RECIPE, 3, (0.5, 0.5, 0.5))


@pytest.mark.parametrize(("changes", "message"), [
    ({"arch": "vgg99"}, "unknown architecture 'vgg99'"),
    ({"in_channels": 9}, "takes 9 input channels but its recipe makes 3"),
    ({"labels": ["epidural"]}, "must be a subset"),
    ({"image_size": 16}, "at least 32 px"),
    ({"recipe": '{"windows": ["brain"], "gamma": 2}'}, "unknown keys"),
    ({"normalization": {"mean": [0.5], "std": [0.2]}}, "normalization has 1 means"),
])
def test_mismatched_models_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_metadata(_metadata(**changes), "models:/m/1")


def test_metadata_missing_is_refused():
    with pytest.raises(ValueError, match="metadata lacks"):
        ModelSpec.from_metadata({"arch": "resnet18"}, "runs:/abc/model")


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18", 6, 3).eval()
    torch.save({"epoch": 0, "metadata": _metadata(), "model": model.state_dict()}, tmp_path / CHECKPOINT_FILE)
    spec, state = load_model(str(tmp_path))
    rebuilt = build_model(spec, state)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))
    binary = ModelSpec.from_metadata(_metadata(labels=["any"]), "b")
    with pytest.raises(ValueError, match="weights do not fit"):
        build_model(binary, state)
    with pytest.raises(FileNotFoundError, match="not an MLflow URI"):
        load_model(str(tmp_path / "nope"))
