from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ich_ray.cli.main import main
from ich_ray.data.clean import (
    ROWS_PER_SHARD,
    TASKS_PER_CPU,
    CleanConfig,
    keep_slice,
    log_filtered,
    rows_per_shard,
    rows_per_task,
    select_slices,
)
from ich_ray.data.io import list_inputs
from ich_ray.imaging.recipe import CleanRecipe, decode_slice
from ich_ray.labels import LABEL_COLUMNS

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def pipeline(synth_dir, ray_session, tmp_path_factory):
    """metadata -> clean from the CLI at the real 256 px size, with the flat .jpg export; logs captured."""
    root = tmp_path_factory.mktemp("clean-root")
    export = tmp_path_factory.mktemp("jpg")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("ich_ray")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # every message any stage logs is checked for PHI
    try:
        args = ["metadata", "--input", str(synth_dir / "dicom"), "--out", str(root), "--labels", str(synth_dir / "labels.csv")]
        assert main(args) == 0
        assert main(["clean", "--data", str(root), "--size", "256", "--export-jpg", str(export)]) == 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return root, export, [r.getMessage() for r in records]


def test_images_decode_to_256x256x3_with_ids_labels_and_recipe(pipeline):
    root, _, _ = pipeline
    images = pl.read_parquet(root / "images")
    assert images.height > 0
    recipe = CleanRecipe.from_json(images["recipe"][0])
    assert recipe.size == 256 and recipe.channels == 3
    for data in images["image"].head(5):
        img = decode_slice(data, recipe)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and img.max() > 0
    assert set(images["height"]) == {256} and set(images["channels"]) == {3}
    assert all(images.schema[c] == pl.Int8 for c in LABEL_COLUMNS)
    meta = pl.read_parquet(root / "metadata")
    joined = images.join(meta, on="sop_instance_uid", suffix="_m")
    assert joined.height == images.height
    assert (joined["slice_index"] == joined["slice_index_m"]).all()
    assert (joined["label_any"] == joined["label_any_m"]).all()
    assert len(pd.read_parquet(root / "images", columns=["sop_instance_uid", "image"])) == images.height


def test_every_input_is_accounted_for(synth_dir, pipeline):
    root, _, logs = pipeline
    n_in = list_inputs(synth_dir / "dicom").height
    meta = pl.read_parquet(root / "metadata")
    ok = meta.filter(pl.col("status") == "ok")
    n_filtered = ok.filter(pl.col("img_pct_window") < 0.02).height
    n_images = pl.read_parquet(root / "images").height
    n_failed = pl.read_parquet(root / "quarantine").height
    assert n_filtered > 0  # the synthetic studies have blank slices above and below the head
    assert n_in == n_images + n_filtered + n_failed
    summary = [m for m in logs if m.startswith("clean:") and "files in" in m]
    assert summary and f"{n_in} files in, {n_images} ok, {n_filtered} filtered, {n_failed} failed" in summary[-1]


def test_flat_jpg_export_holds_one_file_per_image(pipeline):
    root, export, _ = pipeline
    sops = set(pl.read_parquet(root / "images")["sop_instance_uid"])
    files = sorted(export.iterdir())
    assert {f.stem for f in files} == sops and {f.suffix for f in files} == {".jpg"}
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.size == (256, 256) and im.mode == "RGB"


def contains_phi(text: str, phi: list[str]) -> str | None:
    for value in phi:
        # dates are digit runs: match them whole, so a long UID that happens to contain the digits is not a hit
        pattern = rf"(?<!\d){re.escape(value)}(?!\d)" if value.isdigit() else re.escape(value)
        if re.search(pattern, text, flags=re.IGNORECASE):
            return value
    return None


def test_no_phi_in_any_output_or_log(synth_dir, pipeline):
    root, export, logs = pipeline
    phi = json.loads((synth_dir / "phi_values.json").read_text())
    assert phi
    for table in ("metadata", "quarantine", "images"):
        frame = pl.read_parquet(root / table)
        for column, dtype in frame.schema.items():
            if dtype == pl.Binary:
                continue
            for value in frame[column].cast(pl.String).drop_nulls().unique():
                assert contains_phi(value, phi) is None, f"{table}.{column} leaks {value!r}"
    for message in logs:
        assert contains_phi(message, phi) is None, f"log leaks: {message!r}"
    names = " ".join(p.name for p in export.iterdir())
    assert contains_phi(names, phi) is None


