"""`ich-ray predict`: a folder of DICOM studies -> slice probabilities, RSNA submission, triage worklist,
Grad-CAM heat maps and a summary page (see docs/architecture.md, stage 7)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ich_ray.data.io import list_inputs
from ich_ray.data.labels import read_rsna_labels
from ich_ray.labels import LABELS
from ich_ray.models.loading import ModelSpec, build_model, load_model
from ich_ray.predict.evaluate import evaluate, write_metrics
from ich_ray.predict.heatmap import study_panels, write_study_heatmap
from ich_ray.predict.inference import predict_files, runs_in_driver
from ich_ray.predict.report import write_summary
from ich_ray.predict.schema import FAILURE_SCHEMA, PREDICTION_SCHEMA
from ich_ray.predict.slices import SliceLoader
from ich_ray.predict.smoothing import smooth_predictions
from ich_ray.predict.study import check_pair, refine_predictions
from ich_ray.predict.submission import write_submission
from ich_ray.predict.worklist import build_worklist
from ich_ray.study.loading import load_study_model

log = logging.getLogger(__name__)


@dataclass
class PredictConfig:
    model: str
    input: str
    out: str
    tracking_uri: str | None = None
    threshold: float = 0.5
    address: str | None = None
    batch_size: int = 32
    smooth: bool = False
    actors: int | None = None  # default: one per CPU of the cluster (at most 8)
    heatmap_slices: int = 3  # top slices per flagged study in its heat-map figure
    study_model: str | None = None  # a model of `ich-ray train-study`: refines the slice model's probabilities
    labels: str | None = None  # an RSNA-style label file: scores the predictions into metrics.json


@dataclass(frozen=True)
class PredictSummary:
    files_in: int
    slices: int
    failed: int
    studies: int
    flagged: int
    seconds: float

    def line(self) -> str:
        return (f"predict: {self.files_in} files in, {self.slices} slices predicted, {self.failed} failed; "
                f"{self.studies} studies, {self.flagged} flagged; {self.seconds:.1f} s, "
                f"{self.files_in / max(self.seconds, 1e-9):.1f} files/s")


def _failures(ordered: pl.DataFrame, results: pl.DataFrame) -> pl.DataFrame:
    read = ordered.filter(pl.col("status") == "failed").select(
        "path", pl.lit("read").alias("stage"), "error_type", "error",
        "study_instance_uid", "patient_id")
    prepare = results.filter(pl.col("error_type").is_not_null()).join(
        ordered.select("path", "study_instance_uid", "patient_id"), on="path", how="left"
    ).select("path", pl.lit("prepare").alias("stage"), "error_type", "error",
             "study_instance_uid", "patient_id")
    return pl.concat([read, prepare]).cast(FAILURE_SCHEMA).sort("path")


def _predictions(ordered: pl.DataFrame, results: pl.DataFrame) -> pl.DataFrame:
    good = results.filter(pl.col("error_type").is_null()).drop("error_type", "error", "embedding")
    table = ordered.join(good, on="path", how="inner")
    return table.select(list(PREDICTION_SCHEMA)).cast(PREDICTION_SCHEMA).sort(
        "study_instance_uid", "series_instance_uid", "slice_index")


def _heatmaps(out: Path, worklist: pl.DataFrame, predictions: pl.DataFrame, ordered: pl.DataFrame,
              spec: ModelSpec, state: dict, k: int) -> dict[str, str]:
    """One PNG per flagged study with predicted slices: its top-k slices by `any` probability."""
    studies = worklist.filter(pl.col("flagged") & (pl.col("n_slices") > 0))["study_instance_uid"].to_list()
    if not studies:
        return {}
    model, loader = build_model(spec, state), SliceLoader(spec.recipe)
    context = ordered.select("path", "prev_path", "next_path")
    links = {}
    for study in studies:
        top = (predictions.filter((pl.col("study_instance_uid") == study) & ~pl.col("blank"))
               .sort("prob_any", descending=True)
               .head(k).join(context, on="path", how="left"))
        panels = study_panels(model, spec, loader, top.to_dicts())
        loader.clear()
        name = f"heatmaps/{re.sub(r'[^0-9A-Za-z._-]', '_', study)}.png"
        write_study_heatmap(out / name, study, panels)
        links[study] = name
    return links


def run_predict(cfg: PredictConfig) -> PredictSummary:
    from ich_ray.ray_utils import init_ray

    start = time.perf_counter()
    spec, state = load_model(cfg.model, cfg.tracking_uri)
    study = load_study_model(cfg.study_model, cfg.tracking_uri) if cfg.study_model else None
    if study is not None:
        check_pair(spec, study[0])
    label_rows = read_rsna_labels(cfg.labels).frame if cfg.labels else None  # a bad label file fails first
    listing = list_inputs(cfg.input)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if not runs_in_driver(listing.height, cfg.actors):  # a few studies: no Ray to start (~5 s)
        init_ray(cfg.address)
    embeddings = study is not None and study[0].features == "embedding"
    ordered, results = predict_files(listing["path"].to_list(), spec, state, cfg.batch_size, cfg.actors,
                                     embeddings=embeddings)
    predictions, failures = _predictions(ordered, results), _failures(ordered, results)
    if study is not None:
        rows = results.filter(pl.col("embedding").is_not_null()).select("path", "embedding") if embeddings else None
        predictions = refine_predictions(predictions, rows, *study)
    if predictions.height + failures.height != listing.height:
        raise RuntimeError(f"predict: {listing.height} files listed but {predictions.height} predicted + "
                           f"{failures.height} failed")
    if cfg.smooth:  # along the slices with brain only: blank ones keep their documented value
        predictions = pl.concat([smooth_predictions(predictions.filter(~pl.col("blank"))),
                                 predictions.filter(pl.col("blank"))]).sort(
            "study_instance_uid", "series_instance_uid", "slice_index")
    worklist = build_worklist(predictions, failures, cfg.threshold)
    predictions.write_parquet(out / "predictions.parquet")
    predictions.write_csv(out / "predictions.csv")
    failures.write_csv(out / "failures.csv")
    worklist.write_csv(out / "worklist.csv")
    write_submission(predictions, out / "submission.csv", labels=[n for n in LABELS if n in spec.labels])
    heatmaps = _heatmaps(out, worklist, predictions, ordered, spec, state, cfg.heatmap_slices)
    metrics = None
    if label_rows is not None:
        metrics = evaluate(predictions, label_rows, spec.labels)
        write_metrics(out / "metrics.json", metrics)
    seconds = time.perf_counter() - start
    write_summary(out / "summary.md", model=cfg.model, labels=spec.labels, threshold=cfg.threshold,
                  smooth=cfg.smooth, files_in=listing.height, predictions=predictions, worklist=worklist,
                  failures=failures, heatmaps=heatmaps, seconds=seconds, study_model=cfg.study_model,
                  metrics=metrics)
    summary = PredictSummary(listing.height, predictions.height, failures.height, worklist.height,
                             int(worklist["flagged"].sum()), seconds)
    log.info("%s", summary.line())
    return summary
