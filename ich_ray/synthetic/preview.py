"""A PNG montage of one synthetic study in the brain, subdural and bone windows (rows), bleeds in red.

Optionally a bleed-free study below it (brain window), to show what a negative study holds (hard: mimics).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ich_ray.imaging.windows import WINDOWS, apply_window
from ich_ray.labels import SUBTYPES
from ich_ray.synthetic.writer import SeriesHeader

log = logging.getLogger(__name__)

PREVIEW_WINDOWS = ("brain", "subdural", "bone")
ABBREVIATIONS = {"epidural": "EDH", "intraparenchymal": "IPH", "intraventricular": "IVH", "subarachnoid": "SAH",
                 "subdural": "SDH"}
MAX_COLUMNS = 10


def pick_slices(labels: np.ndarray, max_columns: int = MAX_COLUMNS) -> list[int]:
    """Up to half the columns for bleed slices, the rest spread from the top of the scan to the bottom."""
    positive = np.flatnonzero(labels[:, -1])
    chosen = set(positive[np.linspace(0, len(positive) - 1, min(len(positive), max_columns // 2)).astype(int)])
    chosen |= set(np.linspace(0, len(labels) - 1, max_columns - len(chosen)).astype(int))
    return sorted(int(z) for z in chosen)


def write_preview(path: str | Path, hu: np.ndarray, labels: np.ndarray, header: SeriesHeader,
                  negative: np.ndarray | None = None) -> Path:
    """Save the montage of study `hu [Z, H, W]` (with `labels [Z, 6]`) to `path`; returns the path.

    `negative` (HU of a study without bleeds) adds a last row: its slices spread from top to bottom.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = pick_slices(labels)
    n_rows = len(PREVIEW_WINDOWS) + (negative is not None)
    fig, axes = plt.subplots(n_rows, len(columns), squeeze=False, figsize=(1.9 * len(columns), 2.1 * n_rows + 0.5))
    if negative is not None:
        spread = np.linspace(0, len(negative) - 1, len(columns) + 2).astype(int)[1:-1]
        for col, z in enumerate(spread):
            ax = axes[-1, col]
            ax.imshow(apply_window(negative[z], WINDOWS["brain"]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"no bleed z{z}", fontsize=8)
        axes[-1, 0].set_ylabel("negative study\nbrain")
    for row, name in enumerate(PREVIEW_WINDOWS):
        for col, z in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(apply_window(hu[z], WINDOWS[name]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{name} {WINDOWS[name].center:g}/{WINDOWS[name].width:g}")
            if row == 0:
                found = [ABBREVIATIONS[s] for s, v in zip(SUBTYPES, labels[z, :-1], strict=True) if v]
                ax.set_title(f"z{z}" + (": " + ",".join(found) if found else ""), fontsize=8,
                             color="red" if labels[z, -1] else "black")
    fig.suptitle(f"synthetic study {header.patient_id} ({header.pixel_format}, {header.rows}x{header.cols}); "
                 "bleed slices titled in red")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log.info("preview: %s (%d slices x %d windows)", path, len(columns), len(PREVIEW_WINDOWS))
    return path
