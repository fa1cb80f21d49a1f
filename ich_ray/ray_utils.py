"""Start or join Ray the same way in every entry point."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs):
    """Join the cluster at `address` (or `$RAY_ADDRESS`, which `ray job submit` sets), else start a local one.

    Ray's token authentication follows `RAY_AUTH_MODE`. A local embedded cluster defaults to `disabled`
    (nothing listens beyond this process tree); joining a cluster keeps whatever the caller set, and the
    token comes from `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`.
    """
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", True)
    kwargs.setdefault("configure_logging", False)
    ray.init(address=address, num_cpus=num_cpus, **kwargs)
    log.info("ray: %s", "joined " + address if address else "started a local cluster")
    return ray
