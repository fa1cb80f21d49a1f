"""Ray job: train a study-level sequence model on the cluster (`ich-ray train-study`), tracked on an MLflow
server.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env pipelines/runtime_env.yaml -- \
        python pipelines/train_study.py --data /data/root --slice-model models:/ich-slice/1 \
            --tracking-uri http://mlflow.internal:5000

Every option is an `ich-ray train-study` option. The slice model must come from the same tracking server (its
held-out patients are read from its run to keep the study model's split the same).
"""

from __future__ import annotations

import sys

from _cluster_job import connect, finish, run_stage, setup_logging


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging()
    connect()
    return run_stage("train-study", ["train-study", *argv])


if __name__ == "__main__":
    finish(main())
