from __future__ import annotations

import logging
import re
import socket
import time

import matplotlib.pyplot as plt
import pytest
from mlflow import MlflowClient

from ich_ray.tracking.tracker import (
    MlflowTracker,
    NullTracker,
    flatten_params,
    make_tracker,
    scoped_tracking_uri,
    tracking_tags,
)
from ich_ray.tracking.uri import check_tracking_uri, default_tracking_uri, resolve_tracking_uri


def _figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig


def test_flatten_params_nests_lists_and_cuts_long_values():
    flat = flatten_params({"arch": "resnet18", "opt": {"lr": 0.01, "betas": [0.9, 0.99]},
                           "windows": ("brain", "bone"), "note": "x" * 7000})
    assert flat["arch"] == "resnet18"
    assert flat["opt.lr"] == "0.01"
    assert flat["opt.betas"] == "[0.9, 0.99]"
    assert flat["windows"] == '["brain", "bone"]'
    assert len(flat["note"]) == 6000


def test_null_tracker_does_nothing_and_consumes_figures(tmp_path):
    tracker = make_tracker(None, "ich-ray/binary-any", "r", rank=1)
    assert isinstance(tracker, NullTracker)
    fig = _figure()
    with tracker as t:
        t.log_params({"a": 1})
        t.set_tags({"b": 2})
        t.log_metrics({"train_loss": 1.0}, step=0)
        t.log_figure(fig, "f")
        t.log_dict({"a": 1}, "a.json")
        t.log_artifact(tmp_path / "missing.txt")
        assert t.log_model(object()) is None
    assert t.run_id is None
    assert not plt.fignum_exists(fig.number)
    assert not (tmp_path / "mlflow.db").exists()


def test_disabled_tracking_on_rank0_is_null(tmp_path):
    assert isinstance(make_tracker(None, "e", "r", rank=0, enabled=False), NullTracker)
    assert not (tmp_path / "mlflow.db").exists()


def test_metrics_one_value_per_step_params_tags(tracking_uri):
    with make_tracker(tracking_uri, "ich-ray/binary-any", "resnet18-64", rank=0) as tracker:
        assert isinstance(tracker, MlflowTracker)
        tracker.log_params({"arch": "resnet18", "epochs": 3, "train": {"lr": 0.001}})
        tracker.set_tags({"arch": "resnet18", "ray_cluster_size": 2})
        for epoch in range(3):
            tracker.log_metrics({"train_loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch,
                                 "skipped": None}, step=epoch)
    client = MlflowClient(tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "resnet18-64"
    assert run.data.params == {"arch": "resnet18", "epochs": "3", "train.lr": "0.001"}
    assert run.data.tags["ray_cluster_size"] == "2"
    history = client.get_metric_history(tracker.run_id, "accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "train_loss")] == [0, 1, 2]
    assert "skipped" not in run.data.metrics


def test_changed_param_warns_instead_of_failing(tracking_uri, caplog):
    tracker = make_tracker(tracking_uri, "e", "r", rank=0)
    tracker.log_params({"lr": 0.1})
    tracker.log_params({"lr": 0.1, "epochs": 2})
    with caplog.at_level(logging.WARNING):
        tracker.log_params({"lr": 0.2})
    tracker.end()
    assert "lr already logged" in caplog.text
    assert MlflowClient(tracking_uri).get_run(tracker.run_id).data.params == {"lr": "0.1", "epochs": "2"}


def test_figures_dicts_and_files_become_artifacts(tracking_uri, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "index.html").write_text("<html></html>")
    (tmp_path / "config.yaml").write_text("arch: resnet18\n")
    fig = _figure()
    with make_tracker(tracking_uri, "e", "r", rank=0) as tracker:
        tracker.log_figure(fig, "plots/loss_curves")
        tracker.log_dict({"arch": "resnet18"}, "config.json")
        tracker.log_artifact(tmp_path / "config.yaml")
        tracker.log_artifact(report, artifact_path="reports")
        with pytest.raises(FileNotFoundError, match="nope.txt"):
            tracker.log_artifact(tmp_path / "nope.txt")
    client = MlflowClient(tracking_uri)
    assert {a.path for a in client.list_artifacts(tracker.run_id)} == {
        "config.json", "config.yaml", "plots", "reports"}
    assert [a.path for a in client.list_artifacts(tracker.run_id, "plots")] == ["plots/loss_curves.png"]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "reports")] == ["reports/index.html"]
    assert not plt.fignum_exists(fig.number)


