"""Model-quality benchmark on the hard synthetic set (not a test): can a model be told apart from a trick?

1. Build a fixed hard training set and a separately generated held-out set of new patients (another seed),
   each through the CLI: synth --difficulty hard -> metadata -> clean.
2. Train the paper's recipe on the training set (ResNet18 from scratch, multilabel: five subtypes + any,
   progressive resizing 64 -> 128 px, one training CPU: the `bench/train.py` budget of ~10 CPU minutes).
3. Score every kept held-out slice with the trained checkpoint through predict's own input path
   (`ich_ray.predict.slices.SliceLoader` -> `inference.predict_images`), and with the hand-made threshold
   detector (the fraction of head pixels, 0 < HU < 100, whose 3x3-median-filtered HU lies in 55-95).
4. The same model on the 28 real slices of a normal head (../shared/data/real-ct-ge/, one GE patient).

    python bench/quality.py [--seed 0] [--patients 40] [--holdout-patients 16] [--epochs 10] [--workdir DIR]
                            [--keep DIR] [--folds K | --stack-patients N]

`--keep DIR` works in DIR instead of a temporary folder and reuses what an earlier run with the same
arguments left there (the data sets and the trained slice models, by their recorded checkpoint paths), so
the study stage can be rerun alone; the log says which steps were reused.

Goals on the hard set: threshold_auc_any <= 0.70 (bright-blood thresholding does not solve it),
0.80 <= slice_auc_any <= 0.95 (learnable, not saturated), real_normal_mean_any <= 0.3.
slice_logloss is the RSNA weighted log loss over the six labels (`any` weighted 2).

The held-out predictions stay a table (`heldout_predictions`: patient, study, series, slice_index, labels,
p_<label>, threshold score) so a study-level model can be scored on the same slices by a later step.

5. The study-level model (`ich-ray train-study`'s code: a BiGRU refining each series' slice logits) on the
   same held-out slices, applied through predict's own refinement: sequence_logloss is its RSNA weighted log
   loss, sequence_gain the relative reduction against the slice model's slice_logloss (goal >= 0.10). Its
   training logits come from patients the slice model never trained on, either out of fold, as the top RSNA
   solutions made them (`--folds K` more slice models, same recipe, each trained without one fold of the
   training patients, give that fold's logits; the slice model's own held-out split keeps the slice model's
   logits, as new patients get in predict), or with `--stack-patients N` from a stacking set: N more
   patients (seed + 2000) scored by the slice model itself (`train-study --stacking`), the same model as at
   predict time, whose labels the slice model never learns from. At this size the fold models are much
   weaker than the full model (README), so out-of-fold logits do not look like the ones the study model
   refines. `--folds 0` without `--stack-patients` skips this stage.

Last line: threshold_auc_any=X slice_auc_any=Y slice_logloss=Z study_auc_any=W real_normal_mean_any=V
sequence_logloss=S sequence_gain=G
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

log = logging.getLogger("bench.quality")

REAL_NORMAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-ct-ge"
THRESHOLD_BAND = (55.0, 95.0)  # HU of bright blood that the hand-made detector counts
HEAD_BAND = (0.0, 100.0)
SYNTH_SIZE = 256


def build_set(work: Path, name: str, patients: int, seed: int, size: int) -> tuple[Path, Path]:
    """synth (hard) -> metadata -> clean through the CLI; returns (data root, DICOM folder)."""
    from ich_ray.cli.main import main as cli

    synth, root = work / f"{name}-synth", work / f"{name}-root"
    if (root / "images").is_dir():
        log.info("reusing the %s set in %s", name, root)
        return root, synth / "dicom"
    steps = [
        ["synth", "--out", str(synth), "--patients", str(patients), "--size", str(SYNTH_SIZE), "--seed", str(seed),
         "--difficulty", "hard"],
        ["metadata", "--input", str(synth / "dicom"), "--labels", str(synth / "labels.csv"), "--out", str(root)],
        ["clean", "--data", str(root), "--size", str(size)],
    ]
    for argv in steps:
        if cli(argv) != 0:
            raise RuntimeError(f"ich-ray {' '.join(argv)} failed")
    return root, synth / "dicom"


def train_model(root: Path, epochs: int, size: int, batch: int, seed: int, fold: int | None = None,
                folds: int = 2) -> str:
    """The paper's recipe on ROOT (multilabel ResNet18 from scratch); returns its checkpoint. With `fold`,
    an out-of-fold model trained without that fold of the training patients. A checkpoint recorded in ROOT
    by an earlier run of the same model (`--keep`) is reused."""
    from ich_ray.train.config import TrainConfig
    from ich_ray.train.trainer import train

    name = "bench-quality" if fold is None else f"bench-quality-fold{fold}of{folds}"
    record = root / f"{name}.checkpoint"
    if record.is_file():
        checkpoint = record.read_text()
        log.info("reusing %s: %s", name, checkpoint)
        return checkpoint
    cfg = TrainConfig(data=str(root), arch="resnet18", task="multilabel", epochs=epochs, sizes=(size // 2, size),
                      batch_size=batch, workers=1, cpus_per_worker=1, track=False, run_name=name,
                      lr=2e-3, seed=seed, fold=fold, folds=folds)
    started = time.perf_counter()
    result = train(cfg)
    log.info("%s trained in %.1f minutes; its own validation: auc_any %.4f", name,
             (time.perf_counter() - started) / 60, result.metrics.get("auc_any", float("nan")))
    record.write_text(result.checkpoint_path)
    return result.checkpoint_path


def kept_slices(root: Path) -> pl.DataFrame:
    """The slices `clean` kept (what the model is scored on), with their labels."""
    from ich_ray.labels import LABEL_COLUMNS
    from ich_ray.train.data import image_files

    return pl.read_parquet(image_files(root), columns=["sop_instance_uid", *LABEL_COLUMNS])


def threshold_score(hu: np.ndarray) -> float:
    """The hand-made detector: share of head pixels whose 3x3 median lies in the bright-blood band."""
    from scipy import ndimage

    head = (hu > HEAD_BAND[0]) & (hu < HEAD_BAND[1])
    median = ndimage.median_filter(hu.astype(np.float32), size=3)
    bright = head & (median >= THRESHOLD_BAND[0]) & (median <= THRESHOLD_BAND[1])
    return float(bright.sum() / max(1, head.sum()))


def score_dicom(paths: list[str], checkpoint: str, batch: int = 32, with_threshold: bool = False,
                keep: set[str] | None = None) -> pl.DataFrame:
    """One row per readable slice (or per SOPInstanceUID in `keep`): ids, slice_index, p_<label> through
    predict's input path, and the threshold score."""
    import torch

    from ich_ray.models.loading import build_model, load_model
    from ich_ray.predict.inference import predict_images
    from ich_ray.predict.slices import SliceLoader, header_rows, order_slices

    spec, state = load_model(checkpoint)
    model = build_model(spec, state)
    loader = SliceLoader(spec.recipe)
    rows = order_slices(header_rows(paths)).filter(pl.col("slice_index").is_not_null())
    if keep is not None:  # the neighbours still come from every file
        rows = rows.filter(pl.col("sop_instance_uid").is_in(sorted(keep)))
    rows = rows.sort("series_instance_uid", "slice_index")
    torch.set_num_threads(2)
    probs, scores = [], []
    for start in range(0, rows.height, batch):
        chunk = rows.slice(start, batch)
        images = [loader.image(p, q, n) for p, q, n in chunk.select("path", "prev_path", "next_path").iter_rows()]
        if with_threshold:
            scores += [threshold_score(loader.hu(p)) for p in chunk["path"]]
        loader.clear()
        probs.append(predict_images(model, spec, np.stack(images)))
    p = np.concatenate(probs)
    out = rows.select("patient_id", "study_instance_uid", "series_instance_uid", "slice_index", "sop_instance_uid",
                      "path").with_columns(pl.Series(f"p_{name}", p[:, j]) for j, name in enumerate(spec.labels))
    return out.with_columns(pl.Series("threshold", scores)) if with_threshold else out


