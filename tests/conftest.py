"""Shared fixtures: one local Ray cluster per session, a tiny synthetic data set, the real GE series."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every test process sets Ray's auth mode explicitly (DEVELOPERS.md): the embedded cluster runs without it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

REPO = Path(__file__).resolve().parents[1]
REAL_CT_DIR = Path(os.environ.get("ICH_RAY_REAL_CT", REPO.parent / "shared" / "data" / "real-ct-ge"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def real_ct_dir() -> Path:
    if not REAL_CT_DIR.is_dir():
        pytest.fail(f"real CT test data missing: {REAL_CT_DIR} (set ICH_RAY_REAL_CT)")
    return REAL_CT_DIR


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for the whole session; 4 logical CPUs so 2 training workers leave room for Ray Data."""
    from ich_ray.ray_utils import init_ray

    ray = init_ray(num_cpus=4, object_store_memory=512 * 1024**2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """3 patients at 64 px with every DICOM variant and malformed files (seeded)."""
    from ich_ray.synthetic.generate import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, patients=3, size=64, seed=0)
    return out


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node started with cluster/local.sh (one per test module; tests/cluster, e2e)."""
    import local_cluster as lc  # tests/cluster, on pytest's pythonpath

    c = lc.LocalCluster(workers=1, cpus_per_node=2)
    try:
        c.up()
        yield c
    finally:
        c.cleanup()
