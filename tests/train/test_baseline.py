from __future__ import annotations

import pytest

from ich_ray.cli.main import main
from ich_ray.train.baseline import run_baseline
from ich_ray.train.config import BaselineConfig

from .conftest import write_metadata_table


def test_random_forest_learns_the_header_signal(tmp_path):
    root = write_metadata_table(tmp_path)
    metrics = run_baseline(BaselineConfig(data=str(root), n_estimators=50, track=False))
    assert metrics["auc_any"] > 0.95  # img_max separates the classes in the fixture
    assert 0.0 <= metrics["error_rate"] <= 0.2
    assert set(metrics) >= {"accuracy", "accuracy_multi", "logloss_weighted"}


def test_cli_tracks_the_run_with_a_feature_importance_plot(tmp_path, capsys):
    from mlflow import MlflowClient

    root = write_metadata_table(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["baseline", "--data", str(root), "--tracking-uri", uri, "--set", "n_estimators=20"]) == 0
    assert "auc_any=" in capsys.readouterr().out
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ich-ray/baseline").experiment_id])
    assert run.data.metrics["auc_any"] > 0.9
    assert {"feature_importance.png", "validation_predictions.parquet"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)}
    from ich_ray.tracking.compare import compare_runs

    (row,) = compare_runs(uri, ["ich-ray/baseline"]).iter_rows(named=True)  # the interval comes from them
    assert row["auc_any_lo"] <= row["auc_any"] <= row["auc_any_hi"] and row["n_patients"] >= 2


def test_missing_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metadata table"):
        run_baseline(BaselineConfig(data=str(tmp_path), track=False))
