"""Load a trained study model (`ich-ray train-study`) and run it over one series' slice embeddings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ich_ray.labels import LABELS
from ich_ray.models.loading import load_trained
from ich_ray.models.sequence import create_sequence_model
from ich_ray.study.features import FEATURES

log = logging.getLogger(__name__)

SEQUENCE_KIND = "sequence"
METADATA_KEYS = ("kind", "arch", "labels", "embedding_dim", "hidden", "dropout", "slice_model")


@dataclass(frozen=True)
class StudyModelSpec:
    source: str
    arch: str
    labels: tuple[str, ...]
    embedding_dim: int  # the size of its per-slice input (an embedding, or the logits)
    hidden: int
    dropout: float
    slice_model: str  # the slice model whose embeddings it was trained on
    features: str = "embedding"  # what it reads per slice (`study.features`); models before the key: embedding

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None, source: str) -> StudyModelSpec:
        metadata = metadata or {}
        if metadata.get("kind") != SEQUENCE_KIND:
            raise ValueError(f"study model {source}: not a study model (metadata kind {metadata.get('kind')!r}); "
                             f"train one with `ich-ray train-study`")
        missing = [key for key in METADATA_KEYS if key not in metadata]
        if missing:
            raise ValueError(f"study model {source}: metadata lacks {missing}")
        labels = tuple(metadata["labels"])
        if not labels or any(name not in LABELS for name in labels):
            raise ValueError(f"study model {source}: labels {list(labels)} must be a subset of {list(LABELS)}")
        features = str(metadata.get("features", "embedding"))
        if features not in FEATURES:
            raise ValueError(f"study model {source}: unknown features {features!r}; valid: {', '.join(FEATURES)}")
        return cls(source, str(metadata["arch"]), labels, int(metadata["embedding_dim"]), int(metadata["hidden"]),
                   float(metadata["dropout"]), str(metadata["slice_model"]), features)


def sequence_metadata(arch: str, labels, embedding_dim: int, hidden: int, dropout: float, slice_model: str,
                      features: str) -> dict:
    """What loading a study model needs; written by training with the model and in every checkpoint."""
    return {"kind": SEQUENCE_KIND, "arch": arch, "labels": list(labels), "embedding_dim": int(embedding_dim),
            "hidden": int(hidden), "dropout": float(dropout), "slice_model": slice_model, "features": features}


def build_sequence_model(arch: str, in_dim: int, labels, hidden: int, dropout: float, features: str) -> nn.Module:
    """The study model for these inputs: over logits it refines them (`residual`), over embeddings it reads out."""
    return create_sequence_model(arch, in_dim, len(labels), hidden=hidden, dropout=dropout,
                                 residual=features == "logits")


def load_study_model(source: str, tracking_uri: str | None = None) -> tuple[StudyModelSpec, nn.Module]:
    metadata, state = load_trained(source, tracking_uri)
    spec = StudyModelSpec.from_metadata(metadata, source)
    model = build_sequence_model(spec.arch, spec.embedding_dim, spec.labels, spec.hidden, spec.dropout, spec.features)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"study model {source}: weights do not fit {spec.arch}: {exc}") from exc
    log.info("study model %s: %s over the %d-d %s of %s", source, spec.arch, spec.embedding_dim, spec.features,
             spec.slice_model)
    return spec, model.eval()


@torch.no_grad()
def refine_series(model: nn.Module, embeddings: np.ndarray) -> np.ndarray:
    """Per-slice probabilities [T, L] of one series from its per-slice inputs [T, D] in slice order."""
    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))[None]
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    return torch.sigmoid(model((x, mask))[0].float()).numpy()
