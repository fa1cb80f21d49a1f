"""TrainConfig.resolved: every default filled in once, on the driver."""

from __future__ import annotations

import pytest

from ich_ray.train.config import TrainConfig
from ich_ray.train.driver import fit_sizes


def test_resolved_makes_the_data_root_absolute_and_resolves_the_uri_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = TrainConfig(data="root").resolved()
    assert cfg.data == str(tmp_path / "root")
    assert cfg.tracking_uri == f"sqlite:///{tmp_path / 'root' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    # the resolved value travels to the workers as it is: a later environment does not change it
    assert cfg.resolved().tracking_uri == f"sqlite:///{tmp_path / 'root' / 'mlflow.db'}"
    assert TrainConfig(data="root").resolved().tracking_uri == "http://127.0.0.1:5999"
    assert TrainConfig(data="root", track=False).resolved().tracking_uri is None


def test_sizes_default_to_the_stored_size_and_never_upsample():
    cfg = TrainConfig(data="/r", epochs=4).resolved()
    assert cfg.sizes == () and fit_sizes(cfg, 96).sizes == (96,) and fit_sizes(cfg, 96).size_epochs == (4,)
    staged = TrainConfig(data="/r", epochs=4, sizes=(64, 128)).resolved()
    assert fit_sizes(staged, 128).sizes == (64, 128) and staged.size_epochs == (2, 2)
    with pytest.raises(ValueError, match=r"training sizes \[64, 128\] exceed the stored image size 96 px"):
        fit_sizes(staged, 96)


def test_a_negative_shuffle_buffer_is_refused_and_zero_means_none():
    with pytest.raises(ValueError, match=r"shuffle_buffer must be >= 0 \(0: no local shuffle\), got -1"):
        TrainConfig(data="/r", shuffle_buffer=-1).resolved()
    assert TrainConfig(data="/r", shuffle_buffer=0).resolved().shuffle_buffer == 0
    assert TrainConfig(data="/r").resolved().shuffle_buffer is None  # resolved with the cache decision (train)
