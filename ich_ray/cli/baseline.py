"""`ich-ray baseline`."""

from __future__ import annotations

from ich_ray.cli.common import add_config_arguments, add_tracking_arguments

HELP = "Metadata-only random-forest baseline, tracked in MLflow."


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, metavar="ROOT", help="data root holding metadata/")
    parser.add_argument("--run-name", help="MLflow run name")
    add_config_arguments(parser)
    add_tracking_arguments(parser)


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.train.baseline import run_baseline
    from ich_ray.train.config import BaselineConfig

    cfg = load_config(BaselineConfig, args.config, args.overrides, data=args.data, run_name=args.run_name,
                      tracking_uri=args.tracking_uri, experiment=args.experiment)
    metrics = run_baseline(cfg)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0
