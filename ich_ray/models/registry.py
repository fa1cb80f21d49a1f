"""Architecture registry: name -> torchvision constructor, plus everything the training loop must not branch on.

Each `ArchSpec` owns its head replacement (`fc`, `classifier`, `classifier.6`), the first convolution to adapt
to any number of input channels, the body/head freeze groups, and the input contract the data side reads
(minimum size, normalisation; the training size comes from the stored images), in the spirit of torchvision's `models/_api.py` and timm's
`resolve_data_config`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArchSpec:
    name: str
    builder: Callable[..., nn.Module]
    head: str  # dotted path of the final classifier (nn.Linear), e.g. "fc" or "classifier.6"
    stem: str  # dotted path of the first nn.Conv2d, adapted for the number of input channels
    min_size: int  # smallest square input the network accepts
    # Dotted path of the layer Grad-CAM explains: the output of the last convolutional block, where the
    # feature maps are still spatial (pytorch-grad-cam's choice: ResNet layer4, DenseNet's final norm,
    # AlexNet's last ReLU before the pool).
    cam_layer: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def normalization(self, in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean/std for `in_channels` inputs (the ImageNet average repeated when C != 3)."""
        if in_channels == len(self.mean):
            return self.mean, self.std
        mean, std = sum(self.mean) / len(self.mean), sum(self.std) / len(self.std)
        return (mean,) * in_channels, (std,) * in_channels

    def check_size(self, size: int) -> None:
        if size < self.min_size:
            raise ValueError(f"{self.name} needs inputs of at least {self.min_size} px; got size {size}")

    def head_module(self, model: nn.Module) -> nn.Module:
        return model.get_submodule(self.head)

    def cam_module(self, model: nn.Module) -> nn.Module:
        return model.get_submodule(self.cam_layer)

    def set_body_frozen(self, model: nn.Module, frozen: bool) -> None:
        """Freeze (or unfreeze) everything but the head; BatchNorm stays trainable, as in fastai's freeze."""
        head_params = {id(p) for p in self.head_module(model).parameters()}
        for module in model.modules():
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
            for param in module.parameters(recurse=False):
                param.requires_grad = (not frozen) or is_norm or id(param) in head_params


_REGISTRY: dict[str, ArchSpec] = {}


def register_model(spec: ArchSpec) -> ArchSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ArchSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; valid architectures: {', '.join(list_models())}")
    return _REGISTRY[name]


def _torchvision(name: str) -> Callable[..., nn.Module]:
    """torchvision.models.<name>, imported on first use: torchvision's import pulls in torch._dynamo (~2.5 s),
    which drivers that only validate or name an architecture (train, train-study, predict) never need."""

    def build(**kwargs) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(**kwargs)

    build.__name__ = build.__qualname__ = name
    return build


for _spec in (
    ArchSpec("resnet18", _torchvision("resnet18"), head="fc", stem="conv1", min_size=32, cam_layer="layer4"),
    ArchSpec("resnet50", _torchvision("resnet50"), head="fc", stem="conv1", min_size=32, cam_layer="layer4"),
    ArchSpec("resnet101", _torchvision("resnet101"), head="fc", stem="conv1", min_size=32, cam_layer="layer4"),
    ArchSpec("densenet121", _torchvision("densenet121"), head="classifier", stem="features.conv0", min_size=32,
             cam_layer="features.norm5"),
    # AlexNet's 11x11 stride-4 stem and three max-pools collapse anything smaller than 64 px (timm tests the same).
    ArchSpec("alexnet", _torchvision("alexnet"), head="classifier.6", stem="features.0", min_size=64,
             cam_layer="features.11"),
):
    register_model(_spec)


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, module)


def adapt_input_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of `conv` taking `in_channels` inputs; weights are the RGB mean repeated (timm's rule), rescaled
    by 3/C so activations keep their scale."""
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, in_channels, 1, 1) * (conv.in_channels / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _pretrained_state(spec: ArchSpec, weights_path: str | Path | None) -> dict:
    """ImageNet weights from `weights_path` or torch's hub cache; never downloads."""
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights for {spec.name} not found: {path}")
        return torch.load(path, map_location="cpu", weights_only=True)
    import torchvision

    weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise FileNotFoundError(
            f"pretrained weights for {spec.name} not found in the torch cache: {cached}; copy "
            f"{weights.url} there or pass weights_path (no download is attempted)"
        )
    # torchvision's loader reads the cache file and fixes legacy key names (DenseNet).
    return weights.get_state_dict(progress=False, check_hash=False)


def create_model(
    name: str,
    num_outputs: int,
    in_channels: int = 3,
    pretrained: bool = False,
    weights_path: str | Path | None = None,
) -> nn.Module:
    """Build `name` with a fresh `num_outputs` head and an `in_channels` stem (random init unless pretrained)."""
    spec = get_spec(name)
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    model = spec.builder(weights=None)
    if pretrained:
        model.load_state_dict(_pretrained_state(spec, weights_path))
        log.info("%s: loaded ImageNet weights", name)
    old_head = spec.head_module(model)
    _set_submodule(model, spec.head, nn.Linear(old_head.in_features, num_outputs))
    _set_submodule(model, spec.stem, adapt_input_conv(model.get_submodule(spec.stem), in_channels))
    return model
