"""The held-out predictions a run logs (`validation_predictions.parquet`): what `compare` bootstraps.

One row per validation slice of the epoch the logged model holds: `uid_hash`, `study_hash`, `patient_hash`
(stable 63-bit hashes of the ids, so no identifier leaves the data root), `epoch`, and `label_<name>` /
`prob_<name>` for the model's labels.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from ich_ray.tracking.tracker import Tracker

log = logging.getLogger(__name__)

ARTIFACT = "validation_predictions.parquet"


def predictions_frame(y_true: np.ndarray, y_prob: np.ndarray, labels, ids: dict[str, np.ndarray],
                      epoch: int) -> pl.DataFrame:
    """The artifact's table from [N, L] labels and probabilities and the [N] id hashes."""
    columns = {key: np.asarray(values, dtype=np.int64) for key, values in ids.items()}
    columns["epoch"] = np.full(len(y_true), epoch, dtype=np.int32)
    for j, name in enumerate(labels):
        columns[f"label_{name}"] = np.asarray(y_true)[:, j].astype(np.int8)
        columns[f"prob_{name}"] = np.asarray(y_prob)[:, j].astype(np.float64)
    return pl.DataFrame(columns)


def log_predictions(tracker: Tracker, frame: pl.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT
        frame.write_parquet(path)
        tracker.log_artifact(path)


def load_predictions(client, run_id: str) -> pl.DataFrame | None:
    """The run's logged predictions, or None for a run that logged none (older runs, the baseline)."""
    from mlflow.exceptions import MlflowException

    names = {f.path for f in client.list_artifacts(run_id)}
    if ARTIFACT not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, ARTIFACT, tmp)
        except MlflowException as exc:
            log.warning("run %s: cannot download %s (%s); no interval for it", run_id, ARTIFACT, exc)
            return None
        return pl.read_parquet(local)


def label_arrays(frame: pl.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(labels, y_true [N, L], y_prob [N, L]) from the artifact's table."""
    labels = [c.removeprefix("prob_") for c in frame.columns if c.startswith("prob_")]
    y_true = frame.select([f"label_{n}" for n in labels]).to_numpy().astype(np.float64)
    y_prob = frame.select([f"prob_{n}" for n in labels]).to_numpy().astype(np.float64)
    return labels, y_true, y_prob
