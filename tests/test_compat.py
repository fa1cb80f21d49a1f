"""The third-party internals ich_ray/compat.py relies on are still there and still mean the same.

A failure here names the API that moved and the installed version: update ich_ray/compat.py (and the version
bounds in pyproject.toml), nothing else.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from types import SimpleNamespace

import mlflow
import pytest
import ray
from ray.data import DataContext, Dataset, ExecutionOptions, ExecutionResources
from ray.train import DataConfig

from ich_ray import compat


def moved(api: str, library: str, version: str, why: str) -> str:
    return f"{api} moved or changed in {library} {version} ({why}): update ich_ray/compat.py"


# --- Ray Train ---------------------------------------------------------------------------------------------


def test_data_config_resolves_per_dataset_execution_options():
    api = "ray.train.DataConfig._resolve_execution_options(dataset_name)"
    method = getattr(DataConfig, "_resolve_execution_options", None)
    if method is None:
        pytest.fail(moved(api, "ray", ray.__version__, "missing"))
    if list(inspect.signature(method).parameters) != ["self", "dataset_name"]:
        pytest.fail(moved(api, "ray", ray.__version__, f"signature {inspect.signature(method)}"))
    valid = ExecutionOptions(resource_limits=ExecutionResources.for_limits(cpu=1))
    config = DataConfig(execution_options={"valid": valid})
    resolved = config._resolve_execution_options("valid")
    default = config._resolve_execution_options("train")
    if resolved is valid or resolved.resource_limits.cpu != 1:
        pytest.fail(moved(api, "ray", ray.__version__, "no deep copy of the per-dataset options"))
    if not isinstance(default, ExecutionOptions) or default.resource_limits.cpu == 1:
        pytest.fail(moved(api, "ray", ray.__version__, "a dataset without options no longer gets the defaults"))


def test_dataset_copy_is_a_static_copy():
    api = "ray.data.Dataset.copy(ds)"
    if not isinstance(inspect.getattr_static(Dataset, "copy", None), staticmethod):
        pytest.fail(moved(api, "ray", ray.__version__, "no longer a static method"))
    if "ds" not in inspect.signature(Dataset.copy).parameters:
        pytest.fail(moved(api, "ray", ray.__version__, f"signature {inspect.signature(Dataset.copy)}"))


def test_train_ingest_copy_sets_the_options_on_the_copy_only():
    class FakeDataset:
        def __init__(self):
            self.context = SimpleNamespace(execution_options=None)

        @staticmethod
        def copy(ds):
            copied = FakeDataset()
            copied.source = ds
            return copied

    original = FakeDataset()
    valid = ExecutionOptions(resource_limits=ExecutionResources.for_limits(cpu=1))
    copied = compat.train_ingest_copy(DataConfig(execution_options={"valid": valid}), original, "valid")
    assert copied.source is original and original.context.execution_options is None
    assert copied.context.execution_options.resource_limits.cpu == 1


# --- Ray Data ----------------------------------------------------------------------------------------------


def test_data_context_has_the_reservation_switch():
    names = {field.name for field in dataclasses.fields(DataContext)}
    if compat.RESERVATION_FLAG not in names:
        pytest.fail(moved(f"ray.data.DataContext.{compat.RESERVATION_FLAG}", "ray", ray.__version__, "no such field"))
    ctx = DataContext.get_current()
    before = compat.op_reservation_enabled(ctx)
    try:
        compat.set_op_reservation_enabled(ctx, not before)
        assert compat.op_reservation_enabled(ctx) is (not before)
    finally:
        compat.set_op_reservation_enabled(ctx, before)


def test_setting_a_missing_reservation_switch_fails_naming_it():
    with pytest.raises(AttributeError, match=compat.RESERVATION_FLAG):
        compat.set_op_reservation_enabled(SimpleNamespace(), False)


# --- MLflow ------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_mlflow_uri():
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_uri, saved_env = getattr(tracking_utils, "_tracking_uri", None), os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(saved_uri)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if saved_env is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved_env


def test_explicit_tracking_uri_tells_set_from_environment(restore_mlflow_uri, tmp_path, monkeypatch):
    api = "mlflow.tracking._tracking_service.utils._tracking_uri"
    try:
        from mlflow.tracking._tracking_service import utils as tracking_utils
    except ImportError:
        pytest.fail(moved(api, "mlflow", mlflow.__version__, "module missing"))
    if not hasattr(tracking_utils, "_tracking_uri"):
        pytest.fail(moved(api, "mlflow", mlflow.__version__, "attribute missing"))
    explicit = f"sqlite:///{tmp_path / 'explicit.db'}"
    mlflow.set_tracking_uri(explicit)
    if compat.explicit_tracking_uri() != explicit:
        pytest.fail(moved(api, "mlflow", mlflow.__version__, "set_tracking_uri no longer stores it there"))
    mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    if compat.explicit_tracking_uri() is not None:
        pytest.fail(moved(api, "mlflow", mlflow.__version__, "it now follows $MLFLOW_TRACKING_URI"))
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'env.db'}"
