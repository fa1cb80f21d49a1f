from __future__ import annotations

import os

import pytest

from ich_ray.data.io import RootBusyError, WriterLock, content_digest, count_rows, file_digest, list_inputs


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_list_inputs_keeps_extensionless_and_uid_names_and_skips_non_images(tmp_path):
    keep = [
        touch(tmp_path / "a" / "IM0001"),  # no extension, as many scanners write
        touch(tmp_path / "a" / "1.2.840.113619.2.55.3"),  # UID-like name
        touch(tmp_path / "b" / "slice.dcm"),
        touch(tmp_path / "b" / "empty.dcm", b""),  # kept: becomes a failed row, not dropped
    ]
    for skipped in (".DS_Store", "labels.csv", "DICOMDIR", "README.md", "LICENSE", "notes.txt", ".hidden/x.dcm"):
        touch(tmp_path / skipped)
    listing = list_inputs(tmp_path)
    assert listing["path"].to_list() == sorted(str(p.resolve()) for p in keep)
    assert listing.filter(listing["path"].str.ends_with("empty.dcm"))["file_size"].item() == 0
    assert str(listing.schema["mtime"]) == "Datetime(time_unit='ns', time_zone='UTC')"


def test_list_inputs_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        list_inputs(tmp_path / "nope")


def test_writer_lock_refuses_a_second_writer_and_frees_on_exit(tmp_path):
    with WriterLock(tmp_path):
        with pytest.raises(RootBusyError, match=f"pid {os.getpid()}"):
            with WriterLock(tmp_path):
                pass
    with WriterLock(tmp_path):  # released: a later run gets it
        pass


def test_digest_of_file_matches_digest_of_bytes(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    assert file_digest(touch(tmp_path / "f", data), chunk=1 << 20) == content_digest(data)
    assert content_digest(b"a") != content_digest(b"b")


def test_count_rows_of_missing_table_is_zero(tmp_path):
    assert count_rows(None) == 0
    assert count_rows(tmp_path / "none") == 0
