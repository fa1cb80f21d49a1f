"""Both stages end to end: synthetic DICOM -> metadata -> clean -> a registered slice model -> a registered
study model over its embeddings, tracked in MLflow."""

from __future__ import annotations

import polars as pl
import pytest

from ich_ray.cli.main import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def slice_model(tmp_path_factory, ray_session):
    work = tmp_path_factory.mktemp("study")
    root, uri = work / "root", f"sqlite:///{work / 'mlflow.db'}"
    for argv in (["synth", "--out", str(work / "synth"), "--patients", "6", "--size", "64", "--seed", "3"],
                 ["metadata", "--input", str(work / "synth" / "dicom"), "--labels", str(work / "synth" / "labels.csv"),
                  "--out", str(root)],
                 ["clean", "--data", str(root), "--size", "64"],
                 ["train", "--data", str(root), "--arch", "resnet18", "--task", "multilabel", "--epochs", "1",
                  "--workers", "1", "--tracking-uri", uri, "--register-as", "ich-slice-test",
                  "--set", "valid_fraction=0.25", "--set", "batch_size=16"]):
        assert main(argv) == 0, argv
    return root, uri


@pytest.mark.timeout(900)
def test_train_study_tracks_registers_and_scores_every_held_out_slice(slice_model, capsys):
    from mlflow import MlflowClient

    from ich_ray.tracking.predictions import load_predictions

    root, uri = slice_model
    argv = ["train-study", "--data", str(root), "--slice-model", "models:/ich-slice-test/latest", "--arch", "bigru",
            "--epochs", "3", "--workers", "1", "--tracking-uri", uri, "--register-as", "ich-study-test",
            "--set", "valid_fraction=0.25"]
    assert main(argv) == 0
    assert "checkpoint=" in capsys.readouterr().out
    embeddings = pl.read_parquet(next((root / "embeddings").iterdir()))
    images = pl.read_parquet(root / "images")
    assert embeddings.height == images.height and embeddings["embedding"].dtype.size == 512

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ich-ray/study").experiment_id])
    for name in ("train_loss", "valid_loss", "auc_any", "study_auc_any", "logloss_weighted"):
        assert len(client.get_metric_history(run.info.run_id, name)) == 3, name
    held_out = load_predictions(client, run.info.run_id)
    assert held_out.height == int(run.data.params["n_valid"]) and held_out["uid_hash"].is_unique().all()
    slice_run = client.get_model_version("ich-slice-test", "1").run_id
    slice_held_out = load_predictions(client, slice_run)
    # the same held-out slices as the slice model: neither stage trained on them
    assert set(held_out["uid_hash"].to_list()) == set(slice_held_out["uid_hash"].to_list())
    assert run.data.tags["slice_model"] == "models:/ich-slice-test/latest"
    assert client.get_latest_versions("ich-study-test")


def test_a_different_split_is_refused(slice_model, capsys):
    root, uri = slice_model
    argv = ["train-study", "--data", str(root), "--slice-model", "models:/ich-slice-test/latest", "--epochs", "1",
            "--tracking-uri", uri, "--set", "valid_fraction=0.5", "--run-name", "refused"]
    assert main(argv) == 1
    assert "was validated on" in capsys.readouterr().err


def test_stacking_on_the_slice_models_own_data_is_refused(slice_model, capsys):
    root, uri = slice_model
    argv = ["train-study", "--data", str(root), "--slice-model", "models:/ich-slice-test/latest", "--stacking",
            "--epochs", "1", "--tracking-uri", uri, "--run-name", "refused-stacking"]
    assert main(argv) == 1
    assert "a stacking root holds only patients the slice model never saw" in capsys.readouterr().err


@pytest.mark.timeout(900)
def test_a_stacking_root_of_new_patients_trains_on_the_slice_models_own_logits(slice_model, tmp_path):
    from mlflow import MlflowClient

    _, uri = slice_model
    synth, stack = tmp_path / "synth", tmp_path / "stack"
    for argv in (["synth", "--out", str(synth), "--patients", "5", "--size", "64", "--seed", "11"],
                 ["metadata", "--input", str(synth / "dicom"), "--labels", str(synth / "labels.csv"), "--out", str(stack)],
                 ["clean", "--data", str(stack), "--size", "64"]):
        assert main(argv) == 0, argv
    argv = ["train-study", "--data", str(stack), "--slice-model", "models:/ich-slice-test/latest", "--stacking",
            "--epochs", "1", "--workers", "1", "--tracking-uri", uri, "--run-name", "study-stacking"]
    assert main(argv) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ich-ray/study").experiment_id
    (run,) = client.search_runs([experiment], "tags.mlflow.runName = 'study-stacking'")
    assert (run.data.tags["training_features"], run.data.tags["features"]) == ("stacking", "logits")
    assert int(run.data.params["embedding_dim"]) == 6  # the six logits of the slice model


