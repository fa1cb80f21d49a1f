from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ich_ray.cli.main import main
from ich_ray.tracking.compare import compare_runs, write_comparison
from ich_ray.tracking.predictions import log_predictions, predictions_frame
from ich_ray.tracking.tracker import make_tracker


def _run(uri, experiment, name, params, history):
    with make_tracker(uri, experiment, name, rank=0) as tracker:
        tracker.log_params(params)
        for step, metrics in enumerate(history):
            tracker.log_metrics(metrics, step=step)


@pytest.fixture
def tracked(tracking_uri):
    _run(tracking_uri, "ich-ray/binary-any", "resnet18-64", {"arch": "resnet18", "task": "binary", "epochs": 2,
                                                              "size": 64},
         [{"train_loss": 0.7, "accuracy": 0.60, "auc_any": 0.70, "logloss_weighted": 0.9,
           "epoch_time_s": 10.0, "images_per_s": 30.0},
          {"train_loss": 0.5, "accuracy": 0.80, "auc_any": 0.65, "logloss_weighted": 0.6,
           "epoch_time_s": 12.0, "images_per_s": 34.0}])
    _run(tracking_uri, "ich-ray/multilabel", "densenet121-64", {"arch": "densenet121", "task": "multilabel",
                                                                 "sizes": [64, 128]},
         [{"train_loss": 0.6, "accuracy_multi": 0.9, "auc_any": 0.8, "auc_subdural": 0.75}])
    _run(tracking_uri, "ich-ray/baseline", "random-forest", {"task": "binary"},
         [{"accuracy": 0.55, "auc_any": 0.6}])
    return tracking_uri


def test_compare_runs_one_row_per_run_with_final_epoch_values(tracked):
    df = compare_runs(tracked, None).sort("run_name")
    assert df["run_name"].to_list() == ["densenet121-64", "random-forest", "resnet18-64"]
    resnet = df.row(2, named=True)
    assert (resnet["experiment"], resnet["architecture"], resnet["task"]) == ("ich-ray/binary-any", "resnet18", "binary")
    assert (resnet["epochs"], resnet["image_size"]) == (2, "64")
    # the final epoch's values (the logged model's), not each metric's best epoch (auc_any was 0.70 at epoch 0)
    assert resnet["epoch"] == 1
    assert resnet["accuracy"] == pytest.approx(0.80)
    assert resnet["auc_any"] == pytest.approx(0.65)
    assert resnet["logloss_weighted"] == pytest.approx(0.6)
    assert resnet["auc_any_lo"] is None  # no predictions logged: no interval
    assert resnet["s_per_epoch"] == pytest.approx(11.0)
    assert resnet["images_per_s"] == pytest.approx(32.0)
    dense = df.row(0, named=True)
    assert (dense["epochs"], dense["image_size"], dense["accuracy_multi"]) == (1, "[64, 128]", pytest.approx(0.9))
    assert dense["auc_subdural"] == pytest.approx(0.75) and dense["accuracy"] is None
    forest = df.row(1, named=True)
    assert forest["architecture"] is None and forest["auc_any"] == pytest.approx(0.6)


def test_compare_runs_selected_experiment_and_errors(tracked, tmp_path):
    df = compare_runs(tracked, ["ich-ray/multilabel", "not-there"])
    assert df["run_name"].to_list() == ["densenet121-64"]
    with pytest.raises(ValueError, match="no runs in experiments"):
        compare_runs(tracked, ["not-there"])
    with pytest.raises(FileNotFoundError, match="no MLflow store"):
        compare_runs(f"sqlite:///{tmp_path}/none.db", None)


def test_write_comparison_csv_markdown_png(tracked, tmp_path):
    df = compare_runs(tracked, None)
    paths = write_comparison(df, tmp_path / "out")
    assert pl.read_csv(paths["csv"])["run_name"].sort().to_list() == sorted(df["run_name"].to_list())
    rule, blank, *markdown = paths["markdown"].read_text().splitlines()
    assert rule.startswith("Values of the final epoch") and blank == ""
    assert markdown[0].startswith("| run_name") and "auc_any" in markdown[0]
    assert "auc_epidural" not in markdown[0]  # no run logged it: column left out of the readable table
    assert len(markdown) == 2 + len(df)
    assert any("resnet18-64" in line and "0.8" in line for line in markdown)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_prints_and_writes(tracked, tmp_path, capsys):
    assert main(["compare", "--tracking-uri", tracked, "--out", str(tmp_path / "cmp"),
                 "--experiment", "ich-ray/binary-any"]) == 0
    out = capsys.readouterr().out
    assert "resnet18-64" in out and "densenet121-64" not in out
    assert (tmp_path / "cmp" / "results.png").is_file()
    assert main(["compare", "--tracking-uri", tracked, "--experiment", "nothing"]) == 1


def _run_with_predictions(uri, name, n_patients, seed):
    """A run whose held-out predictions separate bleeds imperfectly, n patients x 8 slices."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), 8)
    y = (rng.random(len(patients)) < 0.3).astype(float)[:, None]
    p = np.clip(0.3 * y + rng.normal(0.4, 0.2, y.shape), 0.01, 0.99)
    with make_tracker(uri, "ich-ray/binary-any", name, rank=0) as tracker:
        tracker.log_params({"arch": "resnet18", "task": "binary", "epochs": 1})
        from ich_ray.metrics import compute_metrics

        tracker.log_metrics(compute_metrics(y, p, ["any"]), step=0)
        ids = {"uid_hash": np.arange(len(y)), "study_hash": patients, "patient_hash": patients}
        log_predictions(tracker, predictions_frame(y, p, ["any"], ids, epoch=0))


def test_intervals_from_logged_predictions_contain_the_estimate_and_narrow_with_patients(tracking_uri, capsys):
    _run_with_predictions(tracking_uri, "few-patients", 8, seed=1)
    _run_with_predictions(tracking_uri, "many-patients", 80, seed=2)
    rows = {r["run_name"]: r for r in compare_runs(tracking_uri, ["ich-ray/binary-any"]).iter_rows(named=True)}
    for row in rows.values():
        assert row["auc_any_lo"] <= row["auc_any"] <= row["auc_any_hi"]
        assert row["logloss_weighted_lo"] <= row["logloss_weighted"] <= row["logloss_weighted_hi"]
    assert (rows["few-patients"]["n_patients"], rows["many-patients"]["n_patients"]) == (8, 80)
    width = {name: r["auc_any_hi"] - r["auc_any_lo"] for name, r in rows.items()}
    assert width["few-patients"] > width["many-patients"]
    assert main(["compare", "--tracking-uri", tracking_uri, "--out", str(tracking_uri.split("///")[1] + "-cmp"),
                 "--experiment", "ich-ray/binary-any"]) == 0
    out = capsys.readouterr().out
    assert "auc_any_lo" in out and "Values of the final epoch" in out