def heldout_predictions(root: Path, dicom: Path, checkpoint: str) -> pl.DataFrame:
    """Predictions and threshold scores for the held-out slices `clean` kept, with their labels."""
    paths = sorted(str(p) for p in dicom.rglob("*.dcm"))
    kept = kept_slices(root)
    scored = score_dicom(paths, checkpoint, with_threshold=True, keep=set(kept["sop_instance_uid"]))
    table = scored.join(kept, on="sop_instance_uid", how="inner")
    if table.height != kept.height:
        raise RuntimeError(f"held-out: {kept.height} kept slices but {table.height} scored")
    return table.sort("study_instance_uid", "slice_index")


def slice_metrics(table: pl.DataFrame, labels: tuple[str, ...]) -> dict[str, float]:
    from ich_ray.metrics import roc_auc, weighted_log_loss

    y = table.select(f"label_{n}" for n in labels).to_numpy().astype(np.float64)
    p = table.select(f"p_{n}" for n in labels).to_numpy().astype(np.float64)
    y_any = table["label_any"].to_numpy()
    return {"threshold_auc_any": roc_auc(y_any, table["threshold"].to_numpy()),
            "slice_auc_any": roc_auc(y_any, table["p_any"].to_numpy()),
            "slice_logloss": weighted_log_loss(y, p, labels)}


