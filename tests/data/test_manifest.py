from __future__ import annotations

import os

import polars as pl

from ich_ray.data.io import file_digest, list_inputs
from ich_ray.data.manifest import diff_inputs, publish_manifest


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def manifest_of(listing, tmp_path):
    rows = listing.with_columns(digest=pl.col("path").map_elements(file_digest, return_dtype=pl.String))
    publish_manifest(tmp_path / "manifest", None, rows.lazy(), "r1")
    return pl.scan_parquet(tmp_path / "manifest" / "*.parquet")


def test_diff_finds_new_changed_touched_and_deleted(tmp_path):
    inp = tmp_path / "in"
    for name in ("same", "touched", "changed", "gone"):
        write(inp / name, name.encode())
    manifest = manifest_of(list_inputs(inp), tmp_path)
    assert manifest.collect()["run_id"].unique().to_list() == ["r1"]

    os.utime(inp / "touched", ns=(1, 1))  # mtime moves, bytes do not
    write(inp / "changed", b"changed, longer now")
    (inp / "gone").unlink()
    write(inp / "new", b"new")

    diff = diff_inputs(list_inputs(inp), manifest)
    assert [os.path.basename(p) for p in diff.work] == ["changed", "new"]
    assert (diff.n_new, diff.n_changed, diff.n_unchanged, diff.n_deleted) == (1, 1, 2, 1)
    assert [os.path.basename(p) for p in diff.refreshed["path"]] == ["touched"]
    assert not diff.nothing_to_do


def test_no_change_means_nothing_to_do_and_no_file_is_read(tmp_path, monkeypatch):
    inp = tmp_path / "in"
    write(inp / "a", b"a")
    manifest = manifest_of(list_inputs(inp), tmp_path)
    monkeypatch.setattr("ich_ray.data.manifest.file_digest", lambda p: (_ for _ in ()).throw(AssertionError(p)))
    diff = diff_inputs(list_inputs(inp), manifest)
    assert diff.nothing_to_do and diff.n_unchanged == 1


def test_publish_manifest_replaces_rows_by_path(tmp_path):
    inp = tmp_path / "in"
    write(inp / "a", b"a")
    write(inp / "b", b"b")
    listing = list_inputs(inp)
    manifest = manifest_of(listing, tmp_path)
    update = listing.filter(pl.col("path").str.ends_with("b")).with_columns(digest=pl.lit("new"))
    publish_manifest(tmp_path / "m2", manifest, update.lazy(), "r2")
    out = pl.read_parquet(tmp_path / "m2")
    assert out.height == 2
    assert dict(zip(out["run_id"], out["digest"] == "new", strict=True)) == {"r1": False, "r2": True}
