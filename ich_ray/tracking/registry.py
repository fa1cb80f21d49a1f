"""Model registry: point an alias (e.g. `champion`) at the registered version of the best run.

`predict` loads `models:/<name>@champion`, so promoting a better model needs no code or path change.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def promote_best(tracking_uri: str, experiment_names: list[str], metric: str, model_name: str,
                 alias: str = "champion", higher_is_better: bool = True):
    """Set `alias` on the version of `model_name` whose source run has the best final `metric`.

    Only runs that registered a version of `model_name` compete. Returns the promoted `ModelVersion`.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_ids = []
    for name in experiment_names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            log.warning("experiment %s not found at %s; skipped", name, tracking_uri)
        else:
            experiment_ids.append(experiment.experiment_id)
    escaped = model_name.replace("'", "\\'")
    versions = {v.run_id: v for v in client.search_model_versions(f"name = '{escaped}'") if v.run_id}
    if not versions:
        raise ValueError(f"no registered versions of model {model_name!r} at {tracking_uri}")
    runs = client.search_runs(experiment_ids, max_results=10000) if experiment_ids else []
    candidates = [
        (run.data.metrics[metric], run)
        for run in runs
        if run.info.run_id in versions and not math.isnan(run.data.metrics.get(metric, math.nan))
    ]
    if not candidates:
        raise ValueError(
            f"no run in {experiment_names} has both metric {metric!r} and a version of model {model_name!r}"
        )
    value, best = (max if higher_is_better else min)(candidates, key=lambda pair: pair[0])
    version = versions[best.info.run_id]
    client.set_registered_model_alias(model_name, alias, version.version)
    log.info("%s@%s -> version %s (run %s, %s=%.4f)", model_name, alias, version.version,
             best.info.run_name, metric, value)
    return version
