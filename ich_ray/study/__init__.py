"""Study-level detection: a sequence model over the ordered slice embeddings of each series.

`embed` runs a trained slice model over ROOT/images (Ray Data actors) and stores each kept slice's
embedding and probabilities in ROOT/embeddings/; `series` assembles them into series ordered by
`slice_index` and splits them by patient exactly as the slice model was split; `worker` / `trainer` train
a `models.sequence` model on them with Ray Train, through the same loops, metrics, checkpoints and tracking
as the slice model (`train.tasks.SequenceTask`).
"""
