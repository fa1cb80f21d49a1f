"""`ich-ray explore`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Plots and an HTML report of the metadata in ROOT/reports/."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #3)")
