"""`ich-ray clean`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Window, filter, crop and resize ok slices into ROOT/images/ Parquet shards."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #3)")
