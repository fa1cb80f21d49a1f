"""`ich-ray explore`."""

from __future__ import annotations

from ich_ray.cli.common import add_config_arguments

HELP = "Plots and an HTML report of the metadata in ROOT/reports/."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", metavar="ROOT", required=True, help="data root (reads ROOT/metadata/)")
    parser.add_argument("--out", dest="out_dir", metavar="DIR", default=None, help="output folder (default ROOT/reports)")
    parser.add_argument("--examples", type=int, default=None, metavar="N", help="example slices per subtype (default 2)")
    parser.add_argument("--min-brain-fraction", type=float, default=None, metavar="F",
                        help="blank-slice threshold marked on the brain-fraction plot (default 0.02, as in clean)")
    parser.add_argument("--tracking-uri", default=None,
                        help="log the report to this MLflow store (experiment ich-ray/explore)")
    parser.add_argument("--track", action="store_true", default=None,
                        help="log the report to MLflow at $MLFLOW_TRACKING_URI, else sqlite:///<ROOT>/mlflow.db")


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.data.explore import ExploreConfig, explore

    cfg = load_config(
        ExploreConfig, args.config, args.overrides, data=args.data, out_dir=args.out_dir, examples=args.examples,
        min_brain_fraction=args.min_brain_fraction, tracking_uri=args.tracking_uri, track=args.track,
    )
    print(explore(cfg))
    return 0