def test_unfinished_run_is_resumed_finished_one_is_not(tracking_uri):
    client = MlflowClient(tracking_uri)
    first = make_tracker(tracking_uri, "e", "resnet18", rank=0)
    first.log_metrics({"train_loss": 1.0}, step=0)
    with pytest.raises(RuntimeError), first:
        raise RuntimeError("worker died")
    assert client.get_run(first.run_id).info.status == "FAILED"

    resumed = make_tracker(tracking_uri, "e", "resnet18", rank=0)
    assert resumed.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "RUNNING"
    resumed.log_metrics({"train_loss": 0.5}, step=1)
    resumed.end()
    assert [m.step for m in client.get_metric_history(first.run_id, "train_loss")] == [0, 1]

    fresh = make_tracker(tracking_uri, "e", "resnet18", rank=0)
    assert fresh.run_id != first.run_id
    fresh.end()
    other = make_tracker(tracking_uri, "e", "resnet18", rank=0, resume=False)
    assert other.run_id not in (first.run_id, fresh.run_id)
    other.end()


def test_unreachable_server_fails_fast_naming_the_uri():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(ValueError, match=re.escape(uri)) as info:
        make_tracker(uri, "e", "r", rank=0)
    assert time.monotonic() - start < 5
    assert "cannot be reached" in str(info.value)


def test_check_tracking_uri_sqlite_and_file(tmp_path):
    check_tracking_uri(f"sqlite:///{tmp_path}/new/sub/mlflow.db")
    assert (tmp_path / "new" / "sub").is_dir()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create folder"):
        check_tracking_uri(f"sqlite:///{blocker}/mlflow.db")
    with pytest.raises(ValueError, match="file store"):
        check_tracking_uri(f"file://{tmp_path}/mlruns")


def test_resolve_tracking_uri_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        resolve_tracking_uri(None, None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_scoped_tracking_uri_leaves_the_process_as_it_found_it(tmp_path, monkeypatch):
    """Inside: MLflow's process-wide URI is ours. After: an environment-given URI is still only in the
    environment (it must not become a process-wide setting that outlives the variable)."""
    import mlflow

    env_uri, scoped = "http://127.0.0.1:5000", f"sqlite:///{tmp_path}/scoped.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    with scoped_tracking_uri(scoped):
        assert mlflow.get_tracking_uri() == scoped
    assert mlflow.get_tracking_uri() == env_uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert not mlflow.is_tracking_uri_set()
    with scoped_tracking_uri(scoped):
        pass
    assert not mlflow.is_tracking_uri_set()


def test_tracking_tags_track_code_and_data(tmp_path):
    tags = tracking_tags(tmp_path, cluster_size=3, arch="densenet121", task="multilabel")
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", tags["git_commit"])
    assert tags["mlflow.source.git.commit"] == tags["git_commit"]
    assert tags["data_version"] == "none"
    assert (tags["ray_cluster_size"], tags["arch"], tags["task"]) == ("3", "densenet121", "multilabel")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "part-0.parquet").write_bytes(b"x" * 10)
    v1 = tracking_tags(tmp_path, 1, "a", "t")["data_version"]
    assert v1 == tracking_tags(tmp_path, 1, "a", "t")["data_version"] != "none"
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "part-0.parquet").write_bytes(b"y")
    assert tracking_tags(tmp_path, 1, "a", "t")["data_version"] != v1


def test_log_report_logs_the_report_folder_in_explore(tracking_uri, tmp_path):
    from ich_ray.tracking.tracker import log_report

    reports = tmp_path / "root" / "reports"
    reports.mkdir(parents=True)
    (reports / "index.html").write_text("<html></html>")
    (reports / "ages.png").write_bytes(b"png")
    run_id = log_report(tracking_uri, tmp_path / "root")
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "ich-ray/explore"
    assert run.info.status == "FINISHED" and run.data.tags["task"] == "explore"
    assert sorted(a.path for a in client.list_artifacts(run_id, "reports")) == ["reports/ages.png", "reports/index.html"]
    with pytest.raises(FileNotFoundError, match="report folder not found"):
        log_report(tracking_uri, tmp_path / "nothing")


def test_both_trackers_satisfy_the_tracker_protocol(tracking_uri):
    from ich_ray.tracking.tracker import Tracker

    assert isinstance(NullTracker(), Tracker)
    with make_tracker(tracking_uri, "e", "protocol", rank=0) as tracker:
        assert isinstance(tracker, Tracker) and type(tracker).__name__ == "MlflowTracker"


def test_enabled_tracking_without_a_resolved_uri_is_a_driver_bug():
    with pytest.raises(ValueError, match="no tracking URI was resolved"):
        make_tracker(None, "e", "r", rank=0)
