"""Out-of-fold study features: the rows each fold model provides, the checks on the fold models, and the
logit inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from ich_ray.data.splits import patient_folds, split_by_patient
from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.models.loading import ModelSpec
from ich_ray.study.features import PROB_CLIP, probability_logits, with_study_inputs
from ich_ray.study.folds import check_fold_models, out_of_fold_table


def _table(source: float, patients=10, slices=3) -> pl.DataFrame:
    """One row per slice; `prob_any` says which model computed it."""
    return pl.DataFrame({"patient_id": [f"P{p}" for p in range(patients) for _ in range(slices)],
                         "sop_instance_uid": [f"{p}.{s}" for p in range(patients) for s in range(slices)],
                         "prob_any": [source] * (patients * slices)})


def test_each_training_patient_takes_the_model_that_never_saw_it():
    full = _table(0.5)
    merged = out_of_fold_table(full, [(0, _table(0.1)), (1, _table(0.2))], 2, 0.2, 0)
    assert merged.height == full.height and merged["sop_instance_uid"].n_unique() == full.height
    ids = full["patient_id"].to_numpy()
    is_valid = split_by_patient(ids, 0.2, 0)
    fold_of = dict(zip(ids.tolist(), patient_folds(ids, is_valid, 2, 0).tolist(), strict=True))
    expected = {-1: 0.5, 0: 0.1, 1: 0.2}
    for patient, prob in merged.select("patient_id", "prob_any").iter_rows():
        assert prob == expected[fold_of[patient]]


def _spec(fold: dict | None) -> ModelSpec:
    return ModelSpec("m", "resnet18", "binary", ("any",), CleanRecipe(), 3, 64, (0.5,) * 3, (0.25,) * 3, fold)


def test_fold_models_must_be_folds_0_to_k_of_the_study_split():
    full = _spec(None)
    folds = [dataclasses.replace(_spec({"fold": k, "folds": 2, "seed": 0, "valid_fraction": 0.2}), source=f"f{k}")
             for k in range(2)]
    assert check_fold_models(folds, full, 0.2, 0) == 2
    with pytest.raises(ValueError, match="not an out-of-fold model"):
        check_fold_models([full], full, 0.2, 0)
    with pytest.raises(ValueError, match="seed=0; the study split uses valid_fraction=0.2 seed=3"):
        check_fold_models(folds, full, 0.2, 3)
    with pytest.raises(ValueError, match="folds 0..K-1 of one K, exactly once"):
        check_fold_models(folds[:1], full, 0.2, 0)
    with pytest.raises(ValueError, match="exactly once"):
        check_fold_models([folds[0], folds[0]], full, 0.2, 0)


def test_logit_inputs_invert_the_probabilities_within_the_clip():
    probs = np.array([[0.5, 0.9], [1.0, 0.0]])
    logits = probability_logits(probs)
    np.testing.assert_allclose(logits[0], [0.0, np.log(9)], rtol=1e-6)
    np.testing.assert_allclose(logits[1], [np.log((1 - PROB_CLIP) / PROB_CLIP), -np.log((1 - PROB_CLIP) / PROB_CLIP)],
                               rtol=1e-5)
    table = with_study_inputs(pl.DataFrame({"prob_a": probs[:, 0], "prob_b": probs[:, 1]}), "logits", ("a", "b"))
    np.testing.assert_allclose(np.stack(table["features"].to_list()), logits)
    with pytest.raises(ValueError, match="probability column"):
        with_study_inputs(table, "logits", ("c",))
    with pytest.raises(ValueError, match="unknown study input kind"):
        with_study_inputs(table, "pixels", ("a",))
