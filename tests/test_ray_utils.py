"""init_ray's worker environment and the Ray Data context of our one-operator stages."""

from __future__ import annotations

import pytest
import ray

from ich_ray.ray_utils import WORKER_MALLOC_ENV, fused_stage_context


def test_fused_stage_drops_the_operator_reservation_and_restores_it():
    ctx = ray.data.DataContext.get_current()
    assert ctx.op_resource_reservation_enabled
    with fused_stage_context():
        assert not ray.data.DataContext.get_current().op_resource_reservation_enabled
    assert ctx.op_resource_reservation_enabled


def test_explicit_resource_limits_keep_the_reservation_that_enforces_them():
    ctx = ray.data.DataContext.get_current()
    before = ctx.execution_options.resource_limits
    ctx.execution_options.resource_limits = ray.data.ExecutionResources.for_limits(cpu=1)
    try:
        with fused_stage_context():
            assert ctx.op_resource_reservation_enabled
    finally:
        ctx.execution_options.resource_limits = before


@pytest.mark.ray
def test_local_workers_run_with_the_malloc_settings(ray_session):
    @ray.remote
    def worker_env() -> dict:
        import os

        return {name: os.environ.get(name) for name in WORKER_MALLOC_ENV}

    assert ray.get(worker_env.remote()) == WORKER_MALLOC_ENV
    # glibc ignores an mmap threshold above 32 MiB (its maximum on 64-bit), silently
    assert 128 * 1024 < int(WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]) <= 32 * 2**20
