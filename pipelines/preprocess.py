"""Ray job: preprocess a DICOM tree on the cluster: `ich-ray metadata`, then `ich-ray clean`.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env pipelines/runtime_env.yaml -- \
        python pipelines/preprocess.py --input /data/dicom --out /data/root [--labels labels.csv] [--size 256]

Writes ROOT/metadata/, ROOT/quarantine/ and ROOT/images/ (see docs/architecture.md). Any option not listed
below goes to `ich-ray clean` unchanged (--size, --windows, --context, --format, --min-brain-fraction, ...).
INPUT and ROOT must be paths every node can read and write (a shared filesystem or one machine).
Logs the nodes that ran the stages' tasks; exits with the stages' exit code.
"""

from __future__ import annotations

import argparse

from _cluster_job import connect, finish, run_stage, setup_logging


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="folder of DICOM files (searched recursively)")
    parser.add_argument("--out", required=True, help="data root to write")
    parser.add_argument("--labels", default=None, help="RSNA-style label CSV (ID,Label) to join")
    parser.add_argument("--address", default=None, help="Ray address (default: the job's RAY_ADDRESS, else auto)")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, clean_options = parse_args(argv)
    setup_logging()
    connect(args.address)
    labels = ["--labels", args.labels] if args.labels else []
    code = run_stage("metadata", ["metadata", "--input", args.input, "--out", args.out, *labels])
    if code == 0:
        code = run_stage("clean", ["clean", "--data", args.out, *clean_options])
    return code


if __name__ == "__main__":
    finish(main())
