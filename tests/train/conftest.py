"""A tiny images/ table (and metadata/ table) written directly, so training tests need no DICOM stages.

Slices are 3-channel PNGs of a grey disc ("head") on black; bleed-positive slices carry a bright blob whose
place picks the subtype, so a CNN can learn it in a couple of epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ich_ray.imaging.recipe import CleanRecipe, encode_slice
from ich_ray.labels import LABEL_COLUMNS, SUBTYPES


def make_slice(rng: np.random.Generator, size: int, subtype: int | None) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2
    head = ((yy - centre) ** 2 + (xx - centre) ** 2) < (0.42 * size) ** 2
    img = np.where(head, 90.0, 0.0) + rng.normal(0, 6, (size, size))
    if subtype is not None:
        angle = 2 * np.pi * subtype / len(SUBTYPES)
        cy, cx = centre + 0.2 * size * np.sin(angle), centre + 0.2 * size * np.cos(angle)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < (0.1 * size) ** 2] = 230.0
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.stack([img, img, np.roll(img, 1, axis=1)], axis=-1)


def write_images_table(root: Path, patients: int = 4, slices: int = 12, size: int = 64, seed: int = 0,
                       shards: int = 2, fmt: str = "png") -> Path:
    """ROOT/images/part-*.parquet with the contract's columns, images stored as `fmt`; every other slice is
    bleed-positive."""
    rng = np.random.default_rng(seed)
    recipe = CleanRecipe(windows=("brain", "subdural", "bone"), size=size, crop=False, format=fmt)
    rows: dict[str, list] = {k: [] for k in (
        "sop_instance_uid", "study_instance_uid", "series_instance_uid", "patient_id", "slice_index",
        *LABEL_COLUMNS, "image", "height", "width", "channels", "recipe")}
    for p in range(patients):
        for s in range(slices):
            subtype = int(rng.integers(len(SUBTYPES))) if (s + p) % 2 == 0 else None
            rows["sop_instance_uid"].append(f"1.2.3.{p}.{s}")
            rows["study_instance_uid"].append(f"1.2.3.{p}")
            rows["series_instance_uid"].append(f"1.2.3.{p}.0")
            rows["patient_id"].append(f"P{p:03d}")
            rows["slice_index"].append(s)
            for j, column in enumerate(LABEL_COLUMNS[:-1]):
                rows[column].append(int(subtype == j))
            rows["label_any"].append(int(subtype is not None))
            rows["image"].append(encode_slice(make_slice(rng, size, subtype), recipe))
            rows["height"].append(size)
            rows["width"].append(size)
            rows["channels"].append(3)
            rows["recipe"].append(recipe.to_json())
    schema = {c: pa.int8() for c in LABEL_COLUMNS} | {"image": pa.binary(), "slice_index": pa.int32(),
                                                      "height": pa.int32(), "width": pa.int32(), "channels": pa.int32()}
    table = pa.table({k: pa.array(v, type=schema.get(k)) for k, v in rows.items()})
    out = root / "images"
    out.mkdir(parents=True, exist_ok=True)
    per = -(-table.num_rows // shards)
    for i in range(shards):
        pq.write_table(table.slice(i * per, per), out / f"part-{i:03d}.parquet")
    return root


@pytest.fixture(scope="session")
def images_root(tmp_path_factory) -> Path:
    """4 patients x 12 slices of 64 px, half bleed-positive, in two shards."""
    return write_images_table(tmp_path_factory.mktemp("train-data"))


def write_metadata_table(root: Path, patients: int = 12, slices: int = 20, seed: int = 0) -> Path:
    """ROOT/metadata/part-0.parquet with header features where `img_max` carries the bleed signal."""
    rng = np.random.default_rng(seed)
    n = patients * slices
    any_label = rng.random(n) < 0.4
    frame = {
        "path": [f"/dicom/{i}.dcm" for i in range(n)],
        "status": ["ok"] * n,
        "sop_instance_uid": [f"1.9.{i}" for i in range(n)],
        "patient_id": [f"P{i // slices:03d}" for i in range(n)],
        "rows": np.full(n, 512), "columns": np.full(n, 512),
        "bits_stored": rng.choice([12, 16], n), "pixel_representation": rng.choice([0, 1], n),
        "rescale_intercept": rng.choice([-1024.0, 0.0], n), "window_center": np.full(n, 40.0),
        "window_width": np.full(n, 80.0), "slice_thickness": np.full(n, 5.0),
        "image_position_z": rng.normal(0, 50, n), "slice_index": np.arange(n) % slices,
        "img_min": rng.normal(-1000, 10, n), "img_max": np.where(any_label, 90, 60) + rng.normal(0, 5, n),
        "img_mean": rng.normal(20, 5, n), "img_std": rng.normal(30, 3, n), "img_pct_window": rng.random(n),
    }
    for j, column in enumerate(LABEL_COLUMNS[:-1]):
        frame[column] = (any_label & (rng.integers(0, 5, n) == j)).astype(np.int8)
    frame["label_any"] = any_label.astype(np.int8)
    out = root / "metadata"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(frame), out / "part-0.parquet")
    return root
