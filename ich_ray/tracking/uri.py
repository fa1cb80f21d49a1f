"""Which MLflow store to use, and a fast check that it can be reached.

A training that cannot reach its tracking server should fail at start with the URI in the message, not
after the first epoch (or never, with metrics silently lost).
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0


def default_tracking_uri(data_root: str | Path) -> str:
    return f"sqlite:///{Path(data_root).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(tracking_uri: str | None, data_root: str | Path | None = None) -> str:
    """Explicit URI > $MLFLOW_TRACKING_URI > `sqlite:///<data_root>/mlflow.db`."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if data_root is None:
        raise ValueError("no MLflow tracking URI: pass --tracking-uri, set MLFLOW_TRACKING_URI or give --data ROOT")
    return default_tracking_uri(data_root)


def check_tracking_uri(uri: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise ValueError naming `uri` when its store cannot be used. Quick: one HTTP GET or one mkdir."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_http(uri, timeout_s)
    elif scheme == "sqlite":
        _check_sqlite(uri)
    elif scheme in ("", "file"):
        raise ValueError(
            f"MLflow tracking URI {uri!r} is a file store, which MLflow 3 no longer supports for tracking; "
            f"use sqlite:///<folder>/mlflow.db or an http(s) tracking server"
        )
    else:
        # databricks, postgresql+..., mysql: MLflow validates those itself on first use.
        log.debug("no reachability check for tracking URI scheme %r", scheme)


def _check_http(uri: str, timeout_s: float) -> None:
    base = uri.rstrip("/")
    # /health answers on `mlflow server`; the REST search answers on any MLflow-compatible server.
    probes = (f"{base}/health", f"{base}/api/2.0/mlflow/experiments/search?max_results=1")
    reason = "no answer"
    for url in probes:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                if response.status == 200:
                    return
                reason = f"HTTP {response.status} from {url}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} from {url}"
            if exc.code in (401, 403):  # reachable, it wants credentials; MLflow's client sends them
                return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            break  # the server is not there; the second probe would only double the wait
    raise ValueError(
        f"MLflow tracking server {uri} cannot be reached ({reason}); start it (mlflow/server.sh) "
        f"or fix --tracking-uri / MLFLOW_TRACKING_URI"
    )


def _check_sqlite(uri: str) -> None:
    path = uri.removeprefix("sqlite:///")
    if path in ("", ":memory:") or uri.startswith("sqlite://:memory:"):
        return
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"MLflow tracking URI {uri}: cannot create folder {parent}: {exc}") from exc
    if not os.access(parent, os.W_OK):
        raise ValueError(f"MLflow tracking URI {uri}: folder {parent} is not writable")

