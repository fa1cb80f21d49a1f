from __future__ import annotations

import pytest
import torch

from ich_ray.models.inputs import to_model_input


def test_to_model_input_scales_resizes_and_normalises():
    images = torch.full((2, 3, 64, 64), 255, dtype=torch.uint8)
    x = to_model_input(images, 32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.full_like(x, 2.0))  # (1 - 0.5) / 0.25


def test_to_model_input_rejects_unbatched_images():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        to_model_input(torch.zeros(3, 8, 8, dtype=torch.uint8), 8, (0,) * 3, (1,) * 3)
