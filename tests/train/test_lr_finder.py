from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ich_ray.train.amp import AmpStepper
from ich_ray.train.lr_finder import lr_range_test, suggest


class _Identity:
    """A task whose batches already hold the model input."""

    def inputs(self, batch, train):
        return batch["image"]

    def outputs(self, batch, output):
        return output, batch["labels"]


def test_suggest_finds_the_steepest_descent_and_min_over_10():
    lrs = list(np.logspace(-5, 0, 6))
    losses = [1.0, 0.99, 0.7, 0.3, 0.25, 2.0]  # steepest drop between 1e-3 and 1e-2; minimum at 1e-1
    steep, min10 = suggest(lrs, losses)
    assert steep == pytest.approx(1e-3) or steep == pytest.approx(1e-2)
    assert min10 == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="at least 3"):
        suggest([1e-3], [1.0])


def test_range_test_on_a_learnable_problem_leaves_the_model_untouched():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 4, 4)
    y = (x.mean(dim=(1, 2, 3)) > 0).float()[:, None]
    batches = [{"image": x[i:i + 16], "labels": y[i:i + 16]} for i in range(0, 64, 16)]
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    before = model[1].weight.detach().clone()
    result = lr_range_test(
        model, lambda: batches, _Identity(), nn.BCEWithLogitsLoss(),
        lambda params, lr: torch.optim.SGD(params, lr=lr), AmpStepper("cpu", "fp32"),
        start_lr=1e-4, end_lr=100.0, num_iter=60,
    )
    torch.testing.assert_close(model[1].weight, before)
    assert len(result.lrs) == len(result.losses) >= 10
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:], strict=False))
    assert 1e-4 <= result.suggested_lr <= 10.0
    assert result.suggested_lr == min(result.lr_steep, result.lr_min_div10)
