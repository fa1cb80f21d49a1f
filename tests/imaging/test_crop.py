"""Head mask and crop on a synthetic head: disk + skull + head-rest line + noise + scanner padding."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.imaging.crop import crop, head_bbox, head_box, head_mask

SIZE = 128
CY, CX, RADIUS = 60, 70, 30


def synthetic_head(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(y - CY, x - CX)
    hu = np.full((SIZE, SIZE), -1000.0, dtype=np.float32)  # air
    hu[r <= RADIUS] = 1200  # skull
    hu[r <= RADIUS - 3] = 35 + rng.normal(0, 5, (r <= RADIUS - 3).sum())  # brain
    hu[np.hypot(y - CY, x - CX - 8) <= 5] = 5  # a ventricle (inside, still tissue)
    hu[np.hypot(y - CY + 12, x - CX) <= 4] = -1000  # a sinus full of air: a hole the mask fills
    hu[CY + RADIUS + 4 : CY + RADIUS + 6, 5:-5] = 200  # head-rest line, 2 px thick, below the head
    hu[CY + RADIUS : CY + RADIUS + 4, CX - 1 : CX + 1] = 100  # ... touching the head through a 2 px strut
    hu[rng.random((SIZE, SIZE)) < 0.002] = 300  # speckle noise in the air
    hu[np.hypot(y - SIZE / 2, x - SIZE / 2) > SIZE / 2] = -1500  # GE-style padding outside the FOV
    return hu


def test_mask_is_the_filled_disk_without_line_or_noise():
    hu = synthetic_head()
    mask = head_mask(hu)
    y, x = np.mgrid[:SIZE, :SIZE]
    disk = np.hypot(y - CY, x - CX) <= RADIUS
    assert mask[CY - 12, CX]  # the air-filled sinus is a filled hole
    assert not mask[CY + RADIUS + 5, 10]  # the head-rest line is not the head
    assert not mask[0, 0] and not mask[SIZE // 2, 2]  # padding and air
    assert (mask & disk).sum() / disk.sum() > 0.97
    assert (mask & ~disk).sum() <= 0.03 * disk.sum()


def test_bbox_of_the_disk_is_known():
    bbox = head_bbox(head_mask(synthetic_head()), margin=0)
    assert bbox is not None
    expected = (CY - RADIUS, CY + RADIUS + 1, CX - RADIUS, CX + RADIUS + 1)
    assert all(abs(a - b) <= 1 for a, b in zip(bbox, expected, strict=True)), (bbox, expected)


def test_bbox_margin_is_clipped_to_the_image():
    mask = np.zeros((100, 100), dtype=bool)
    mask[2:50, 40:98] = True
    assert head_bbox(mask, margin=0) == (2, 50, 40, 98)
    assert head_bbox(mask, margin=0.05) == (0, 55, 35, 100)


def test_no_head():
    air = np.full((64, 64), -1000.0, dtype=np.float32)
    assert not head_mask(air).any()
    assert head_bbox(head_mask(air)) is None
    specks = air.copy()
    specks[10, 10] = specks[40, 50] = 500  # noise only
    assert head_bbox(head_mask(specks)) is None


def test_mask_at_full_resolution_size():
    hu = np.pad(synthetic_head(), ((0, 3), (0, 0)), constant_values=-1000)  # 131 x 128: not a multiple
    assert head_mask(hu).shape == hu.shape


def test_crop_slices_rows_and_columns():
    arr = np.arange(6 * 8 * 2).reshape(6, 8, 2)
    np.testing.assert_array_equal(crop(arr, (1, 4, 2, 7)), arr[1:4, 2:7])
    assert crop(arr, None) is arr
    with pytest.raises(ValueError, match="does not fit"):
        crop(arr, (0, 7, 0, 8))


def edge_blobs(seed: int) -> np.ndarray:
    """Random tissue blobs, some with holes, some touching the slice's edges, on a non-square slice whose
    sides are not multiples of the mask's stride (rows and columns clipped at the last subsampled pixel)."""
    rng = np.random.default_rng(seed)
    height, width = rng.integers(300, 700, size=2)
    y, x = np.mgrid[:height, :width]
    hu = np.full((height, width), -1000.0, dtype=np.float32)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        radius = rng.integers(40, 250)
        r = np.hypot(y - cy, x - cx)
        hu[r <= radius] = 40
        hu[r <= radius // 3] = -1000  # a hole
    return hu


@pytest.mark.parametrize("seed", range(12))
def test_head_box_is_the_box_of_the_head_mask(seed):
    """The crop box of clean and predict (`head_box`) is exactly `head_bbox(head_mask(...))`, with the
    holes unfilled and the mask never scaled back to full resolution."""
    hu = synthetic_head(seed) if seed < 3 else edge_blobs(seed)
    for margin in (0.0, 0.02, 0.3):
        assert head_box(hu, margin=margin) == head_bbox(head_mask(hu), margin=margin)
    assert head_box(hu, opening=0) == head_bbox(head_mask(hu, opening=0))


def test_head_box_on_real_slices_and_without_a_head(real_ct_dir):
    from ich_ray.dicom import read_slice

    for path in sorted(real_ct_dir.glob("*.dcm")):
        _, hu = read_slice(path)
        assert head_box(hu) == head_bbox(head_mask(hu)), path
    assert head_box(np.full((64, 64), -1000.0, np.float32)) is None
    with pytest.raises(ValueError, match="margin"):
        head_box(synthetic_head(), margin=-0.1)
