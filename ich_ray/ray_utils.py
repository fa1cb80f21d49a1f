"""Start or join Ray the same way in every entry point."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from ich_ray.compat import op_reservation_enabled, set_op_reservation_enabled

log = logging.getLogger(__name__)

# glibc returns every freed block above 128 KiB to the kernel, so each image-sized numpy temporary
# (a 512 x 512 float32 slice is 1 MiB) comes back as fresh pages: ~1,700 page faults and ~5 ms of system
# time per cleaned slice, ~30% of the work (measured on a 2-core VM). Keeping up to 128 MiB of freed heap
# per process removes them. Set for the Ray workers of a local cluster (they inherit the environment);
# cluster images set the same variables (cluster/Dockerfile).
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(128 * 2**20)}


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs):
    """Join the cluster at `address` (or `$RAY_ADDRESS`, which `ray job submit` sets), else start a local one.

    Ray's token authentication follows `RAY_AUTH_MODE`. A local embedded cluster defaults to `disabled`
    (nothing listens beyond this process tree); joining a cluster keeps whatever the caller set, and the
    token comes from `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`. A local cluster's
    workers also get `WORKER_MALLOC_ENV` (unless already set).
    """
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        for name, value in WORKER_MALLOC_ENV.items():
            os.environ.setdefault(name, value)
        kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", True)
    kwargs.setdefault("configure_logging", False)
    ray.init(address=address, num_cpus=num_cpus, **kwargs)
    log.info("ray: %s", "joined " + address if address else "started a local cluster")
    return ray


@contextmanager
def fused_stage_context():
    """Ray Data settings for a plan whose work is one operator: our stages (blocks -> map_batches -> write)
    and the training input (shard paths -> read_and_decode; the path list and its block shuffle cost nothing).

    Ray Data reserves part of the cluster for each operator and, until its first task reports its output
    size, lets an operator run one task at a time; it then caps the operator's tasks by an object-store
    budget. For a plan with one working operator that reservation only holds CPUs back: on 2 CPUs our
    metadata and clean stages ran ~1.4x faster without it (measured with bench/preprocess.py's data), and
    the training input ~1.2x (bench/gpu_train.py --ingest-only's data), its object store still bounded by
    the consumer (a consumer at 170 images/s held 1.5 GiB of a 6.9 GiB store, with or without it). Ray
    2.60 ignores `execution_options.resource_limits` without the reservation, so a context with explicit
    limits is left alone. Datasets copy the context when they are created: create and execute the dataset
    inside this block (a dataset created inside keeps the settings wherever it runs later).
    """
    import ray

    ctx = ray.data.DataContext.get_current()
    before = op_reservation_enabled(ctx)
    if ctx.execution_options.resource_limits.cpu == float("inf"):
        set_op_reservation_enabled(ctx, False)
    try:
        yield
    finally:
        set_op_reservation_enabled(ctx, before)
