"""Experiment tracking: MLflow on rank 0, a no-op everywhere else.

The training loop calls the same methods whatever the rank or setting, so it never branches on
"is tracking on?". Only rank 0 talks to MLflow: workers on other nodes may not reach the store.

Resuming: `make_tracker` continues an unfinished run (status RUNNING, FAILED or KILLED) that has the same
run name in the experiment, so a training resumed from a checkpoint appends its epochs to the same run.
A FINISHED run is never reopened: a new run with the same name is created instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ich_ray.tracking.uri import check_tracking_uri, default_tracking_uri, resolve_tracking_uri

log = logging.getLogger(__name__)

__all__ = [
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "check_tracking_uri",
    "default_tracking_uri",
    "get_or_create_experiment",
    "make_tracker",
    "resolve_tracking_uri",
    "tracking_tags",
]

UNFINISHED = ("RUNNING", "FAILED", "KILLED")


@runtime_checkable
class Tracker(Protocol):
    """What training, the baseline and explore log through: `MlflowTracker` on rank 0, `NullTracker` elsewhere."""

    run_id: str | None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_figure(self, figure, name: str) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_dict(self, obj: dict, name: str) -> None: ...
    def log_model(self, model, name: str = "model", metadata: dict | None = None,
                  registered_model_name: str | None = None) -> str | None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Accepts every call and does nothing (ranks > 0, tracking off)."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_figure(self, figure, name: str) -> None:
        import matplotlib.pyplot as plt

        plt.close(figure)  # same contract as MlflowTracker: the figure is consumed

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_dict(self, obj: dict, name: str) -> None: ...

    def log_model(self, model, name: str = "model", metadata: dict | None = None,
                  registered_model_name: str | None = None) -> str | None:
        return None

    def end(self, status: str = "FINISHED") -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.end("FAILED" if exc_type else "FINISHED")
        return False


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> dotted keys; lists/tuples -> JSON; values cut to MLflow's length limit."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        if isinstance(value, (list, tuple)):
            text = json.dumps(list(value), default=str)
        else:
            text = str(value)
        if len(text) > MAX_PARAM_VAL_LENGTH:
            log.warning("param %s is %d characters; cut to MLflow's limit %d", name, len(text), MAX_PARAM_VAL_LENGTH)
            text = text[:MAX_PARAM_VAL_LENGTH]
        flat[name] = text
    return flat


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    """Experiment id by name; created on first use (artifacts next to a SQLite store, not in the cwd)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        # MLflow's default for SQLite is ./mlruns relative to the working directory: keep them together.
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        location = (db.parent / "mlartifacts" / name.replace("/", "_")).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it between our two calls
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextlib.contextmanager
def scoped_tracking_uri(uri: str):
    """Some MLflow calls (`<flavor>.log_model`, `models:/` resolution) read only the process-wide URI, whatever
    URI they are given: set it for the call, then put back exactly what was there. The registry URI is never
    set, so it keeps following the tracking URI.

    `mlflow.set_tracking_uri` also writes $MLFLOW_TRACKING_URI (and None unsets it), and MLflow has no public
    way to tell an explicitly set URI from the environment's; restoring `get_tracking_uri()` would pin the
    environment's value process-wide. So the module's own value and the variable are saved and restored.
    """
    import mlflow

    from ich_ray.compat import explicit_tracking_uri

    saved_uri = explicit_tracking_uri()
    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_uri)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


