"""The model-input contract: stored uint8 images -> the normalised float tensor a registered model takes.

Training, the LR finder, predict and the benchmarks all call `to_model_input` with the model's declared
normalisation (`ArchSpec.normalization`, stored with every logged model), so they see identical inputs.
"""

from __future__ import annotations

import torch


def to_model_input(images: torch.Tensor, size: int, mean, std, channels_last: bool = False) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float [B, C, size, size], scaled to [0, 1], resized (antialiased), normalised.

    channels_last: NHWC memory layout, which tensor cores run fastest under autocast on GPUs."""
    # imported here, not at module level: torchvision's import pulls in torch._dynamo (~2.5 s), which the
    # drivers importing this module (train, train-study, predict) never need; in a worker it is cached
    import torchvision.transforms.v2.functional as TF

    if images.ndim != 4:
        raise ValueError(f"expected a [B, C, H, W] batch, got shape {tuple(images.shape)}")
    x = images.float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = TF.resize(x, [size, size], antialias=True)
    x = TF.normalize(x, list(mean), list(std))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
