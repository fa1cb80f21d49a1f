"""Real servers for end-to-end tests: an `mlflow server` started by mlflow/server.sh (on SQLite, or on a
PostgreSQL server started here), headless Chromium."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import local_cluster as lc
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # git-ignored; CI keeps it
SERVER_START_TIMEOUT_S = 600  # SQLite migrates in ~10 s and PostgreSQL in ~25 s idle; a loaded 2-core box took > 240 s
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


@contextlib.contextmanager
def serve_mlflow(home: Path, backend_store_uri: str | None = None):
    """`mlflow/server.sh` on 127.0.0.1:<free port>, 1 worker, artifacts under `home`; the store is SQLite in
    `home` unless `backend_store_uri` names another."""
    port = free_port()
    log_path = home / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    store = ["--backend-store-uri", backend_store_uri] if backend_store_uri else []
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(REPO / "mlflow" / "server.sh"), "--home", str(home), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", *store],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", home, process, log_path)
    try:
        _wait_healthy(server)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """The tracking server on a SQLite store in a temp dir."""
    with serve_mlflow(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


# --- PostgreSQL ---------------------------------------------------------------------------------------------

POSTGRES_START_TIMEOUT_S = 60
POSTGRES_USER = "postgres"  # the OS account Debian's package creates; postgres refuses to run as root


@dataclass
class Postgres:
    port: int
    process: subprocess.Popen
    log_path: Path

    def uri(self, database: str) -> str:
        return f"postgresql+psycopg2://mlflow@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=mlflow dbname={database}"


def postgres_bin_dir() -> Path | None:
    """The folder with initdb and postgres: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _as_postgres_user() -> dict:
    """Popen arguments that drop root to the postgres account (nothing to do for an ordinary user)."""
    if os.geteuid() != 0:
        return {}
    try:
        record = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        pytest.fail(f"running as root, but there is no {POSTGRES_USER!r} account to run PostgreSQL as")
    return {"user": record.pw_uid, "group": record.pw_gid, "extra_groups": []}


def _wait_postgres(pg: Postgres) -> None:
    import psycopg2  # the dev extra's driver, as the MLflow server uses it

    deadline = time.monotonic() + POSTGRES_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if pg.process.poll() is not None:
            pytest.fail(f"postgres exited with {pg.process.returncode}:\n{pg.log_path.read_text()[-3000:]}")
        try:
            psycopg2.connect(pg.dsn("postgres"), connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            time.sleep(0.5)
    pytest.fail(f"postgres on port {pg.port} not ready after {POSTGRES_START_TIMEOUT_S} s:\n"
                f"{pg.log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL server on 127.0.0.1:<free port>: initdb in a temp folder, `postgres` started
    here and stopped by its PID (fast shutdown), the folder removed. Trust auth for the `mlflow` role, no fsync:
    a test database, never a model for a real one."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql "
                    "(`make postgres`)")
    user = _as_postgres_user()
    folder = Path(tempfile.mkdtemp(prefix="ich-ray-pg-"))  # under /tmp: pytest's root-only tmp is not traversable
    try:
        if user:
            os.chown(folder, user["user"], user["group"])
        data, log_path = folder / "data", folder / "postgres.log"
        init = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust",
                               "-E", "UTF8", "--no-sync"], capture_output=True, text=True, cwd=folder, **user)
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}):\n{init.stderr[-3000:]}")
        port = free_port()
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                 "-k", str(folder), "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True, **user,
            )
        pg = Postgres(port, process, log_path)
        try:
            _wait_postgres(pg)
            yield pg
        finally:
            _stop_postgres(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stop_postgres(process: subprocess.Popen) -> None:
    """SIGINT is PostgreSQL's fast shutdown (roll back sessions, exit); SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def postgres_mlflow_server(postgres, tmp_path_factory):
    """The tracking server with its runs and registry in a fresh PostgreSQL database `mlflow`."""
    import psycopg2

    connection = psycopg2.connect(postgres.dsn("postgres"))
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
    finally:
        connection.close()
    with serve_mlflow(tmp_path_factory.mktemp("mlflow-server-pg"), postgres.uri("mlflow")) as server:
        yield server


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
