"""CleanRecipe (JSON round trip, validation) and prepare_slice on synthetic slices."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from ich_ray.imaging.crop import crop, head_bbox, head_mask
from ich_ray.imaging.encode import to_uint8
from ich_ray.imaging.recipe import CleanRecipe, decode_slice, decode_slices, encode_slice, prepare_slice
from ich_ray.imaging.resize import resize_square
from ich_ray.imaging.windows import stack_windows


def head_slice(size: int = 128, value: float = 40.0, radius: int = 24) -> np.ndarray:
    """A small head (disk of `value` HU) off-centre in a large air field."""
    y, x = np.mgrid[:size, :size]
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    hu[np.hypot(y - 40, x - 50) <= radius] = value
    return hu


def test_defaults_and_channels():
    recipe = CleanRecipe()
    assert recipe.windows == ("brain", "subdural", "bone") and recipe.size == 256
    assert recipe.channels == 3
    assert CleanRecipe(context=True).channels == 9
    assert CleanRecipe(windows=["brain"]).windows == ("brain",)  # lists from YAML/JSON become tuples


def test_json_round_trip():
    recipe = CleanRecipe(windows=("brain", "stroke:32:8"), size=64, crop=False, context=True, format="png")
    text = recipe.to_json()
    assert json.loads(text)["windows"] == ["brain", "stroke:32:8"]
    assert CleanRecipe.from_json(text) == recipe


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"windows": ("brain", "lung")}, "'lung'"),
        ({"windows": ()}, "at least one window"),
        ({"size": 16}, "got 16"),
        ({"size": 64.0}, "got 64.0"),
        ({"format": "gif"}, "'gif'"),
        ({"quality": 101}, "got 101"),
        ({"format": "jpeg", "context": True}, "makes 9"),
        ({"format": "jpeg", "windows": ("brain", "bone")}, "makes 2"),
    ],
)
def test_validation_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CleanRecipe(**kwargs)


def test_from_json_rejects_unknown_keys():
    with pytest.raises(ValueError, match="'colour'"):
        CleanRecipe.from_json('{"colour": 1}')


def test_prepare_slice_shape_and_crop():
    hu = head_slice()
    img = prepare_slice(hu, CleanRecipe(windows=("brain",), size=64))
    assert img.shape == (64, 64, 1) and img.dtype == np.uint8
    head = img[..., 0] == 128  # 40 HU is the brain window's centre: 0.5 -> 128
    # cropped to the head (+2% margin each side) then resized: the head fills most of the image
    assert head.mean() > 0.6
    uncropped = prepare_slice(hu, CleanRecipe(windows=("brain",), size=64, crop=False))
    assert (uncropped[..., 0] == 128).mean() < 0.15


def test_prepare_slice_without_a_head_uses_the_whole_slice():
    blank = np.full((96, 64), -1000.0, dtype=np.float32)
    blank[0, 0] = 40  # a single tissue pixel: too small for a head, so nothing is cropped
    out = prepare_slice(blank, CleanRecipe(windows=("brain",), size=32))
    assert out.shape == (32, 32, 1)
    # the whole 96 x 64 slice was kept: padded to 96 x 96 then shrunk by 3, the pixel is blurred into the corner
    # of the centred image (column offset 16 px -> 5 px), not blown up as a crop to it would be
    assert out.max() < 128 and out[0:2, 5:7].max() > 0


def test_context_channel_order_and_missing_neighbours():
    this, before, after = head_slice(value=40), head_slice(value=20), head_slice(value=60)
    recipe = CleanRecipe(windows=("brain", "subdural"), size=32, context=True)
    img = prepare_slice(this, recipe, (before, after))
    assert img.shape == (32, 32, 6)
    centre = img[16, 16]
    # brain window 0..80: prev 20 -> 64, this 40 -> 128, next 60 -> 191; subdural -20..180: 51, 76 (76.5 rounds to even), 102
    np.testing.assert_array_equal(centre, [64, 128, 191, 51, 76, 102])
    at_the_end = prepare_slice(this, recipe, (before, None))
    np.testing.assert_array_equal(at_the_end[16, 16], [64, 128, 128, 51, 76, 76])
    np.testing.assert_array_equal(prepare_slice(this, recipe), prepare_slice(this, recipe, (this, this)))


def test_neighbour_shape_must_match():
    recipe = CleanRecipe(size=32, context=True)
    with pytest.raises(ValueError, match="next slice has shape"):
        prepare_slice(head_slice(), recipe, (None, np.zeros((10, 10), np.float32)))


@pytest.mark.parametrize("recipe", [CleanRecipe(size=32), CleanRecipe(size=32, context=True),
                                    CleanRecipe(size=32, format="raw"), CleanRecipe(size=32, context=True, format="raw")])
def test_encode_decode_slice_round_trip(recipe):
    img = prepare_slice(head_slice(), recipe)
    np.testing.assert_array_equal(decode_slice(encode_slice(img, recipe), recipe), img)


@pytest.mark.parametrize("fmt", ["png", "raw"])
def test_decode_slices_is_the_batch_of_decode_slice(fmt):
    recipe = CleanRecipe(size=32, context=True, format=fmt)
    images = [prepare_slice(head_slice() + shift, recipe) for shift in (0.0, 40.0, -300.0)]
    column = pa.array([encode_slice(img, recipe) for img in images], pa.binary())
    batch = decode_slices(column, recipe)
    assert batch.shape == (3, 9, 32, 32) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch, np.stack(images).transpose(0, 3, 1, 2))


def reference_prepare(hu, recipe, neighbours=(None, None)):
    """prepare_slice spelled out with the public steps: mask, box, stacked windows, padded resize."""
    bbox = head_bbox(head_mask(hu)) if recipe.crop else None
    planes = [hu]
    if recipe.context:
        planes = [plane if plane is not None else hu for plane in (neighbours[0], hu, neighbours[1])]
    channels = [stack_windows(crop(plane, bbox), recipe.window_objects) for plane in planes]
    stacked = np.stack(channels, axis=3).reshape(channels[0].shape[:2] + (recipe.channels,))
    return to_uint8(resize_square(stacked, recipe.size, fill=0.0))


@pytest.mark.parametrize(
    "recipe",
    [
        CleanRecipe(),
        CleanRecipe(size=64, crop=False),
        CleanRecipe(size=512),
        CleanRecipe(context=True, windows=("brain", "x:50:100")),
    ],
    ids=["default", "uncropped-64", "upsampled-512", "context"],
)
def test_prepare_slice_is_the_composition_of_its_steps_bit_for_bit(real_ct_dir, recipe):
    """The fused path (windows written into the padded canvas, the box from the subsampled blob) stores
    exactly the pixels of the plain composition, so images cleaned before and after it are the same."""
    from ich_ray.dicom import read_slice

    hus = [read_slice(path)[1] for path in sorted(real_ct_dir.glob("*.dcm"))[8:14]]
    hus += [hus[0][40:400, 10:500], np.ascontiguousarray(hus[1].T[::2]), head_slice()]
    for i, hu in enumerate(hus):
        neighbours = (hus[i - 1], hus[i + 1]) if 0 < i < 5 else (None, None)
        expected = reference_prepare(hu, recipe, neighbours)
        np.testing.assert_array_equal(prepare_slice(hu, recipe, neighbours), expected)
