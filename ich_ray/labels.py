"""The RSNA 2019 label set, shared by every stage."""

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
LABELS = SUBTYPES + ("any",)
LABEL_COLUMNS = tuple(f"label_{name}" for name in LABELS)

# RSNA's weighted log loss counts `any` twice as much as each subtype.
RSNA_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 2.0)


def label_column(name: str) -> str:
    if name not in LABELS:
        raise ValueError(f"unknown label {name!r}; valid labels: {', '.join(LABELS)}")
    return f"label_{name}"
