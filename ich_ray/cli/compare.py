"""`ich-ray compare`."""

from __future__ import annotations

from pathlib import Path

HELP = "The results table of tracked runs: printed, CSV, markdown and a chart."


def add_arguments(parser) -> None:
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<ROOT>/mlflow.db)")
    parser.add_argument("--data", default=None, metavar="ROOT", help="data root (its mlflow.db and reports/)")
    parser.add_argument("--experiment", dest="experiments", action="append", default=None, metavar="NAME",
                        help="experiment to include (repeatable; default: ich-ray/binary-any, "
                             "ich-ray/multilabel, ich-ray/baseline)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: ROOT/reports/compare, else ./compare)")
    parser.add_argument("--promote", default=None, metavar="MODEL",
                        help="registered model whose best version (by --metric) gets --alias")
    parser.add_argument("--metric", default="auc_any", help="metric that picks the best run (default: auc_any)")
    parser.add_argument("--alias", default="champion", help="alias for the best version (default: champion)")


def run(args) -> int:
    from ich_ray.tracking.compare import DEFAULT_EXPERIMENTS, EPOCH_RULE, compare, format_table
    from ich_ray.tracking.registry import promote_best
    from ich_ray.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, args.data)
    out = args.out or (Path(args.data) / "reports" / "compare" if args.data else Path("compare"))
    df, paths = compare(uri, args.experiments, out)
    print(f"Values of the {EPOCH_RULE}; _lo/_hi: 95% patient-bootstrap interval.")
    print(format_table(df))
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    if args.promote:
        # Log loss is the one comparison metric where lower is better.
        version = promote_best(uri, args.experiments or list(DEFAULT_EXPERIMENTS), args.metric, args.promote,
                               alias=args.alias, higher_is_better="loss" not in args.metric)
        print(f"{args.alias}: models:/{args.promote}@{args.alias} = version {version.version} (run {version.run_id})")
    return 0
