"""What the study model reads per slice: the slice model's embedding, or its logits.

- `embedding`: the input of the slice model's head (`models.features`). Rich, but tied to one set of
  weights: embeddings of two models live in different spaces.
- `logits`: the slice model's six logits, recovered from its probabilities. The same meaning for every
  slice model of a task, so out-of-fold models (each one never saw the patients it describes) can provide
  the training features and the full model the held-out and new ones, as the top RSNA 2019 solutions
  stacked their slice models' out-of-fold predictions. The study model then refines those logits
  (`models.sequence`, `residual`).

One function per kind, used by train-study, the benchmark and predict alike.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FEATURES = ("embedding", "logits")
# float32 sigmoid reaches 1.0 near logit 17: clip so every slice model maps to the same finite range
PROB_CLIP = 1e-6


def probability_logits(probs: np.ndarray) -> np.ndarray:
    """Logits [N, L] (float32) of probabilities [N, L], clipped to [PROB_CLIP, 1 - PROB_CLIP]."""
    p = np.clip(np.asarray(probs, dtype=np.float64), PROB_CLIP, 1 - PROB_CLIP)
    return np.log(p / (1 - p)).astype(np.float32)


def with_study_inputs(table: pl.DataFrame, kind: str, labels: tuple[str, ...], prob_prefix: str = "prob_") -> pl.DataFrame:
    """`table` with column `features` (list of float32): the study model's input for each slice row.
    `embedding` kind reads the `embedding` column, `logits` the `<prob_prefix><label>` columns."""
    if kind == "embedding":
        if "embedding" not in table.columns:
            raise ValueError("study inputs of kind 'embedding' need the slice model's `embedding` column")
        return table.with_columns(pl.col("embedding").cast(pl.List(pl.Float32)).alias("features"))
    if kind != "logits":
        raise ValueError(f"unknown study input kind {kind!r}; valid: {', '.join(FEATURES)}")
    columns = [f"{prob_prefix}{name}" for name in labels]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"study inputs of kind 'logits' need the probability column(s) {', '.join(missing)}")
    logits = probability_logits(table.select(columns).to_numpy())
    return table.with_columns(pl.Series("features", logits.tolist(), dtype=pl.List(pl.Float32)))