def study_metrics(table: pl.DataFrame) -> dict[str, float]:
    """Study AUC of `any` with the study score = the max over its slices (label: any slice positive)."""
    from ich_ray.metrics import roc_auc

    studies = table.group_by("study_instance_uid").agg(pl.col("p_any").max(), pl.col("label_any").max())
    return {"study_auc_any": roc_auc(studies["label_any"].to_numpy(), studies["p_any"].to_numpy())}


def real_normal_mean(checkpoint: str, folder: Path = REAL_NORMAL) -> float:
    paths = sorted(str(p) for p in folder.glob("*.dcm"))
    if not paths:
        raise FileNotFoundError(f"no real normal slices (*.dcm) in {folder}")
    return float(score_dicom(paths, checkpoint)["p_any"].mean())


def study_stage(train_root: Path, slice_checkpoint: str, table: pl.DataFrame, args,
                stack_root: Path | None = None) -> dict[str, float]:
    """Train the study model (`ich-ray train-study`'s code: a BiGRU refining each series' slice logits) and
    score it on the same held-out slices as the slice model through predict's own refinement; gain = the
    relative reduction of the RSNA weighted log loss.

    Its training logits come from patients the slice model never trained on, one of two ways:
    - out of fold (default): `args.folds` more slice models (same recipe), each trained without one fold of
      the training patients, give that fold's logits; the slice model's own held-out split keeps the slice
      model's logits (as new patients get in predict);
    - a stacking set (`stack_root`, `--stack-patients`): the slice model's own logits on a separately
      generated set of new patients (blending): the same model as at predict time, at the price of labels
      the slice model does not train on."""
    from ich_ray.study.config import StudyConfig
    from ich_ray.study.trainer import train_study

    started = time.perf_counter()
    if stack_root is None:
        oof = tuple(train_model(train_root, args.epochs, args.size, args.batch, args.seed, fold=k, folds=args.folds)
                    for k in range(args.folds))
        log.info("%d out-of-fold slice models ready in %.1f minutes", args.folds, (time.perf_counter() - started) / 60)
        cfg = StudyConfig(data=str(train_root), slice_model=slice_checkpoint, oof_models=oof)
    else:
        cfg = StudyConfig(data=str(stack_root), slice_model=slice_checkpoint, stacking=True)
    started = time.perf_counter()
    cfg = dataclasses.replace(cfg, arch="bigru", epochs=args.study_epochs, workers=1, cpus_per_worker=1, track=False,
                              seed=args.seed, embed_actors=2, run_name="bench-quality-study")
    result = train_study(cfg)
    log.info("study model trained in %.1f minutes; its own validation: auc_any %.4f, study_auc_any %.4f",
             (time.perf_counter() - started) / 60, result.metrics.get("auc_any", float("nan")),
             result.metrics.get("study_auc_any", float("nan")))
    return refined_gain(result.checkpoint_path, table)


