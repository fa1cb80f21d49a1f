"""`ich-ray compare`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "The results table of tracked runs: printed, CSV, markdown and a chart."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #5)")
