"""Study-level sequence models: per-slice embeddings of one series, ordered by slice_index, in; refined
per-slice logits out. What the top RSNA 2019 solutions put on top of their slice CNN (a 1-D CNN or a
bidirectional GRU over the series), so each slice's prediction sees its neighbours above and below.

Input: `embedding` float [B, T, D] and `mask` bool [B, T] (False on padding: series have different lengths).
Output: logits [B, T, L]. Both models add their refinement to a linear read-out of the slice's own embedding,
so they start close to a per-slice classifier and learn what the neighbours add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class _SequenceModel(nn.Module):
    def __init__(self, in_dim: int, num_outputs: int, hidden: int, dropout: float):
        super().__init__()
        self.reduce = nn.Sequential(nn.LayerNorm(in_dim), nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU())
        self.direct = nn.Linear(hidden, num_outputs)

    def context(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        embedding, mask = inputs
        h = self.reduce(embedding) * mask.unsqueeze(-1)  # padded positions contribute nothing
        return self.direct(h) + self.context(h, mask)


class SliceConv1d(_SequenceModel):
    """Two 1-D convolutions along the slice axis (kernel 5: two slices either side per layer)."""

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 128, kernel: int = 5, dropout: float = 0.2):
        super().__init__(in_dim, num_outputs, hidden, dropout)
        pad = kernel // 2
        self.conv1 = nn.Conv1d(hidden, hidden, kernel, padding=pad)
        self.conv2 = nn.Conv1d(hidden, num_outputs, kernel, padding=pad)
        self.act = nn.Sequential(nn.GELU(), nn.Dropout(dropout))

    def context(self, h, mask):
        keep = mask.unsqueeze(1).to(h.dtype)  # [B, 1, T]: re-zero the padding after each layer (biases fill it)
        x = self.act(self.conv1(h.transpose(1, 2))) * keep
        return self.conv2(x).transpose(1, 2)


class SliceGRU(_SequenceModel):
    """A bidirectional GRU along the slice axis; padding is packed away, so it never reaches a real slice."""

    def __init__(self, in_dim: int, num_outputs: int, hidden: int = 128, dropout: float = 0.2):
        super().__init__(in_dim, num_outputs, hidden, dropout)
        self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(hidden, num_outputs)

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
