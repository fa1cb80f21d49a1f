"""Load a trained model and its preprocessing contract from MLflow or a Ray Train checkpoint.

Sources (`--model`):
- `models:/<name>/<version|latest>`, `models:/<name>@<alias>`, `runs:/<run id>/model`: an MLflow model,
  whose metadata dict (`model_metadata`, written by training with the model and in every checkpoint) is the
  contract;
- a Ray Train checkpoint folder (or its checkpoint file) holding the same metadata and the state dict.

Either way the result is a `ModelSpec` (validated against the registry and the code) and a CPU state dict;
`build_model` turns them into the network, so every Ray actor rebuilds the same module from plain tensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.labels import LABELS
from ich_ray.models.registry import create_model, get_spec

log = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("models:/", "runs:/")
METADATA_KEYS = ("arch", "task", "labels", "recipe", "in_channels", "image_size", "normalization")


def model_metadata(arch: str, task: str, labels, recipe_json: str, in_channels: int, image_size: int,
                   mean, std, fold: dict | None = None) -> dict:
    """Everything `predict` needs to rebuild the preprocessing; stored with the model and in checkpoints.
    `fold` ({"fold", "folds", "seed", "valid_fraction"}) marks an out-of-fold model (which patients it never
    saw, for `ich-ray train-study`)."""
    return {**({"fold": dict(fold)} if fold else {}),
        "arch": arch,
        "task": task,
        "labels": list(labels),
        "recipe": recipe_json,
        "in_channels": int(in_channels),
        "image_size": int(image_size),
        "normalization": {"mean": [float(m) for m in mean], "std": [float(s) for s in std]},
    }


@dataclass(frozen=True)
class ModelSpec:
    """What the model expects: architecture, outputs, the clean recipe and the input tensor contract."""

    source: str
    arch: str
    task: str
    labels: tuple[str, ...]
    recipe: CleanRecipe
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fold: dict | None = None  # an out-of-fold model's fold (see `model_metadata`)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None, source: str) -> ModelSpec:
        """Validate the training metadata; refuse (ValueError naming `source`) what this code cannot run."""
        missing = [key for key in METADATA_KEYS if key not in (metadata or {})]
        if missing:
            raise ValueError(f"model {source}: metadata lacks {missing}; was it logged by `ich-ray train`?")
        try:
            get_spec(metadata["arch"]).check_size(int(metadata["image_size"]))
            recipe = CleanRecipe.from_json(metadata["recipe"])
        except ValueError as exc:
            raise ValueError(f"model {source}: {exc}") from exc
        labels = tuple(metadata["labels"])
        if not labels or any(name not in LABELS for name in labels) or "any" not in labels:
            raise ValueError(f"model {source}: labels {list(labels)} must be a subset of {list(LABELS)} with 'any'")
        in_channels = int(metadata["in_channels"])
        if in_channels != recipe.channels:
            raise ValueError(f"model {source}: takes {in_channels} input channels but its recipe makes "
                             f"{recipe.channels} ({recipe.windows}, context={recipe.context})")
        mean = tuple(float(v) for v in metadata["normalization"]["mean"])
        std = tuple(float(v) for v in metadata["normalization"]["std"])
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"model {source}: normalization has {len(mean)} means / {len(std)} stds for "
                             f"{in_channels} channels")
        return cls(source, metadata["arch"], str(metadata["task"]), labels, recipe, in_channels,
                   int(metadata["image_size"]), mean, std, metadata.get("fold"))


def build_model(spec: ModelSpec, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """The registry's network for `spec` with the trained weights, in eval mode."""
    model = create_model(spec.arch, num_outputs=len(spec.labels), in_channels=spec.in_channels)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ValueError(f"model {spec.source}: weights do not fit the registry's {spec.arch} "
                         f"({len(spec.labels)} outputs, {spec.in_channels} channels): {exc}") from exc
    return model.eval()


def load_model(source: str, tracking_uri: str | None = None) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """(spec, CPU state dict) of a slice model from an MLflow model URI or a checkpoint path."""
    metadata, state = load_trained(source, tracking_uri)
    spec = ModelSpec.from_metadata(metadata, source)
    log.info("model %s: %s/%s, labels %s, recipe %s", source, spec.arch, spec.task, spec.labels, spec.recipe.to_json())
    return spec, state


def load_trained(source: str, tracking_uri: str | None = None) -> tuple[dict | None, dict[str, torch.Tensor]]:
    """(metadata dict, CPU state dict) of any model ich-ray trained, from MLflow or a checkpoint path."""
    if source.startswith(MLFLOW_SCHEMES):
        return _from_mlflow(source, tracking_uri)
    path = Path(source)
    if path.exists():
        return _from_checkpoint(path)
    raise FileNotFoundError(f"model {source}: not an MLflow URI ({', '.join(MLFLOW_SCHEMES)}) nor an existing "
                            f"checkpoint path")


def _from_mlflow(uri: str, tracking_uri: str | None) -> tuple[dict | None, dict[str, torch.Tensor]]:
    import mlflow.artifacts
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from ich_ray.tracking.tracker import scoped_tracking_uri
    from ich_ray.tracking.uri import resolve_tracking_uri

    try:
        tracking_uri = resolve_tracking_uri(tracking_uri)
    except ValueError:
        raise ValueError(f"model {uri}: an MLflow model needs --tracking-uri (or MLFLOW_TRACKING_URI)") from None
    # Scoped, not mlflow.set_tracking_uri/set_registry_uri: those are process-wide (the registry one even leaks
    # into subprocesses through MLFLOW_REGISTRY_URI), and `models:/` resolution ignores explicit URIs.
    try:
        with scoped_tracking_uri(tracking_uri):
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    except MlflowException as exc:
        raise ValueError(f"model {uri} not found at {tracking_uri}: {exc.message}") from exc
    metadata = Model.load(local).metadata
    module = mlflow.pytorch.load_model(local, map_location="cpu")
    return metadata, {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _from_checkpoint(path: Path) -> tuple[dict | None, dict[str, torch.Tensor]]:
    from ich_ray.models.checkpoint import load_checkpoint

    state = load_checkpoint(path, weights_only=True)
    return state.get("metadata"), state["model"]
