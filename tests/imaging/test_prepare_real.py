"""prepare_slice on real GE slices: padding (-1500 HU) and the head holder do not break the head crop."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.dicom import read_slice
from ich_ray.imaging.crop import head_bbox, head_mask
from ich_ray.imaging.recipe import CleanRecipe, prepare_slice


@pytest.fixture(scope="module")
def ge_slice(real_ct_dir) -> np.ndarray:
    _, hu = read_slice(real_ct_dir / "15.dcm")
    return hu


def test_head_mask_ignores_padding(ge_slice):
    assert ge_slice.min() == -1500  # the GE padding value is really there
    mask = head_mask(ge_slice)
    assert not mask[ge_slice == -1500].any()
    assert 0.25 < mask.mean() < 0.6  # a head through the brain fills 25-60 % of a 25 cm field of view
    brain = (ge_slice > 0) & (ge_slice < 80)
    assert (mask & brain).sum() / brain.sum() > 0.95  # all the brain tissue is in the head


def test_every_ge_slice_has_a_head_inside_the_field_of_view(real_ct_dir):
    for path in sorted(real_ct_dir.glob("*.dcm")):
        _, hu = read_slice(path)
        top, bottom, left, right = head_bbox(head_mask(hu), margin=0)
        assert 0 < top < bottom < 512 and 0 < left < right < 512, path
        assert (bottom - top) * (right - left) < 0.8 * 512 * 512, path  # the crop removes air


def test_prepare_real_slice_contains_the_head(ge_slice):
    recipe = CleanRecipe(size=256)
    img = prepare_slice(ge_slice, recipe)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    brain, bone = img[..., 0], img[..., 2]
    # the skull (bone window) spans most of the image along the head's long axis (the aspect ratio is
    # kept, so the short axis is padded): the crop is tight around the head ...
    rows, cols = np.nonzero(bone > 128)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) > 0.75 * 256
    # ... but is not cut: the outermost rows and columns are background (margin)
    for edge in (bone[0], bone[-1], bone[:, 0], bone[:, -1]):
        assert edge.max() < 128
    assert 0.3 < np.mean((brain > 0) & (brain < 255)) < 0.8  # brain-window tissue fills much of the crop
