"""Study-level sequence models: per-slice embeddings of one series, ordered by slice_index, in; refined
per-slice logits out. What the top RSNA 2019 solutions put on top of their slice CNN (a 1-D CNN or a
bidirectional GRU over the series), so each slice's prediction sees its neighbours above and below.

Input: per-slice features float [B, T, D] (the slice model's embeddings or logits, `study.features`) and
`mask` bool [B, T] (False on padding: series have different lengths). Output: logits [B, T, L]. Both models
add their refinement to a linear read-out of the slice's own features, so they start close to a per-slice
classifier and learn what the neighbours add. With `residual` (the input IS the slice model's logits, D == L)
the refinement is added to the input logits and starts at zero: the untrained model is the slice model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class _SequenceModel(nn.Module):
    def __init__(self, in_dim: int, num_outputs: int, hidden: int, dropout: float, residual: bool = False):
        super().__init__()
        if residual and in_dim != num_outputs:
            raise ValueError(f"residual needs the input to be the {num_outputs} logits, got {in_dim}-d features")
        self.residual = residual
        # LayerNorm would erase a slice's overall logit level (is there blood at all): logits keep their scale
        norm = nn.Identity() if residual else nn.LayerNorm(in_dim)
        self.reduce = nn.Sequential(norm, nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU())
        self.direct = nn.Linear(hidden, num_outputs)

    def context(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def zero_refinement(self, *layers: nn.Module) -> None:
        """Residual models start as the identity on the input logits."""
        if self.residual:
            for layer in (self.direct, *layers):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        features, mask = inputs
        h = self.reduce(features) * mask.unsqueeze(-1)  # padded positions contribute nothing
        out = self.direct(h) + self.context(h, mask)
        return features + out if self.residual else out


class SliceConv1d(_SequenceModel):
    """Two 1-D convolutions along the slice axis (kernel 5: two slices either side per layer)."""

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 128, kernel: int = 5, dropout: float = 0.2,
                 residual: bool = False):
        super().__init__(in_dim, num_outputs, hidden, dropout, residual)
        pad = kernel // 2
        self.conv1 = nn.Conv1d(hidden, hidden, kernel, padding=pad)
        self.conv2 = nn.Conv1d(hidden, num_outputs, kernel, padding=pad)
        self.act = nn.Sequential(nn.GELU(), nn.Dropout(dropout))
        self.zero_refinement(self.conv2)

    def context(self, h, mask):
        keep = mask.unsqueeze(1).to(h.dtype)  # [B, 1, T]: re-zero the padding after each layer (biases fill it)
        x = self.act(self.conv1(h.transpose(1, 2))) * keep
        return self.conv2(x).transpose(1, 2)


class SliceGRU(_SequenceModel):
    """A bidirectional GRU along the slice axis; padding is packed away, so it never reaches a real slice."""

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 128, dropout: float = 0.2,
                 residual: bool = False):
        super().__init__(in_dim, num_outputs, hidden, dropout, residual)
        self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(hidden, num_outputs)
        self.zero_refinement(self.out)

    def context(self, h, mask):
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return self.out(out)


@dataclass(frozen=True)
class SequenceSpec:
    name: str
    builder: Callable[..., nn.Module]


SEQUENCE_MODELS = {spec.name: spec for spec in (SequenceSpec("cnn1d", SliceConv1d), SequenceSpec("bigru", SliceGRU))}


def create_sequence_model(name: str, in_dim: int, num_outputs: int, **kwargs) -> nn.Module:
    if name not in SEQUENCE_MODELS:
        raise ValueError(f"unknown sequence model {name!r}; valid: {', '.join(sorted(SEQUENCE_MODELS))}")
    if in_dim < 1 or num_outputs < 1:
        raise ValueError(f"in_dim and num_outputs must be >= 1, got {in_dim} and {num_outputs}")
    return SEQUENCE_MODELS[name].builder(in_dim, num_outputs, **kwargs)