@pytest.mark.timeout(900)
def test_predict_with_the_study_model_and_labels_keeps_blank_slices_out_of_the_triage(slice_model, tmp_path):
    import json

    root, uri = slice_model
    synth = root.parent / "synth"
    out = tmp_path / "predict"
    assert main(["predict", "--model", "models:/ich-slice-test/latest", "--study-model",
                 "models:/ich-study-test/latest", "--input", str(synth / "dicom"), "--out", str(out),
                 "--tracking-uri", uri, "--labels", str(synth / "labels.csv"), "--threshold", "0.0"]) == 0
    predictions = pl.read_parquet(out / "predictions.parquet")
    blank = predictions.filter(pl.col("blank"))
    assert blank.height > 0 and (blank["prob_any"] == 0.001).all()  # the generator writes slices above the head
    worklist = pl.read_csv(out / "worklist.csv")
    tops = set(worklist["top_sop_instance_uid"].drop_nulls().to_list())
    assert tops and not tops & set(blank["sop_instance_uid"].to_list())
    # every flagged study (threshold 0: all) has one heat map, drawn from its non-blank slices only
    assert len(list((out / "heatmaps").glob("*.png"))) == worklist.filter(pl.col("n_slices") > pl.col("n_blank")).height
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_labelled"] == predictions.height
    assert {"auc_any", "logloss_weighted"} <= set(metrics["slice"]) and "auc_any" in metrics["study"]
    summary = (out / "summary.md").read_text()
    assert "study model: `models:/ich-study-test/latest`" in summary and "Against the labels" in summary


@pytest.mark.timeout(900)
def test_out_of_fold_models_give_the_training_logits_and_predict_refines_them(slice_model, tmp_path):
    """Two fold models (each trained without one fold of the training patients) provide the study model's
    training features; it reads logits, so predict feeds it the slice model's own probabilities."""
    from mlflow import MlflowClient

    root, uri = slice_model
    for fold in range(2):
        assert main(["train", "--data", str(root), "--arch", "resnet18", "--task", "multilabel", "--epochs", "1",
                     "--workers", "1", "--tracking-uri", uri, "--register-as", f"ich-slice-fold{fold}",
                     "--set", "valid_fraction=0.25", "--set", "batch_size=16", "--set", f"fold={fold}"]) == 0
    client = MlflowClient(uri)
    runs = {r.data.tags.get("mlflow.runName"): r for r in client.search_runs(
        [client.get_experiment_by_name("ich-ray/multilabel").experiment_id])}
    n_train = {name: int(run.data.params["n_train"]) for name, run in runs.items()}
    full = n_train["resnet18-multilabel"]
    assert n_train["resnet18-multilabel-fold0of2"] + n_train["resnet18-multilabel-fold1of2"] == full

    assert main(["train-study", "--data", str(root), "--slice-model", "models:/ich-slice-test/latest",
                 "--oof-models", "models:/ich-slice-fold0/latest", "models:/ich-slice-fold1/latest",
                 "--epochs", "2", "--workers", "1", "--tracking-uri", uri, "--register-as", "ich-study-oof",
                 "--run-name", "study-oof", "--set", "valid_fraction=0.25"]) == 0
    (run,) = client.search_runs([client.get_experiment_by_name("ich-ray/study").experiment_id],
                                "tags.mlflow.runName = 'study-oof'")
    assert run.data.tags["features"] == "logits" and run.data.params["embedding_dim"] == "6"
    assert run.data.tags["oof_models"] == "models:/ich-slice-fold0/latest,models:/ich-slice-fold1/latest"

    out = tmp_path / "predict"
    assert main(["predict", "--model", "models:/ich-slice-test/latest", "--study-model", "models:/ich-study-oof/latest",
                 "--input", str(root.parent / "synth" / "dicom"), "--out", str(out), "--tracking-uri", uri]) == 0
    predictions = pl.read_parquet(out / "predictions.parquet")
    kept = predictions.filter(~pl.col("blank"))
    assert kept.height > 0 and kept["prob_any"].is_between(0, 1).all()
    assert (predictions.filter(pl.col("blank"))["prob_any"] == 0.001).all()
