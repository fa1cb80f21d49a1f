"""Out-of-fold training features for the study model.

The study model must learn from slice predictions that look like those it will get on new patients. The
slice model's predictions on its own training patients do not: it has fitted them (in-sample), so they are
far more confident and separable than on anyone new, and a study model trained on them learns to trust them
too much. So, as the top RSNA 2019 solutions did, the training patients are cut into K folds
(`data.splits.patient_folds`, the assignment `ich-ray train --set fold=k` trained with) and fold k's rows take
the predictions of the model that trained without fold k; the held-out patients (never seen by any of them)
take the full slice model's, as predict will.
"""

from __future__ import annotations

import logging

import polars as pl

from ich_ray.data.splits import patient_folds, split_by_patient
from ich_ray.models.loading import ModelSpec

log = logging.getLogger(__name__)


def check_fold_models(specs: list[ModelSpec], slice_spec: ModelSpec, valid_fraction: float, seed: int) -> int:
    """Number of folds K; raises unless the models are folds 0..K-1 of one split equal to the study's."""
    folds = []
    for spec in specs:
        fold = spec.fold
        if not fold:
            raise ValueError(f"{spec.source} is not an out-of-fold model (train it with `--set fold=K`)")
        if (float(fold["valid_fraction"]), int(fold["seed"])) != (float(valid_fraction), int(seed)):
            raise ValueError(f"{spec.source} was trained with valid_fraction={fold['valid_fraction']} "
                             f"seed={fold['seed']}; the study split uses valid_fraction={valid_fraction} seed={seed}")
        if tuple(spec.labels) != tuple(slice_spec.labels):
            raise ValueError(f"{spec.source} predicts {list(spec.labels)}, the slice model {list(slice_spec.labels)}")
        folds.append((int(fold["fold"]), int(fold["folds"])))
    count = {k for _, k in folds}
    if len(count) != 1 or sorted(f for f, _ in folds) != list(range(next(iter(count)))):
        raise ValueError(f"out-of-fold models must be folds 0..K-1 of one K, exactly once each; got "
                         f"{sorted(folds)} (fold, folds) from {[s.source for s in specs]}")
    return next(iter(count))


def out_of_fold_table(full: pl.DataFrame, fold_tables: list[tuple[int, pl.DataFrame]], folds: int,
                      valid_fraction: float, seed: int) -> pl.DataFrame:
    """Rows of the held-out patients from `full`, rows of training fold k from fold k's model's table."""
    ids = full["patient_id"].to_numpy()
    is_valid = split_by_patient(ids, valid_fraction, seed)
    fold_of = dict(zip(ids.tolist(), patient_folds(ids, is_valid, folds, seed).tolist(), strict=True))
    parts = [full.filter(pl.Series(is_valid))]
    for k, table in fold_tables:
        patients = sorted(p for p, f in fold_of.items() if f == k)
        parts.append(table.filter(pl.col("patient_id").is_in(patients)).select(full.columns))
    merged = pl.concat(parts)
    if merged.height != full.height:
        raise RuntimeError(f"out-of-fold features cover {merged.height} of {full.height} slices")
    log.info("out-of-fold features: %d held-out slices from the slice model, %s training slices from %d fold models",
             int(is_valid.sum()), [p.height for p in parts[1:]], folds)
    return merged
