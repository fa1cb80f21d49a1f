"""cluster/local.sh on this machine: a head + 1 worker with token auth; jobs; duplicate ids; a clean `down`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import local_cluster as lc
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


HELLO = """
import ray
ray.init()
@ray.remote(num_cpus=1)
def where(_):
    import time
    time.sleep(1)
    return ray.get_runtime_context().get_node_id()
nodes = sorted(set(ray.get([where.remote(i) for i in range(8)])))
print("HELLO_NODES", ",".join(nodes))
"""


def _submit_inline(cluster, code: str, env=None, submission_id=None) -> subprocess.CompletedProcess:
    cmd = [lc.RAY, "job", "submit", "--address", cluster.address, *(["--submission-id", submission_id] if submission_id else []),
           "--", "python", "-c", code]
    return subprocess.run(cmd, env=env or cluster.env, capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(900)
def test_status_lists_both_nodes_and_the_addresses(cluster):
    result = cluster.local_sh("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "head: running" in result.stdout and "worker-1: running" in result.stdout
    assert "alive nodes: 2" in result.stdout
    assert f"RAY_ADDRESS={cluster.address}" in result.stdout
    assert "RAY_AUTH_MODE=token" in result.stdout


@pytest.mark.timeout(900)
def test_a_job_with_the_token_runs_on_both_nodes_with_the_venv_python(cluster):
    code = HELLO + "import sys; print('HELLO_PYTHON', sys.executable)\n"
    result = _submit_inline(cluster, code)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("HELLO_NODES"))
    assert len(line.split()[1].split(",")) == 2, line  # tasks ran on the head and on the worker
    python = next(ln for ln in result.stdout.splitlines() if ln.startswith("HELLO_PYTHON")).split()[1]
    assert Path(python).parent == lc.BIN, python


@pytest.mark.timeout(300)
def test_a_client_without_the_token_is_refused(cluster, tmp_path):
    env = {k: v for k, v in cluster.env.items() if k not in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    result = _submit_inline(cluster, "print('should not run')", env=env)
    assert result.returncode != 0
    assert "token" in (result.stdout + result.stderr).lower()

    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 32)
    result = _submit_inline(cluster, "print('should not run')", env={**env, "RAY_AUTH_TOKEN_PATH": str(wrong)})
    assert result.returncode != 0
    assert "should not run" not in result.stdout


@pytest.mark.timeout(600)
def test_a_second_submission_with_the_same_id_is_refused(cluster):
    submission_id = f"reprocess-{time.strftime('%Y%m%d-%H')}-dup"
    first = _submit_inline(cluster, "print('first')", submission_id=submission_id)
    assert first.returncode == 0, first.stderr[-2000:]
    second = _submit_inline(cluster, "print('second')", submission_id=submission_id)
    assert second.returncode != 0
    assert f"Job with submission_id {submission_id} already exists" in second.stdout + second.stderr
    logs = cluster.job("logs", submission_id).stdout
    assert "first" in logs and "second" not in logs


@pytest.mark.timeout(600)
def test_up_refuses_a_second_cluster_in_the_same_state_dir(cluster):
    result = cluster.local_sh("up", "--workers", "1")
    assert result.returncode != 0
    assert "already up" in result.stderr
    assert cluster.local_sh("status").returncode == 0  # the running cluster was left alone


@pytest.mark.timeout(600)
def test_down_stops_every_process_it_started_and_nothing_else(cluster):
    # Last in this module: it brings the shared cluster down (the fixture's own `down` is then a no-op).
    bystander = subprocess.Popen(["sleep", "300"])  # a process of ours that `down` must not touch
    try:
        leaders = [cluster.pid("head"), cluster.pid("worker-1")]
        members = [pid for leader in leaders for pid in cluster.session_pids(leader)]
        assert len(members) >= 6  # GCS, raylets, dashboard, agents, ...
        result = cluster.local_sh("down", timeout=300)
        assert result.returncode == 0, result.stderr
        time.sleep(1)
        alive = [pid for pid in members if _alive(pid)]
        assert alive == [], f"still running after down: {alive}"
        assert bystander.poll() is None
        assert not (cluster.state_dir / "head.pid").exists() and not (cluster.state_dir / "cluster.env").exists()
        assert cluster.local_sh("status").returncode != 0
    finally:
        bystander.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
