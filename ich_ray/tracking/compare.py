"""The paper's results table, built from tracked runs: one row per run, the same columns for every run.

One rule for which epoch counts: the FINAL epoch, the one the logged (and registered) model holds. Picking
each metric's best epoch would report a model nobody logged, and choosing on the validation set inflates the
figure. Timing columns are means over epochs. Where a run logged its held-out predictions
(`tracking.predictions`), `auc_any` and `logloss_weighted` get 95% intervals from a patient-level bootstrap,
so a user can see whether two runs differ beyond the noise of the held-out patients.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import polars as pl

from ich_ray.labels import LABELS
from ich_ray.metrics import bootstrap_interval, roc_auc, weighted_log_loss
from ich_ray.tracking.predictions import label_arrays, load_predictions
from ich_ray.tracking.uri import check_tracking_uri

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENTS = ("ich-ray/binary-any", "ich-ray/multilabel", "ich-ray/baseline")
EPOCH_RULE = "final epoch (the logged model)"
FINAL = ("accuracy", "accuracy_multi", *(f"auc_{label}" for label in LABELS), "study_auc_any", "logloss_weighted")
MEAN = {"epoch_time_s": "s_per_epoch", "images_per_s": "images_per_s"}
INTERVALS = ("auc_any", "logloss_weighted")
BOOTSTRAP_RESAMPLES = 1000
SCHEMA = {
    "run_name": pl.String, "experiment": pl.String, "architecture": pl.String, "task": pl.String,
    "epochs": pl.Int64, "image_size": pl.String, "epoch": pl.Int64,
    **{name: pl.Float64 for name in FINAL},
    **{f"{name}_{end}": pl.Float64 for name in INTERVALS for end in ("lo", "hi")},
    "n_patients": pl.Int64,
    **{name: pl.Float64 for name in MEAN.values()},
    "run_id": pl.String,
}
CHART_METRICS = ("auc_any", "accuracy", "accuracy_multi")


def _history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _intervals(client, run_id: str) -> dict:
    """95% patient-bootstrap intervals of auc_any and logloss_weighted from the run's held-out predictions."""
    frame = load_predictions(client, run_id)
    if frame is None or "patient_hash" not in frame.columns or frame["patient_hash"].n_unique() < 2:
        return {}
    labels, y_true, y_prob = label_arrays(frame)
    groups = frame["patient_hash"].to_numpy()
    metrics = {"logloss_weighted": lambda t, p: weighted_log_loss(t, p, labels)}
    if "any" in labels:
        j = labels.index("any")
        metrics["auc_any"] = lambda t, p: roc_auc(t[:, j], p[:, j])
    row = {"n_patients": int(frame["patient_hash"].n_unique())}
    for name, metric in metrics.items():
        row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_interval(y_true, y_prob, groups, metric,
                                                                  n_resamples=BOOTSTRAP_RESAMPLES)
    return row


def _summarise(client, experiment: str, run) -> dict:
    params, tags, logged = run.data.params, run.data.tags, run.data.metrics
    histories = {key: _history(client, run.info.run_id, key) for key in logged}
    row = {
        "run_name": run.info.run_name,
        "experiment": experiment,
        "architecture": params.get("arch") or tags.get("arch"),
        "task": params.get("task") or tags.get("task"),
        "image_size": params.get("sizes") or params.get("size"),
        "run_id": run.info.run_id,
    }
    epochs = params.get("epochs")
    logged_epochs = len(histories.get("valid_loss") or histories.get("train_loss") or [])
    row["epochs"] = int(epochs) if epochs and epochs.isdigit() else logged_epochs or None
    row["epoch"] = logged_epochs - 1 if logged_epochs else None
    for key in FINAL:
        values = histories.get(key)
        row[key] = None if not values or math.isnan(values[-1]) else values[-1]
    for key, column in MEAN.items():
        values = [v for v in histories.get(key, []) if not math.isnan(v)]
        row[column] = sum(values) / len(values) if values else None
    row.update(_intervals(client, run.info.run_id))
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
    """Grouped bars per run: AUC(any), accuracy and accuracy_multi of the final epoch, with the 95% patient
    bootstrap interval of AUC(any) as an error bar where the run logged its predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = [m for m in CHART_METRICS if m in df.columns and df[m].null_count() < len(df)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(df) + 2), 4.5))
    x = np.arange(len(df))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        values = np.array([v if v is not None else 0.0 for v in df[metric].to_list()])
        errors = _error_bars(df, metric, values)
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric, yerr=errors,
                      capsize=3 if errors is not None else 0)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, df["run_name"].to_list(), rotation=20, ha="right")
    ax.set(ylim=(0, 1.08), ylabel=EPOCH_RULE, title="ich-ray runs (error bars: 95% patient bootstrap)")
    if metrics:
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _error_bars(df: pl.DataFrame, metric: str, values):
    """[2, N] distances below/above each bar for `metric`'s interval columns, or None without any."""
    import numpy as np

    low, high = f"{metric}_lo", f"{metric}_hi"
    if low not in df.columns or df[low].null_count() == len(df):
        return None
    lo = np.array([v if v is not None else np.nan for v in df[low].to_list()])
    hi = np.array([v if v is not None else np.nan for v in df[high].to_list()])
    return np.nan_to_num(np.stack([values - lo, hi - values]).clip(min=0))


def write_comparison(df: pl.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """results.csv, results.md and results.png in `out_dir`; returns their paths by kind."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "markdown": out / "results.md", "png": out / "results.png"}
    df.write_csv(paths["csv"])
    paths["markdown"].write_text(f"Values of the {EPOCH_RULE}; `_lo`/`_hi`: 95% patient-bootstrap interval.\n\n"
                                 + format_table(df) + "\n")
    fig = comparison_chart(df)
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    log.info("wrote %s, %s, %s", *paths.values())
    return paths


def compare(tracking_uri: str, experiments: list[str] | None, out_dir: str | Path):
    """`ich-ray compare`: the table of tracked runs, written as CSV, markdown and a chart."""
    df = compare_runs(tracking_uri, experiments)
    return df, write_comparison(df, out_dir)