def test_context_makes_nine_channel_png(synth_dir, ray_session, tmp_path):
    assert main(["metadata", "--input", str(synth_dir / "dicom"), "--out", str(tmp_path)]) == 0
    assert main(["clean", "--data", str(tmp_path), "--size", "64", "--context"]) == 0
    images = pl.read_parquet(tmp_path / "images")
    recipe = CleanRecipe.from_json(images["recipe"][0])
    assert recipe.context and recipe.channels == 9
    img = decode_slice(images["image"][0], recipe)
    assert img.shape == (64, 64, 9)
    # the middle plane of each window is this slice; the neighbours differ from it somewhere in the series
    assert any(
        not np.array_equal(decode_slice(d, recipe)[..., 0], decode_slice(d, recipe)[..., 1]) for d in images["image"]
    )


def test_raw_images_hold_the_pixels_png_holds_in_zstd_shards(synth_dir, ray_session, tmp_path):
    assert main(["metadata", "--input", str(synth_dir / "dicom"), "--out", str(tmp_path)]) == 0
    decoded = {}
    for fmt in ("png", "raw"):
        assert main(["clean", "--data", str(tmp_path), "--size", "64", "--format", fmt]) == 0
        images = pl.read_parquet(tmp_path / "images").sort("sop_instance_uid")
        recipe = CleanRecipe.from_json(images["recipe"][0])
        assert recipe.format == fmt
        decoded[fmt] = np.stack([decode_slice(d, recipe) for d in images["image"]])
        shard = pq.ParquetFile(next((tmp_path / "images").glob("*.parquet")))
        image_column = shard.schema_arrow.get_field_index("image")
        assert shard.metadata.row_group(0).column(image_column).compression == "ZSTD"
    assert decoded["raw"].shape[1:] == (64, 64, 3) and decoded["raw"].max() > 0
    np.testing.assert_array_equal(decoded["raw"], decoded["png"])


def test_clean_without_metadata_says_what_to_run(ray_session, tmp_path, capsys):
    assert main(["clean", "--data", str(tmp_path)]) == 1
    assert "run `ich-ray metadata" in capsys.readouterr().err


def test_export_needs_three_channels(tmp_path, capsys):
    assert main(["clean", "--data", str(tmp_path), "--windows", "brain", "--export-jpg", str(tmp_path / "j")]) == 1
    assert "3-channel" in capsys.readouterr().err


def test_a_second_file_with_a_kept_sop_uid_is_filtered_in_every_run(caplog):
    # a/ and b/ hold the same slice (a study exported twice); c/ has too little brain
    def row(path, sop, series, index, brain):
        return {"path": path, "status": "ok", "sop_instance_uid": sop, "study_instance_uid": "st",
                "series_instance_uid": series, "patient_id": "p", "slice_index": index, "img_pct_window": brain}
    metadata = pl.LazyFrame([row("b/1.dcm", "1", "s2", 0, 0.5), row("a/1.dcm", "1", "s1", 0, 0.5),
                             row("a/2.dcm", "2", "s1", 1, 0.5), row("b/2.dcm", "2", "s2", 1, 0.5),
                             row("c/3.dcm", "3", "s3", 0, 0.0)])
    with caplog.at_level(logging.INFO, logger="ich_ray"):
        assert log_filtered(select_slices(metadata), 0.02) == 3
    assert "2 files repeat the SOPInstanceUID of another file" in caplog.text and "b/" in caplog.text
    kept = select_slices(metadata).filter(keep_slice(0.02)).collect()
    assert sorted(kept["path"]) == ["a/1.dcm", "a/2.dcm"]
    assert kept.sort("slice_index")["path_next"].to_list() == ["a/2.dcm", None]  # neighbours among kept files
    # an incremental run over series s2 alone makes the same choice
    only_s2 = select_slices(metadata, pl.LazyFrame({"series_instance_uid": ["s2"]}))
    assert only_s2.filter(keep_slice(0.02)).collect().height == 0


