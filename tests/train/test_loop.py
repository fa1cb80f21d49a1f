"""The pure-torch epoch loops on CPU: a tiny CNN learns the blob task; predictions keep their ids."""

from __future__ import annotations

import numpy as np
import torch

from ich_ray.models.registry import create_model
from ich_ray.train.amp import AmpStepper
from ich_ray.train.loop import Predictions, predict, train_epoch
from ich_ray.train.losses import make_criterion
from ich_ray.train.tasks import SequenceTask, SliceTask

from .conftest import make_slice


def _batches(n=32, size=64, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = np.stack([make_slice(rng, size, 1 if y else None) for y in labels]).transpose(0, 3, 1, 2)
    x, y = torch.from_numpy(images), torch.from_numpy(labels).float()[:, None]
    ids = torch.arange(n, dtype=torch.int64)
    return [{"image": x[i:i + 8], "labels": y[i:i + 8], "uid_hash": ids[i:i + 8]} for i in range(0, n, 8)]


def test_train_epochs_reduce_the_loss_and_predict_keeps_every_row():
    torch.manual_seed(0)
    model = create_model("resnet18", 1)
    prepare = SliceTask(64, mean=(0.5,) * 3, std=(0.25,) * 3)
    criterion, stepper = make_criterion(("any",)), AmpStepper("cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    batches = _batches()
    first = train_epoch(model, batches, prepare, criterion, optimizer, stepper)
    for _ in range(3):
        last = train_epoch(model, batches, prepare, criterion, optimizer, stepper)
    assert first.images == last.images == 32 and last.images_per_s > 0
    assert last.loss < first.loss
    preds, images = predict(model, batches, prepare, criterion, stepper, num_labels=1, keep_images=5)
    assert preds.y_prob.shape == (32, 1) and sorted(preds.uid_hash.tolist()) == list(range(32))
    assert images.shape == (5, 64, 64, 3) and images.dtype == np.uint8
    merged = Predictions.concat([preds, preds])
    assert len(merged.uid_hash) == 64 and merged.loss == preds.loss


def test_gathered_groups_survive_a_rank_without_batches():
    """A worker whose validation shard was empty knows no group keys; the gathered study ids must stay."""
    full = Predictions(np.zeros((3, 1)), np.zeros((3, 1)), np.arange(3), 0.0,
                       {"study_hash": np.array([7, 7, 8]), "patient_hash": np.array([1, 1, 2])})
    empty = Predictions(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros(0, np.int64), 0.0)
    merged = Predictions.concat([empty, full])
    assert merged.groups["study_hash"].tolist() == [7, 7, 8] and set(merged.groups) == {"study_hash", "patient_hash"}


def test_the_same_loops_train_a_sequence_model_on_padded_series():
    """SequenceTask: padded positions are dropped, so every real slice is one prediction row with its ids."""
    from ich_ray.models.sequence import create_sequence_model

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lengths = [5, 8, 3, 8]
    emb = torch.zeros(4, 8, 4)
    labels = torch.zeros(4, 8, 1)
    mask = torch.zeros(4, 8, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
        emb[b, :n] = torch.from_numpy(rng.normal(size=(n, 4))).float()
        labels[b, :n, 0] = (emb[b, :n, 0] > 0).float()
    ids = torch.arange(32, dtype=torch.int64).reshape(4, 8)
    batches = [{"features": emb, "mask": mask, "labels": labels, "uid_hash": ids,
                "study_hash": torch.arange(4).repeat_interleave(8).reshape(4, 8)}]
    model = create_sequence_model("cnn1d", 4, 1, hidden=16)
    criterion, stepper, task = make_criterion(("any",)), AmpStepper("cpu"), SequenceTask()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = train_epoch(model, batches, task, criterion, optimizer, stepper)
    for _ in range(30):
        last = train_epoch(model, batches, task, criterion, optimizer, stepper)
    assert first.images == last.images == sum(lengths) and last.loss < first.loss
    preds, images = predict(model, batches, task, criterion, stepper, num_labels=1)
    assert len(preds.uid_hash) == sum(lengths) == len(set(preds.uid_hash.tolist()))
    assert set(preds.groups) == {"study_hash"} and preds.groups["study_hash"].tolist().count(3) == 8
    assert images.shape[0] == 0
