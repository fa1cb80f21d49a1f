"""Pixel statistics and the brain-window fraction on constructed arrays."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.imaging.stats import brain_fraction, pixel_stats, window_fraction


def test_brain_fraction_open_interval():
    # 10 pixels: 0 and 80 are on the boundary (excluded); 1, 40, 79.5 inside
    hu = np.array([-1000, -1, 0, 1, 40, 79.5, 80, 81, 1000, 2000], dtype=np.float32)
    assert brain_fraction(hu) == pytest.approx(0.3)
    assert brain_fraction(hu, low=-2, high=2) == pytest.approx(0.3)  # -1, 0, 1


def test_pixel_stats_on_a_known_image():
    hu = np.zeros((10, 10), dtype=np.float32) - 1000  # air
    hu[:5, :] = 40  # half the image is brain
    hu[0, 0] = 1000  # one bone pixel
    stats = pixel_stats(hu)
    assert stats["img_min"] == -1000 and stats["img_max"] == 1000
    assert stats["img_pct_window"] == pytest.approx(0.49)
    assert stats["img_mean"] == pytest.approx(hu.astype(np.float64).mean())
    assert stats["img_std"] == pytest.approx(hu.astype(np.float64).std())
    assert all(type(v) is float for v in stats.values())


def test_pixel_stats_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        pixel_stats(np.zeros((0, 5)))


def test_float32_statistics_are_accurate_on_a_ct_sized_image():
    rng = np.random.default_rng(0)
    hu = rng.normal(-600, 700, (512, 512)).astype(np.float32)
    stats = pixel_stats(hu)
    assert stats["img_mean"] == pytest.approx(hu.astype(np.float64).mean(), rel=1e-5)
    assert stats["img_std"] == pytest.approx(hu.astype(np.float64).std(), rel=1e-5)


@pytest.mark.parametrize(("dtype", "slope", "intercept"), [(np.uint16, 1.0, -1024.0), (np.int16, 1.0, 0.0),
                                                           (np.uint16, 0.5, -1000.0), (np.int16, -2.0, 100.0)])
def test_stats_on_stored_integers_match_the_hu_image(dtype, slope, intercept):
    """The metadata stage's path (stats on the stored integers and the rescale) equals stats on the HU image."""
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    stored = rng.integers(max(info.min, -2000), min(info.max, 4000), (512, 512)).astype(dtype)
    stored[:100, :100] = int(np.clip((40 - intercept) / slope, info.min, info.max))  # a block inside the window
    hu = stored.astype(np.float64) * slope + intercept
    stats = pixel_stats(stored, slope, intercept)
    assert stats["img_min"] == hu.min() and stats["img_max"] == hu.max()
    assert stats["img_mean"] == pytest.approx(hu.mean(), rel=1e-9)
    assert stats["img_std"] == pytest.approx(hu.std(), rel=1e-9)
    assert stats["img_pct_window"] == np.mean((hu > 0) & (hu < 80)) > 0.03


def test_zero_slope_is_refused():
    with pytest.raises(ValueError, match="slope must not be 0"):
        pixel_stats(np.ones((4, 4), np.uint16), slope=0.0)


@pytest.mark.parametrize("slope", [1.0, -0.5])
def test_a_given_value_range_gives_the_stats_the_scan_gives(slope):
    stored = np.random.default_rng(1).integers(-1024, 3072, (64, 64)).astype(np.int16)
    given = pixel_stats(stored, slope, -1024.0, (int(stored.min()), int(stored.max())))
    assert given == pixel_stats(stored, slope, -1024.0)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("intercept", [-1024.0, 0.0, 5000.0])
def test_the_one_pass_stats_equal_numpy_on_every_narrow_integer_type(dtype, intercept):
    """Full-range values (the extremes included): the compiled pass's sums, bounds and window count equal
    numpy's figures in float64 on the HU image. The window holds stored values for 16-bit types; for 8-bit
    ones at -1024 and 5000 it holds none (an empty interval of bounds)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(2)
    stored = rng.integers(info.min, info.max, (300, 301), endpoint=True).astype(dtype)
    stored.flat[[0, -1]] = info.max, info.min
    hu = stored.astype(np.float64) + intercept
    stats = pixel_stats(stored, 1.0, intercept)
    assert stats["img_min"] == hu.min() and stats["img_max"] == hu.max()
    assert stats["img_mean"] == pytest.approx(hu.mean(), rel=1e-12)
    assert stats["img_std"] == pytest.approx(hu.std(), rel=1e-12)
    assert stats["img_pct_window"] == np.mean((hu > 0) & (hu < 80))


def test_stored_values_in_the_other_byte_order_give_the_same_stats():
    """A big-endian array (Explicit VR Big Endian's byte order, read as is): the same figures, the window
    fraction included (its test reads the bytes as unsigned integers)."""
    stored = np.random.default_rng(3).integers(-1024, 3072, (64, 64)).astype(np.int16)
    swapped = stored.astype(stored.dtype.newbyteorder())
    assert not swapped.dtype.isnative
    assert pixel_stats(swapped, 1.0, -1024.0) == pixel_stats(stored, 1.0, -1024.0)
    assert window_fraction(swapped, 1.0, -1024.0) == window_fraction(stored, 1.0, -1024.0)
