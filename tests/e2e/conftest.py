"""Real servers for end-to-end tests: an `mlflow server` started by mlflow/server.sh, headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import local_cluster as lc
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # git-ignored; CI keeps it
SERVER_START_TIMEOUT_S = 240  # a fresh SQLite store migrates in ~10 s, but a busy 2-core box is slower
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MlflowServer:
    uri: str
    home: Path
    process: subprocess.Popen
    log_path: Path

    def runs_page(self, experiment_id: str) -> str:
        """The experiment's run table; MLflow 3's UI opens in its GenAI view unless told otherwise."""
        return f"{self.uri}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _wait_healthy(server: MlflowServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.process.returncode}:\n{server.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"mlflow server at {server.uri} not healthy after {SERVER_START_TIMEOUT_S} s:\n"
                f"{server.log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's own process group (it has uvicorn children), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow/server.sh` on 127.0.0.1:<free port>, SQLite store + artifact folder in a temp dir, 1 worker."""
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log_path = home / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(REPO / "mlflow" / "server.sh"), "--home", str(home), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", home, process, log_path)
    try:
        _wait_healthy(server)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"headless browser not found ({', '.join(CHROMIUM_NAMES)}): apt-get install chromium")


@pytest.fixture
def render_page(chromium, tmp_path):
    """`render_page(url, shot_name) -> DOM`; the screenshot lands in tmp_path and test-artifacts/."""

    def render_and_keep(url: str, shot_name: str) -> str:
        shot = tmp_path / shot_name
        dom = render(chromium, url, tmp_path / f"chromium-{shot.stem}", shot)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(shot, ARTIFACTS / shot_name)
        return dom

    return render_and_keep


def render(chromium: str, url: str, profile_dir: Path, screenshot: Path, budget_ms: int = 15000) -> str:
    """The DOM of `url` after the SPA ran for `budget_ms` of virtual time, and a PNG screenshot of it."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    profile_dir.mkdir(parents=True, exist_ok=True)
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", f"--virtual-time-budget={budget_ms}",
        "--window-size=1600,1000", "--dump-dom", f"--screenshot={screenshot}", url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not screenshot.is_file():
        pytest.fail(f"chromium failed ({done.returncode}) on {url}:\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    lc.run_cli("synth", "--out", str(out), "--patients", "3", "--size", "64", "--seed", "0")
    return out
