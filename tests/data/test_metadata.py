from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from ich_ray.cli.main import main
from ich_ray.data.io import list_inputs
from ich_ray.data.metadata import RAW_SCHEMA, parse_batch
from ich_ray.labels import LABEL_COLUMNS

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def synth_root(synth_dir, ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("meta-root")
    rc = main(["metadata", "--input", str(synth_dir / "dicom"), "--out", str(root), "--labels", str(synth_dir / "labels.csv")])
    assert rc == 0
    return root


def test_one_row_per_input_file_with_a_reason_for_every_failure(synth_dir, synth_root):
    listing = list_inputs(synth_dir / "dicom")
    meta = pl.read_parquet(synth_root / "metadata")
    assert sorted(meta["path"].to_list()) == listing["path"].to_list()
    failed = meta.filter(pl.col("status") == "failed")
    # the generator writes one truncated, one non-DICOM and one zero-byte file
    assert sorted(failed["error_type"].to_list()) == ["EmptyFileError", "NotDicomError", "TruncatedFileError"]
    assert failed["error"].null_count() == 0 and failed["sop_instance_uid"].null_count() == failed.height
    quarantine = pl.read_parquet(synth_root / "quarantine")
    assert sorted(quarantine["path"].to_list()) == sorted(failed["path"].to_list())
    assert set(quarantine["stage"]) == {"metadata"}


def test_slice_index_runs_0_to_n_minus_1_in_z_order_per_series(synth_root):
    meta = pl.read_parquet(synth_root / "metadata").filter(pl.col("status") == "ok")
    for _, series in meta.group_by("series_instance_uid"):
        ordered = series.sort("slice_index")
        assert ordered["slice_index"].to_list() == list(range(series.height))
        assert ordered["image_position_z"].is_sorted()


def test_labels_joined_as_int8_and_readable_by_pandas(synth_root):
    meta = pl.read_parquet(synth_root / "metadata")
    assert all(meta.schema[c] == pl.Int8 for c in LABEL_COLUMNS)
    ok = meta.filter(pl.col("status") == "ok")
    assert ok["label_any"].null_count() == 0 and ok["label_any"].sum() > 0
    frame = pd.read_parquet(synth_root / "metadata")
    assert len(frame) == meta.height and "slice_index" in frame.columns
    assert not any(c.startswith("_") for c in frame.columns)  # internal columns never published


def test_real_ge_series_all_accounted_for(real_ct_dir, ray_session, tmp_path):
    assert main(["metadata", "--input", str(real_ct_dir), "--out", str(tmp_path)]) == 0
    meta = pl.read_parquet(tmp_path / "metadata")
    assert meta.height == list_inputs(real_ct_dir).height
    assert meta.filter(pl.col("status") == "ok").height == 28
    assert meta["manufacturer"].drop_nulls().str.to_uppercase().str.contains("GE").all()
    assert meta.filter(pl.col("status") == "ok")["slice_index"].sort().to_list() == list(range(28))


def test_parse_batch_keeps_its_schema_for_failure_only_batches(ray_session, tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "junk").write_bytes(b"not dicom at all" * 40)
    paths = [str(tmp_path / name) for name in ("empty", "junk", "gone")]
    out = parse_batch(pa.table({"path": paths}), with_digest=True)
    assert out.schema == RAW_SCHEMA
    assert out.column("status").to_pylist() == ["failed"] * 3
    assert out.column("error_type").to_pylist() == ["EmptyFileError", "NotDicomError", "FileNotFoundError"]
    assert str(tmp_path / "gone") in out.column("error").to_pylist()[2]
    assert out.column("file_size").to_pylist() == [0, 640, None]
    assert out.column("_digest").null_count == 1  # a file that could not be read has no digest


def test_unexpected_exceptions_become_rows_with_their_type(ray_session, monkeypatch, tmp_path):
    def boom(data, path):
        raise KeyError("weird")

    monkeypatch.setattr("ich_ray.data.metadata.read_record", boom)
    (tmp_path / "a").write_bytes(b"abc")
    out = parse_batch(pa.table({"path": [str(tmp_path / "a")]}))
    assert out.column("error_type").to_pylist() == ["KeyError"]
    assert "unexpected KeyError" in out.column("error").to_pylist()[0]


def test_implausible_files_fail_and_odd_ones_keep_a_warning(ray_session, real_ct_dir, tmp_path):
    import pydicom

    def variant(name, **tags):
        ds = pydicom.dcmread(real_ct_dir / "01.dcm")
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(tmp_path / name)
        return str(tmp_path / name)

    paths = [variant("slope.dcm", RescaleSlope=-1), variant("rgb.dcm", PhotometricInterpretation="RGB"),
             variant("highbit.dcm", HighBit=40)]
    out = parse_batch(pa.table({"path": paths})).to_pylist()
    assert [r["status"] for r in out] == ["failed", "failed", "ok"]
    assert [r["error_type"] for r in out] == ["ImplausibleValueError", "UnsupportedImageError", None]
    assert out[0]["error"] == "RescaleSlope (0028,1053) is -1.0: must be a finite number > 0"
    assert out[2]["warning"].startswith("HighBit (0028,0102) is 40") and out[0]["warning"] is None
