"""What every `pipelines/` job does around its stage: join the cluster, run `ich-ray`, say which nodes worked.

The job scripts are what `ray job submit ... -- python pipelines/<job>.py` runs. Inside a Ray job the driver
is already pointed at the cluster (Ray's job supervisor sets RAY_ADDRESS); `connect` joins it *before* the
stage runs, so `ich_ray.ray_utils.init_ray` finds Ray initialised and never starts a local instance.

Evidence of where the work ran comes from Ray itself, not from the stage: after each stage the job lists its
own tasks and actors with the state API (`ray.util.state`) and logs, per node, how many task attempts
finished or failed and which actors lived there. One JSON line per stage (prefix `ICH_RAY_WORK_BY_NODE`) is
for machines; tests and dashboards parse it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict

log = logging.getLogger("ich_ray.jobs")

EVIDENCE_PREFIX = "ICH_RAY_WORK_BY_NODE"
# The state API sees a task once its worker has flushed its events (every second by default).
_EVENT_FLUSH_S = 2.0
_STATE_API_LIMIT = 10_000  # the API server's maximum (RAY_MAX_LIMIT_FROM_API_SERVER)


def setup_logging() -> None:
    """The CLI's log format; configured here first so the job's own lines look the same."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def connect(address: str | None = None):
    """Join the running cluster: `address`, else RAY_ADDRESS (set inside a Ray job), else `auto`."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    ray.init(address=address, log_to_driver=True, configure_logging=False)
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    log.info("joined the Ray cluster at %s: %d alive nodes %s (auth mode %s)",
             address, len(nodes), nodes, os.environ["RAY_AUTH_MODE"])
    return ray


def work_by_node(job_id: str, seen: set[str] | None = None) -> dict[str, dict]:
    """Per node: this job's task attempts by state and name, and its actors by class.

    seen: ids of task attempts and actors already reported; they are skipped and the new ones added, so
    consecutive calls report each stage's own work.
    """
    from ray.util.state import list_actors, list_tasks

    seen = set() if seen is None else seen
    filters = [("job_id", "=", job_id)]
    nodes: dict[str, dict] = defaultdict(lambda: {"tasks": Counter(), "failed_tasks": Counter(), "actors": Counter()})
    for task in list_tasks(filters=filters, limit=_STATE_API_LIMIT, raise_on_missing_output=False):
        key = f"{task.task_id}:{task.attempt_number}"
        if task.type == "DRIVER_TASK" or not task.node_id or task.state not in ("FINISHED", "FAILED") or key in seen:
            continue
        seen.add(key)
        if task.state == "FINISHED":
            nodes[task.node_id]["tasks"][task.name] += 1
        elif task.state == "FAILED":
            nodes[task.node_id]["failed_tasks"][task.name] += 1
    for actor in list_actors(filters=filters, limit=_STATE_API_LIMIT, raise_on_missing_output=False):
        if actor.node_id and actor.actor_id not in seen:
            seen.add(actor.actor_id)
            nodes[actor.node_id]["actors"][actor.class_name] += 1
    return {node: {k: dict(v) for k, v in parts.items()} for node, parts in nodes.items()}


_reported: set[str] = set()  # task attempts and actors this job has already reported


def report_nodes(stage: str) -> dict[str, dict]:
    """Log which nodes ran the tasks and actors of `stage` (those not reported by an earlier stage)."""
    import ray

    time.sleep(_EVENT_FLUSH_S)
    try:
        evidence = work_by_node(ray.get_runtime_context().get_job_id(), _reported)
    except Exception as exc:  # the report is evidence, not work: never fail a finished stage over it
        log.warning("%s: could not list the job's tasks from the state API: %s", stage, exc)
        return {}
    for node, parts in sorted(evidence.items()):
        log.info("%s: node %s ran %d tasks (%d failed attempts), actors %s", stage, node,
                 sum(parts["tasks"].values()), sum(parts["failed_tasks"].values()), parts["actors"] or "none")
    # One parseable line on stdout, whatever the log configuration.
    print(f"{EVIDENCE_PREFIX} {json.dumps({'stage': stage, 'nodes': evidence}, sort_keys=True)}", flush=True)
    return evidence


def run_stage(stage: str, argv: list[str]) -> int:
    """`ich-ray <argv>` in this driver, then the per-node report; returns the CLI's exit code."""
    from ich_ray.cli.main import main

    start = time.perf_counter()
    log.info("%s: ich-ray %s", stage, " ".join(argv))
    code = main(argv)
    log.info("%s: exit code %d after %.1f s", stage, code, time.perf_counter() - start)
    report_nodes(stage)
    return code


def finish(code: int) -> None:
    import ray

    ray.shutdown()
    sys.exit(code)
