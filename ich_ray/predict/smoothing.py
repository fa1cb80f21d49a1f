"""Study context: smooth slice probabilities along each series (slices ordered by z).

A bleed spans several adjacent slices, so an isolated spike is less credible than a run. A small weighted
moving average over neighbouring slices (edges repeat the end slice) damps single-slice noise; it is off by
default until measured on labelled data (`ich-ray predict --smooth`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.ndimage import convolve1d

from ich_ray.predict.schema import PROB_COLUMNS

DEFAULT_KERNEL = (0.25, 0.5, 0.25)


def _check_kernel(kernel: Sequence[float]) -> np.ndarray:
    weights = np.asarray(kernel, dtype=np.float64)
    if weights.ndim != 1 or weights.size % 2 == 0 or (weights < 0).any() or not weights.sum() > 0:
        raise ValueError(f"smoothing kernel must be an odd-length list of non-negative weights, got {list(kernel)}")
    return weights / weights.sum()


def smooth_series(values: np.ndarray, kernel: Sequence[float] = DEFAULT_KERNEL) -> np.ndarray:
    """Weighted moving average of one series' probabilities (already in slice order)."""
    return convolve1d(np.asarray(values, dtype=np.float64), _check_kernel(kernel), mode="nearest")


def smooth_predictions(predictions: pl.DataFrame, kernel: Sequence[float] = DEFAULT_KERNEL) -> pl.DataFrame:
    """Every non-null `prob_*` column smoothed within each series, in `slice_index` order; row order kept."""
    _check_kernel(kernel)
    columns = [c for c in PROB_COLUMNS if c in predictions.columns and predictions[c].null_count() == 0]
    if predictions.is_empty() or not columns:
        return predictions
    ordered = predictions.with_row_index("_row").sort("series_instance_uid", "slice_index")
    smoothed = ordered.with_columns(
        pl.col(c)
        .map_batches(lambda s: pl.Series(smooth_series(s.to_numpy(), kernel)), return_dtype=pl.Float64)
        .over("series_instance_uid")
        for c in columns
    )
    return smoothed.sort("_row").drop("_row")
