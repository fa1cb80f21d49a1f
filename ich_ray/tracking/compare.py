"""The paper's results table, built from tracked runs: one row per run, the same columns for every run.

Per-epoch metrics are summarised over each run's history: the best accuracy / accuracy_multi / AUC (max)
and weighted log loss (min) over epochs, mean seconds per epoch and mean images per second.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import polars as pl

from ich_ray.labels import LABELS
from ich_ray.tracking.uri import check_tracking_uri

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENTS = ("ich-ray/binary-any", "ich-ray/multilabel", "ich-ray/baseline")
BEST_MAX = ("accuracy", "accuracy_multi", *(f"auc_{label}" for label in LABELS))
BEST_MIN = ("logloss_weighted",)
MEAN = {"epoch_time_s": "s_per_epoch", "images_per_s": "images_per_s"}
SCHEMA = {
    "run_name": pl.String, "experiment": pl.String, "architecture": pl.String, "task": pl.String,
    "epochs": pl.Int64, "image_size": pl.String,
    **{name: pl.Float64 for name in (*BEST_MAX, *BEST_MIN, *MEAN.values())},
    "run_id": pl.String,
}
CHART_METRICS = ("auc_any", "accuracy", "accuracy_multi")


def _history(client, run_id: str, key: str) -> list[float]:
    values = [m.value for m in client.get_metric_history(run_id, key)]
    return [v for v in values if not math.isnan(v)]


def _summarise(client, experiment: str, run) -> dict:
    params, tags, logged = run.data.params, run.data.tags, run.data.metrics
    histories = {key: _history(client, run.info.run_id, key) for key in logged}
    row = {
        "run_name": run.info.run_name,
        "experiment": experiment,
        "architecture": params.get("arch") or tags.get("arch"),
        "task": params.get("task") or tags.get("task"),
        "image_size": params.get("size") or params.get("sizes"),
        "run_id": run.info.run_id,
    }
    epochs = params.get("epochs")
    row["epochs"] = int(epochs) if epochs and epochs.isdigit() else len(histories.get("train_loss", [])) or None
    for key in BEST_MAX:
        row[key] = max(histories[key]) if histories.get(key) else None
    for key in BEST_MIN:
        row[key] = min(histories[key]) if histories.get(key) else None
    for key, column in MEAN.items():
        values = histories.get(key)
        row[column] = sum(values) / len(values) if values else None
    return row


def compare_runs(tracking_uri: str, experiments: list[str] | None = None) -> pl.DataFrame:
    """One row per run of `experiments` (default: the three ich-ray experiments that exist)."""
    from mlflow import MlflowClient

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        raise FileNotFoundError(f"no MLflow store at {tracking_uri}: nothing has been tracked there yet")
    check_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    names = list(experiments or DEFAULT_EXPERIMENTS)
    rows = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            log.warning("experiment %s not found at %s; skipped", name, tracking_uri)
            continue
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"],
                                  max_results=10000)
        rows.extend(_summarise(client, name, run) for run in runs)
    if not rows:
        raise ValueError(f"no runs in experiments {names} at {tracking_uri}")
    log.info("compared %d runs from %s", len(rows), tracking_uri)
    return pl.DataFrame(rows, schema=SCHEMA)


def format_table(df: pl.DataFrame, digits: int = 4) -> str:
    """A markdown table (readable in a terminal too); columns that are empty for every run are left out."""
    shown = df.select([c for c in df.columns if c != "run_id" and df[c].null_count() < len(df)])
    shown = shown.with_columns(pl.col(pl.Float64).round(digits))
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=-1, tbl_cols=-1, tbl_width_chars=10000, fmt_str_lengths=200,
                   fmt_float="mixed", float_precision=digits):
        return str(shown)


def comparison_chart(df: pl.DataFrame):
    """Grouped bars per run: AUC(any), accuracy and accuracy_multi (those that any run logged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = [m for m in CHART_METRICS if m in df.columns and df[m].null_count() < len(df)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(df) + 2), 4.5))
    x = np.arange(len(df))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        values = [v if v is not None else 0.0 for v in df[metric].to_list()]
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, df["run_name"].to_list(), rotation=20, ha="right")
    ax.set(ylim=(0, 1.08), ylabel="best over epochs", title="ich-ray runs")
    if metrics:
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def write_comparison(df: pl.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """results.csv, results.md and results.png in `out_dir`; returns their paths by kind."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "markdown": out / "results.md", "png": out / "results.png"}
    df.write_csv(paths["csv"])
    paths["markdown"].write_text(format_table(df) + "\n")
    fig = comparison_chart(df)
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    log.info("wrote %s, %s, %s", *paths.values())
    return paths


def compare(tracking_uri: str, experiments: list[str] | None, out_dir: str | Path):
    """`ich-ray compare`: the table of tracked runs, written as CSV, markdown and a chart."""
    df = compare_runs(tracking_uri, experiments)
    return df, write_comparison(df, out_dir)
