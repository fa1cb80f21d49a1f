"""`ich-ray reprocess`."""

from __future__ import annotations

from ich_ray.cli.common import StageNotBuilt

HELP = "Incremental re-preprocessing: metadata + clean on new or changed files only."


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise StageNotBuilt("not built yet (issue #3)")
