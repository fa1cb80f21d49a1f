from __future__ import annotations

import math

import pytest
import torch

from ich_ray.train.losses import label_weights, make_criterion


def test_rsna_weights_count_any_twice():
    assert label_weights(("epidural", "any")).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown labels"):
        label_weights(("bleed",))


def test_weighted_bce_matches_hand_computation():
    crit = make_criterion(("subdural", "any"))
    logits = torch.zeros(2, 2)  # p = 0.5 everywhere: each entry costs log 2
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert crit(logits, targets).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[0.0, 100.0], [0.0, 100.0]])  # `any` says yes for both rows; row 0 wrong
    loss = crit(logits, targets).item()
    assert loss == pytest.approx((math.log(2) * 1 + 100.0 * 2) / 3 / 2 + (math.log(2) / 3) / 2, rel=1e-4)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        make_criterion(("any",))(torch.zeros(3, 1), torch.zeros(3))