def test_a_file_corrupted_after_metadata_is_refused_by_clean_with_the_same_check(real_ct_dir, ray_session, tmp_path):
    """clean reads pixels again: the plausibility checks run there too, and the failure row has the shared shape."""
    import shutil

    import pydicom

    inputs = tmp_path / "in"
    shutil.copytree(real_ct_dir, inputs)
    root = tmp_path / "root"
    assert main(["metadata", "--input", str(inputs), "--out", str(root)]) == 0
    ds = pydicom.dcmread(inputs / "05.dcm")
    ds.RescaleIntercept = 1e300
    ds.save_as(inputs / "05.dcm")
    assert main(["clean", "--data", str(root), "--size", "64"]) == 0
    quarantine = pl.read_parquet(root / "quarantine").filter(pl.col("stage") == "clean")
    assert quarantine.columns == ["path", "stage", "error_type", "error", "run_id"]
    assert quarantine.select("path", "error_type", "error").rows() == [
        (str(inputs / "05.dcm"), "ImplausibleValueError",
         "RescaleIntercept (0028,1052) is 1e+300: must be a finite number within +-32768 HU")]


def test_a_2_5d_batch_reads_each_file_once_and_makes_the_same_images(real_ct_dir, tmp_path, monkeypatch):
    import pyarrow as pa

    from ich_ray.data import clean
    from ich_ray.dicom.read import read_hu
    from ich_ray.imaging.recipe import encode_slice, prepare_slice
    from ich_ray.labels import ID_COLUMNS

    paths = list_inputs(real_ct_dir)["path"].to_list()[:6]
    prevs, nexts = [None, *paths[:-1]], [*paths[1:], None]
    batch = pa.table({"path": paths, **{c: [f"{c}-{i}" for i in range(6)] for c in ID_COLUMNS},
                      "slice_index": pa.array(range(6), pa.int32()),
                      **{c: pa.array([0] * 6, pa.int8()) for c in LABEL_COLUMNS},
                      "path_prev": prevs, "path_next": nexts})
    recipe = CleanRecipe(size=64, context=True)
    reads = []
    monkeypatch.setattr(clean, "read_hu", lambda path: reads.append(path) or read_hu(path))
    out = clean.clean_batch(batch, recipe.to_json(), "run", str(tmp_path), None)
    assert sorted(reads) == sorted(paths)  # once each, where reading per slice took 16 reads
    expected = [encode_slice(prepare_slice(read_hu(p), recipe, tuple(read_hu(n) if n else None for n in (a, b))), recipe)
                for p, a, b in zip(paths, prevs, nexts, strict=True)]
    assert out.column("image").to_pylist() == expected


def test_a_shard_holds_at_most_its_byte_bound_of_image_values():
    assert rows_per_shard(ROWS_PER_SHARD, CleanRecipe()) == ROWS_PER_SHARD  # 256 px x 3: 192 MiB
    assert rows_per_shard(ROWS_PER_SHARD, CleanRecipe(context=True)) == 455  # 256 px x 9
    assert rows_per_shard(ROWS_PER_SHARD, CleanRecipe(size=512)) == 341
    assert rows_per_shard(10, CleanRecipe(size=4096, context=True)) == 1  # never 0


def test_a_clean_run_makes_tasks_per_cpu_tasks_within_the_shard_bounds():
    cfg, recipe = CleanConfig(data="unused"), CleanRecipe()
    per_task = rows_per_task(856, 2, cfg, recipe)
    assert -(-856 // per_task) == TASKS_PER_CPU * 2  # 856 slices on 2 CPUs: one round of tasks per CPU slot
    assert rows_per_task(20, 2, cfg, recipe) == cfg.batch_size  # few slices: no task under a batch
    assert rows_per_task(752_803, 16, cfg, recipe) == ROWS_PER_SHARD  # RSNA scale: full shards
    assert rows_per_task(752_803, 16, cfg, CleanRecipe(context=True)) == 455  # the byte bound of 9 channels
