from __future__ import annotations

import pytest
import torch

from ich_ray.train.schedule import OneCycle, body_frozen, size_for_epoch, steps_per_epoch


def test_progressive_sizes():
    sizes = (64, 128, 256)
    assert [size_for_epoch(sizes, (1, 1), e) for e in range(5)] == [64, 128, 256, 256, 256]
    assert [size_for_epoch(sizes, (2, 1, 2), e) for e in range(6)] == [64, 64, 128, 256, 256, 256]
    assert size_for_epoch((128,), (), 3) == 128
    with pytest.raises(ValueError, match="size_epochs"):
        size_for_epoch(sizes, (1,), 0)


def test_body_frozen_for_the_first_epochs():
    assert [body_frozen(e, 1) for e in range(3)] == [True, False, False]
    assert not body_frozen(0, 0)


def test_steps_per_epoch_follows_the_equal_split():
    assert steps_per_epoch(41, 2, 8) == 3  # 20 rows per worker -> 3 batches
    with pytest.raises(ValueError, match="cannot feed 4 workers"):
        steps_per_epoch(3, 4, 8)


def test_one_cycle_peaks_then_anneals_and_never_overruns():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = OneCycle(opt, max_lr=1e-2, total_steps=10, pct_start=0.3)
    lrs = [sched.lr]
    for _ in range(15):  # more steps than planned: no error, stays at the floor
        opt.step()
        sched.step()
        lrs.append(sched.lr)
    assert max(lrs) == pytest.approx(1e-2)
    assert lrs[0] < 1e-2 / 10 and lrs[-1] < 1e-5
    assert lrs[-1] == lrs[-5]


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5])
def test_one_cycle_survives_tiny_runs(total):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = OneCycle(opt, max_lr=1e-2, total_steps=total, pct_start=0.25)
    for _ in range(total + 2):
        opt.step()
        sched.step()
    assert sched.lr < 1e-2
