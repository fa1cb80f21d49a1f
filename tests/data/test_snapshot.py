from __future__ import annotations

import os

import polars as pl
import pytest

from ich_ray.data.snapshot import DataRoot, link_parts


def stage_table(staged, name, values):
    (staged / name).mkdir(parents=True)
    pl.DataFrame({"v": values}).write_parquet(staged / name / "part-0.parquet")


def test_commit_publishes_all_tables_at_once_and_keeps_one_previous(tmp_path):
    root = DataRoot(tmp_path)
    for i, run_id in enumerate(("r1", "r2", "r3")):
        staged = root.begin(run_id)
        stage_table(staged, "metadata", [i])
        if i:  # until the commit, readers still see the previous snapshot
            assert pl.read_parquet(tmp_path / "metadata")["v"].to_list() == [i - 1]
        root.commit(staged)
        assert pl.read_parquet(tmp_path / "metadata")["v"].to_list() == [i]
    assert sorted(p.name for p in root.versions.iterdir()) == ["r2", "r3"]
    assert root.table("images") is None
    assert not (tmp_path / "images").exists()  # a table the snapshot lacks is simply absent


def test_recover_removes_uncommitted_work(tmp_path):
    root = DataRoot(tmp_path)
    staged = root.begin("r1")
    stage_table(staged, "metadata", [1])
    root.commit(staged)
    crashed = root.begin("r2")
    stage_table(crashed, "metadata", [2])
    (root.versions / "r3").mkdir()  # renamed into versions/ but never made current
    root.recover()
    assert not crashed.exists() and not (root.versions / "r3").exists()
    assert pl.read_parquet(tmp_path / "metadata")["v"].to_list() == [1]


def test_refuses_table_folders_it_does_not_manage(tmp_path):
    (tmp_path / "metadata").mkdir()
    with pytest.raises(ValueError, match="not managed by ich-ray"):
        DataRoot(tmp_path).begin("r1")


def test_link_parts_shares_the_bytes(tmp_path):
    part = tmp_path / "a.parquet"
    pl.DataFrame({"v": [1]}).write_parquet(part)
    link_parts([part], tmp_path / "dest")
    assert os.stat(tmp_path / "dest" / "a.parquet").st_ino == os.stat(part).st_ino
