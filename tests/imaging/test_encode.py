"""Encode/decode round trips: PNG and raw exact for any channel count, JPEG close for 1 and 3 channels; raw
batches as views on a binary column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ich_ray.imaging.encode import decode_image, decode_raw, encode_image, raw_batch, to_uint8


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


@pytest.mark.parametrize("channels", [1, 3, 9])
def test_raw_round_trip_is_exact_and_channel_planar(channels):
    img = image(channels, size=16)
    data = encode_image(img, "raw")
    assert len(data) == 16 * 16 * channels
    planes = np.frombuffer(data, np.uint8).reshape(channels, 16, 16)
    for c in range(channels):
        np.testing.assert_array_equal(planes[c], img[..., c])
    np.testing.assert_array_equal(decode_raw(data, img.shape), img)


def test_a_raw_batch_is_every_image_of_the_column_in_order():
    images = [image(3, size=8) + i for i in range(5)]
    column = pa.chunked_array([pa.array([encode_image(im, "raw") for im in images[:2]], pa.binary()),
                               pa.array([encode_image(im, "raw") for im in images[2:]], pa.binary())])
    # two chunks, a slice across them, and a one-chunk slice (an array offset into its buffers)
    for part, start in ((column, 0), (column.slice(1, 3), 1), (column.combine_chunks().slice(2, 3), 2)):
        batch = raw_batch(part, (8, 8, 3))
        assert batch.shape == (len(part), 3, 8, 8)
        for j in range(len(part)):
            np.testing.assert_array_equal(batch[j].transpose(1, 2, 0), images[start + j])
    large = pa.array([encode_image(im, "raw") for im in images], pa.large_binary())
    np.testing.assert_array_equal(raw_batch(large, (8, 8, 3)), raw_batch(column, (8, 8, 3)))
    assert raw_batch(column.slice(0, 0), (8, 8, 3)).shape == (0, 3, 8, 8)


def test_raw_bytes_of_the_wrong_size_or_null_are_refused_by_position():
    good = encode_image(image(3, size=8), "raw")
    with pytest.raises(ValueError, match=r"image 1 holds 191 bytes, a \(8, 8, 3\) image 192"):
        raw_batch(pa.array([good, good[:-1]], pa.binary()), (8, 8, 3))
    with pytest.raises(ValueError, match="1 of 2 images are null"):
        raw_batch(pa.array([good, None], pa.binary()), (8, 8, 3))
    with pytest.raises(ValueError, match=r"191 bytes do not hold 1 image\(s\) of shape \(8, 8, 3\)"):
        decode_raw(good[:-1], (8, 8, 3))
