from __future__ import annotations

import shutil

import polars as pl
import pytest

from ich_ray.cli.main import main
from ich_ray.data.io import WriterLock, list_inputs
from ich_ray.data.reprocess import ReprocessConfig, run_reprocess
from ich_ray.data.snapshot import DataRoot

pytestmark = pytest.mark.ray

SIZE = "64"


def patients(synth_dir):
    return sorted(p for p in (synth_dir / "dicom").iterdir() if p.is_dir())


def reprocess(inp, root, labels=None) -> int:
    args = ["reprocess", "--input", str(inp), "--data", str(root), "--size", SIZE]
    return main(args + (["--labels", str(labels)] if labels else []))


def assert_consistent(inp, root):
    """Every input file exactly once in metadata and manifest; images and quarantine without duplicates."""
    listed = list_inputs(inp)["path"].to_list()
    meta = pl.read_parquet(root / "metadata")
    assert sorted(meta["path"]) == listed
    assert sorted(pl.read_parquet(root / "manifest")["path"]) == listed
    images = pl.read_parquet(root / "images")
    assert images["sop_instance_uid"].is_unique().all()
    ok = meta.filter(pl.col("status") == "ok")
    assert set(images["sop_instance_uid"]) <= set(ok["sop_instance_uid"])
    assert pl.read_parquet(root / "quarantine").select("path", "stage").is_unique().all()
    return meta, images


@pytest.fixture()
def grown(synth_dir, ray_session, tmp_path):
    """An input folder that starts with the first patient and a data root reprocessed once over it."""
    inp, root = tmp_path / "in", tmp_path / "root"
    first, *_ = patients(synth_dir)
    shutil.copytree(first, inp / first.name)
    assert reprocess(inp, root, synth_dir / "labels.csv") == 0
    return inp, root


def test_new_files_are_processed_exactly_once_and_second_run_is_a_no_op(synth_dir, grown, caplog):
    inp, root = grown
    before = pl.read_parquet(root / "metadata")
    old_images = {p.name for p in (root / "images").iterdir()}
    for extra in patients(synth_dir)[1:]:
        shutil.copytree(extra, inp / extra.name)
    added = set(list_inputs(inp)["path"]) - set(before["path"])

    summary = run_reprocess(ReprocessConfig(input=str(inp), data=str(root), labels=str(synth_dir / "labels.csv"), size=64))
    assert (summary.n_new, summary.n_changed, summary.n_unchanged) == (len(added), 0, before.height)
    assert summary.metadata.files_in == len(added)
    meta, images = assert_consistent(inp, root)
    new_series = set(meta.filter(pl.col("path").is_in(list(added)))["series_instance_uid"].drop_nulls())
    assert set(summary.affected_series) == new_series  # no old series was rebuilt
    assert old_images <= {p.name for p in (root / "images").iterdir()}  # old shards carried over untouched
    assert images["series_instance_uid"].n_unique() == meta["series_instance_uid"].drop_nulls().n_unique()

    caplog.set_level("INFO")
    committed = DataRoot(root).current()
    again = run_reprocess(ReprocessConfig(input=str(inp), data=str(root), size=64))
    assert again.run_id is None and "nothing to do" in again.line()
    assert DataRoot(root).current() == committed


def test_a_changed_file_replaces_its_row(synth_dir, grown):
    import pydicom

    inp, root = grown
    meta = pl.read_parquet(root / "metadata").filter(pl.col("status") == "ok").sort("path")
    target, old_sop = meta["path"][0], meta["sop_instance_uid"][0]
    ds = pydicom.dcmread(target)
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"  # a corrected re-send of the same file
    ds.save_as(target)
    summary = run_reprocess(ReprocessConfig(input=str(inp), data=str(root), size=64))
    assert (summary.n_new, summary.n_changed) == (0, 1)
    after, images = assert_consistent(inp, root)
    assert after.filter(pl.col("path") == target)["sop_instance_uid"].item() == ds.SOPInstanceUID
    assert old_sop not in set(after["sop_instance_uid"]) and old_sop not in set(images["sop_instance_uid"])


