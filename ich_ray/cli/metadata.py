"""`ich-ray metadata`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Read a DICOM tree in parallel (Ray Data) into ROOT/metadata/ Parquet, one row per file."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #3)")
