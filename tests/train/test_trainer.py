"""Training end to end through Ray Train V2 (2 CPU workers) and the errors that must come before any worker."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch

from ich_ray.cli.main import main
from ich_ray.models.registry import list_models

from .conftest import write_images_table

FAST = ["--size", "64", "--epochs", "2", "--workers", "2", "--set", "batch_size=8", "--set", "valid_fraction=0.25"]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """40 slices: 4 patients x 10, half bleed-positive."""
    return write_images_table(tmp_path_factory.mktemp("small"), patients=4, slices=10)


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    return capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--arch", "vgg16"], "unknown architecture 'vgg16'; valid architectures: alexnet, densenet121"),
    (["--set", "task=segmentation"], "unknown task 'segmentation'; valid tasks: binary, multilabel"),
    (["--arch", "alexnet", "--size", "32"], "alexnet needs inputs of at least 64 px; got size 32"),
    (["--set", "split=study"], "unknown split 'study'"),
    (["--set", "cache=sometimes"], "unknown cache mode 'sometimes'; valid: auto, always, never"),
    (["--set", "sizes=[64,128]"], "training sizes [64, 128] exceed the stored image size 64 px"),
])
def test_bad_config_fails_before_ray(capsys, small_root, extra, message):
    assert message in _error(capsys, ["train", "--data", str(small_root), "--set", "track=false", *extra])


def test_bad_data_fails_before_ray(capsys, tmp_path, small_root):
    assert "no images table" in _error(capsys, ["train", "--data", str(tmp_path), "--set", "track=false"])
    # a table without one subtype column cannot feed the six-label task
    lacking = tmp_path / "lacking"
    (lacking / "images").mkdir(parents=True)
    for part in (small_root / "images").glob("*.parquet"):
        pq.write_table(pq.read_table(part).drop(["label_subdural"]), lacking / "images" / part.name)
    err = _error(capsys, ["train", "--data", str(lacking), "--task", "multilabel", "--set", "track=false"])
    assert "lacks column(s) label_subdural" in err
    # only negatives: the split has one class
    negatives = tmp_path / "negatives"
    (negatives / "images").mkdir(parents=True)
    for part in (small_root / "images").glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.filter(table["label_any"].to_numpy() == 0), negatives / "images" / part.name)
    assert "single class" in _error(capsys, ["train", "--data", str(negatives), "--set", "track=false"])


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_tracks_checkpoints_and_resumes(ray_session, small_root, tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["train", "--data", str(small_root), "--arch", "resnet18", *FAST, "--run-name", "r18-test",
            "--tracking-uri", uri, "--register-as", "ich-r18-test", "--set", f"storage_path={tmp_path / 'runs'}"]
    assert main(argv) == 0
    assert "checkpoint=" in capsys.readouterr().out
    run_dir = tmp_path / "runs" / "r18-test"
    assert sorted(p.name for p in run_dir.glob("epoch-*")) == ["epoch-0000", "epoch-0001"]
    state = torch.load(run_dir / "epoch-0001" / "checkpoint.pt", weights_only=False)
    meta = state["metadata"]
    assert meta["arch"] == "resnet18" and meta["labels"] == ["any"] and meta["in_channels"] == 3
    assert meta["image_size"] == 64 and len(meta["normalization"]["mean"]) == 3
    assert json.loads(meta["recipe"])["size"] == 64

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ich-ray/binary-any").experiment_id])
    for name in ("train_loss", "valid_loss", "error_rate", "accuracy", "accuracy_multi", "auc_any",
                 "logloss_weighted", "study_auc_any", "lr", "images_per_s", "epoch_time_s"):
        assert len(client.get_metric_history(run.info.run_id, name)) == 2, name
    assert run.data.params["arch"] == "resnet18" and run.data.tags["arch"] == "resnet18"
    assert {"data_version", "git_commit", "ray_cluster_size"} <= set(run.data.tags)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"loss_curves.png", "roc_curves.png", "confusion_matrices.png", "prediction_grid.png",
            "validation_predictions.parquet"} <= artifacts
    from ich_ray.tracking.predictions import load_predictions

    held_out = load_predictions(client, run.info.run_id)
    assert held_out.height == int(run.data.params["n_valid"])  # every held-out slice, of the final epoch
    assert set(held_out["epoch"].to_list()) == {1} and held_out["patient_hash"].n_unique() >= 1
    assert client.get_latest_versions("ich-r18-test")

    # the same command again finds the run finished: nothing trained, no new checkpoint, no empty MLflow run
    assert main(argv) == 0
    assert f"checkpoint={run_dir / 'epoch-0001'}" in capsys.readouterr().out
    assert sorted(p.name for p in run_dir.glob("epoch-*")) == ["epoch-0000", "epoch-0001"]
    assert [r.info.run_id for r in client.search_runs([run.info.experiment_id])] == [run.info.run_id]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_same_seed_trains_the_same_model(ray_session, tmp_path):
    """Two DDP runs with one seed (2 workers, 2 epochs, 6 shards streamed in a seeded order, decoded by parallel
    tasks): the same losses to the last bit."""
    from ich_ray.train.config import TrainConfig
    from ich_ray.train.trainer import train

    root = write_images_table(tmp_path / "data", patients=4, slices=10, shards=6)

    def losses(name):
        result = train(TrainConfig(data=str(root), epochs=2, sizes=(64,), batch_size=8, workers=2,
                                   valid_fraction=0.25, track=False, storage_path=str(tmp_path), run_name=name,
                                   freeze_epochs=0, cache="never", seed=3))
        return result.metrics["train_loss"], result.metrics["valid_loss"]

    assert losses("first") == losses("again")


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_validation_gather_counts_every_slice_once(ray_session, small_root, tmp_path):
    """2 workers score uneven validation shards; the worker audits the gathered ids (count and uniqueness)."""
    from ich_ray.train.config import TrainConfig
    from ich_ray.train.trainer import train

    # 9 valid slices (odd: an equal split would have to drop one) with 2 workers
    result = train(TrainConfig(data=str(small_root), epochs=1, sizes=(64,), batch_size=4, workers=2, split="random",
                               valid_fraction=0.225, track=False, storage_path=str(tmp_path), freeze_epochs=0))
    assert result.n_valid == 9 and result.n_train == 31
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lr_find_saves_a_plot_and_suggests_an_lr(ray_session, small_root, tmp_path, capsys):
    argv = ["lr-find", "--data", str(small_root), "--size", "64", "--num-iter", "6", "--run-name", "lrf",
            "--set", "batch_size=8", "--set", "track=false", "--set", f"storage_path={tmp_path}"]
    assert main(argv) == 0
    assert "suggested_lr=" in capsys.readouterr().out
    assert (tmp_path / "lrf" / "lr_find.png").stat().st_size > 1000


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_trains_two_epochs_from_the_cli(ray_session, small_root, tmp_path, arch):
    task = "binary" if arch == "resnet18" else "multilabel"
    argv = ["train", "--data", str(small_root), "--arch", arch, "--task", task, *FAST, "--run-name", arch,
            "--set", "track=false", "--set", f"storage_path={tmp_path}"]
    assert main(argv) == 0
    assert (tmp_path / arch / "epoch-0001" / "checkpoint.pt").is_file()
    shutil.rmtree(tmp_path / arch)