def test_a_copy_of_a_slice_in_another_series_keeps_one_image(synth_dir, grown):
    import pydicom

    inp, root = grown
    meta = pl.read_parquet(root / "metadata").filter(pl.col("status") == "ok").sort("path")
    original, sop = meta["path"][0], meta["sop_instance_uid"][0]
    ds = pydicom.dcmread(original)
    ds.SeriesInstanceUID = ds.SeriesInstanceUID + ".7"  # re-sent under a new series; the slice keeps its UID
    copy = inp / "0-resent" / "copy.dcm"  # sorts before the original: clean now keeps the copy
    copy.parent.mkdir()
    ds.save_as(copy)
    summary = run_reprocess(ReprocessConfig(input=str(inp), data=str(root), size=64))
    assert summary.n_new == 1 and summary.clean.filtered >= 1
    assert meta["series_instance_uid"][0] in summary.affected_series  # the original's series is rebuilt
    _, images = assert_consistent(inp, root)  # one image per SOPInstanceUID
    assert images.filter(pl.col("sop_instance_uid") == sop)["series_instance_uid"].item() == ds.SeriesInstanceUID


def test_crash_before_commit_leaves_nothing_visible_and_next_run_finishes(synth_dir, grown, monkeypatch):
    inp, root = grown
    before = {t: pl.read_parquet(root / t) for t in ("metadata", "images", "quarantine", "manifest")}
    extra = patients(synth_dir)[1]
    shutil.copytree(extra, inp / extra.name)

    def crash(self, final):
        raise OSError("power cut")

    monkeypatch.setattr(DataRoot, "_swap_current", crash)
    with pytest.raises(OSError, match="power cut"):
        run_reprocess(ReprocessConfig(input=str(inp), data=str(root), size=64))
    for table, frame in before.items():  # readers still see exactly the old snapshot
        assert pl.read_parquet(root / table).equals(frame), table
    monkeypatch.undo()

    summary = run_reprocess(ReprocessConfig(input=str(inp), data=str(root), size=64))
    assert summary.n_new == len(list_inputs(inp / extra.name))
    assert_consistent(inp, root)
    assert not any((root / ".ich-ray" / "staging").iterdir())


def test_a_concurrent_run_is_refused_by_the_lock(synth_dir, grown, caplog):
    inp, root = grown
    extra = patients(synth_dir)[1]
    shutil.copytree(extra, inp / extra.name)
    committed = DataRoot(root).current()
    with WriterLock(root):
        assert reprocess(inp, root) == 3
    assert "reprocess skipped" in caplog.text and "another ich-ray run" in caplog.text
    assert DataRoot(root).current() == committed


def test_reprocess_after_metadata_and_clean_parses_only_the_new_files(synth_dir, ray_session, tmp_path):
    """`ich-ray metadata` writes the manifest, so the first reprocess does not re-read the old files."""
    inp, root = tmp_path / "in", tmp_path / "root"
    first, *rest = patients(synth_dir)
    shutil.copytree(first, inp / first.name)
    labels = str(synth_dir / "labels.csv")
    assert main(["metadata", "--input", str(inp), "--out", str(root), "--labels", labels]) == 0
    manifest = pl.read_parquet(root / "manifest")
    assert sorted(manifest["path"]) == list_inputs(inp)["path"].to_list()
    readable = pl.read_parquet(root / "metadata").filter(pl.col("file_size").is_not_null())["path"]
    assert manifest.filter(pl.col("path").is_in(readable.to_list()))["digest"].null_count() == 0
    assert main(["clean", "--data", str(root), "--size", SIZE]) == 0
    old = set(list_inputs(inp)["path"])
    shutil.copytree(rest[0], inp / rest[0].name)
    added = set(list_inputs(inp)["path"]) - old

    summary = run_reprocess(ReprocessConfig(input=str(inp), data=str(root), labels=labels, size=64))
    assert (summary.n_new, summary.n_changed, summary.n_unchanged) == (len(added), 0, len(old))
    assert summary.metadata.files_in == len(added)
    assert_consistent(inp, root)


def test_a_run_with_another_recipe_than_the_images_is_refused_before_any_work(synth_dir, grown, capsys):
    inp, root = grown
    first, second, *_ = patients(synth_dir)
    shutil.copytree(second, inp / second.name)
    before = DataRoot(root).current()
    args = ["reprocess", "--input", str(inp), "--data", str(root), "--size", SIZE, "--format", "png"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "another recipe (format: 'raw' there, 'png' asked)" in err and str(root) in err
    assert DataRoot(root).current() == before  # nothing committed
    assert main(args[:-1] + ["raw"]) == 0  # the recipe the images were made with goes on
    images = pl.read_parquet(root / "images")
    assert images["recipe"].n_unique() == 1
