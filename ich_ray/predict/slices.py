"""From DICOM files to model inputs, with the exact code training used.

- `read_headers`: a header-only read of each file (the dicom layer's reader and allowlisted header record),
  then `slice_index` by position along the slice normal within each series (the metadata stage's
  `with_slice_index`), and the previous/next slice of each for 2.5D context.
- `SliceLoader`: HU of a slice and its neighbours -> `prepare_slice` (THE clean-stage preparation) ->
  uint8 HxWxC exactly as training stored it (JPEG recipes get the same lossy round trip).
- `models.inputs.to_model_input` (the one training uses) then scales, resizes to the model's input size and normalises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import polars as pl

from ich_ray.data.tables import with_slice_index
from ich_ray.dicom.errors import MissingElementError, failure_fields
from ich_ray.dicom.header import HEADER_FIELDS, header_record
from ich_ray.dicom.read import read_dicom, read_hu_window
from ich_ray.imaging.recipe import CleanRecipe, decode_slice, encode_slice, prepare_slice

log = logging.getLogger(__name__)

_POLARS_TYPES = {str: pl.String, int: pl.Int64, float: pl.Float64}
HEADER_SCHEMA = {
    "path": pl.String, "status": pl.String, "error_type": pl.String, "error": pl.String,
    **{name: _POLARS_TYPES[kind] for name, kind in HEADER_FIELDS.items()},
}


def header_row(path: str, source: str | bytes | None = None) -> dict:
    """One HEADER_SCHEMA row: `ok` with the header record, or `failed` with the reason. `source`: the file's
    bytes when the caller has already read them (default: read `path`)."""
    try:
        record = header_record(read_dicom(path if source is None else source, path, pixels=False), path)
        if record["series_instance_uid"] is None:  # slices are ordered (and given context) per series
            raise MissingElementError(path, "SeriesInstanceUID (0020,000E)", None, "predict orders slices by series")
        return {"path": path, "status": "ok", **record}
    except Exception as exc:  # one odd file never stops the job: it becomes a failure row
        error_type, error = failure_fields(exc)
        return {"path": path, "status": "failed", "error_type": error_type, "error": error}


def header_rows(paths: Sequence[str]) -> pl.DataFrame:
    """One HEADER_SCHEMA row per path (`header_row`)."""
    return pl.DataFrame([header_row(path) for path in paths], schema=HEADER_SCHEMA)


def order_slices(headers: pl.DataFrame) -> pl.DataFrame:
    """Add `slice_index` (the metadata stage's rule) and `prev_path` / `next_path` within each series."""
    ordered = with_slice_index(headers.lazy()).collect()
    neighbours = (
        ordered.filter(pl.col("slice_index").is_not_null())
        .sort("series_instance_uid", "slice_index")
        .select(
            "path",
            pl.col("path").shift(1).over("series_instance_uid").alias("prev_path"),
            pl.col("path").shift(-1).over("series_instance_uid").alias("next_path"),
        )
    )
    return ordered.join(neighbours, on="path", how="left", maintain_order="left")


class SliceLoader:
    """Prepares slices for one recipe; HU reads are cached for one batch (neighbours are shared).

    `hold` hands over a file's bytes already read (the header pass of `inference.FilePredictor`), so the
    pixels are decoded from them instead of reading the file again."""

    def __init__(self, recipe: CleanRecipe):
        self.recipe = recipe
        self._cache: dict[str, tuple[np.ndarray, float] | Exception] = {}
        self._held: dict[str, bytes] = {}

    def clear(self) -> None:
        self._cache.clear()
        self._held.clear()

    def hold(self, path: str, data: bytes) -> None:
        self._held[path] = data

    def _read(self, path: str) -> tuple[np.ndarray, float]:
        if path not in self._cache:
            try:
                self._cache[path] = read_hu_window(self._held.pop(path, path), path)
            except Exception as exc:  # cached so a bad neighbour is read once; re-raised to the caller
                self._cache[path] = exc
        value = self._cache[path]
        if isinstance(value, Exception):
            raise value
        return value

    def hu(self, path: str) -> np.ndarray:
        return self._read(path)[0]

    def is_blank(self, path: str) -> bool:
        """The clean recipe's blank-slice rule on this slice's `img_pct_window` (clean would drop it)."""
        return self.recipe.is_blank(self._read(path)[1])

    def neighbour(self, path: str | None) -> np.ndarray | None:
        """A context slice, or None (the slice itself stands in) when absent or unreadable."""
        if path is None or not self.recipe.context:
            return None
        try:
            return self.hu(path)
        except Exception as exc:  # the neighbour's own row reports the failure
            log.debug("context slice %s unreadable (%s): the slice stands in", path, exc)
            return None

    def image(self, path: str, prev_path: str | None = None, next_path: str | None = None) -> np.ndarray:
        """uint8 HxWxC, as the clean stage stored it for training."""
        img = prepare_slice(self.hu(path), self.recipe, (self.neighbour(prev_path), self.neighbour(next_path)))
        if self.recipe.format == "jpeg":  # training saw the lossy JPEG, not the prepared array
            img = decode_slice(encode_slice(img, self.recipe), self.recipe)
        return img
