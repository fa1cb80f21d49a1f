"""Any registered architecture as a feature extractor: the per-slice embedding is the input of its head.

One forward pass gives both the embedding (what a study-level sequence model reads, as timm's
`num_classes=0` / `forward_features` would) and the slice logits, so embedding a data set costs one pass and
the slice probabilities stored beside the embeddings are exactly the slice model's.
"""

from __future__ import annotations

import torch
from torch import nn

from ich_ray.models.registry import ArchSpec


def feature_dim(spec: ArchSpec, model: nn.Module) -> int:
    """Width of the embedding: the in_features of the architecture's head (512 for ResNet18)."""
    return int(spec.head_module(model).in_features)


def features_and_logits(spec: ArchSpec, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(embedding [B, D], logits [B, L]) of a batch, from one forward pass (a hook on the head's input)."""
    captured: list[torch.Tensor] = []
    handle = spec.head_module(model).register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"{spec.name}: the head ran {len(captured)} times in one forward pass")
    return torch.flatten(captured[0], 1), logits
