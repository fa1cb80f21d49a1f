from __future__ import annotations

import logging
import time

import numpy as np
import polars as pl
import pytest

from ich_ray.data.labels import join_labels, label_join_report, read_rsna_labels
from ich_ray.labels import LABEL_COLUMNS, LABELS

RSNA_SOP = "ID_12cadc6af"  # in RSNA the SOPInstanceUID tag itself looks like this
DOTTED_SOP = "1.2.826.0.1.3680043.8.498.1"  # ours: an ordinary dotted UID, written as ID_<uid>_<subtype>


def write_csv(path, rows, header="ID,Label"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def image_rows(key: str, positives: tuple[str, ...] = ()) -> list[str]:
    return [f"ID_{key}_{name},{int(name in positives or (name == 'any' and bool(positives)))}" for name in LABELS]


def labels_of(table, sop: str) -> dict[str, int | None]:
    row = table.frame.filter(pl.col("sop_instance_uid") == sop)
    assert row.height == 1
    return {c: row[c].item() for c in LABEL_COLUMNS}


def test_rsna_and_dotted_uids_give_the_sop_instance_uid_tag(tmp_path):
    rows = image_rows("12cadc6af", ("subdural",)) + image_rows(DOTTED_SOP)
    table = read_rsna_labels(write_csv(tmp_path / "labels.csv", rows))

    assert table.frame.columns == ["sop_instance_uid", *LABEL_COLUMNS]
    assert all(table.frame.schema[c] == pl.Int8 for c in LABEL_COLUMNS)
    assert sorted(table.frame["sop_instance_uid"]) == sorted([RSNA_SOP, DOTTED_SOP])
    assert labels_of(table, RSNA_SOP) == {
        "label_epidural": 0, "label_intraparenchymal": 0, "label_intraventricular": 0,
        "label_subarachnoid": 0, "label_subdural": 1, "label_any": 1,
    }
    assert set(labels_of(table, DOTTED_SOP).values()) == {0}
    assert (table.n_rows_in, table.n_duplicate_rows, table.n_conflicts) == (12, 0, 0)


def test_underscores_inside_the_key_split_on_the_last_one(tmp_path):
    table = read_rsna_labels(write_csv(tmp_path / "l.csv", image_rows("a_b", ("epidural",))))
    assert table.frame["sop_instance_uid"].to_list() == ["ID_a_b"]
    assert labels_of(table, "ID_a_b")["label_epidural"] == 1


def test_exact_duplicates_collapse(tmp_path):
    rows = image_rows("aaa", ("epidural",))
    rows += rows[:3] + [rows[0]]  # 4 exact duplicate rows
    table = read_rsna_labels(write_csv(tmp_path / "l.csv", rows))
    assert table.frame.height == 1
    assert (table.n_rows_in, table.n_duplicate_rows, table.n_conflicts) == (10, 4, 0)
    assert labels_of(table, "ID_aaa")["label_epidural"] == 1


def test_conflicting_duplicates_are_counted_and_resolved_positive(tmp_path, caplog):
    rows = image_rows("aaa") + image_rows("bbb", ("subdural",))
    rows += ["ID_aaa_epidural,1", "ID_bbb_subdural,0", "ID_bbb_subdural,1"]
    with caplog.at_level(logging.WARNING, logger="ich_ray.data.labels"):
        table = read_rsna_labels(write_csv(tmp_path / "l.csv", rows))
    assert table.n_conflicts == 2
    assert table.conflicting_ids == ["ID_aaa_epidural", "ID_bbb_subdural"]
    assert table.n_duplicate_rows == 1  # only the repeated ID_bbb_subdural,1 is an exact duplicate
    assert labels_of(table, "ID_aaa")["label_epidural"] == 1
    assert labels_of(table, "ID_bbb")["label_subdural"] == 1
    assert "2 IDs have conflicting labels" in caplog.text and "ID_aaa_epidural" in caplog.text


def test_missing_subtype_rows_give_null_labels(tmp_path):
    rows = [r for r in image_rows("aaa") if "subdural" not in r]
    table = read_rsna_labels(write_csv(tmp_path / "l.csv", rows))
    got = labels_of(table, "ID_aaa")
    assert got["label_subdural"] is None and got["label_any"] == 0


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("ID_aaa_hematoma,1", "unknown subtype 'hematoma' in ID_aaa_hematoma"),
        ("ID_aaa_epidural,2", "label must be 0 or 1, got '2' for ID_aaa_epidural"),
        ("ID_aaa_epidural,", "label must be 0 or 1, got ''"),
        ("ID_aaa_epidural,yes", "label must be 0 or 1, got 'yes'"),
        ("aaa_epidural,1", "bad ID .*'aaa_epidural'"),
        ("ID_epidural,1", "bad ID"),
        ("ID__epidural,1", "bad ID"),
        (",1", "bad ID .*''"),
    ],
)
def test_malformed_lines_raise_with_file_and_line_number(tmp_path, bad_line, message):
    rows = image_rows("aaa") + image_rows("bbb")
    rows.insert(7, bad_line)  # line 1 is the header, so this is line 9
    path = write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(ValueError, match=message) as info:
        read_rsna_labels(path)
    assert str(path) in str(info.value) and "line 9:" in str(info.value)


