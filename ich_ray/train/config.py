"""Typed configs of the training stages: train, lr-find, baseline (filled by `ich_ray.config.load_config`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ich_ray.data.splits import SPLIT_MODES
from ich_ray.labels import LABELS
from ich_ray.models.registry import get_spec
from ich_ray.tracking.uri import resolve_tracking_uri
from ich_ray.train.amp import PRECISIONS
from ich_ray.train.data import check_cache_mode

TASKS = {"binary": ("any",), "multilabel": LABELS}
EXPERIMENTS = {"binary": "ich-ray/binary-any", "multilabel": "ich-ray/multilabel"}


@dataclass
class TrainConfig:
    data: str = ""  # data root holding images/ (and metadata/)
    arch: str = "resnet18"
    task: str = "binary"  # binary (label any) | multilabel (five subtypes + any)
    positives_only: bool = False  # the paper's protocol: multilabel on bleed-positive slices only
    epochs: int = 5
    # Training image sizes, progressive resizing when several, e.g. (64, 128, 256); each at most the stored
    # image size of ROOT/images. Empty: the stored size.
    sizes: tuple[int, ...] = ()
    size_epochs: tuple[int, ...] = ()  # epochs per size stage; default: split epochs evenly
    batch_size: int = 32
    # Rows each worker shuffles locally (Ray Data's local shuffle buffer; 0: none) on top of the data's own
    # order. Unset: none when streaming (the read tasks shuffle each shard's rows every epoch) and 1,024 for
    # cached splits, whose blocks keep their decode order (`train.data.local_shuffle_rows`).
    shuffle_buffer: int | None = None
    lr: float | str = 1e-3  # a number, or "auto" (LR range test first)
    weight_decay: float = 0.01
    pct_start: float = 0.25
    # Body frozen (BatchNorm trainable) for the first epochs: fastai's fine_tune of pretrained weights.
    # Default 1 with pretrained weights, 0 from scratch (freezing a random body only wastes epochs).
    freeze_epochs: int | None = None
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    max_grad_norm: float | None = None
    augment: bool = True
    pretrained: bool = False
    weights_path: str | None = None
    workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float | None = None  # default 0.5 on CPU so Ray Data keeps CPUs
    # Decode the images once and keep them in the object store: auto (when they fit in a quarter of it),
    # always, or never (decode every epoch, streaming).
    cache: str = "auto"
    seed: int = 0
    split: str = "patient"  # patient | random (the paper's 20% of slices)
    valid_fraction: float = 0.2
    # An out-of-fold model for `ich-ray train-study`: train without the training patients of fold `fold` of
    # `folds` (`data.splits.patient_folds`); validation stays the same held-out patients.
    fold: int | None = None
    folds: int = 2
    track: bool = True
    tracking_uri: str | None = None  # default $MLFLOW_TRACKING_URI, else sqlite:///<data>/mlflow.db
    experiment: str | None = None
    run_name: str | None = None
    register_as: str | None = None
    storage_path: str | None = None  # default ROOT/runs
    max_failures: int = 2
    address: str | None = None

    def __post_init__(self):
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                self.lr = float(self.lr)
            except ValueError:
                raise ValueError(f"lr must be a number or 'auto', got {self.lr!r}") from None

    @property
    def labels(self) -> tuple[str, ...]:
        return TASKS[self.task]

    @property
    def body_frozen_epochs(self) -> int:
        if self.freeze_epochs is not None:
            return self.freeze_epochs
        return 1 if self.pretrained else 0

    def resolved(self) -> TrainConfig:
        """Validated copy with every default filled in (what is logged as params): the absolute data root and
        the tracking URI are resolved here, on the driver, and workers use these values as they are. The
        sizes are fitted to the stored images by `driver.prepare`."""
        self.validate()
        root = Path(self.data).resolve()
        return dataclasses.replace(
            self,
            data=str(root),
            tracking_uri=resolve_tracking_uri(self.tracking_uri, root) if self.track else self.tracking_uri,
            size_epochs=self.size_epochs or (_even_stages(self.epochs, len(self.sizes)) if self.sizes else ()),
            freeze_epochs=self.body_frozen_epochs,
            cpus_per_worker=self.cpus_per_worker or (None if self.use_gpu else 0.5),
            experiment=self.experiment or EXPERIMENTS[self.task],
            run_name=self.run_name or (f"{self.arch}-{self.task}" + ("-positives" if self.positives_only else "")
                                       + (f"-fold{self.fold}of{self.folds}" if self.fold is not None else "")),
            storage_path=str(Path(self.storage_path or root / "runs").resolve()),
        )

    def validate(self) -> None:
        """Every check that needs no data: fails before Ray starts."""
        if not self.data:
            raise ValueError("no data root given (--data ROOT)")
        spec = get_spec(self.arch)
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid tasks: {', '.join(TASKS)}")
        for size in self.sizes:
            spec.check_size(size)
        if self.split not in SPLIT_MODES:
            raise ValueError(f"unknown split {self.split!r}; valid splits: {', '.join(SPLIT_MODES)}")
        check_cache_mode(self.cache)
        if self.fold is not None:
            if self.split != "patient":
                raise ValueError(f"fold={self.fold} needs split=patient (folds are sets of patients), got {self.split!r}")
            if self.folds < 2 or not 0 <= self.fold < self.folds:
                raise ValueError(f"fold must be in [0, folds) with folds >= 2, got fold={self.fold} folds={self.folds}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.shuffle_buffer is not None and self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0 (0: no local shuffle), got {self.shuffle_buffer}")
        if not 0 <= self.body_frozen_epochs <= self.epochs:
            raise ValueError(f"freeze_epochs must be in [0, epochs={self.epochs}], got {self.freeze_epochs}")
        if self.lr != "auto" and not self.lr > 0:
            raise ValueError(f"lr must be > 0 or 'auto', got {self.lr}")


def _even_stages(epochs: int, stages: int) -> tuple[int, ...]:
    """Epochs per size stage, as even as possible, e.g. 5 epochs over 3 sizes -> (1, 2, 2)."""
    base, extra = divmod(epochs, stages)
    return tuple(max(1, base + (1 if i >= stages - extra else 0)) for i in range(stages))


@dataclass
class LRFindConfig(TrainConfig):
    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_iter: int = 100
    output: str | None = None  # where the plot goes; default ROOT/runs/<run_name>-lr-find


@dataclass
class BaselineConfig:
    data: str = ""
    label: str = "any"
    n_estimators: int = 300
    max_depth: int | None = None
    min_samples_leaf: int = 1
    split: str = "patient"
    valid_fraction: float = 0.2
    seed: int = 0
    track: bool = True
    tracking_uri: str | None = None
    experiment: str = "ich-ray/baseline"
    run_name: str | None = None
