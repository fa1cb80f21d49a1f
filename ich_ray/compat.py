"""Every use of a third-party internal, in one place.

Each function here reaches into a library past its documented API because no public way does the job; its
docstring says why and which versions were tested. pyproject.toml bounds those libraries to the tested
releases, and tests/test_compat.py fails with the API's name when a new release moves one. When a library
grows a public way, switch to it here and nowhere else.

Tested with: Ray 2.60.0, MLflow 3.17.2.
"""

from __future__ import annotations

from typing import Any

# --- Ray Train: per-dataset ingest options ------------------------------------------------------------------


def train_ingest_copy(data_config: Any, dataset: Any, name: str) -> Any:
    """A copy of `dataset` carrying the execution options Ray Train gives dataset `name` when it shards it.

    Why private: a `ray.train.DataConfig` subclass that shards some datasets unequally (our eval sets) must
    prepare each dataset exactly as `DataConfig.configure` does before `streaming_split`. That method uses
    `Dataset.copy(ds)` (an undocumented static method) and `DataConfig._resolve_execution_options(name)` (the
    user's per-dataset options, else `default_ingest_options()`, deep-copied); there is no public equivalent.
    In Ray since 2.57.0 (hence the lower bound in pyproject.toml); tested: Ray 2.60.0.
    """
    copied = dataset.copy(dataset)
    copied.context.execution_options = data_config._resolve_execution_options(name)
    return copied


# --- Ray Data: operator resource reservation ----------------------------------------------------------------

RESERVATION_FLAG = "op_resource_reservation_enabled"


def op_reservation_enabled(ctx: Any) -> bool:
    """Whether Ray Data reserves a share of the cluster for each operator of a plan.

    Why private: `DataContext.op_resource_reservation_enabled` is listed among the DataContext fields but not
    documented as a supported knob; it is the only switch for the reservation, which holds CPUs back from a
    one-operator plan (see `ich_ray.ray_utils.fused_stage_context`). Tested: Ray 2.60.0.
    """
    return getattr(ctx, RESERVATION_FLAG)


def set_op_reservation_enabled(ctx: Any, enabled: bool) -> None:
    """Turn Ray Data's per-operator reservation on or off for datasets created from `ctx` afterwards.

    Raises AttributeError naming the field when this Ray has no such field: setting an unknown attribute on
    the dataclass would succeed silently and change nothing.
    """
    if not hasattr(ctx, RESERVATION_FLAG):
        raise AttributeError(f"ray.data.DataContext has no field {RESERVATION_FLAG!r}: see ich_ray/compat.py")
    setattr(ctx, RESERVATION_FLAG, enabled)


# --- MLflow: the process-wide tracking URI ------------------------------------------------------------------


def explicit_tracking_uri() -> str | None:
    """The tracking URI set by `mlflow.set_tracking_uri` in this process, or None when none was set.

    Why private: `mlflow.get_tracking_uri()` falls back to $MLFLOW_TRACKING_URI and then to the default store,
    so it cannot tell an explicitly set URI from the environment's; restoring its value would pin the
    environment's URI process-wide. MLflow keeps the explicit value in
    `mlflow.tracking._tracking_service.utils._tracking_uri`. Tested: MLflow 3.17.2.
    """
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri
