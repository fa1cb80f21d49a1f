"""Pixel statistics and the brain-window fraction on constructed arrays."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.imaging.stats import brain_fraction, pixel_stats


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
