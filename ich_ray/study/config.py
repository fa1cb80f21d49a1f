"""The typed config of `ich-ray train-study`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ich_ray.models.sequence import SEQUENCE_MODELS
from ich_ray.study.features import FEATURES
from ich_ray.tracking.uri import resolve_tracking_uri
from ich_ray.train.amp import PRECISIONS

EXPERIMENT = "ich-ray/study"


@dataclass
class StudyConfig:
    data: str = ""  # data root holding images/ (and the embeddings/ this stage writes)
    slice_model: str = ""  # models:/..., runs:/... or a checkpoint folder of `ich-ray train`
    # Out-of-fold slice models (`ich-ray train --set fold=K`, one per fold): each computes the training
    # features of the patients it never saw; the slice model computes the held-out ones (and predict's).
    oof_models: tuple[str, ...] = ()
    # The data root is a stacking set: patients the slice model never trained on (a later data version,
    # or a labelled set kept apart for this), so its own predictions are the training features, made by the
    # same model as predict's (blending). The price: the slice model never learns from these labels.
    stacking: bool = False
    features: str = "auto"  # embedding | logits | auto (logits with oof_models or stacking, else embedding)
    arch: str = "bigru"  # bigru | cnn1d
    hidden: int = 128
    dropout: float = 0.2
    epochs: int = 20
    batch_size: int = 8  # series per step
    lr: float = 2e-3
    weight_decay: float = 0.01
    pct_start: float = 0.25
    precision: str = "auto"
    max_grad_norm: float | None = 1.0
    # The slice model's split: the study model holds out exactly the patients the slice model held out.
    valid_fraction: float = 0.2
    seed: int = 0
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float | None = None
    embed_batch_size: int = 64
    embed_actors: int = 1
    track: bool = True
    tracking_uri: str | None = None
    experiment: str = EXPERIMENT
    run_name: str | None = None
    register_as: str | None = None
    storage_path: str | None = None
    max_failures: int = 2
    address: str | None = None

    @property
    def training_features(self) -> str:
        """How the training patients' features are made: out_of_fold | stacking | in_sample."""
        return "out_of_fold" if self.oof_models else "stacking" if self.stacking else "in_sample"

    def resolved(self) -> StudyConfig:
        """Validated copy with the data root, tracking URI and run names resolved once, on the driver."""
        if not self.data:
            raise ValueError("no data root given (--data ROOT)")
        if not self.slice_model:
            raise ValueError("no slice model given (--slice-model URI or checkpoint folder)")
        if self.arch not in SEQUENCE_MODELS:
            raise ValueError(f"unknown sequence model {self.arch!r}; valid: {', '.join(sorted(SEQUENCE_MODELS))}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.stacking and self.oof_models:
            raise ValueError("stacking and oof_models exclude each other: a stacking root's patients are all new to "
                             "the slice model, so no out-of-fold model is needed")
        features = self.features
        if features == "auto":
            features = "logits" if self.oof_models or self.stacking else "embedding"
        if features not in FEATURES:
            raise ValueError(f"unknown features {self.features!r}; valid: auto, {', '.join(FEATURES)}")
        if self.oof_models and features != "logits":
            raise ValueError("oof_models need features=logits: the embeddings of different slice models live in "
                             "different spaces, their logits mean the same")
        for name in ("epochs", "batch_size", "workers", "hidden", "embed_batch_size", "embed_actors"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        root = Path(self.data).resolve()
        return dataclasses.replace(
            self,
            data=str(root),
            features=features,
            oof_models=tuple(self.oof_models),
            tracking_uri=resolve_tracking_uri(self.tracking_uri, root) if self.track else self.tracking_uri,
            cpus_per_worker=self.cpus_per_worker or (None if self.use_gpu else 0.5),
            run_name=self.run_name or f"study-{self.arch}",
            storage_path=str(Path(self.storage_path or root / "runs").resolve()),
        )
