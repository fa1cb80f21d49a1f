"""`ich-ray lr-find`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Learning-rate range test: loss-vs-LR plot and a suggested LR."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #4)")
