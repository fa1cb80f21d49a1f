"""Experiment tracking: MLflow on rank 0, a no-op everywhere else.

The training loop calls the same methods whatever the rank or setting, so it never branches on
"is tracking on?". Only rank 0 talks to MLflow: workers on other nodes may not reach the store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def default_tracking_uri(data_root: str | Path) -> str:
    return f"sqlite:///{Path(data_root).resolve() / 'mlflow.db'}"


class NullTracker:
    """Accepts every call and does nothing (ranks > 0, tracking off)."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_figure(self, figure, name: str) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_dict(self, obj: dict, name: str) -> None: ...
    def log_model(self, model, name: str = "model", **kwargs) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.end("FAILED" if exc_type else "FINISHED")
        return False
