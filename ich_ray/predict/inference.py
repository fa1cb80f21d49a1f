"""Batch inference: read + prepare + predict, in the driver for a few studies, else in a Ray Data actor pool.

Where it runs: an actor pool pays, per actor, a worker process that imports torch and torchvision and
builds the model (on a 2-CPU VM the first slice of a pool of two reached the model ~15-18 s after the
start), while the driver already has the model's code imported and predicts ~2x faster per slice than the
one-slice loop by batching. Up to `LOCAL_PREDICT_FILES` files (a few studies: the triage case) and with no
actor count asked for, the same predictor classes run in the driver, batch after batch, with torch on the
driver's threads; the results are the same (to float rounding: the batches differ).

`predict_files` takes one of two paths. A recipe without 2.5D context needs no slice order to prepare a
slice, so every file goes straight to the predictor (`FilePredictor`; in a pool the actors start at once):
it reads each file once (header row, then pixels from the same bytes) and predicts it; the driver orders
the header rows afterwards. A 2.5D recipe needs each slice's neighbours first, hence two passes:

1. `read_headers`: every file's header (`slices.header_rows`), in Ray tasks for large inputs and in the
   driver for small ones; the driver orders slices by position within each series (`slices.order_slices`),
   so 2.5D recipes get the right neighbours.
2. `predict_slices`: the ordered ok rows stream through `map_batches(SlicePredictor,
   compute=ActorPoolStrategy(size=n))`. Each actor builds the model once from the state dict (put in
   the object store once), reads and prepares its batch's slices with training's code and returns one
   probability row per slice, or the reason the slice failed.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pyarrow as pa

from ich_ray.dicom.errors import failure_fields
from ich_ray.labels import LABELS
from ich_ray.models.loading import ModelSpec, build_model
from ich_ray.predict.schema import BLANK_PROBABILITY, PROB_COLUMNS
from ich_ray.predict.slices import HEADER_SCHEMA, SliceLoader, header_row, header_rows, order_slices

HEADER_FILES_PER_TASK = 64
# Up to this many files the header pass runs in the driver: a header read costs ~1 ms, while Ray worker
# processes for the tasks take seconds to start (and the actor pool's start-up reaps idle ones).
LOCAL_HEADER_FILES = 2000
# Up to this many files (and with no actor count given), prediction runs in the driver (see above).
# Measured on 2 CPUs (ResNet18, 128 px, bench/predict.py's data): the driver ~44 slices/s, a pool of two
# actors ~57 slices/s once started, after ~15 s of start-up: the pool pays off from ~3,000 files there;
# 1,000 leaves room for clusters whose actors start faster.
LOCAL_PREDICT_FILES = 1000
RESULT_SCHEMA = pa.schema(
    [("path", pa.string()), ("error_type", pa.string()), ("error", pa.string()), ("blank", pa.bool_()),
     *((name, pa.float64()) for name in PROB_COLUMNS), ("embedding", pa.list_(pa.float32()))]
)


def _header_batch(batch: dict[str, np.ndarray]) -> pa.Table:
    return header_rows([str(p) for p in batch["path"]]).to_arrow()


def read_headers(paths: list[str]) -> pl.DataFrame:
    """Header rows for every path (ok or failed), ordered within series (`slices.order_slices`)."""
    import ray

    if len(paths) <= LOCAL_HEADER_FILES:
        return order_slices(header_rows(paths))
    blocks = max(1, min(len(paths) // HEADER_FILES_PER_TASK, 4 * int(ray.cluster_resources().get("CPU", 1))))
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
    ds = ds.map_batches(_header_batch, batch_format="numpy", batch_size=HEADER_FILES_PER_TASK)
    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    headers = pl.concat([pl.from_arrow(t) for t in tables], how="vertical_relaxed") if tables else header_rows([])
    return order_slices(headers)


class SlicePredictor:
    """Ray Data callable class: builds the model once per actor, then predicts batch after batch.

    A slice the clean recipe calls blank (above or below the head) never reaches the model: it is marked
    `blank` and given `BLANK_PROBABILITY` for every label. With `embeddings`, each predicted slice also
    returns the slice model's embedding (the study model's input)."""

    def __init__(self, spec: ModelSpec, state, threads: int = 1, embeddings: bool = False):
        import ray
        import torch

        from ich_ray.models.registry import get_spec

        torch.set_num_threads(max(1, threads))
        state = ray.get(state) if isinstance(state, ray.ObjectRef) else state
        self.spec, self.arch, self.embeddings = spec, get_spec(spec.arch), embeddings
        # NHWC: ~1.25x faster convolutions on CPU (oneDNN), logits equal to ~1e-6
        self.model = build_model(spec, state).to(memory_format=torch.channels_last)
        self.loader = SliceLoader(spec.recipe)
        self.columns = [PROB_COLUMNS[LABELS.index(name)] for name in spec.labels]

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        paths = [str(p) for p in batch["path"]]
        neighbours = zip(batch["prev_path"], batch["next_path"], strict=True)
        images, good, out = [], [], {name: [None] * len(paths) for name in RESULT_SCHEMA.names}
        out["path"] = paths
        for i, (path, (prev_path, next_path)) in enumerate(zip(paths, neighbours, strict=True)):
            try:
                if self.loader.is_blank(path):
                    out["blank"][i] = True
                    for column in self.columns:
                        out[column][i] = BLANK_PROBABILITY
                    continue
                images.append(self.loader.image(path, prev_path or None, next_path or None))
                good.append(i)
                out["blank"][i] = False
            except Exception as exc:  # a slice that cannot be prepared is reported, never fatal
                out["error_type"][i], out["error"][i] = failure_fields(exc)
        self.loader.clear()
        if images:
            probs, embedding = self._predict(np.stack(images))
            for column, values in zip(self.columns, probs.T, strict=True):
                for i, value in zip(good, values, strict=True):
                    out[column][i] = float(value)
            if embedding is not None:
                for i, row in zip(good, embedding, strict=True):
                    out["embedding"][i] = row
        return pa.Table.from_pydict(out, schema=RESULT_SCHEMA)

    def _predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        from ich_ray.models.features import features_and_logits

        if not self.embeddings:
            return predict_images(self.model, self.spec, images, channels_last=True), None
        with torch.inference_mode():
            x = model_input(self.spec, images, channels_last=True)
            embedding, logits = features_and_logits(self.arch, self.model, x)
        return torch.sigmoid(logits.float()).numpy(), embedding.float().numpy()


class FilePredictor(SlicePredictor):
    """`SlicePredictor` for recipes without context, on bare paths: one read of each file gives its header
    row (HEADER_SCHEMA) and, for an ok header, the slice's RESULT_SCHEMA columns (their `error_type` /
    `error` as `prepare_error_type` / `prepare_error`; null for a failed header)."""

    def __init__(self, spec: ModelSpec, state, threads: int = 1, embeddings: bool = False):
        if spec.recipe.context:
            raise ValueError("FilePredictor prepares slices without their neighbours; this recipe has context")
        super().__init__(spec, state, threads, embeddings)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        headers = []
        for path in (str(p) for p in batch["path"]):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:  # header_row reports it as the file's failure
                data = None
            headers.append(header_row(path, data))
            if data is not None and headers[-1]["status"] == "ok":
                self.loader.hold(path, data)
        headers = pl.DataFrame(headers, schema=HEADER_SCHEMA)
        ok = headers.filter(pl.col("status") == "ok")["path"].to_numpy()
        blank = np.full(len(ok), "", dtype=object)
        results = pl.from_arrow(super().__call__({"path": ok, "prev_path": blank, "next_path": blank}))
        results = results.rename({"error_type": "prepare_error_type", "error": "prepare_error"})
        return headers.join(results, on="path", how="left", maintain_order="left").to_arrow()


def model_input(spec: ModelSpec, images: np.ndarray, channels_last: bool = False):
    """uint8 NxHxWxC -> the normalised NCHW float tensor, with training's own transform (NHWC in memory with
    `channels_last`, for a model converted to it)."""
    import torch

    from ich_ray.models.inputs import to_model_input

    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return to_model_input(batch, spec.image_size, spec.mean, spec.std, channels_last=channels_last)


def predict_images(model, spec: ModelSpec, images: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """uint8 NxHxWxC -> sigmoid probabilities N x len(spec.labels)."""
    import torch

    with torch.inference_mode():
        return torch.sigmoid(model(model_input(spec, images, channels_last)).float()).numpy()


def default_actors() -> int:
    """One actor per CPU of the (local) cluster, at most 8; each actor runs torch on one thread."""
    import ray

    return max(1, min(8, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))))


def predict_files(paths: list[str], spec: ModelSpec, state: dict, batch_size: int, actors: int | None = None,
                  embeddings: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(header rows ordered within series as `read_headers` gives them, RESULT_SCHEMA rows of their ok rows).

    `actors`: the actor pool's size (default: `default_actors`); without it, up to `LOCAL_PREDICT_FILES`
    files are predicted in the driver."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    in_driver = runs_in_driver(len(paths), actors)
    if spec.recipe.context:
        ordered = read_headers(paths)
        return ordered, predict_slices(ordered, spec, state, batch_size, actors, embeddings, in_driver=in_driver)
    if not paths:
        return order_slices(header_rows([])), pl.from_arrow(RESULT_SCHEMA.empty_table())
    run = _run_in_driver if in_driver else _run_actor_pool
    table = run(pa.table({"path": paths}), FilePredictor, spec, state, batch_size, actors, embeddings)
    ordered = order_slices(table.select(list(HEADER_SCHEMA)).cast(HEADER_SCHEMA))
    results = table.filter(pl.col("status") == "ok").select(
        "path", pl.col("prepare_error_type").alias("error_type"), pl.col("prepare_error").alias("error"),
        *RESULT_SCHEMA.names[3:])
    return ordered, results.cast(dict(pl.from_arrow(RESULT_SCHEMA.empty_table()).schema))


def runs_in_driver(files: int, actors: int | None) -> bool:
    """Whether `predict_files` predicts `files` files in the driver, with no Ray at all (see the module)."""
    return actors is None and files <= LOCAL_PREDICT_FILES


def _run_in_driver(table: pa.Table, predictor: type, spec: ModelSpec, state: dict, batch_size: int,
                   actors: int | None, embeddings: bool) -> pl.DataFrame:
    """`_run_actor_pool`'s rows, from one `predictor` in this process (torch on its current thread count)."""
    import torch

    model = predictor(spec, state, threads=torch.get_num_threads(), embeddings=embeddings)
    tables = []
    for batch in table.to_batches(max_chunksize=batch_size):
        out = model({name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names})
        tables.append(pl.from_arrow(out))
    return pl.concat(tables, how="vertical_relaxed") if tables else pl.DataFrame()


