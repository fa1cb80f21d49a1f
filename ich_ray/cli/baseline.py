"""`ich-ray baseline`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Metadata-only random-forest baseline, tracked in MLflow."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #4)")
