"""`ich-ray train`."""

from __future__ import annotations

from ich_ray.cli.common import add_address_argument, add_config_arguments, add_tracking_arguments

HELP = "Train a CNN with Ray Train (DDP, mixed precision), tracked in MLflow."


def add_training_arguments(parser) -> None:
    """Flags shared by `train` and `lr-find` (None = not given, so recipes and --set keep their values)."""
    parser.add_argument("--data", required=True, metavar="ROOT", help="data root holding images/")
    parser.add_argument("--arch", help="resnet18 | resnet50 | resnet101 | densenet121 | alexnet")
    parser.add_argument("--task", choices=("binary", "multilabel"), help="binary (any) or multilabel (6 labels)")
    parser.add_argument("--size", type=int, help="image size in px (one size; recipes may give a schedule)")
    parser.add_argument("--workers", type=int, help="Ray Train workers (num_workers)")
    parser.add_argument("--gpu", action="store_true", default=None, help="one GPU per worker")
    parser.add_argument("--run-name", help="MLflow run and Ray Train run name (same name = resume)")
    add_config_arguments(parser)
    add_tracking_arguments(parser)
    add_address_argument(parser)


def add_arguments(parser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", help="learning rate, or 'auto' to run the LR range test first")
    parser.add_argument("--register-as", help="register the model in the MLflow registry under this name")


def flags(args) -> dict:
    """The CLI flags as config keys (None where not given)."""
    return {
        "data": args.data, "arch": args.arch, "task": args.task, "workers": args.workers,
        "use_gpu": args.gpu, "run_name": args.run_name, "tracking_uri": args.tracking_uri,
        "experiment": args.experiment, "address": args.address,
        "sizes": (args.size,) if args.size else None,
        "size_epochs": () if args.size else None,
    }


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.train.config import TrainConfig
    from ich_ray.train.trainer import train

    cfg = load_config(TrainConfig, args.config, args.overrides, **flags(args), epochs=args.epochs, lr=args.lr,
                      register_as=args.register_as)
    result = train(cfg)
    shown = " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float))
    print(f"run={result.run_name} checkpoint={result.checkpoint_path} lr={result.lr:.3g} {shown}")
    return 0
