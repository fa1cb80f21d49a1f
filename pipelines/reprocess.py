"""Ray job: the incremental re-preprocessing run (`ich-ray reprocess`): new or changed files only.

    ray job submit --address http://127.0.0.1:8265 --submission-id reprocess-$(date +%Y%m%d-%H) \
        --working-dir . --runtime-env pipelines/runtime_env.yaml -- \
        python pipelines/reprocess.py --input /data/dicom --data /data/root [--labels labels.csv]

Schedules call it through pipelines/submit_reprocess.sh (a dated submission id: Ray refuses a second job
with the same id). Overlapping runs are safe: the stage holds an exclusive lock on ROOT/.reprocess.lock and a
run that finds it taken does nothing and exits with code 3 (the job shows FAILED with that reason).
Other options (--size, --windows, ...) go to `ich-ray reprocess` unchanged.
"""

from __future__ import annotations

import argparse

from _cluster_job import connect, finish, run_stage, setup_logging


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="folder of DICOM files (searched recursively)")
    parser.add_argument("--data", required=True, help="data root to bring up to date")
    parser.add_argument("--labels", default=None, help="RSNA-style label CSV (ID,Label) to join")
    parser.add_argument("--address", default=None, help="Ray address (default: the job's RAY_ADDRESS, else auto)")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    setup_logging()
    connect(args.address)
    labels = ["--labels", args.labels] if args.labels else []
    return run_stage("reprocess", ["reprocess", "--input", args.input, "--data", args.data, *labels, *options])


if __name__ == "__main__":
    finish(main())
