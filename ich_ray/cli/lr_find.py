"""`ich-ray lr-find`."""

from __future__ import annotations

from ich_ray.cli.train import add_training_arguments, flags

HELP = "Learning-rate range test: loss-vs-LR plot and a suggested LR."


def add_arguments(parser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--num-iter", type=int, help="batches in the test (default 100)")


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.train.config import LRFindConfig
    from ich_ray.train.lr_find_run import run_lr_find

    result = run_lr_find(load_config(LRFindConfig, args.config, args.overrides, **flags(args), num_iter=args.num_iter))
    print(f"suggested_lr={result.suggested_lr:.3g} steepest={result.lr_steep:.3g} min/10={result.lr_min_div10:.3g}")
    return 0
