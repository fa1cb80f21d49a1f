"""out/summary.md: what came in, what the model said, what failed, and where the heat maps are."""

from __future__ import annotations

from pathlib import Path

import polars as pl

TOP_ROWS = 20
MAX_FAILURES = 50


def _table(frame: pl.DataFrame) -> list[str]:
    if frame.is_empty():
        return ["(none)"]
    cells = [[("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)) for v in row]
             for row in frame.iter_rows()]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    return lines + ["| " + " | ".join(row) + " |" for row in cells]


def write_summary(path: Path, *, model: str, labels: tuple[str, ...], threshold: float, smooth: bool,
                  files_in: int, predictions: pl.DataFrame, worklist: pl.DataFrame, failures: pl.DataFrame,
                  heatmaps: dict[str, str], seconds: float) -> Path:
    """Markdown page: counts, the worklist's top rows, failures and links (relative) to heat maps."""
    flagged = int(worklist["flagged"].sum()) if worklist.height else 0
    binary = labels == ("any",)
    lines = [
        "# ich-ray predict",
        "",
        f"- model: `{model}` (outputs: {', '.join(labels)})",
        f"- files in: {files_in}; slices predicted: {predictions.height}; failed files: {failures.height}",
        f"- studies: {worklist.height}; flagged (max any >= {threshold:g}, or no usable slice): {flagged}",
        f"- smoothing along the series: {'on' if smooth else 'off'}; time: {seconds:.1f} s",
    ]
    if binary:
        lines.append("- binary model: `submission.csv` holds `any` rows only (not a full RSNA submission)")
    top = worklist.head(TOP_ROWS).select(
        "patient_id", "study_instance_uid", "n_slices", "flagged", "max_any", "mean_any", "top_slice_index"
    ).with_columns(pl.col("study_instance_uid").replace_strict(
        {s: f"[{s}]({p})" for s, p in heatmaps.items()}, default=pl.col("study_instance_uid")))
    lines += ["", f"## Worklist (top {TOP_ROWS}, most urgent first; full list: `worklist.csv`)", "", *_table(top)]
    lines += ["", "## Heat maps (Grad-CAM on the last conv block, brain window)", ""]
    lines += [f"- [{study}]({link})" for study, link in heatmaps.items()] or ["(no flagged study)"]
    lines += ["", f"## Failures ({failures.height}; full list: `failures.csv`)", ""]
    lines += _table(failures.head(MAX_FAILURES).select("path", "stage", "error_type", "error"))
    path.write_text("\n".join(lines) + "\n")
    return path
