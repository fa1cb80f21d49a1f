"""Training losses: per-label weighted binary cross-entropy on logits (RSNA weights for the six-label task)."""

from __future__ import annotations

import torch
from torch import nn

from ich_ray.labels import rsna_weights


def label_weights(labels: tuple[str, ...] | list[str]) -> torch.Tensor:
    """RSNA per-label weights for `labels` (`any` counts twice), e.g. (1,) for the binary task."""
    return torch.tensor(rsna_weights(labels), dtype=torch.float32)


class WeightedBCEWithLogits(nn.Module):
    """Mean over rows of the weighted mean over labels of BCE: RSNA's weighted log loss, differentiable."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        if weights.ndim != 1 or not bool((weights > 0).all()):
            raise ValueError(f"weights must be a 1-D tensor of positive numbers, got {weights}")
        self.register_buffer("weights", weights / weights.sum())

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
        per_entry = nn.functional.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
        return (per_entry * self.weights).sum(dim=1).mean()


def make_criterion(labels: tuple[str, ...] | list[str]) -> WeightedBCEWithLogits:
    return WeightedBCEWithLogits(label_weights(labels))
