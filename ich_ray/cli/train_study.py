"""`ich-ray train-study`."""

from __future__ import annotations

from ich_ray.cli.common import add_address_argument, add_config_arguments, add_tracking_arguments

HELP = "Train a study-level sequence model (BiGRU or 1-D CNN) over a slice model's embeddings, with Ray Train."


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, metavar="ROOT", help="data root holding images/")
    parser.add_argument("--slice-model", required=True, metavar="URI",
                        help="the slice model: models:/NAME/VERSION, models:/NAME@ALIAS, runs:/ID/model or a checkpoint folder")
    parser.add_argument("--oof-models", nargs="+", metavar="URI",
                        help="out-of-fold slice models, folds 0..K-1 (`ich-ray train --set fold=k folds=K`): the "
                             "training patients' features come from the model that never saw them")
    parser.add_argument("--stacking", action="store_true", default=None,
                        help="ROOT's patients are all new to the slice model (a stacking set): its own logits of "
                             "them are the training features")
    parser.add_argument("--arch", choices=("bigru", "cnn1d"), help="sequence model (default bigru)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--workers", type=int, help="Ray Train workers")
    parser.add_argument("--gpu", action="store_true", default=None, help="one GPU per worker")
    parser.add_argument("--run-name", help="MLflow and Ray Train run name")
    parser.add_argument("--register-as", help="register the study model in the MLflow registry under this name")
    add_config_arguments(parser)
    add_tracking_arguments(parser)
    add_address_argument(parser)


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.study.config import StudyConfig
    from ich_ray.study.trainer import train_study

    cfg = load_config(StudyConfig, args.config, args.overrides, data=args.data, slice_model=args.slice_model,
                      oof_models=tuple(args.oof_models) if args.oof_models else None, stacking=args.stacking,
                      arch=args.arch, epochs=args.epochs, workers=args.workers, use_gpu=args.gpu,
                      run_name=args.run_name, register_as=args.register_as, tracking_uri=args.tracking_uri,
                      experiment=args.experiment, address=args.address)
    result = train_study(cfg)
    shown = " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float))
    print(f"run={result.run_name} checkpoint={result.checkpoint_path} series={result.n_train_series}+"
          f"{result.n_valid_series} {shown}")
    return 0
