"""GPU training throughput: ResNet18 at 256 px, mixed precision, end to end from Parquet through Ray Data and
Ray Train, against the same model, recipe and step on batches already in GPU memory.

    python bench/gpu_train.py                    # one GPU box (no network needed: it writes its own data)
    python bench/gpu_train.py --tiny             # CPU smoke check with tiny sizes, then the ingest figure
    python bench/gpu_train.py --ingest-only      # the ingest figure alone (CPU)
    ... --format png                             # images stored as PNG instead of raw (the default)

Goals (H100): end to end >= 4,000 images/s and >= 0.9x the in-memory figure. The end-to-end path decodes
every epoch (`--cache never`, what the full RSNA set needs: ~150 GB decoded at 256 px); `--cache auto` measures
epochs streamed from decoded blocks cached in the object store. Last line:
    gpu_e2e_images_per_s=X gpu_inmemory_images_per_s=Y e2e_over_inmemory=Z

The ingest figure (`--tiny`, `--ingest-only`, or `--ingest` on a GPU box, printed last): the training input
path alone, no model. Images come from the real stages (synth -> metadata -> clean at 256 px, default
recipe: 3 windows, stored as `--format`, default raw), their rows repeated with fresh ids to `--ingest-rows`. The Ray Data side is
`ich_ray.train.data`'s `plan_data` + `build_datasets` (streaming, not cached) iterated with
`iter_torch_batches` exactly as the training worker does (batch 256, prefetch 4, and the streaming default:
the read tasks shuffle each shard's rows, no local shuffle buffer); the bare side is one process reading the
same shards and running the same decode and batch assembly (each shard's rows in a random order, one copy
into a uint8 [B, C, H, W] tensor). One untimed Ray epoch first (worker start-up), then interleaved rounds,
best of each. Goal: ingest_vs_bare >= 0.8.
    format=F ingest_images_per_s_per_core=X bare_decode_images_per_s=Y ingest_vs_bare=Z ingest_vs_bare_cpu=W
X is the Ray rate over the Ray cluster's CPUs, Z = X / Y. W is the same ratio counted in CPU time (images
per CPU-second of this process and all its children: driver, raylet, GCS, Ray workers; against the bare
loop's process time), which a machine shared with other jobs does not distort.
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


def _slice_png(seed: int, size: int, fmt: str = "png") -> tuple[bytes, int]:
    """One smooth head-like 3-channel slice (compressible like real CT) with a bleed blob on odd seeds,
    encoded as `fmt` (png: what `decode_images_per_s` times)."""
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
    return encode_image(np.stack([img, img // 2, img // 3], axis=-1), fmt), positive


def write_images(root: Path, rows: int, unique: int, size: int, fmt: str) -> None:
    """ROOT/images with `rows` rows (the `unique` encoded slices repeated), in the images/ contract, images
    stored as `fmt` in shards compressed as clean writes them."""
    from ich_ray.imaging.encode import IMAGE_COMPRESSION
    from ich_ray.imaging.recipe import CleanRecipe
    from ich_ray.labels import LABEL_COLUMNS

    with ProcessPoolExecutor(max(1, (os.cpu_count() or 2) - 1)) as pool:
        encoded = list(pool.map(partial(_slice_png, size=size, fmt=fmt), range(unique), chunksize=16))
    recipe = CleanRecipe(size=size, crop=False, format=fmt).to_json()
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
        pq.write_table(pa.table(table), out / f"part-{start // per_shard:05d}.parquet", compression=IMAGE_COMPRESSION)


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


def clean_images(root: Path, patients: int, size: int, fmt: str) -> Path:
    """ROOT/images/ made by the real stages: synthetic DICOM -> `ich-ray metadata` -> `ich-ray clean`, images
    stored as `fmt`."""
    from ich_ray.data.clean import CleanConfig, run_clean
    from ich_ray.data.metadata import MetadataConfig, run_metadata
    from ich_ray.synthetic.generate import generate_dataset

    synth = generate_dataset(root / "synth", patients=patients, size=size, seed=0, malformed=False)
    run_metadata(MetadataConfig(input=str(synth.dicom_dir), out=str(root / "data"), labels=str(synth.labels_csv)))
    run_clean(CleanConfig(data=str(root / "data"), size=size, format=fmt))
    return root / "data"


def repeat_images(source: Path, out: Path, rows: int, per_shard: int = 1000) -> Path:
    """OUT/images: the rows of SOURCE/images repeated to `rows` (ids suffixed per copy, so every row stays
    unique), in shards of `per_shard` rows like `clean` writes at scale (`ROWS_PER_SHARD`)."""
    import pyarrow.compute as pc

    from ich_ray.data.io import parquet_files
    from ich_ray.imaging.encode import IMAGE_COMPRESSION
    from ich_ray.labels import ID_COLUMNS

    table = pa.concat_tables(pq.read_table(f) for f in parquet_files(source / "images"))
    copies = []
    for copy in range(-(-rows // table.num_rows)):
        suffixed = table
        for column in ID_COLUMNS:
            ids = pc.binary_join_element_wise(table[column], pa.scalar(f".{copy}"), "")
            suffixed = suffixed.set_column(table.schema.get_field_index(column), column, ids)
        copies.append(suffixed)
    repeated = pa.concat_tables(copies).slice(0, rows)
    (out / "images").mkdir(parents=True)
    for start in range(0, rows, per_shard):
        pq.write_table(repeated.slice(start, per_shard), out / "images" / f"part-{start // per_shard:05d}.parquet",
                       compression=IMAGE_COMPRESSION)
    return out


def _tree_cpu_s() -> float:
    """CPU seconds used so far by this process and its children (raylet, GCS, Ray workers)."""
    import psutil

    me, total = psutil.Process(), 0.0
    for proc in (me, *me.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a worker that exited since the listing
            continue
        total += times.user + times.system
    return total


def bare_decode(root: Path, batch: int) -> tuple[float, float]:
    """(images/s, images per CPU-second) of one process: read each shard, decode it, and assemble uint8
    batches of its rows in a random order (one copy of each row, as the streaming read tasks make)."""
    import torch

    from ich_ray.data.io import parquet_files
    from ich_ray.imaging.recipe import CleanRecipe, decode_slices

    rng = np.random.default_rng(0)
    wall, cpu, done = time.perf_counter(), time.process_time(), 0
    for path in parquet_files(root / "images"):
        table = pq.read_table(path, columns=["image", "recipe"])
        images = decode_slices(table["image"], CleanRecipe.from_json(table["recipe"][0].as_py()))
        order = rng.permutation(len(images))
        for start in range(0, len(images), batch):
            done += len(torch.from_numpy(images[order[start:start + batch]]))
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


def ray_ingest(plan, batch: int, shuffle_buffer: int) -> tuple[float, float]:
    """(images/s, images per CPU-second) of one streaming epoch of the train split, iterated as the training
    worker iterates it (`ich_ray.train.worker._epoch`), on the driver; logs the driver's own CPU an image
    (the iterating process: on a GPU box the training worker, one process however many cores feed it)."""
    from ich_ray.train.data import build_datasets
    from ich_ray.train.driver import train_ingest_options

    dataset = build_datasets(plan, cache=False, seed=0)["train"]
    dataset.context.execution_options = train_ingest_options()  # read as Ray Train reads it
    wall, cpu, driver, done = time.perf_counter(), _tree_cpu_s(), time.process_time(), 0
    for item in dataset.iter_torch_batches(batch_size=batch, prefetch_batches=4,
                                           local_shuffle_buffer_size=shuffle_buffer or None):
        done += len(item["image"])
    wall, cpu, driver = time.perf_counter() - wall, _tree_cpu_s() - cpu, time.process_time() - driver
    log.info("ingest CPU an image: %.3f ms in all processes, %.3f ms in the driver", cpu / done * 1e3,
             driver / done * 1e3)
    return done / wall, done / cpu


def ingest_figure(rows: int, rounds: int, fmt: str, batch: int = 256, size: int = 256, patients: int = 8) -> str:
    """The CPU ingest line for images stored as `fmt` (see the module docstring)."""
    import ray

    from ich_ray.ray_utils import init_ray
    from ich_ray.train.data import local_shuffle_rows, plan_data

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        cleaned = clean_images(root / "clean", patients, size, fmt)
        data = repeat_images(cleaned, root / "ingest", rows)
        log.info("ingest data: %d rows at %d px (%s) from the clean stage in %.1f s", rows, size, fmt,
                 time.perf_counter() - started)
        init_ray(None)
        cpus = ray.cluster_resources()["CPU"]
        plan = plan_data(data, ("any",), "random", 0.02, seed=0)
        shuffle = local_shuffle_rows(None, cache=False)  # the training worker's default for a streaming split
        ray_ingest(plan, batch, shuffle)  # warm-up: Ray's worker start-up is paid once per cluster, not per epoch
        best = {"bare": (0.0, 0.0), "ingest": (0.0, 0.0)}
        for turn in range(rounds):
            for name, measure in (("bare", lambda: bare_decode(data, batch)),
                                  ("ingest", lambda: ray_ingest(plan, batch, shuffle))):
                rate, per_cpu_s = measure()
                log.info("round %d %s: %.0f images/s, %.0f images per CPU-second", turn, name, rate, per_cpu_s)
                best[name] = (max(best[name][0], rate), max(best[name][1], per_cpu_s))
    per_core, bare = best["ingest"][0] / cpus, best["bare"][0]
    return (f"format={fmt} ingest_images_per_s_per_core={per_core:.0f} bare_decode_images_per_s={bare:.0f} "
            f"ingest_vs_bare={per_core / bare:.3f} ingest_vs_bare_cpu={best['ingest'][1] / best['bare'][1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke check: 64 px, 96 rows, 1 epoch")
    parser.add_argument("--rows", type=int, default=32768)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--cache", default="never", choices=("never", "auto", "always"),
                        help="TrainConfig.cache: never = decode every epoch (default), auto/always = decode once")
    parser.add_argument("--ingest", action="store_true", help="also print the ingest figure (last line)")
    parser.add_argument("--ingest-only", action="store_true", help="only the ingest figure (CPU), no training")
    parser.add_argument("--ingest-rows", type=int, default=8192, help="rows of the ingest figure's images/")
    parser.add_argument("--ingest-rounds", type=int, default=3, help="interleaved rounds of the ingest figure")
    parser.add_argument("--format", default="raw", choices=("png", "jpeg", "raw"),
                        help="the stored image format of the training data and the ingest figure (CleanRecipe.format)")
    parser.add_argument("--no-ray", action="store_true",
                        help="machines without Ray: in-memory GPU figure and the PNG decode ceiling only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    size, rows, unique, epochs, batch, use_gpu = 256, args.rows, 2048, args.epochs, args.batch, True
    if args.tiny:
        size, rows, unique, epochs, batch, use_gpu = 64, 96, 32, 1, 16, False

    if args.ingest_only:
        print(ingest_figure(args.ingest_rows, args.ingest_rounds, args.format))
        return
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
        write_images(root, rows, unique, size, args.format)
        log.info("wrote %d rows at %d px in %.1f s", rows, size, time.perf_counter() - started)
        init_ray(None, **({"num_cpus": 4} if args.tiny else {}))
        cfg = TrainConfig(data=str(root), arch="resnet18", task="binary", epochs=epochs, sizes=(size,),
                          batch_size=batch, workers=1, use_gpu=use_gpu, freeze_epochs=0, track=False,
                          split="random", valid_fraction=0.02, run_name="gpu-bench", max_failures=0,
                          cache=args.cache)
        result = train(cfg)
    e2e = result.metrics["images_per_s"]
    memory = in_memory_images_per_s(size, batch, steps=max(4, rows // batch // 4), use_gpu=use_gpu)
    print(f"gpu_e2e_images_per_s={e2e:.0f} gpu_inmemory_images_per_s={memory:.0f} e2e_over_inmemory={e2e / memory:.3f}",
          flush=True)
    if args.tiny or args.ingest:
        import ray

        ray.shutdown()  # the ingest figure counts the CPUs of a cluster of its own
        print(ingest_figure(args.ingest_rows, args.ingest_rounds, args.format))


if __name__ == "__main__":
    main()
