"""`ich-ray train`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Train a CNN with Ray Train (DDP, mixed precision), tracked in MLflow."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #4)")
