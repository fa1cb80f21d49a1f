"""The one summary line every long stage ends with, and the accounting it must satisfy."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class StageSummary:
    """What a stage did with its inputs: files_in == ok + filtered + failed, always.

    `nodes` maps a Ray node id to the number of files processed there (evidence that work was spread over
    a cluster); `run_id` names the committed snapshot (None when nothing was written).
    """

    stage: str
    files_in: int
    ok: int
    filtered: int
    failed: int
    seconds: float
    nodes: dict[str, int] = field(default_factory=dict)
    run_id: str | None = None

    def __post_init__(self):
        if self.files_in != self.ok + self.filtered + self.failed:
            raise RuntimeError(
                f"{self.stage}: files were lost: {self.files_in} in != {self.ok} ok + {self.filtered} filtered "
                f"+ {self.failed} failed"
            )

    @property
    def files_per_s(self) -> float:
        return self.files_in / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.stage}: {self.files_in} files in, {self.ok} ok, {self.filtered} filtered, {self.failed} failed; "
            f"{self.seconds:.1f} s, {self.files_per_s:.1f} files/s"
        )

    def log(self) -> StageSummary:
        for node, n in sorted(self.nodes.items()):
            log.debug("%s: node %s processed %d files", self.stage, node, n)
        log.info("%s", self.line())
        return self