def refined_gain(study_checkpoint: str, table: pl.DataFrame) -> dict[str, float]:
    """The study model's refinement of the held-out slices (predict's own code) against the slice model."""
    from ich_ray.labels import LABELS
    from ich_ray.metrics import weighted_log_loss
    from ich_ray.predict.study import refine_predictions
    from ich_ray.study.loading import load_study_model

    spec, model = load_study_model(study_checkpoint)
    if spec.features != "logits":
        raise RuntimeError(f"the benchmark's study model reads {spec.features}, expected logits")
    # predict's input frame: the slice model's probabilities of the held-out slices, none blank (clean kept them)
    slices = table.select("path", "series_instance_uid", "slice_index",
                          *(pl.col(f"p_{n}").alias(f"prob_{n}") for n in spec.labels)).with_columns(blank=False)
    refined = refine_predictions(slices, None, spec, model).select(
        "path", *(pl.col(f"prob_{n}").alias(f"q_{n}") for n in spec.labels))
    joined = table.join(refined, on="path", how="inner")
    if joined.height != table.height:
        raise RuntimeError(f"study model scored {joined.height} of {table.height} held-out slices")
    y = joined.select(f"label_{n}" for n in LABELS).to_numpy().astype(np.float64)
    slice_loss = weighted_log_loss(y, joined.select(f"p_{n}" for n in LABELS).to_numpy(), LABELS)
    sequence_loss = weighted_log_loss(y, joined.select(f"q_{n}" for n in LABELS).to_numpy(), LABELS)
    return {"sequence_logloss": sequence_loss, "sequence_gain": (slice_loss - sequence_loss) / slice_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seeds the training set (held-out: seed + 1000) and training")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--holdout-patients", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=128, help="final size; the first half of the epochs run at half")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--study-epochs", type=int, default=20, help="epochs of the study-level sequence model")
    parser.add_argument("--folds", type=int, default=2,
                        help="out-of-fold slice models for the study model's features (0: no study stage)")
    parser.add_argument("--stack-patients", type=int, default=0,
                        help="train the study model on the slice model's logits of this many new patients instead")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", default=None, metavar="DIR", help="work in DIR and reuse its sets and models")
    parser.add_argument("--save-table", default=None, metavar="CSV", help="also write the held-out predictions")
    parser.add_argument("--save-checkpoint", default=None, metavar="DIR", help="also copy the trained checkpoint")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from ich_ray.labels import LABELS
    from ich_ray.ray_utils import init_ray

    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep).resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.workdir)))
        train_root, _ = build_set(work, "train", args.patients, args.seed, args.size)
        held_root, held_dicom = build_set(work, "heldout", args.holdout_patients, args.seed + 1000, args.size)
        init_ray(None)
        checkpoint = train_model(train_root, args.epochs, args.size, args.batch, args.seed)
        table = heldout_predictions(held_root, held_dicom, checkpoint)
        if args.save_table:
            table.drop("path").write_csv(args.save_table)
        if args.save_checkpoint:
            shutil.copytree(checkpoint, args.save_checkpoint, dirs_exist_ok=True)
        metrics = {**slice_metrics(table, LABELS), **study_metrics(table),
                   "real_normal_mean_any": real_normal_mean(checkpoint)}
        stack_root = None
        if not args.folds and not args.stack_patients:
            log.info("no study stage (--folds 0 and no --stack-patients)")
        elif args.stack_patients:
            stack_root, _ = build_set(work, f"stack{args.stack_patients}", args.stack_patients, args.seed + 2000,
                                      args.size)
        if args.folds or args.stack_patients:
            metrics.update(study_stage(train_root, checkpoint, table, args, stack_root))
    log.info("held-out: %d slices (%d positive) in %d studies", table.height, int(table["label_any"].sum()),
             table["study_instance_uid"].n_unique())
    print(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
