"""The cluster configs parse and say what they must: token auth, the pipelines/ jobs, the schedules."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
CRON_FIELD = r"(\*|\d+)(/\d+)?"


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def by_kind(path: Path, kind: str) -> dict:
    (doc,) = [d for d in load_all(path) if d.get("kind") == kind]
    return doc


@pytest.mark.parametrize(
    "path", sorted([*CLUSTER.rglob("*.yaml"), REPO / "pipelines" / "runtime_env.yaml"]), ids=lambda p: p.name
)
def test_every_yaml_file_parses(path):
    assert load_all(path), f"{path} is empty"


def test_launcher_yaml_installs_the_project_and_starts_every_node_with_token_auth():
    cfg = yaml.safe_load((CLUSTER / "ray-aws.yaml").read_text())
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cfg, key
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert any("pip install" in c and "ich-ray" in c for c in cfg["setup_commands"])
    assert any("auth_token" in c for c in cfg["setup_commands"])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in cfg[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), key
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])


def _containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_raycluster_has_token_auth_and_a_head_and_workers():
    rc = by_kind(CLUSTER / "kuberay" / "raycluster.yaml", "RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    spec = rc["spec"]
    assert spec["authOptions"]["mode"] == "token"
    assert tuple(int(x) for x in spec["rayVersion"].split(".")[:2]) >= (2, 52)  # token auth needs Ray 2.52+
    assert spec["workerGroupSpecs"]
    assert all(c["image"] for c in _containers(spec))


def test_rayjob_trains_with_the_pipelines_script_on_a_token_auth_cluster():
    job = by_kind(CLUSTER / "kuberay" / "rayjob-train.yaml", "RayJob")
    spec = job["spec"]
    assert "pipelines/train.py" in spec["entrypoint"]
    assert "--arch" in spec["entrypoint"] and "--task" in spec["entrypoint"]
    assert spec["rayClusterSpec"]["authOptions"]["mode"] == "token"
    assert "MLFLOW_TRACKING_URI" in yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]


def _valid_cron(expr: str) -> bool:
    fields = expr.split()
    return len(fields) == 5 and all(re.fullmatch(CRON_FIELD, f) for f in fields)


def test_raycronjob_schedules_the_reprocess_job():
    cron = by_kind(CLUSTER / "kuberay" / "raycronjob-reprocess.yaml", "RayCronJob")
    assert cron["apiVersion"] == "ray.io/v1"
    assert _valid_cron(cron["spec"]["schedule"])
    template = cron["spec"]["jobTemplate"]
    assert "pipelines/reprocess.py" in template["entrypoint"]
    assert template.get("clusterSelector") or template.get("rayClusterSpec")


def test_kubernetes_cronjob_submits_with_a_dated_id_and_never_overlaps():
    cron = by_kind(CLUSTER / "kuberay" / "cronjob-reprocess.yaml", "CronJob")
    assert cron["apiVersion"] == "batch/v1"
    assert _valid_cron(cron["spec"]["schedule"])
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert "pipelines/submit_reprocess.sh" in container["command"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]


def test_crontab_line_calls_the_dated_submit_script():
    lines = [ln for ln in (CLUSTER / "schedule" / "crontab").read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]]
    (line,) = lines
    assert _valid_cron(" ".join(line.split()[:5]))
    assert "pipelines/submit_reprocess.sh" in line


def test_systemd_timer_starts_the_service_that_submits():
    timer = configparser.ConfigParser(strict=False)
    timer.read(CLUSTER / "schedule" / "ich-ray-reprocess.timer")
    assert timer["Timer"]["OnCalendar"]
    assert timer["Timer"]["Unit"] == "ich-ray-reprocess.service"
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(CLUSTER / "schedule" / "ich-ray-reprocess.service")
    assert service["Service"]["Type"] == "oneshot"
    assert "submit_reprocess.sh" in service["Service"]["ExecStart"]


def test_submit_script_uses_a_dated_submission_id():
    env = {**os.environ, "RAY_ADDRESS": "http://127.0.0.1:8265"}
    out = subprocess.run(["bash", str(REPO / "pipelines" / "submit_reprocess.sh"), "--dry-run", "--input", "/in",
                          "--data", "/root"], env=env, capture_output=True, text=True, check=True).stdout
    assert re.search(r"--submission-id reprocess-\d{8}-\d{2} ", out), out
    assert out.rstrip().endswith("-- python pipelines/reprocess.py --input /in --data /root")
    missing = subprocess.run(["bash", str(REPO / "pipelines" / "submit_reprocess.sh"), "--input", "/in"],
                             env={k: v for k, v in env.items() if k != "RAY_ADDRESS"}, capture_output=True, text=True)
    assert missing.returncode == 2 and "RAY_ADDRESS" in missing.stderr


def test_runtime_env_ships_the_job_scripts_and_leaves_the_package_to_the_nodes():
    from ray._private.runtime_env.packaging import _get_excludes

    env = yaml.safe_load((REPO / "pipelines" / "runtime_env.yaml").read_text())
    assert env["env_vars"]["RAY_AUTH_MODE"] == "token"
    assert "MLFLOW_TRACKING_URI" in env["env_vars"]
    excluded = _get_excludes(REPO, env["excludes"])
    for kept in ("pipelines/preprocess.py", "pipelines/_cluster_job.py", "pipelines/runtime_env.yaml"):
        assert not excluded(REPO / kept), kept
    # ich_ray/ comes from the nodes' installation; the anchored /data/ must not be what drops it
    assert "/ich_ray/" in env["excludes"] and "data/" not in env["excludes"]
    for dropped in ("ich_ray/__init__.py", ".venv/bin/python", "data/x.dcm", "demo-data/metadata/a.parquet", "mlflow.db"):
        assert excluded(REPO / dropped), dropped


@pytest.mark.parametrize("script", ["cluster/local.sh", "pipelines/submit_reprocess.sh"])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(REPO / script)], check=True)


def test_local_sh_rejects_unknown_commands_and_options(tmp_path):
    env = {**os.environ, "ICH_RAY_CLUSTER_DIR": str(tmp_path)}
    bad = subprocess.run(["bash", str(CLUSTER / "local.sh"), "sideways"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "up" in bad.stderr
    opt = subprocess.run(["bash", str(CLUSTER / "local.sh"), "up", "--wrokers", "2"], env=env, capture_output=True,
                         text=True)
    assert opt.returncode == 1 and "--wrokers" in opt.stderr
    status = subprocess.run(["bash", str(CLUSTER / "local.sh"), "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 1 and "no cluster" in status.stdout
