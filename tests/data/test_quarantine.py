"""quarantine/: one failure-row shape for every stage, and snapshots written with the old column name."""

from __future__ import annotations

import polars as pl

from ich_ray.data.quarantine import QUARANTINE_SCHEMA, publish_quarantine, quarantine_row
from ich_ray.dicom.errors import ImplausibleValueError


def test_quarantine_row_uses_the_shared_failure_fields():
    exc = ImplausibleValueError("a.dcm", "RescaleSlope (0028,1053)", float("inf"), "must be a finite number > 0")
    assert quarantine_row("a.dcm", "clean", exc, "r1") == {
        "path": "a.dcm", "stage": "clean", "error_type": "ImplausibleValueError",
        "error": "RescaleSlope (0028,1053) is inf: must be a finite number > 0", "run_id": "r1",
    }


def test_previous_rows_with_the_old_message_column_are_carried_over(tmp_path):
    old = pl.LazyFrame({"path": ["old.dcm"], "stage": ["metadata"], "error_type": ["EmptyFileError"],
                        "message": ["file is empty (0 bytes)"], "run_id": ["r0"]})
    new = pl.LazyFrame([quarantine_row("new.dcm", "clean", OSError("gone"), "r1")])
    assert publish_quarantine(tmp_path / "q", new, previous=old) == 2
    table = pl.read_parquet(tmp_path / "q")
    assert table.columns == QUARANTINE_SCHEMA.names
    assert table["error"].to_list() == ["file is empty (0 bytes)", "could not read the file: gone"]
