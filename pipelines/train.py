"""Ray job: train one model on the cluster (`ich-ray train`), tracked on an MLflow server.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env pipelines/runtime_env.yaml -- \
        python pipelines/train.py --data /data/root --arch resnet18 --task binary --epochs 5 \
            --tracking-uri http://mlflow.internal:5000

Every option is an `ich-ray train` option (--config recipe.yaml, --set k=v, --workers N, ...). Workers on
other nodes cannot write a local SQLite file, so on a cluster the run must go to an MLflow server: give
--tracking-uri, or set MLFLOW_TRACKING_URI (runtime_env.yaml's env_vars), which is passed on as --tracking-uri.
"""

from __future__ import annotations

import logging
import os
import sys

from _cluster_job import connect, finish, run_stage, setup_logging

log = logging.getLogger("ich_ray.jobs")


def train_argv(argv: list[str]) -> list[str]:
    """`ich-ray train` arguments: the job's own, plus --tracking-uri from MLFLOW_TRACKING_URI if not given."""
    given = any(a == "--tracking-uri" or a.startswith("--tracking-uri=") for a in argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not given and uri:
        return ["train", *argv, "--tracking-uri", uri]
    if not given:
        log.warning("no --tracking-uri and no MLFLOW_TRACKING_URI: runs go to the data root's SQLite store, "
                    "which only works when every node shares that filesystem")
    return ["train", *argv]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging()
    connect()
    return run_stage("train", train_argv(argv))


if __name__ == "__main__":
    finish(main())
