"""Ray job: train one model on the cluster (`ich-ray train`), tracked on an MLflow server.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env pipelines/runtime_env.yaml -- \
        python pipelines/train.py --data /data/root --arch resnet18 --task binary --epochs 5 \
            --tracking-uri http://mlflow.internal:5000

Every option is an `ich-ray train` option (--config recipe.yaml, --set k=v, --workers N, ...). Workers on
other nodes cannot write a local SQLite file, so on a cluster the run must go to an MLflow server: give
--tracking-uri, or set MLFLOW_TRACKING_URI (runtime_env.yaml's env_vars). The driver resolves the URI once
and hands it to the workers (and warns when a multi-node run would track to a SQLite file).
"""

from __future__ import annotations

import sys

from _cluster_job import connect, finish, run_stage, setup_logging


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging()
    connect()
    return run_stage("train", ["train", *argv])


if __name__ == "__main__":
    finish(main())
