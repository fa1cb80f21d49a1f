"""Issue 5 end to end: a real `mlflow server`, runs tracked against it, `ich-ray compare`, the UI in Chromium.

Two tests share one server on SQLite (module fixture):
- the tracker alone (runs, metrics, proxied artifacts, a registered model) against the server;
- the whole CLI pipeline: synth -> metadata -> clean -> train x 2 architectures + baseline -> compare.
A third runs the team set-up of mlflow/README.md: the server on a real PostgreSQL (started by the fixture),
two one-epoch trainings registering a model, the champion alias, `compare`.
Screenshots of the UI go to test-artifacts/ (git-ignored) and the test's tmp folder.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch
from mlflow import MlflowClient

from ich_ray.cli.main import main
from ich_ray.labels import LABELS
from ich_ray.tracking import plots
from ich_ray.tracking.registry import promote_best
from ich_ray.tracking.tracker import make_tracker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAIN_ARCHS = ("resnet18", "alexnet")
EPOCHS = 2
# 3 synthetic patients: a patient-level split can leave the validation set with one class, and so does a random
# 20% of slices for the baseline (checked: 0 positives of 16); 30% holds positives for the baseline and the CNNs.
SPLIT = ["--set", "split=random", "--set", "valid_fraction=0.3"]
MODEL_NAME = "ich-ray-e2e-binary"


def _check_ui(render_page, server, experiment: str, run_names: list[str], shot_name: str) -> None:
    """Every run name is in the rendered run table; the screenshot is kept as a test artifact."""
    experiment_id = MlflowClient(server.uri).get_experiment_by_name(experiment).experiment_id
    dom = render_page(server.runs_page(experiment_id), shot_name)
    assert "Run Name" in dom, "the MLflow UI did not render its run table"
    missing = [name for name in run_names if name not in dom]
    assert not missing, f"run names {missing} not in the rendered MLflow UI (screenshot: test-artifacts/{shot_name})"


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 1)).eval()


@pytest.mark.timeout(900)
def test_tracker_against_server_compare_and_ui(mlflow_server, render_page, tmp_path, monkeypatch):
    uri, experiment = mlflow_server.uri, "ich-ray-e2e/binary-any"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    names = ["resnet18-64-tracker", "densenet121-64-tracker"]
    model_uris = {}
    for name, auc in zip(names, (0.71, 0.83), strict=True):
        with make_tracker(uri, experiment, name, rank=0) as tracker:
            tracker.log_params({"arch": name.split("-")[0], "task": "binary", "epochs": EPOCHS, "size": 64})
            for epoch in range(EPOCHS):
                tracker.log_metrics({"train_loss": 1.0 / (epoch + 1), "valid_loss": 1.1 / (epoch + 1),
                                     "accuracy": 0.6 + 0.1 * epoch, "auc_any": auc - 0.1 * (1 - epoch),
                                     "epoch_time_s": 5.0, "images_per_s": 40.0}, step=epoch)
            tracker.log_figure(plots.loss_curves([{"train_loss": 1.0, "valid_loss": 1.1},
                                                  {"train_loss": 0.5, "valid_loss": 0.55}]), "loss_curves")
            model_uris[tracker.run_id] = tracker.log_model(
                _tiny_model(), metadata={"arch": "tiny", "labels": ["any"]}, registered_model_name="ich-ray-e2e")

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    assert {m.model_uri for m in client.search_logged_models([experiment_id])} == set(model_uris.values())
    for run_id, model_uri in model_uris.items():
        assert [m.step for m in client.get_metric_history(run_id, "accuracy")] == list(range(EPOCHS))
        assert [a.path for a in client.list_artifacts(run_id)] == ["loss_curves.png"]
        import mlflow.pytorch

        loaded = mlflow.pytorch.load_model(model_uri)
        x = torch.rand(1, 3, 16, 16)
        torch.testing.assert_close(loaded(x), _tiny_model()(x))
    # artifacts went through the server (--serve-artifacts) into its artifact folder, not a client path
    assert list((mlflow_server.home / "artifacts").rglob("loss_curves.png"))

    out = tmp_path / "compare"
    assert main(["compare", "--tracking-uri", uri, "--experiment", experiment, "--out", str(out)]) == 0
    table = pl.read_csv(out / "results.csv").sort("run_name")
    assert table["run_name"].to_list() == sorted(names)
    assert table["auc_any"].to_list() == [pytest.approx(0.83), pytest.approx(0.71)]

    _check_ui(render_page, mlflow_server, experiment, names, "mlflow-ui-tracker-runs.png")


def _prepare_data(tmp_path) -> str:
    synth, root = tmp_path / "synth", tmp_path / "root"
    assert main(["synth", "--out", str(synth), "--patients", "3", "--size", "64"]) == 0
    assert main(["metadata", "--input", str(synth / "dicom"), "--out", str(root),
                 "--labels", str(synth / "labels.csv")]) == 0
    assert main(["clean", "--data", str(root), "--size", "64"]) == 0
    return str(root)


def _train(root: str, uri: str, arch: str, epochs: int = EPOCHS) -> int:
    return main(["train", "--data", root, "--arch", arch, "--task", "binary", "--epochs", str(epochs),
                 "--size", "64", "--workers", "1", "--tracking-uri", uri, "--register-as", MODEL_NAME,
                 "--set", "batch_size=8", *SPLIT])


@pytest.mark.ray
@pytest.mark.timeout(2400)
def test_cli_pipeline_trains_two_archs_and_baseline_then_compares(
        mlflow_server, render_page, ray_session, tmp_path, monkeypatch):
    uri = mlflow_server.uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    root = _prepare_data(tmp_path)
    first = _train(root, uri, TRAIN_ARCHS[0])
    if first == 2:  # main() returns 2 only for a subcommand that is still a placeholder
        pytest.skip("`ich-ray train` is not built yet (issue #4)")
    assert first == 0
    assert _train(root, uri, TRAIN_ARCHS[1]) == 0
    assert main(["baseline", "--data", root, "--tracking-uri", uri, *SPLIT]) == 0

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ich-ray/binary-any")
    runs = client.search_runs([experiment.experiment_id])
    by_arch = {run.data.params.get("arch"): run for run in runs}
    assert set(TRAIN_ARCHS) <= set(by_arch), f"training runs by arch: {sorted(map(str, by_arch))}"
    for arch in TRAIN_ARCHS:
        run = by_arch[arch]
        assert run.info.status == "FINISHED"
        for metric in ("train_loss", "valid_loss", "accuracy", "auc_any", "lr", "images_per_s"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert len(steps) == EPOCHS and len(set(steps)) == EPOCHS, f"{arch} {metric}: steps {steps}"
        assert {"git_commit", "data_version", "ray_cluster_size"} <= set(run.data.tags)
        artifacts = _artifact_paths(client, run.info.run_id)
        assert any(path.endswith(".png") for path in artifacts), f"{arch}: no figures in {artifacts}"
        models = client.search_logged_models([experiment.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
        assert models, f"{arch}: no model logged by run {run.info.run_id}"
        _check_model_loads(models[0].model_uri)
    assert client.get_experiment_by_name("ich-ray/baseline") is not None

    champion = promote_best(uri, ["ich-ray/binary-any"], "auc_any", MODEL_NAME)
    best = max((by_arch[arch] for arch in TRAIN_ARCHS), key=lambda run: run.data.metrics["auc_any"])
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == champion.version
    assert champion.run_id == best.info.run_id

    out = tmp_path / "compare"
    assert main(["compare", "--tracking-uri", uri, "--out", str(out)]) == 0
    table = pl.read_csv(out / "results.csv")
    assert set(TRAIN_ARCHS) <= set(table["architecture"].drop_nulls().to_list())
    assert "ich-ray/baseline" in table["experiment"].to_list()
    assert (out / "results.md").read_text().count("|") > 10 and (out / "results.png").is_file()

    run_names = [by_arch[arch].info.run_name for arch in TRAIN_ARCHS]
    _check_ui(render_page, mlflow_server, "ich-ray/binary-any", run_names, "mlflow-ui-training-runs.png")


@pytest.mark.ray
@pytest.mark.timeout(1800)
def test_postgres_server_takes_two_trainings_a_registered_model_and_compare(
        postgres_mlflow_server, postgres, synth_dir, ray_session, tmp_path, monkeypatch):
    import psycopg2

    uri = postgres_mlflow_server.uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    root = str(tmp_path / "root")
    assert main(["metadata", "--input", str(synth_dir / "dicom"), "--out", root,
                 "--labels", str(synth_dir / "labels.csv")]) == 0
    assert main(["clean", "--data", root, "--size", "64"]) == 0
    for arch in TRAIN_ARCHS:
        assert _train(root, uri, arch, epochs=1) == 0

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ich-ray/binary-any")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.params["arch"] for run in runs) == sorted(TRAIN_ARCHS)
    assert {run.info.status for run in runs} == {"FINISHED"}
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert sorted(v.run_id for v in versions) == sorted(run.info.run_id for run in runs)
    champion = promote_best(uri, ["ich-ray/binary-any"], "auc_any", MODEL_NAME)
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == champion.version

    out = tmp_path / "compare"
    assert main(["compare", "--tracking-uri", uri, "--out", str(out)]) == 0
    table = pl.read_csv(out / "results.csv")
    assert sorted(table["architecture"].drop_nulls().to_list()) == sorted(TRAIN_ARCHS)

    # the rows are in PostgreSQL, not in a SQLite file the server fell back to
    assert not list(postgres_mlflow_server.home.glob("*.db"))
    with psycopg2.connect(postgres.dsn("mlflow")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'")
        assert cursor.fetchone()[0] == len(TRAIN_ARCHS)
        cursor.execute("SELECT count(*) FROM model_versions WHERE name = %s", (MODEL_NAME,))
        assert cursor.fetchone()[0] == len(TRAIN_ARCHS)
        cursor.execute("SELECT version FROM registered_model_aliases WHERE name = %s AND alias = 'champion'",
                       (MODEL_NAME,))
        assert str(cursor.fetchone()[0]) == str(champion.version)
    connection.close()


def _artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(_artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def _check_model_loads(model_uri: str) -> None:
    import mlflow.pytorch
    from mlflow.models import get_model_info

    metadata = get_model_info(model_uri).metadata
    assert {"arch", "task", "labels", "in_channels", "image_size", "normalization"} <= set(metadata)
    assert set(metadata["labels"]) <= set(LABELS)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu").eval()
    size = int(metadata["image_size"])
    with torch.no_grad():
        out = model(torch.rand(2, int(metadata["in_channels"]), size, size))
    assert out.shape == (2, len(metadata["labels"])), json.dumps(metadata)
