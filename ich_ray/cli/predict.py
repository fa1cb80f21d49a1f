"""`ich-ray predict`."""

from __future__ import annotations

from ich_ray.cli.common import add_address_argument, add_config_arguments

HELP = "Predict on new DICOM studies: per-slice probabilities, submission, triage worklist, heat maps."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--model", required=True, help="models:/<name>/<version|latest>, models:/<name>@<alias>, "
                        "runs:/<run id>/model, or a training checkpoint folder")
    parser.add_argument("--input", required=True, help="folder of DICOM files (any layout, several studies)")
    parser.add_argument("--out", required=True, help="output folder (predictions, submission.csv, worklist.csv, heatmaps/)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="flag a study when its max `any` probability reaches this (default 0.5)")
    parser.add_argument("--batch-size", type=int, default=None, help="slices per inference batch (default 32)")
    parser.add_argument("--actors", type=int, default=None,
                        help="inference actors in a Ray Data actor pool (default: up to 1,000 files in this "
                        "process, with no Ray; more files in one actor per CPU)")
    parser.add_argument("--smooth", action="store_true", default=None,
                        help="smooth slice probabilities along each series (off by default)")
    parser.add_argument("--study-model", default=None, metavar="URI",
                        help="a model of `ich-ray train-study`: refines each series' slice probabilities")
    parser.add_argument("--labels", default=None, metavar="CSV",
                        help="RSNA-style label file: score the predictions (slice and study AUC, weighted log "
                             "loss) into metrics.json and the summary page")
    add_address_argument(parser)


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.predict.run import PredictConfig, run_predict

    cfg = load_config(
        PredictConfig, args.config, args.overrides, model=args.model, input=args.input, out=args.out,
        tracking_uri=args.tracking_uri, threshold=args.threshold, address=args.address,
        batch_size=args.batch_size, actors=args.actors, smooth=args.smooth, study_model=args.study_model,
        labels=args.labels,
    )
    run_predict(cfg)
    return 0
