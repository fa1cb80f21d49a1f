"""The RSNA 2019 label set and the identifier columns, shared by every stage and table."""

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
LABELS = SUBTYPES + ("any",)
LABEL_COLUMNS = tuple(f"label_{name}" for name in LABELS)

# The ids every per-slice table carries (metadata/, images/, predictions), from the widest to the narrowest.
ID_COLUMNS = ("patient_id", "study_instance_uid", "series_instance_uid", "sop_instance_uid")

# RSNA's weighted log loss counts `any` twice as much as each subtype.
RSNA_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 2.0)


def label_column(name: str) -> str:
    if name not in LABELS:
        raise ValueError(f"unknown label {name!r}; valid labels: {', '.join(LABELS)}")
    return f"label_{name}"


def rsna_weights(labels) -> tuple[float, ...]:
    """RSNA per-label weights for `labels` (`any` counts twice), e.g. (1.0,) for the binary task."""
    lookup = dict(zip(LABELS, RSNA_WEIGHTS, strict=True))
    unknown = [name for name in labels if name not in lookup]
    if unknown:
        raise ValueError(f"unknown labels {unknown}; valid labels: {', '.join(LABELS)}")
    return tuple(lookup[name] for name in labels)
