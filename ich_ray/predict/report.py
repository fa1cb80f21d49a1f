"""out/summary.md: what came in, what the model said, what failed, and where the heat maps are."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ich_ray.predict.schema import BLANK_PROBABILITY

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
                  heatmaps: dict[str, str], seconds: float, study_model: str | None = None,
                  metrics: dict | None = None) -> Path:
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
        f"- study model: `{study_model}` (per-slice probabilities refined over each series)" if study_model
        else "- study model: none (each slice scored alone)",
        f"- blank slices (no brain, dropped by clean; probability {BLANK_PROBABILITY:g}, not in the study "
        f"score, top slice or heat maps): {int(predictions['blank'].sum()) if predictions.height else 0}",
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
    if metrics is not None:
        lines += ["", f"## Against the labels ({metrics['n_labelled']} labelled slices, {metrics['n_studies']} "
                      "studies; `metrics.json`)", "", "| metric | slice | study |", "|---|---|---|"]
        for name in ("auc_any", *(f"auc_{n}" for n in labels if n != "any")):
            lines.append(f"| {name} | {_fmt(metrics['slice'].get(name))} | {_fmt(metrics['study'].get(name))} |")
        lines.append(f"| logloss_weighted | {_fmt(metrics['slice'].get('logloss_weighted'))} | |")
    lines += ["", f"## Failures ({failures.height}; full list: `failures.csv`)", ""]
    lines += _table(failures.head(MAX_FAILURES).select("path", "stage", "error_type", "error"))
    path.write_text("\n".join(lines) + "\n")
    return path


def _fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"
