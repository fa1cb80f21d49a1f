"""End to end on a real two-node Ray cluster (cluster/local.sh, token auth), driven by `ray job submit`.

preprocess.py on 3 synthetic patients at 64 px, a one-epoch train.py tracked on a real MLflow server, and
reprocess.py twice with new files added between. Everything talks to the cluster from subprocesses: the
test process's own embedded Ray (RAY_AUTH_MODE=disabled) is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import local_cluster as lc
import polars as pl
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    port = lc.free_port()
    home = tmp_path_factory.mktemp("mlflow")
    proc = subprocess.Popen(["bash", str(lc.REPO / "mlflow" / "server.sh"), "--home", str(home), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start")
    yield uri
    proc.terminate()
    proc.wait(30)


def read_table(root: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(root / name / "*.parquet")


def n_inputs(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


@pytest.mark.timeout(1200)
def test_preprocess_job_runs_on_both_nodes_and_writes_every_table(cluster, synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("root") / "data"
    job = cluster.submit("pipelines/preprocess.py", "--input", str(synth / "dicom"), "--out", str(root),
                         "--labels", str(synth / "labels.csv"), "--size", "64")
    assert job.returncode == 0, job.output[-5000:]
    nodes = lc.nodes_with(job, "metadata")
    print(f"\npreprocess {job.submission_id}: metadata tasks per node "
          f"{ {n[:8]: sum(w['tasks'].values()) for n, w in job.evidence()['metadata'].items()} }")
    assert len(nodes) == 2, job.evidence()  # the head and the worker both parsed files
    assert lc.nodes_with(job, "clean")

    metadata = read_table(root, "metadata")
    assert metadata.height == n_inputs(synth / "dicom")  # one row per input file, whatever its fate
    assert metadata["path"].n_unique() == metadata.height
    ok = metadata.filter(pl.col("status") == "ok").height
    images = read_table(root, "images")
    quarantine = read_table(root, "quarantine")
    assert 0 < images.height <= ok
    assert images["sop_instance_uid"].n_unique() == images.height
    assert set(images["height"].unique()) == {64}
    assert quarantine.filter(pl.col("stage") == "metadata").height == metadata.height - ok


@pytest.mark.timeout(1500)
def test_train_job_tracks_to_the_mlflow_server(cluster, synth, mlflow_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-root") / "data"
    prep = cluster.submit("pipelines/preprocess.py", "--input", str(synth / "dicom"), "--out", str(root),
                          "--labels", str(synth / "labels.csv"), "--size", "64")
    assert prep.returncode == 0, prep.output[-5000:]
    job = cluster.submit("pipelines/train.py", "--data", str(root), "--arch", "resnet18", "--task", "binary",
                         "--epochs", "1", "--size", "64", "--workers", "2", "--run-name", "e2e-cluster",
                         "--set", "split=random", "--set", "valid_fraction=0.3",
                         "--tracking-uri", mlflow_server)
    assert job.returncode == 0, job.output[-5000:]
    workers = job.evidence()["train"]
    print(f"\ntrain {job.submission_id}: actors per node { {n[:8]: w['actors'] for n, w in workers.items()} }")
    assert sum(w["actors"].get("RayTrainWorker", 0) for w in workers.values()) == 2

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("ich-ray/binary-any")
    (run,) = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'e2e-cluster'")
    assert run.info.status == "FINISHED"
    assert "valid_loss" in run.data.metrics


@pytest.mark.timeout(1500)
def test_reprocess_job_processes_only_the_new_files(cluster, synth, tmp_path_factory):
    base = tmp_path_factory.mktemp("incremental")
    inputs, root = base / "input", base / "data"
    shutil.copytree(synth / "dicom", inputs / "batch-1")
    first = cluster.submit("pipelines/reprocess.py", "--input", str(inputs), "--data", str(root), "--size", "64")
    assert first.returncode == 0, first.output[-5000:]
    n_first = n_inputs(inputs)
    assert f"reprocess: {n_first} new, 0 changed, 0 unchanged" in first.output

    extra = base / "extra"
    lc.run_cli("synth", "--out", str(extra), "--patients", "1", "--size", "64", "--seed", "7", "--no-malformed")
    shutil.copytree(extra / "dicom", inputs / "batch-2")
    n_new = n_inputs(inputs / "batch-2")
    second = cluster.submit("pipelines/reprocess.py", "--input", str(inputs), "--data", str(root), "--size", "64")
    assert second.returncode == 0, second.output[-5000:]
    assert f"reprocess: {n_new} new, 0 changed, {n_first} unchanged" in second.output
    parsed = sum(n for work in second.evidence()["reprocess"].values() for n in work["tasks"].values())
    print(f"\nreprocess: run 1 parsed {n_first} files, run 2 {n_new} new of {n_first + n_new}; "
          f"run 2 ran {parsed} tasks on {len(second.evidence()['reprocess'])} nodes")

    metadata = read_table(root, "metadata")
    assert metadata.height == n_first + n_new
    assert metadata["path"].n_unique() == metadata.height
    assert metadata.filter(pl.col("path").str.contains("batch-2")).height == n_new
