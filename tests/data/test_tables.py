from __future__ import annotations

import math

import polars as pl

from ich_ray.data.tables import publish_metadata, with_slice_index

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def rows(specs):
    """specs: (path, series, z, orientation or None, status)."""
    out = []
    for path, series, z, orient, status in specs:
        row = {"path": path, "status": status, "series_instance_uid": series, "sop_instance_uid": path,
               "image_position_x": 0.0, "image_position_y": 0.0, "image_position_z": z}
        row.update({f"image_orientation_{i}": (orient[i] if orient else None) for i in range(6)})
        out.append(row)
    return pl.LazyFrame(out)


def index_of(frame):
    return dict(zip(frame["path"], frame["slice_index"], strict=True))


def test_slice_index_orders_by_z_per_series_and_skips_failed_rows():
    frame = rows([
        ("a3", "A", 30.0, AXIAL, "ok"), ("a1", "A", -10.0, AXIAL, "ok"), ("a2", "A", 5.0, None, "ok"),
        ("b1", "B", 100.0, AXIAL, "ok"), ("bad", None, None, None, "failed"),
    ])
    out = with_slice_index(frame).collect()
    assert out["path"].to_list() == ["a3", "a1", "a2", "b1", "bad"]  # row order kept
    assert index_of(out) == {"a1": 0, "a2": 1, "a3": 2, "b1": 0, "bad": None}


def test_tilted_gantry_orders_along_the_slice_normal():
    # Gantry tilted 30 degrees: column cosines (0, cos, sin), slice normal (0, -sin, cos). The positions are
    # chosen so that image_position_z alone DEcreases with k while the projection on the normal increases.
    t = math.radians(30)
    tilted = (1.0, 0.0, 0.0, 0.0, math.cos(t), math.sin(t))
    names = ("s0", "s1", "s2", "s3")
    frame = pl.LazyFrame([
        {"path": n, "status": "ok", "series_instance_uid": "T", "sop_instance_uid": n,
         "image_position_x": 0.0, "image_position_y": -5.0 * k * math.sin(t) - 40.0 * k,
         "image_position_z": 5.0 * k * math.cos(t) - 10.0 * k,
         **{f"image_orientation_{i}": tilted[i] for i in range(6)}}
        for k, n in enumerate(names)
    ])
    assert frame.collect()["image_position_z"].is_sorted(descending=True)
    assert index_of(with_slice_index(frame).collect()) == {"s0": 0, "s1": 1, "s2": 2, "s3": 3}


def test_publish_replaces_old_rows_and_renumbers_a_series_that_grew(tmp_path):
    old = with_slice_index(rows([("a1", "A", 0.0, AXIAL, "ok"), ("a3", "A", 20.0, AXIAL, "ok")])).with_columns(
        label_any=pl.lit(1, pl.Int8)
    )
    raw = rows([("a2", "A", 10.0, AXIAL, "ok"), ("a3", "A", 30.0, AXIAL, "ok")])  # a3 changed, a2 new
    ok, failed = publish_metadata(tmp_path / "metadata", raw, previous=old, labels=None)
    out = pl.read_parquet(tmp_path / "metadata")
    assert (ok, failed, out.height) == (2, 0, 3)
    assert index_of(out) == {"a1": 0, "a2": 1, "a3": 2}
    # without a label file, kept rows keep their labels and new/replaced rows have none
    assert dict(zip(out["path"], out["label_any"], strict=True)) == {"a1": 1, "a2": None, "a3": None}
    assert out.schema["label_any"] == pl.Int8
