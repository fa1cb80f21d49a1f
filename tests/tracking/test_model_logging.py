from __future__ import annotations

import json

import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient
from mlflow.models import Model

from ich_ray.tracking.registry import promote_best
from ich_ray.tracking.tracker import make_tracker

pytestmark = pytest.mark.slow


def _tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 1)).eval()


def test_log_model_loads_back_with_metadata(tracking_uri):
    model = _tiny_model(0)
    metadata = {"arch": "tiny", "task": "binary", "labels": ["any"], "in_channels": 3, "image_size": 64,
                "recipe": json.dumps({"windows": ["brain", "subdural", "bone"]}),
                "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    with make_tracker(tracking_uri, "ich-ray/binary-any", "tiny", rank=0) as tracker:
        uri = tracker.log_model(model, metadata=metadata)
    assert uri.startswith("models:/")
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(tracker.run_id).info.experiment_id
    found = client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{tracker.run_id}'")
    assert [m.model_uri for m in found] == [uri]  # filed under the run's experiment, not "Default"
    loaded = mlflow.pytorch.load_model(uri)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))
    assert type(loaded[0]) is torch.nn.Conv2d
    assert Model.load(uri).metadata == metadata


def test_promote_best_sets_alias_on_best_runs_version(tracking_uri):
    versions = {}
    for seed, auc in ((0, 0.71), (1, 0.93), (2, 0.80)):
        with make_tracker(tracking_uri, "ich-ray/binary-any", f"run-{seed}", rank=0) as tracker:
            tracker.log_metrics({"auc_any": auc}, step=0)
            if seed < 2:  # run-2 has the metric but no registered model: it must not win
                tracker.log_model(_tiny_model(seed), registered_model_name="ich-ray-binary")
        versions[tracker.run_id] = auc
    client = MlflowClient(tracking_uri)
    best = promote_best(tracking_uri, ["ich-ray/binary-any", "missing"], "auc_any", "ich-ray-binary")
    alias = client.get_model_version_by_alias("ich-ray-binary", "champion")
    assert alias.version == best.version
    assert versions[alias.run_id] == 0.93
    worst = promote_best(tracking_uri, ["ich-ray/binary-any"], "auc_any", "ich-ray-binary",
                         alias="worst", higher_is_better=False)
    assert versions[worst.run_id] == 0.71
    with pytest.raises(ValueError, match="no registered versions"):
        promote_best(tracking_uri, ["ich-ray/binary-any"], "auc_any", "nope")


def test_cli_compare_promote_sets_champion(tracking_uri, tmp_path, capsys):
    from ich_ray.cli.main import main

    aucs = {}
    for seed, auc in ((0, 0.62), (1, 0.88)):
        with make_tracker(tracking_uri, "ich-ray/multilabel", f"arch-{seed}", rank=0) as tracker:
            tracker.log_params({"arch": f"arch-{seed}", "task": "multilabel"})
            tracker.log_metrics({"auc_any": auc}, step=0)
            tracker.log_model(_tiny_model(seed), registered_model_name="ich-ray-demo")
        aucs[tracker.run_id] = auc
    assert main(["compare", "--tracking-uri", tracking_uri, "--out", str(tmp_path / "cmp"),
                 "--promote", "ich-ray-demo"]) == 0
    champion = MlflowClient(tracking_uri).get_model_version_by_alias("ich-ray-demo", "champion")
    assert aucs[champion.run_id] == 0.88
    assert f"models:/ich-ray-demo@champion = version {champion.version}" in capsys.readouterr().out
