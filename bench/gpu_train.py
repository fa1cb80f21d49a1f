"""GPU training throughput: ResNet18 at 256 px, mixed precision, end to end from Parquet through Ray Data and
Ray Train, against the same model, recipe and step on batches already in GPU memory.

    python bench/gpu_train.py                    # one GPU box (no network needed: it writes its own data)
    python bench/gpu_train.py --tiny             # CPU smoke check with tiny sizes

Goals (H100): end to end >= 4,000 images/s and >= 0.9x the in-memory figure. The end-to-end path decodes
every epoch (`--cache never`, what the full RSNA set needs: ~150 GB decoded at 256 px); `--cache auto` measures
epochs streamed from decoded blocks cached in the object store. Last line:
    gpu_e2e_images_per_s=X gpu_inmemory_images_per_s=Y e2e_over_inmemory=Z
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("bench.gpu_train")


def _slice_png(seed: int, size: int) -> tuple[bytes, int]:
    """One smooth head-like 3-channel slice (compressible like real CT) with a bleed blob on odd seeds."""
    from ich_ray.imaging.encode import encode_image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    head = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) < 0.17
    img = np.where(head, 100, 0) + rng.integers(0, 4, (size, size))
    positive = seed % 2
    if positive:
        cy, cx = rng.uniform(0.35, 0.65, 2)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < 0.004] = 220
    img = img.astype(np.uint8)
    return encode_image(np.stack([img, img // 2, img // 3], axis=-1), "png"), positive


def write_images(root: Path, rows: int, unique: int, size: int) -> None:
    """ROOT/images with `rows` rows (the `unique` encoded slices repeated), in the images/ contract."""
    from ich_ray.imaging.recipe import CleanRecipe
    from ich_ray.labels import LABEL_COLUMNS

    with ProcessPoolExecutor(max(1, (os.cpu_count() or 2) - 1)) as pool:
        encoded = list(pool.map(partial(_slice_png, size=size), range(unique), chunksize=16))
    recipe = CleanRecipe(size=size, crop=False).to_json()
    out = root / "images"
    out.mkdir(parents=True)
    per_shard = 2048
    for start in range(0, rows, per_shard):
        idx = np.arange(start, min(rows, start + per_shard))
        data = [encoded[i % unique] for i in idx]
        table = {
            "sop_instance_uid": [f"1.2.{i}" for i in idx], "study_instance_uid": [f"1.2.{i // 40}" for i in idx],
            "series_instance_uid": [f"1.2.{i // 40}.1" for i in idx], "patient_id": [f"P{i // 40:05d}" for i in idx],
            "slice_index": pa.array(idx % 40, pa.int32()), "image": pa.array([d for d, _ in data], pa.binary()),
            "height": pa.array([size] * len(idx), pa.int32()), "width": pa.array([size] * len(idx), pa.int32()),
            "channels": pa.array([3] * len(idx), pa.int32()), "recipe": [recipe] * len(idx),
        }
        for column in LABEL_COLUMNS:
            table[column] = pa.array([p for _, p in data], pa.int8())
        pq.write_table(pa.table(table), out / f"part-{start // per_shard:05d}.parquet")


def in_memory_images_per_s(size: int, batch: int, steps: int, use_gpu: bool) -> float:
    """The same model, recipe and AMP step on uint8 batches already on the device (no data pipeline)."""
    import torch

    from ich_ray.models.registry import create_model, get_spec
    from ich_ray.train.amp import AmpStepper
    from ich_ray.train.augment import BatchAugment
    from ich_ray.train.loop import train_epoch
    from ich_ray.train.losses import make_criterion
    from ich_ray.train.tasks import SliceTask

    device = torch.device("cuda" if use_gpu else "cpu")
    model = create_model("resnet18", 1).to(device)
    if use_gpu:
        model = model.to(memory_format=torch.channels_last)
    mean, std = get_spec("resnet18").normalization(3)
    task = SliceTask(size, mean, std, channels_last=use_gpu, augment=BatchAugment())
    images = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8, device=device)
    labels = (torch.arange(batch, device=device) % 2).float()[:, None]
    batches = [{"image": images, "labels": labels}] * steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    criterion, stepper = make_criterion(("any",)).to(device), AmpStepper(device.type)
    run = partial(train_epoch, model, task=task, criterion=criterion, optimizer=optimizer, stepper=stepper)
    run(batches[:3])  # warm-up (cuDNN autotune)
    return run(batches).images_per_s  # train_epoch syncs each step through loss.item()


def _decode_chunk(chunk: list[bytes]) -> int:
    from ich_ray.imaging.encode import decode_image

    return sum(decode_image(data).shape[0] > 0 for data in chunk)


def decode_images_per_s(size: int, unique: int) -> float:
    """PNG decode rate over all cores (ProcessPool): the ceiling of what the data side can feed."""
    with ProcessPoolExecutor(max(1, (os.cpu_count() or 2) - 1)) as pool:
        encoded = [data for data, _ in pool.map(partial(_slice_png, size=size), range(unique), chunksize=16)]
        chunks = [encoded[i:i + 64] for i in range(0, len(encoded), 64)] * 4
        list(pool.map(_decode_chunk, chunks[:8]))  # warm the workers
        started = time.perf_counter()
        done = sum(pool.map(_decode_chunk, chunks))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke check: 64 px, 96 rows, 1 epoch")
    parser.add_argument("--rows", type=int, default=32768)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--cache", default="never", choices=("never", "auto", "always"),
                        help="TrainConfig.cache: never = decode every epoch (default), auto/always = decode once")
    parser.add_argument("--no-ray", action="store_true",
                        help="machines without Ray: in-memory GPU figure and the PNG decode ceiling only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    size, rows, unique, epochs, batch, use_gpu = 256, args.rows, 2048, args.epochs, args.batch, True
    if args.tiny:
        size, rows, unique, epochs, batch, use_gpu = 64, 96, 32, 1, 16, False

    if args.no_ray:
        memory = in_memory_images_per_s(size, batch, steps=40, use_gpu=use_gpu)
        decode = decode_images_per_s(size, unique)
        print(f"gpu_inmemory_images_per_s={memory:.0f} png_decode_images_per_s={decode:.0f} cpus={os.cpu_count()}")
        return

    from ich_ray.ray_utils import init_ray
    from ich_ray.train.config import TrainConfig
    from ich_ray.train.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_images(root, rows, unique, size)
        log.info("wrote %d rows at %d px in %.1f s", rows, size, time.perf_counter() - started)
        init_ray(None, **({"num_cpus": 4} if args.tiny else {}))
        cfg = TrainConfig(data=str(root), arch="resnet18", task="binary", epochs=epochs, sizes=(size,),
                          batch_size=batch, workers=1, use_gpu=use_gpu, freeze_epochs=0, track=False,
                          split="random", valid_fraction=0.02, run_name="gpu-bench", max_failures=0,
                          cache=args.cache)
        result = train(cfg)
    e2e = result.metrics["images_per_s"]
    memory = in_memory_images_per_s(size, batch, steps=max(4, rows // batch // 4), use_gpu=use_gpu)
    print(f"gpu_e2e_images_per_s={e2e:.0f} gpu_inmemory_images_per_s={memory:.0f} e2e_over_inmemory={e2e / memory:.3f}")


if __name__ == "__main__":
    main()
