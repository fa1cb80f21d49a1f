"""Benchmark: `ich-ray predict`'s inference path vs a naive single-process loop doing the same work.

Both read every file of a synthetic set, order slices within series, prepare them with the clean recipe
and run the same randomly initialised model. The naive loop reads each file once and predicts one slice at
a time; the pipeline is `predict_files` as `ich-ray predict` calls it (no actor count: up to
`LOCAL_PREDICT_FILES` files in the driver, in batches, else an actor pool), and the actor pool is
`predict_files` with `--cpus` actors (Ray Data, batches), on an already started local Ray (Ray's start-up is
excluded; actor start-up is included). The three run interleaved, best of `--repeat` each.

    .venv/bin/python bench/predict.py [--patients 16] [--size 128] [--cpus 2] [--repeat 2]

Last line: predict_vs_naive=<pipeline slices/s over naive> predict_actors_vs_naive=<actor pool over naive>.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def naive(paths: list[str], spec, state) -> int:
    import numpy as np
    import polars as pl

    from ich_ray.data.tables import with_slice_index
    from ich_ray.dicom.read import read_slice
    from ich_ray.imaging.recipe import prepare_slice
    from ich_ray.models.loading import build_model
    from ich_ray.predict.inference import predict_images

    model, records, hus = build_model(spec, state), [], {}
    for path in paths:
        try:
            record, hu = read_slice(path, path)
        except Exception:  # failures are skipped here, as the pipeline skips them
            continue
        records.append({"path": path, "status": "ok", **{k: record.get(k) for k in record if k != "path"}})
        hus[path] = hu
    table = with_slice_index(pl.DataFrame(records).lazy()).collect().sort("series_instance_uid", "slice_index")
    series = table["series_instance_uid"].to_list()
    ordered = table["path"].to_list()
    for i, path in enumerate(ordered):
        prev_path = ordered[i - 1] if i > 0 and series[i - 1] == series[i] else None
        next_path = ordered[i + 1] if i + 1 < len(ordered) and series[i + 1] == series[i] else None
        neighbours = (hus.get(prev_path), hus.get(next_path))
        predict_images(model, spec, np.stack([prepare_slice(hus[path], spec.recipe, neighbours)]))
    return len(ordered)


def pipeline(paths: list[str], spec, state, actors: int | None) -> int:
    import polars as pl

    from ich_ray.predict.inference import predict_files

    results = predict_files(paths, spec, state, batch_size=32, actors=actors)[1]
    return results.filter(pl.col("error_type").is_null()).height  # a slice that failed to prepare is no prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()

    import torch

    from ich_ray.data.io import list_inputs
    from ich_ray.imaging.recipe import CleanRecipe
    from ich_ray.labels import LABELS
    from ich_ray.models.loading import ModelSpec, model_metadata
    from ich_ray.models.registry import create_model, get_spec
    from ich_ray.ray_utils import init_ray
    from ich_ray.synthetic.generate import generate_dataset

    recipe = CleanRecipe(size=args.size)
    mean, std = get_spec("resnet18").normalization(recipe.channels)
    spec = ModelSpec.from_metadata(model_metadata("resnet18", "multilabel", LABELS, recipe.to_json(),
                                                  recipe.channels, args.size, mean, std), "bench")
    state = create_model("resnet18", len(LABELS), recipe.channels).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        synth = generate_dataset(Path(tmp), patients=args.patients, size=512, seed=0)
        paths = list_inputs(synth.dicom_dir)["path"].to_list()
        print(f"{len(paths)} files, {args.size} px model input, resnet18, {args.cpus} CPUs")
        torch.set_num_threads(args.cpus)  # the naive loop's model may use every core
        init_ray(num_cpus=args.cpus, object_store_memory=512 * 1024**2)
        # Interleaved, best of `repeat` (this VM's speed drifts within minutes); actor start-up counts each time.
        runs = {"naive": lambda: naive(paths, spec, state), "pipeline": lambda: pipeline(paths, spec, state, None),
                "actors": lambda: pipeline(paths, spec, state, args.cpus)}
        best, slices = dict.fromkeys(runs, 0.0), {}
        for _ in range(args.repeat):
            for name, run in runs.items():
                start = time.perf_counter()
                slices[name] = run()
                best[name] = max(best[name], slices[name] / (time.perf_counter() - start))
            print("; ".join(f"{name}: {slices[name]} slices, best {best[name]:.1f} slices/s" for name in runs),
                  flush=True)
    print(f"predict_vs_naive={best['pipeline'] / best['naive']:.2f} "
          f"predict_actors_vs_naive={best['actors'] / best['naive']:.2f}")


if __name__ == "__main__":
    main()