def _run_actor_pool(table: pa.Table, predictor: type, spec: ModelSpec, state: dict, batch_size: int,
                    actors: int | None, embeddings: bool) -> pl.DataFrame:
    """`table`'s rows through `predictor` in an actor pool of `actors` (default: `default_actors`), in at most
    4 blocks per actor (load balance) of at least `batch_size` rows; the rows `predictor` returns."""
    import ray

    actors = actors or default_actors()
    blocks = max(1, min(-(-table.num_rows // batch_size), 4 * actors))
    actors = min(actors, blocks)  # an actor with no block to work on only costs its start-up
    step = -(-table.num_rows // blocks)
    ds = ray.data.from_arrow([table.slice(start, step) for start in range(0, table.num_rows, step)])
    ds = ds.map_batches(
        predictor,
        fn_constructor_kwargs={"spec": spec, "state": ray.put(state), "threads": 1, "embeddings": embeddings},
        # one block at a time per actor: the first actor up would otherwise queue several blocks while the
        # others are still importing torch (on 2 CPUs, 4 blocks all went to one actor)
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=1,
    )
    tables = [pl.from_arrow(t) for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    return pl.concat(tables, how="vertical_relaxed") if tables else pl.DataFrame()


def predict_slices(ordered: pl.DataFrame, spec: ModelSpec, state: dict, batch_size: int,
                   actors: int | None = None, embeddings: bool = False, in_driver: bool = False) -> pl.DataFrame:
    """RESULT_SCHEMA rows (probabilities, blank, embedding when asked, or error) for every ok row of
    `ordered`, from an actor pool or (`in_driver`) this process."""
    rows = ordered.filter(pl.col("slice_index").is_not_null()).sort("series_instance_uid", "slice_index")
    if rows.is_empty():
        return pl.from_arrow(RESULT_SCHEMA.empty_table())
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    items = rows.select("path", pl.col("prev_path").fill_null(""), pl.col("next_path").fill_null(""))
    run = _run_in_driver if in_driver else _run_actor_pool
    result = run(items.to_arrow(), SlicePredictor, spec, state, batch_size, actors, embeddings)
    if result.height != rows.height:
        raise RuntimeError(f"predict: {rows.height} slices sent to the model but {result.height} results came back")
    return result
