"""ROOT/images -> ROOT/embeddings/<name>/: one row per kept slice with the slice model's embedding.

Columns: the `ID_COLUMNS`, `slice_index`, the label columns, `embedding` (fixed-size list of float32, the
input of the slice model's head) and `prob_<label>` (the slice model's own probabilities). Computed with Ray
Data actors holding the model, from the same stored images and the same `to_model_input` as training, and
written to a temporary folder renamed into place, so a crash leaves no partial table.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from ich_ray.data.io import parquet_files
from ich_ray.imaging.recipe import decode_slices
from ich_ray.labels import ID_COLUMNS, LABEL_COLUMNS
from ich_ray.models.loading import ModelSpec

log = logging.getLogger(__name__)

KEEP_COLUMNS = (*ID_COLUMNS, "slice_index", *LABEL_COLUMNS)


class SliceEmbedder:
    """Ray Data actor: pyarrow batch of images/ rows -> the same rows with `embedding` and `prob_<label>`."""

    def __init__(self, spec: ModelSpec, state, threads: int = 1):
        import ray
        import torch

        from ich_ray.models.loading import build_model
        from ich_ray.models.registry import get_spec

        torch.set_num_threads(threads)
        self.spec, self.arch = spec, get_spec(spec.arch)
        # the weights travel once through the object store (a ray.put ref), not pickled into every actor
        self.model = build_model(spec, ray.get(state) if isinstance(state, ray.ObjectRef) else state)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch

        from ich_ray.models.features import features_and_logits
        from ich_ray.models.inputs import to_model_input

        images = np.array(decode_slices(batch["image"], self.spec.recipe))  # a writable copy for torch
        x = to_model_input(torch.from_numpy(images), self.spec.image_size, self.spec.mean, self.spec.std)
        with torch.no_grad():
            embedding, logits = features_and_logits(self.arch, self.model, x)
        out = batch.select(list(KEEP_COLUMNS))
        flat = pa.array(embedding.float().numpy().ravel(), type=pa.float32())
        out = out.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, embedding.shape[1]))
        probs = torch.sigmoid(logits.float()).numpy()
        for j, name in enumerate(self.spec.labels):
            out = out.append_column(f"prob_{name}", pa.array(probs[:, j].astype(np.float64)))
        return out


def embed_images(root: str | Path, spec: ModelSpec, state: dict, out_dir: str | Path, batch_size: int = 64,
                 actors: int = 1) -> Path:
    """Embed every row of ROOT/images into `out_dir` (replaced if it exists); returns `out_dir`."""
    import ray

    files = [str(f) for f in parquet_files(Path(root) / "images")]
    if not files:
        raise FileNotFoundError(f"no images table under {Path(root) / 'images'} (run `ich-ray clean`)")
    out_dir = Path(out_dir)
    scratch = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    # The actors hold one CPU each for the whole stage: at least one CPU must stay free for the Parquet
    # read and write tasks, or neither side can run (on 2 CPUs, 2 actors would deadlock the stage).
    actors = max(1, min(actors, int(ray.cluster_resources().get("CPU", 1)) - 1))
    ds = ray.data.read_parquet(files).select_columns([*KEEP_COLUMNS, "image"])
    ds = ds.map_batches(SliceEmbedder, fn_constructor_kwargs={"spec": spec, "state": ray.put(state)},
                        compute=ray.data.ActorPoolStrategy(size=actors), batch_size=batch_size,
                        batch_format="pyarrow", num_cpus=1)
    ds.write_parquet(str(scratch))
    shutil.rmtree(out_dir, ignore_errors=True)
    scratch.rename(out_dir)
    log.info("embeddings of %s written to %s", spec.source, out_dir)
    return out_dir
