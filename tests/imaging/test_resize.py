"""resize_square: shape, aspect ratio kept by padding, range kept by the filter."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.imaging.resize import resize_square


def test_padding_centres_the_image():
    img = np.ones((4, 8, 2), dtype=np.float32)
    out = resize_square(img, 8, fill=-1)  # already the target side once padded: padding only
    assert out.shape == (8, 8, 2)
    assert (out[2:6] == 1).all() and (out[:2] == -1).all() and (out[6:] == -1).all()
    np.testing.assert_array_equal(resize_square(img[..., 0].T, 8, fill=-1), out[..., 0].T)


@pytest.mark.parametrize("shape", [(100, 50), (50, 100), (64, 64), (30, 70, 3), (200, 120, 9)])
def test_shape_and_dtype(shape):
    out = resize_square(np.random.default_rng(0).random(shape, dtype=np.float32), 64)
    assert out.shape == (64, 64) + shape[2:] and out.dtype == np.float32


def test_aspect_ratio_is_kept():
    tall = np.ones((128, 64), dtype=np.float32)  # padded to 128 x 128: ones in columns 32..96
    out = resize_square(tall, 64)  # halved: ones in columns 16..48
    assert out[:, 18:46].min() == pytest.approx(1.0)
    assert out[:, :14].max() == pytest.approx(0.0) and out[:, 50:].max() == pytest.approx(0.0)


def test_values_stay_in_range_and_constants_stay_constant():
    rng = np.random.default_rng(1)
    img = (rng.random((333, 333, 3)) > 0.5).astype(np.float32)  # worst case for ringing: a checkerboard-ish
    out = resize_square(img, 64)
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(resize_square(np.full((50, 50), 0.25, np.float32), 100), 0.25, rtol=1e-6)


def test_bad_size():
    with pytest.raises(ValueError, match="size"):
        resize_square(np.zeros((4, 4), np.float32), 0)


def test_matches_torch_antialiased_bilinear():
    """The clean stage (Pillow) and any torch-side resize (torchvision Resize, antialias=True) agree."""
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(2).random((96, 96, 3), dtype=np.float32)
    ours = resize_square(img, 40)
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(img).permute(2, 0, 1)[None], size=(40, 40), mode="bilinear", antialias=True
    )[0].permute(1, 2, 0)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