class MlflowTracker:
    """One MLflow run, driven through `MlflowClient` (no global active-run state)."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, resume: bool = True):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = get_or_create_experiment(self.client, experiment, tracking_uri)
        existing = self._unfinished_run(run_name) if resume else None
        if existing is not None:
            self.client.update_run(existing.info.run_id, status="RUNNING")
            self._run_id = existing.info.run_id
            log.info("resuming MLflow run %s (%s) in %s", run_name, self._run_id, experiment)
        else:
            run = self.client.create_run(self.experiment_id, run_name=run_name)
            self._run_id = run.info.run_id
            log.info("MLflow run %s (%s) in %s at %s", run_name, self._run_id, experiment, tracking_uri)
        self._ended = False

    def _unfinished_run(self, run_name: str):
        escaped = run_name.replace("'", "\\'")
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"attributes.run_name = '{escaped}'",
            order_by=["attributes.start_time DESC"], max_results=10,
        )
        return next((r for r in runs if r.info.status in UNFINISHED), None)

    @property
    def run_id(self) -> str:
        return self._run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        logged = self.client.get_run(self._run_id).data.params
        fresh = {}
        for key, value in flatten_params(params).items():
            if key not in logged:
                fresh[key] = value
            elif logged[key] != value:  # params are immutable in MLflow; a resumed run keeps the first value
                log.warning("param %s already logged as %r; not changed to %r", key, logged[key], value)
        items = [Param(k, v) for k, v in fresh.items()]
        for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self._run_id, params=items[start:start + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self._run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(key, float(value), now, int(step or 0))
            for key, value in metrics.items() if value is not None
        ]
        nan = [m.key for m in items if math.isnan(m.value)]
        if nan:
            log.warning("metrics %s are NaN at step %s", ", ".join(nan), step)
        for start in range(0, len(items), 1000):
            self.client.log_batch(self._run_id, metrics=items[start:start + 1000])

    def log_figure(self, figure, name: str) -> None:
        import matplotlib.pyplot as plt

        artifact = name if Path(name).suffix else f"{name}.png"
        try:
            self.client.log_figure(self._run_id, figure, artifact)
        finally:
            plt.close(figure)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"artifact to log not found: {path}")
        if path.is_dir():
            self.client.log_artifacts(self._run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self._run_id, str(path), artifact_path)

    def log_dict(self, obj: dict, name: str) -> None:
        self.client.log_dict(self._run_id, obj, name)

    def log_model(self, model, name: str = "model", metadata: dict | None = None,
                  registered_model_name: str | None = None) -> str:
        """Log a torch model (loads back with `mlflow.pytorch.load_model(uri)`); returns its model URI.

        Pickle format on purpose: it loads back as the same `nn.Module` class (Grad-CAM hooks on named
        layers, `.eval()`, fine-tuning), while MLflow 3's default "pt2" needs an example batch and loads back
        a traced graph. Pickles execute code on load: load models only from your own tracking server.
        """
        import mlflow.pytorch

        # MLflow files a model without an active fluent run under the *Default* experiment; create it in
        # the run's experiment so the UI's Models tab and search_logged_models find it next to the run.
        logged = self.client.create_logged_model(
            self.experiment_id, name=name, source_run_id=self._run_id,
            params=self.client.get_run(self._run_id).data.params,
        )
        with scoped_tracking_uri(self.tracking_uri):
            info = mlflow.pytorch.log_model(
                pytorch_model=model, name=name, metadata=metadata, run_id=self._run_id, model_id=logged.model_id,
                registered_model_name=registered_model_name, pip_requirements=_pip_requirements(),
                serialization_format="pickle",
            )
        log.info("logged model %s (%s)", name, info.model_uri)
        return info.model_uri

    def end(self, status: str = "FINISHED") -> None:
        if not self._ended:
            self.client.set_terminated(self._run_id, status)
            self._ended = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.end("FAILED" if exc_type else "FINISHED")
        return False


def _pip_requirements() -> list[str]:
    """Pinned from what is installed: skips MLflow's slow requirement inference (it reloads the model)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("torch", "torchvision", "cloudpickle"):
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{package}=={version(package)}")
    return pins


def make_tracker(tracking_uri: str | None, experiment: str, run_name: str, rank: int,
                 enabled: bool = True, resume: bool = True) -> Tracker:
    """`MlflowTracker` on rank 0 when enabled, `NullTracker` otherwise.

    `tracking_uri` is the URI the driver resolved (`uri.resolve_tracking_uri`): it is used as given, never
    looked up again in this process's environment. The store is checked first, so an unreachable server
    fails now with its URI in the message, not after hours of training.
    """
    if not enabled or rank != 0:
        return NullTracker()
    if not tracking_uri:
        raise ValueError(f"run {run_name}: tracking is on but no tracking URI was resolved (a driver bug)")
    check_tracking_uri(tracking_uri)
    return MlflowTracker(tracking_uri, experiment, run_name, resume=resume)


def tracking_tags(data_root: str | Path | None, cluster_size: int, arch: str, task: str) -> dict[str, str]:
    """Tags every training run carries: code version, data version, Ray cluster size, arch, task."""
    from ich_ray.tracking.versions import data_version, git_commit

    commit = git_commit()
    return {
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "data_version": data_version(data_root) if data_root is not None else "unknown",
        "ray_cluster_size": str(cluster_size),
        "arch": arch,
        "task": task,
    }


def log_report(tracking_uri: str | None, data_root: str | Path, report_dir: str | Path | None = None) -> str:
    """Log the exploration report folder (default ROOT/reports/) as artifacts of a run in ich-ray/explore."""
    report_dir = Path(report_dir) if report_dir is not None else Path(data_root) / "reports"
    if not report_dir.is_dir():
        raise FileNotFoundError(f"report folder not found: {report_dir}")
    tracker = make_tracker(resolve_tracking_uri(tracking_uri, data_root), "ich-ray/explore",
                           f"explore-{Path(data_root).name}", rank=0, resume=False)
    with tracker:
        tracker.set_tags(tracking_tags(data_root, cluster_size=0, arch="none", task="explore"))
        tracker.log_artifact(report_dir, artifact_path="reports")
    log.info("logged report %s to MLflow run %s", report_dir, tracker.run_id)
    return tracker.run_id
