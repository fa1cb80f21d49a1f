"""Worklist aggregation, RSNA submission format and smoothing: pure polars/numpy, no Ray."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ich_ray.labels import LABELS
from ich_ray.predict.schema import FAILURE_SCHEMA, PREDICTION_SCHEMA
from ich_ray.predict.smoothing import smooth_predictions, smooth_series
from ich_ray.predict.submission import make_submission
from ich_ray.predict.worklist import STATUS_NO_SLICE, build_worklist


def _pred(study, series, sop, index, any_, sub=None, patient="p", blank=False):
    probs = {f"prob_{name}": (sub if sub is not None else None) for name in LABELS[:-1]}
    return {"path": f"/{sop}", "patient_id": patient, "study_instance_uid": study, "series_instance_uid": series,
            "sop_instance_uid": sop, "slice_index": index, "blank": blank, **probs, "prob_any": any_}


def _fail(study, path="/bad"):
    return {"path": path, "stage": "read", "error_type": "TruncatedFileError", "error": "short",
            "study_instance_uid": study, "patient_id": "p9" if study else None}


PREDS = pl.DataFrame([
    _pred("s1", "r1", "a", 0, 0.10, 0.05), _pred("s1", "r1", "b", 1, 0.90, 0.70), _pred("s1", "r1", "c", 2, 0.20, 0.1),
    _pred("s2", "r2", "d", 0, 0.30, 0.2), _pred("s2", "r2", "e", 1, 0.50, 0.4),
    _pred("s3", "r3", "ID_f", 0, 0.95, 0.9),
], schema=PREDICTION_SCHEMA)


def test_worklist_aggregates_and_sorts_most_urgent_first():
    failures = pl.DataFrame([_fail("s1", "/x"), _fail("s4", "/y"), _fail(None, "/z")], schema=FAILURE_SCHEMA)
    wl = build_worklist(PREDS, failures, threshold=0.5)
    assert wl["study_instance_uid"].to_list() == ["s4", "s3", "s1", "s2"]  # no usable slice first, then max desc
    s1 = wl.row(2, named=True)
    assert (s1["n_slices"], s1["n_failed"], s1["max_any"]) == (3, 1, 0.9)
    assert s1["mean_any"] == pytest.approx(0.4)
    assert (s1["top_sop_instance_uid"], s1["top_slice_index"], s1["max_epidural"]) == ("b", 1, 0.7)
    assert wl["flagged"].to_list() == [True, True, True, True]  # s2's 0.5 reaches the threshold
    s4 = wl.row(0, named=True)
    assert (s4["n_slices"], s4["status"], s4["max_any"], s4["patient_id"]) == (0, STATUS_NO_SLICE, None, "p9")
    assert build_worklist(PREDS, failures, threshold=0.6)["flagged"].to_list() == [True, True, True, False]


def test_blank_slices_take_no_part_in_the_study_score_or_top_slice():
    # s5: a bright blank slice above the head (what a slice model says of an image it never saw) and a
    # normal brain slice; s6: only blank slices
    preds = pl.concat([PREDS, pl.DataFrame([
        _pred("s5", "r5", "g", 0, 0.99, 0.9, blank=True), _pred("s5", "r5", "h", 1, 0.10, 0.05),
        _pred("s6", "r6", "i", 0, 0.001, 0.001, blank=True)], schema=PREDICTION_SCHEMA)])
    wl = build_worklist(preds, pl.DataFrame(schema=FAILURE_SCHEMA), threshold=0.5)
    s5 = wl.filter(pl.col("study_instance_uid") == "s5").row(0, named=True)
    assert (s5["n_slices"], s5["n_blank"], s5["max_any"], s5["top_sop_instance_uid"]) == (2, 1, 0.10, "h")
    assert not s5["flagged"]
    s6 = wl.filter(pl.col("study_instance_uid") == "s6").row(0, named=True)
    assert (s6["status"], s6["flagged"], s6["max_any"]) == (STATUS_NO_SLICE, True, None)


def test_worklist_rejects_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        build_worklist(PREDS, pl.DataFrame(schema=FAILURE_SCHEMA), threshold=1.5)


def test_submission_has_six_rows_per_slice_in_rsna_form():
    sub = make_submission(PREDS)
    assert sub.columns == ["ID", "Label"]
    assert sub.height == 6 * PREDS.height
    assert sub["ID"].head(6).to_list() == [f"ID_a_{name}" for name in LABELS]
    # an RSNA SOP UID already starts with ID_: the prefix is not doubled
    assert sub["ID"].tail(6).to_list() == [f"ID_f_{name}" for name in LABELS]
    assert sub.filter(pl.col("ID") == "ID_b_any")["Label"].item() == 0.9


def test_binary_submission_has_any_rows_only():
    binary = PREDS.with_columns(pl.lit(None, dtype=pl.Float64).alias(f"prob_{n}") for n in LABELS[:-1])
    sub = make_submission(binary, labels=("any",))
    assert sub["ID"].to_list() == [f"ID_{s}_any".replace("ID_ID_", "ID_") for s in PREDS["sop_instance_uid"]]
    with pytest.raises(ValueError, match="no probability"):
        make_submission(binary)


def test_smoothing_averages_neighbours_within_each_series_only():
    assert smooth_series(np.array([0.0, 1.0, 0.0])).tolist() == [0.25, 0.5, 0.25]
    shuffled = PREDS.sample(fraction=1.0, shuffle=True, seed=1)
    smoothed = smooth_predictions(shuffled)
    assert smoothed["sop_instance_uid"].to_list() == shuffled["sop_instance_uid"].to_list()  # row order kept
    by_sop = dict(zip(smoothed["sop_instance_uid"], smoothed["prob_any"], strict=True))
    assert by_sop["a"] == pytest.approx(0.75 * 0.1 + 0.25 * 0.9)  # edge: the end slice repeats
    assert by_sop["b"] == pytest.approx(0.25 * 0.1 + 0.5 * 0.9 + 0.25 * 0.2)
    assert by_sop["ID_f"] == pytest.approx(0.95)  # a one-slice series is unchanged
    with pytest.raises(ValueError, match="kernel"):
        smooth_series(np.zeros(3), kernel=(0.5, 0.5))
