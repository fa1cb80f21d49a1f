"""`ich-ray predict` end to end on the shared local Ray: a model trained and registered by `ich-ray train` on
synthetic DICOM (2.5D, 9 channels), the real GE series and a synthetic set with known bleeds and malformed files.
"""

from __future__ import annotations

import os

import polars as pl
import pytest
import torch
from PIL import Image

from ich_ray.cli.main import main
from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.labels import LABELS
from ich_ray.models.checkpoint import CHECKPOINT_FILE
from ich_ray.models.loading import model_metadata
from ich_ray.models.registry import create_model, get_spec

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]
RECIPE = CleanRecipe(windows=("brain", "subdural", "bone"), size=64, context=True)


def _metadata(labels) -> dict:
    mean, std = get_spec("resnet18").normalization(RECIPE.channels)
    return model_metadata("resnet18", "multilabel", labels, RECIPE.to_json(), RECIPE.channels, 64, mean, std)


@pytest.fixture(scope="module")
def registered(ray_session, tmp_path_factory):
    """Synthetic DICOM -> metadata -> clean (2.5D, 64 px) -> one epoch of multilabel ResNet18, registered as
    `ich-test` in a fresh MLflow store; returns the tracking URI."""
    from ich_ray.synthetic.generate import generate_dataset

    base = tmp_path_factory.mktemp("trained")
    synth = generate_dataset(base / "synth", patients=4, size=64, seed=3)
    root, uri = base / "root", f"sqlite:///{base / 'mlflow.db'}"
    assert main(["metadata", "--input", str(synth.dicom_dir), "--out", str(root), "--labels", str(synth.labels_csv)]) == 0
    assert main(["clean", "--data", str(root), "--size", "64", "--context"]) == 0
    assert main(["train", "--data", str(root), "--arch", "resnet18", "--task", "multilabel", "--epochs", "1",
                 "--size", "64", "--workers", "1", "--tracking-uri", uri, "--register-as", "ich-test",
                 "--set", f"storage_path={base / 'runs'}", "--set", "batch_size=16"]) == 0
    return uri


def _predict(out, input_dir, uri, *extra) -> dict[str, pl.DataFrame]:
    argv = ["predict", "--model", "models:/ich-test/latest", "--tracking-uri", uri, "--input", str(input_dir),
            "--out", str(out), "--threshold", "0", "--actors", "2", "--batch-size", "8", *extra]
    assert main(argv) == 0
    return {name: pl.read_csv(out / f"{name}.csv", infer_schema_length=0)
            for name in ("predictions", "submission", "worklist", "failures")}


def _check_common(out, tables) -> None:
    preds, sub, worklist = tables["predictions"], tables["submission"], tables["worklist"]
    assert sub.height == 6 * preds.height
    expected = [f"ID_{sop.removeprefix('ID_')}_{name}" for sop in preds["sop_instance_uid"] for name in LABELS]
    assert sub["ID"].to_list() == expected
    assert sub["Label"].cast(pl.Float64).is_between(0, 1).all()
    max_any = worklist.filter(pl.col("n_slices").cast(pl.Int64) > 0)["max_any"].cast(pl.Float64).to_list()
    assert max_any == sorted(max_any, reverse=True)
    assert (worklist["flagged"] == "true").all()  # threshold 0
    pngs = sorted((out / "heatmaps").glob("*.png"))
    assert len(pngs) == worklist.filter(pl.col("n_slices").cast(pl.Int64) > 0).height
    for png in pngs:
        with Image.open(png) as img:
            img.verify()
    assert "heatmaps/" in (out / "summary.md").read_text()


def test_predict_real_ge_series(ray_session, registered, real_ct_dir, tmp_path):
    tables = _predict(tmp_path / "out", real_ct_dir, registered, "--smooth")
    preds = tables["predictions"]
    assert preds.height == 28 and tables["failures"].height == 0
    assert sorted(preds["slice_index"].cast(pl.Int64).to_list()) == list(range(28))
    assert tables["worklist"].height == 1 and tables["worklist"]["n_slices"].item() == "28"
    _check_common(tmp_path / "out", tables)


def test_predict_synthetic_set_lists_malformed_files(ray_session, registered, tmp_path):
    from ich_ray.synthetic.generate import generate_dataset

    synth = generate_dataset(tmp_path / "synth", patients=3, size=64, seed=0)
    tables = _predict(tmp_path / "out", synth.dicom_dir, registered)
    failed = set(tables["failures"]["path"].to_list())
    assert {str(p) for p in synth.malformed_files.values()} <= {str(p) for p in failed} | _predicted(tables)
    assert tables["predictions"].height + tables["failures"].height == synth.n_files
    studies = {p.parent.parent.name for p in synth.dicom_dir.glob("*/*/*/*") if p.is_file()}
    assert studies <= set(tables["worklist"]["study_instance_uid"].to_list())
    _check_common(tmp_path / "out", tables)


def _predicted(tables) -> set[str]:
    return set(tables["predictions"]["path"].to_list())


def test_binary_checkpoint_writes_any_rows_only(ray_session, real_ct_dir, tmp_path):
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    torch.save({"metadata": _metadata(["any"]), "model": create_model("resnet18", 1, RECIPE.channels).state_dict()},
               ckpt / CHECKPOINT_FILE)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(ckpt), "--input", str(real_ct_dir), "--out", str(out)]) == 0
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds["prob_epidural"].null_count() == 28 and preds["prob_any"].null_count() == 0
    sub = pl.read_csv(out / "submission.csv")
    assert sub.height == 28 and sub["ID"].str.ends_with("_any").all()
    assert "any` rows only" in (out / "summary.md").read_text()


def test_mismatched_model_is_refused(real_ct_dir, tmp_path, capsys):
    ckpt = tmp_path / CHECKPOINT_FILE
    bad = {**_metadata(LABELS), "in_channels": 3}
    torch.save({"metadata": bad, "model": {}}, ckpt)
    assert main(["predict", "--model", str(ckpt), "--input", str(real_ct_dir), "--out", str(tmp_path / "o")]) == 1
    assert "takes 3 input channels but its recipe makes 9" in capsys.readouterr().err


def test_a_few_studies_are_predicted_in_this_process_without_starting_ray(real_ct_dir, tmp_path):
    import subprocess
    import sys

    from ich_ray.models.checkpoint import CHECKPOINT_FILE

    recipe = CleanRecipe(size=32)
    mean, std = get_spec("resnet18").normalization(recipe.channels)
    metadata = model_metadata("resnet18", "multilabel", LABELS, recipe.to_json(), recipe.channels, 32, mean, std)
    (tmp_path / "ckpt").mkdir()
    torch.save({"metadata": metadata, "model": create_model("resnet18", len(LABELS), recipe.channels).state_dict()},
               tmp_path / "ckpt" / CHECKPOINT_FILE)
    script = (
        "import sys, ray\n"
        "from ich_ray.predict.run import PredictConfig, run_predict\n"
        "s = run_predict(PredictConfig(model=sys.argv[1], input=sys.argv[2], out=sys.argv[3]))\n"
        "print(s.slices, s.failed, ray.is_initialized())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ckpt"), str(real_ct_dir), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["28", "0", "False"]
    assert pl.read_csv(tmp_path / "out" / "predictions.csv").height == 28
