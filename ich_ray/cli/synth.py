"""`ich-ray synth`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Write a synthetic head-CT DICOM set with RSNA-format labels."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #2)")
