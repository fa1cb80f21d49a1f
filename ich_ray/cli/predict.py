"""`ich-ray predict`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Predict on new DICOM studies: per-slice probabilities, submission, triage worklist, heat maps."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #7)")
