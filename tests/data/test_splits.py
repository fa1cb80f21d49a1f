from __future__ import annotations

import numpy as np
import pytest

from ich_ray.data.splits import check_split, make_split, patient_folds, split_by_patient, split_random


def test_patient_split_never_shares_a_patient_and_is_seeded():
    ids = np.repeat([f"P{i}" for i in range(10)], 5)
    mask = split_by_patient(ids, 0.2, seed=3)
    assert set(ids[mask]).isdisjoint(ids[~mask])
    assert len(set(ids[mask])) == 2 and mask.sum() == 10
    assert np.array_equal(mask, split_by_patient(ids, 0.2, seed=3))
    assert not np.array_equal(mask, split_by_patient(ids, 0.2, seed=4))


def test_random_split_takes_the_fraction_of_slices():
    mask = split_random(50, 0.2, seed=0)
    assert mask.sum() == 10


def test_tiny_sets_keep_one_on_each_side():
    assert split_by_patient(["a", "a", "b"], 0.01).sum() in (1, 2)
    with pytest.raises(ValueError, match="at least 2 patients"):
        split_by_patient(["a", "a"], 0.2)


def test_bad_modes_and_fractions():
    with pytest.raises(ValueError, match="unknown split 'study'"):
        make_split(["a", "b"], "study")
    with pytest.raises(ValueError, match="valid_fraction"):
        split_random(10, 1.5)
    with pytest.raises(ValueError, match="no patient_id"):
        split_by_patient(["a", None, "b"])


def test_empty_or_single_class_split_is_refused():
    targets = np.array([[0], [1], [0], [1]])
    check_split(targets, np.array([False, False, True, True]), ["any"])
    with pytest.raises(ValueError, match=r"train split \(2 slices\) has a single class"):
        check_split(targets, np.array([False, True, False, True]), ["any"])
    with pytest.raises(ValueError, match=r"valid split \(2 slices\) has a single class"):
        check_split(np.array([[0], [1], [0], [1], [0], [0]]), np.array([False] * 4 + [True] * 2), ["any"])
    with pytest.raises(ValueError, match="valid split is empty"):
        check_split(targets, np.zeros(4, dtype=bool), ["any"])
    two_labels = np.array([[0, 0], [0, 1], [0, 0], [0, 1]])  # one informative label is enough
    check_split(two_labels, np.array([False, False, True, True]), ["epidural", "any"])


def test_patient_folds_cover_the_training_patients_once_and_are_seeded():
    ids = np.array([f"P{i // 3}" for i in range(30)], dtype=object)  # 10 patients, 3 rows each
    is_valid = split_by_patient(ids, 0.2, seed=0)
    folds = patient_folds(ids, is_valid, 3, seed=0)
    assert (folds[is_valid] == -1).all() and set(folds[~is_valid].tolist()) == {0, 1, 2}
    for patient in set(ids.tolist()):  # a patient's rows share one fold
        assert len(set(folds[ids == patient].tolist())) == 1
    per_fold = [len(set(ids[folds == k].tolist())) for k in range(3)]
    assert sorted(per_fold) == [2, 3, 3]  # 8 training patients, as even as possible
    np.testing.assert_array_equal(folds, patient_folds(ids, is_valid, 3, seed=0))
    assert not np.array_equal(folds, patient_folds(ids, is_valid, 3, seed=1))
    with pytest.raises(ValueError, match="folds must be >= 2"):
        patient_folds(ids, is_valid, 1)
    with pytest.raises(ValueError, match="at least 9 training patients, got 8"):
        patient_folds(ids, is_valid, 9)