def test_first_of_several_malformed_lines_is_named(tmp_path):
    rows = image_rows("aaa") + ["ID_bbb_any,7", "ID_ccc_nope,1"]
    with pytest.raises(ValueError, match=r"line 8: label must be 0 or 1, got '7' .*\(and 1 more"):
        read_rsna_labels(write_csv(tmp_path / "l.csv", rows))


def test_bad_header_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="line 1: expected header"):
        read_rsna_labels(write_csv(tmp_path / "l.csv", image_rows("aaa"), header="id,label,extra"))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_rsna_labels(tmp_path / "nope.csv")


def test_ragged_lines_raise_value_error_naming_the_file(tmp_path):
    path = write_csv(tmp_path / "l.csv", [*image_rows("aaa"), "ID_bbb_any,1,1"])
    with pytest.raises(ValueError, match="l.csv"):
        read_rsna_labels(path)


def test_600k_rows_parse_in_a_few_seconds(tmp_path):
    n_images = 100_000
    rng = np.random.default_rng(0)
    keys = np.char.add("ID_", np.char.mod("%09x", rng.choice(16**9, n_images, replace=False)))
    ids = np.char.add(np.char.add(np.repeat(keys, len(LABELS)), "_"), np.tile(np.array(LABELS), n_images))
    path = tmp_path / "big.csv"
    pl.DataFrame({"ID": ids, "Label": rng.integers(0, 2, ids.size)}).write_csv(path)

    wall, cpu = time.perf_counter(), time.process_time()
    table = read_rsna_labels(path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert table.n_rows_in == 600_000 and table.frame.height == n_images
    # ~1.5 s on 2 idle cores. On a loaded shared machine wall time says little, so CPU time may vouch instead.
    assert min(wall, cpu) < 5, f"600k label rows took {wall:.1f} s ({cpu:.1f} CPU s)"


def metadata_frame() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "path": ["a.dcm", "b.dcm", "c.dcm", "broken.dcm"],
            "status": ["ok", "ok", "ok", "failed"],
            "sop_instance_uid": [RSNA_SOP, DOTTED_SOP, "1.2.3.unlabelled", None],
            "label_any": pl.Series([None] * 4, dtype=pl.Int8),  # placeholder from the metadata stage
        }
    )


def test_join_keeps_unlabelled_images_with_null_labels(tmp_path, caplog):
    rows = image_rows("12cadc6af", ("epidural",)) + image_rows(DOTTED_SOP) + image_rows("ID_no_image")
    labels = read_rsna_labels(write_csv(tmp_path / "l.csv", rows)).frame
    with caplog.at_level(logging.INFO, logger="ich_ray.data.labels"):
        joined = join_labels(metadata_frame(), labels).collect()

    assert joined.height == 4 and joined["path"].to_list() == ["a.dcm", "b.dcm", "c.dcm", "broken.dcm"]
    assert joined.columns == ["path", "status", "sop_instance_uid", *LABEL_COLUMNS]
    assert joined["label_epidural"].to_list() == [1, 0, None, None]
    assert joined["label_any"].to_list() == [1, 0, None, None]
    assert joined.schema["label_any"] == pl.Int8
    assert "3 images, 2 labelled, 1 without labels; 1 labelled IDs have no image" in caplog.text

    report = label_join_report(metadata_frame(), labels)
    assert (report.n_images, report.n_labelled_images, report.n_images_without_labels) == (3, 2, 1)
    assert report.n_labels_without_image == 1
