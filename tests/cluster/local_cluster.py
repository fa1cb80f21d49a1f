"""Test helper: drive `cluster/local.sh` and `ray job submit` from a test, in subprocesses only.

The test process keeps its own embedded Ray (`ray_session`, RAY_AUTH_MODE=disabled) untouched: everything
that talks to the token-auth cluster runs as a subprocess with an explicit environment.
Loaded by path (`load_helper()` in the test files), because tests are not a package.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
RAY = str(BIN / "ray") if (BIN / "ray").exists() else "ray"
EVIDENCE_PREFIX = "ICH_RAY_WORK_BY_NODE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Job:
    submission_id: str
    returncode: int  # of `ray job submit` (0: the job succeeded)
    output: str

    def evidence(self) -> dict[str, dict]:
        """stage -> {node id: work}, from the job's ICH_RAY_WORK_BY_NODE lines."""
        out = {}
        for line in self.output.splitlines():
            if line.startswith(EVIDENCE_PREFIX):
                record = json.loads(line[len(EVIDENCE_PREFIX):])
                out[record["stage"]] = record["nodes"]
        return out


class LocalCluster:
    """One `cluster/local.sh` cluster in a private state dir, on free ports, with its own token file."""

    def __init__(self, workers: int = 1, cpus_per_node: int = 2, object_store_mb: int = 200):
        # A short state dir: Ray's unix socket paths live under it (max ~107 characters).
        self.state_dir = Path(tempfile.mkdtemp(prefix="icr-", dir="/tmp"))
        self.workers, self.cpus, self.store = workers, cpus_per_node, object_store_mb * 1024 * 1024
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.token_path = self.state_dir / "auth_token"
        self.token_path.write_text(uuid.uuid4().hex)
        self.token_path.chmod(0o600)
        self.env = self._client_env()

    def _client_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ICH_RAY_"))}
        env.update(
            PATH=f"{BIN}:{env.get('PATH', '')}",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_ADDRESS=self.address,
            RAY_USAGE_STATS_ENABLED="0",
            ICH_RAY_CLUSTER_DIR=str(self.state_dir),
            ICH_RAY_DASHBOARD_PORT=str(self.dashboard_port),
            ICH_RAY_GCS_PORT=str(free_port()),
            ICH_RAY_CLIENT_PORT=str(free_port()),
        )
        return env

    def local_sh(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(REPO / "cluster" / "local.sh"), *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)

    def up(self) -> str:
        result = self.local_sh("up", "--workers", str(self.workers), "--cpus-per-node", str(self.cpus),
                               "--object-store-memory", str(self.store))
        if result.returncode != 0:
            raise RuntimeError(f"local.sh up failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def down(self) -> None:
        self.local_sh("down", timeout=300)

    def pid(self, node: str) -> int:
        """The `ray start` leader PID of `head` or `worker-1`; also its session (and process-group) id."""
        return int((self.state_dir / f"{node}.pid").read_text())

    def session_pids(self, node_pid: int) -> list[int]:
        out = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout
        return [int(p) for p, s in (line.split() for line in out.splitlines()) if int(s) == node_pid]

    def kill_node(self, node: str) -> list[int]:
        """SIGKILL every process of one node (its raylet, agents and task workers): a node failure."""
        leader = self.pid(node)
        pids = self.session_pids(leader)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def submit(self, script: str, *args: str, submission_id: str | None = None, wait: bool = True,
               env: dict | None = None, timeout: float = 900) -> Job:
        """`ray job submit` a pipelines/ script with the repo as working dir and runtime_env.yaml."""
        submission_id = submission_id or f"test-{uuid.uuid4().hex[:8]}"
        cmd = [RAY, "job", "submit", "--address", self.address, "--submission-id", submission_id,
               "--working-dir", str(REPO), "--runtime-env", str(REPO / "pipelines" / "runtime_env.yaml"),
               *([] if wait else ["--no-wait"]), "--", "python", script, *args]
        result = subprocess.run(cmd, env=env or self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        return Job(submission_id, result.returncode, result.stdout + result.stderr)

    def job(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`ray job <args>` against this cluster (status, logs, stop, list)."""
        return subprocess.run([RAY, "job", *args, "--address", self.address], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)

    def wait_job(self, submission_id: str, timeout: float = 900) -> tuple[str, str]:
        """Block until the job ends; returns (status, logs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(submission_id)
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                return status, self.job("logs", submission_id).stdout
            time.sleep(2)
        raise TimeoutError(f"job {submission_id} still running after {timeout} s")

    def status(self, submission_id: str) -> str:
        """PENDING | RUNNING | SUCCEEDED | FAILED | STOPPED, from JobSubmissionClient (with the token)."""
        code = ("import sys; from ray.job_submission import JobSubmissionClient as C; "
                "print(C(sys.argv[1]).get_job_status(sys.argv[2]).value)")
        result = subprocess.run([str(BIN / "python"), "-c", code, self.address, submission_id], env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"job status {submission_id}: {result.stderr[-2000:]}")
        return result.stdout.strip().splitlines()[-1]

    def cleanup(self) -> None:
        self.down()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`ich-ray <args>` in a subprocess with an embedded (auth-disabled) Ray, for test data preparation."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([str(BIN / "ich-ray"), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=True)


def nodes_with(job: Job, stage: str, kind: str = "tasks") -> set[str]:
    """Node ids that ran at least one finished task (or hosted an actor) of `stage` in `job`."""
    return {node for node, work in job.evidence().get(stage, {}).items() if work.get(kind)}
