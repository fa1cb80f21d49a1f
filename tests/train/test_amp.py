"""The one mixed-precision helper: exactly one optimizer step per call, unscale before clip, CPU paths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ich_ray.train.amp import AmpStepper, resolve_precision


class CountingSGD(torch.optim.SGD):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    # small targets keep fp16 gradients x the initial loss scale (65536) below fp16's max (65504)
    x, y = torch.randn(8, 4) * 0.01, torch.randn(8, 1) * 0.01
    with torch.no_grad():
        model.weight.mul_(0.01)
        model.bias.zero_()
    return model, x, y


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_one_step_per_call_and_grads_cleared(precision):
    model, x, y = _setup()
    optimizer = CountingSGD(model.parameters(), lr=0.1)
    stepper = AmpStepper("cpu", precision, max_grad_norm=1.0)
    before = model.weight.detach().clone()
    for call in range(3):
        with stepper.autocast():
            loss = nn.functional.mse_loss(model(x).float(), y)
        assert stepper.step(loss, optimizer, model.parameters())
        assert optimizer.steps == call + 1
        assert all(p.grad is None for p in model.parameters())
    assert not torch.equal(model.weight, before)


def test_fp32_step_equals_a_plain_sgd_step():
    model, x, y = _setup()
    reference, _, _ = _setup()
    stepper = AmpStepper("cpu", "fp32")
    stepper.step(nn.functional.mse_loss(model(x), y), torch.optim.SGD(model.parameters(), lr=0.1), model.parameters())
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    nn.functional.mse_loss(reference(x), y).backward()
    ref_opt.step()
    torch.testing.assert_close(model.weight, reference.weight)


def test_fp16_scaler_clips_the_unscaled_gradient():
    model, x, y = _setup()
    stepper = AmpStepper("cpu", "fp16", max_grad_norm=1e-3)
    assert stepper.scaler.is_enabled() and stepper.scaler.get_scale() > 1
    before = model.weight.detach().clone()
    loss = nn.functional.mse_loss(model(x), y) * 1000  # huge gradient; clipped to norm 1e-3 before the step
    stepper.step(loss, torch.optim.SGD(model.parameters(), lr=1.0), model.parameters())
    moved = torch.cat([(model.weight - before).flatten()]).norm()
    assert moved <= 1e-3 + 1e-6


def test_fp16_overflow_skips_the_step_and_reports_it():
    model, x, y = _setup()
    optimizer = CountingSGD(model.parameters(), lr=0.1)
    stepper = AmpStepper("cpu", "fp16")
    before = model.weight.detach().clone()
    loss = nn.functional.mse_loss(model(x), y) * float("inf")
    assert stepper.step(loss, optimizer, model.parameters()) is False
    torch.testing.assert_close(model.weight, before)


def test_state_round_trip():
    model, x, y = _setup()
    stepper = AmpStepper("cpu", "fp16")
    stepper.step(nn.functional.mse_loss(model(x), y) * float("inf"), torch.optim.SGD(model.parameters(), lr=0.1),
                 model.parameters())
    assert stepper.scaler.get_scale() == 32768.0  # halved by the overflow
    other = AmpStepper("cpu", "fp16")
    other.load_state_dict(stepper.state_dict())
    assert other.scaler.get_scale() == 32768.0
