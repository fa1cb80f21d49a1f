"""Encode/decode round trips: PNG exact for any channel count, JPEG close for 1 and 3 channels."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.imaging.encode import decode_image, encode_image, to_uint8


def image(channels: int, size: int = 64) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    planes = [((x * (c + 1) + y * 3) % 256) for c in range(channels)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def test_to_uint8_rounds_and_clips():
    out = to_uint8(np.array([-0.5, 0.0, 0.5, 1 / 255 * 0.49, 1 / 255 * 0.51, 1.0, 7.0]))
    np.testing.assert_array_equal(out, [0, 0, 128, 0, 1, 255, 255])
    assert out.dtype == np.uint8


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 9])
def test_png_round_trip_is_exact(channels):
    img = image(channels)
    data = encode_image(img, "png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(decode_image(data, channels=channels), img)


def test_png_of_a_2d_image_decodes_with_one_channel():
    img = image(1)[..., 0]
    out = decode_image(encode_image(img))
    assert out.shape == (64, 64, 1)
    np.testing.assert_array_equal(out[..., 0], img)


def test_tiled_layout_is_channels_left_to_right():
    img = image(9, size=16)
    tiled = decode_image(encode_image(img))  # without channels: the stored H x (W*C) greyscale plane
    assert tiled.shape == (16, 16 * 9, 1)
    for c in range(9):
        np.testing.assert_array_equal(tiled[:, c * 16 : (c + 1) * 16, 0], img[..., c])


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(channels):
    rng = np.random.default_rng(0)
    smooth = np.clip(
        image(channels).astype(np.int16) // 4 + 100 + rng.integers(-2, 3, (64, 64, channels)), 0, 255
    )
    img = smooth.astype(np.uint8)
    data = encode_image(img, "jpeg", quality=95)
    assert data[:2] == b"\xff\xd8"
    out = decode_image(data, channels=channels)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).mean() < 3


def test_jpeg_refuses_tiled_channels():
    with pytest.raises(ValueError, match="jpeg holds 1 or 3 channels, got 9"):
        encode_image(image(9), "jpeg")


def test_bad_inputs():
    with pytest.raises(TypeError, match="uint8"):
        encode_image(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="'gif'"):
        encode_image(image(1), "gif")
    with pytest.raises(ValueError, match="cannot split"):
        decode_image(encode_image(image(3)), channels=9)
    with pytest.raises(ValueError, match="quality"):
        encode_image(image(3), "jpeg", quality=0)
