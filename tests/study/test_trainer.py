"""`study.trainer.slice_run_id`: the MLflow run behind every form of slice-model URI."""

from __future__ import annotations

import pytest
import torch
from mlflow import MlflowClient

from ich_ray.study.trainer import slice_run_id
from ich_ray.tracking.tracker import make_tracker

pytestmark = pytest.mark.slow


def test_every_model_uri_form_names_the_run_that_trained_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the explicit URI must be the one used
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with make_tracker(uri, "ich-ray/binary-any", "tiny", rank=0) as tracker:
        logged = tracker.log_model(torch.nn.Linear(2, 1), registered_model_name="ich-tiny")
    MlflowClient(uri).set_registered_model_alias("ich-tiny", "champion", "1")
    forms = [logged, f"runs:/{tracker.run_id}/model", "models:/ich-tiny/1", "models:/ich-tiny/latest",
             "models:/ich-tiny@champion"]
    assert logged.startswith("models:/m-")  # what `log_model` hands back: a logged model, not a registry name
    assert {form: slice_run_id(form, uri) for form in forms} == dict.fromkeys(forms, tracker.run_id)
    assert slice_run_id(str(tmp_path / "checkpoint"), uri) is None
