"""The study-level sequence models: shapes, padding that never changes a real slice, and learning from
neighbours."""

from __future__ import annotations

import pytest
import torch

from ich_ray.models.sequence import SEQUENCE_MODELS, create_sequence_model


@pytest.mark.parametrize("name", sorted(SEQUENCE_MODELS))
def test_output_per_slice_and_padding_does_not_leak(name):
    torch.manual_seed(0)
    model = create_sequence_model(name, in_dim=16, num_outputs=6).eval()
    emb = torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    with torch.no_grad():
        out = model((emb, mask))
        # the short series alone, without padding, gives the same logits on its real slices
        alone = model((emb[1:, :4], mask[1:, :4]))
        # garbage in the padding changes nothing on the real slices
        noisy = emb.clone()
        noisy[1, 4:] = 1e3
        out_noisy = model((noisy, mask))
    assert out.shape == (2, 7, 6) and torch.isfinite(out).all()
    torch.testing.assert_close(out[1, :4], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_noisy[1, :4], out[1, :4])


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: bigru, cnn1d"):
        create_sequence_model("lstm", 8, 1)


@pytest.mark.parametrize("name", sorted(SEQUENCE_MODELS))
def test_residual_model_starts_as_the_slice_logits_and_learns_from_neighbours(name):
    """Over logits, the untrained model returns its input; a few steps teach it that a slice between two
    bleeding neighbours bleeds too (what the input alone cannot say)."""
    torch.manual_seed(0)
    model = create_sequence_model(name, in_dim=1, num_outputs=1, hidden=16, dropout=0.0, residual=True)
    logits = torch.randn(8, 9, 1)
    mask = torch.ones(8, 9, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model((logits, mask)), logits)
    # the middle slice reads negative, its neighbours positive, and it is labelled positive
    x = torch.full((8, 9, 1), -3.0)
    x[:, 3], x[:, 5] = 3.0, 3.0
    y = (x > 0).float()
    y[:, 4] = 1.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model((x, mask)), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert model((x, mask))[:, 4].min() > 0


def test_residual_needs_the_logits_as_input():
    with pytest.raises(ValueError, match="6 logits, got 16-d"):
        create_sequence_model("bigru", 16, 6, residual=True)
