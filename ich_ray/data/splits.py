"""Train/validation splits: by patient (the default; no patient leaks across splits) or by slice (the paper's
random 20%, for parity). Pure numpy, seeded; the split is decided on the driver before any worker starts."""

from __future__ import annotations

import numpy as np

SPLIT_MODES = ("patient", "random")


def _n_valid(n: int, valid_fraction: float, unit: str) -> int:
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if n < 2:
        raise ValueError(f"a train/valid split needs at least 2 {unit}s, got {n}")
    return min(n - 1, max(1, round(n * valid_fraction)))


def split_by_patient(patient_ids, valid_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask (True = validation) holding out round(fraction x patients) whole patients."""
    ids = np.asarray(patient_ids, dtype=object)
    if any(p is None or p == "" for p in ids):
        raise ValueError("patient-level split: some rows have no patient_id; use split=random or fix the metadata")
    patients = np.array(sorted(set(ids.tolist())), dtype=object)
    chosen = np.random.default_rng(seed).permutation(len(patients))[: _n_valid(len(patients), valid_fraction, "patient")]
    return np.isin(ids, patients[chosen])


def split_random(n_rows: int, valid_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask holding out a random fraction of rows (slices), as the paper did."""
    mask = np.zeros(n_rows, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n_rows)[: _n_valid(n_rows, valid_fraction, "slice")]] = True
    return mask


def make_split(patient_ids, mode: str = "patient", valid_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    if mode == "patient":
        return split_by_patient(patient_ids, valid_fraction, seed)
    if mode == "random":
        return split_random(len(patient_ids), valid_fraction, seed)
    raise ValueError(f"unknown split {mode!r}; valid splits: {', '.join(SPLIT_MODES)}")


def patient_folds(patient_ids, is_valid, folds: int, seed: int = 0) -> np.ndarray:
    """Fold (0..folds-1) of every row's patient among the training patients (rows with `is_valid`: -1).

    Out-of-fold training features: fold k's slice model trains on every training patient outside fold k, so
    it has never seen the patients whose features it computes. Seeded apart from the validation split, and
    decided from the same sorted patient list wherever it is needed (training, then the study model)."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    ids, is_valid = np.asarray(patient_ids, dtype=object), np.asarray(is_valid, dtype=bool)
    patients = np.array(sorted(set(ids[~is_valid].tolist())), dtype=object)
    if len(patients) < folds:
        raise ValueError(f"{folds} folds need at least {folds} training patients, got {len(patients)}")
    order = np.random.default_rng([seed, folds]).permutation(len(patients))
    fold_of = dict(zip(patients[order].tolist(), np.arange(len(patients)) % folds, strict=True))
    return np.array([-1 if v else fold_of[p] for p, v in zip(ids.tolist(), is_valid, strict=True)], dtype=np.int64)


def check_split(targets: np.ndarray, is_valid: np.ndarray, label_names) -> None:
    """Raise when a split is empty or every target label in it has a single class (nothing to learn/score)."""
    targets = np.asarray(targets)
    for name, rows in (("train", targets[~is_valid]), ("valid", targets[is_valid])):
        if len(rows) == 0:
            raise ValueError(f"the {name} split is empty; use more data or another valid_fraction")
        two_class = [label for j, label in enumerate(label_names) if len(np.unique(rows[:, j])) == 2]
        if not two_class:
            raise ValueError(
                f"the {name} split ({len(rows)} slices) has a single class for every label "
                f"({', '.join(label_names)}); use more patients, another seed or split=random"
            )
