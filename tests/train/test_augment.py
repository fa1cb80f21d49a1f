from __future__ import annotations

import pytest
import torch

from ich_ray.train.augment import BatchAugment


def test_flip_only_flips_some_samples_per_sample():
    x = torch.arange(8 * 4, dtype=torch.float32).reshape(8, 1, 1, 4).expand(8, 1, 4, 4).contiguous()
    out = BatchAugment(flip_p=0.5, max_degrees=0, blur_p=0)(x, generator=torch.Generator().manual_seed(1))
    flipped = [bool(torch.equal(out[i], x[i].flip(-1))) for i in range(8)]
    kept = [bool(torch.equal(out[i], x[i])) for i in range(8)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < 8  # per-sample randomness, not one decision for the whole batch
    assert torch.equal(x[0, 0, 0], torch.arange(4, dtype=torch.float32))  # the input batch is untouched


def test_rotation_stays_within_bounds_and_keeps_shape():
    x = torch.zeros(4, 3, 32, 32)
    x[:, :, 12:20, 12:20] = 1.0  # a centred square: rotation moves little mass, keeps the centre
    out = BatchAugment(flip_p=0, max_degrees=15, blur_p=0)(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert (out[:, :, 16, 16] > 0.99).all()
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.1, atol=0)


def test_blur_smooths_an_edge():
    x = torch.zeros(2, 1, 16, 16)
    x[..., 8:] = 1.0
    out = BatchAugment(flip_p=0, max_degrees=0, blur_p=1.0, blur_sigma=(1.0, 1.0))(x)
    assert 0 < out[0, 0, 8, 7] < 1 and 0 < out[0, 0, 8, 8] < 1


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="flip_p"):
        BatchAugment(flip_p=1.5)
