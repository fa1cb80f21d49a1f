"""Write a synthetic head-CT data set: DICOM tree, RSNA-format labels, the invented PHI, a preview.

Layout::

    DIR/dicom/<patient id>/<study uid>/<series uid>/<sop uid>.dcm
    DIR/labels.csv        ID,Label with rows ID_<sop uid>_<subtype>; six per image, a few exact duplicates
    DIR/phi_values.json   every invented PHI string written into a header (for leak tests)
    DIR/preview.png       (optional) one study in brain / subdural / bone windows

The same arguments give the same bytes. `difficulty` is `standard` (fast, for tests) or `hard` (the
benchmark: mimics, partial volume, small bleeds, varied anatomy and noise; see `ich_ray.synthetic.hard`).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ich_ray.labels import LABELS
from ich_ray.synthetic.phantom import render_study
from ich_ray.synthetic.plan import SeriesPlan, plan_dataset, uid
from ich_ray.synthetic.writer import SeriesWriter

log = logging.getLogger(__name__)

DUPLICATE_FRACTION = 0.005  # the RSNA label file repeats a few rows verbatim


@dataclass
class SynthSummary:
    n_slices: int  # labelled images (the truncated file included)
    n_files: int  # every file under dicom/, malformed ones included
    n_positive: int  # images with `any` = 1
    n_malformed: int
    seconds: float
    slices_per_s: float
    dicom_dir: Path
    labels_csv: Path
    phi_values: list[str]
    preview_png: Path | None = None
    malformed_files: dict[str, str] = field(default_factory=dict)  # kind -> path
    variant_counts: dict[str, int] = field(default_factory=dict)  # slices per pixel format / syntax / window form
    label_counts: dict[str, int] = field(default_factory=dict)  # positive images per label


@dataclass
class _Written:
    path: Path
    sop_uid: str
    labels: np.ndarray
    pixel_bytes: int  # length of the uncompressed pixel data at the end of the file; 0 when compressed


def generate_dataset(
    out_dir: str | Path, patients: int, size: int = 512, seed: int = 0, slices_per_study: int = 20,
    malformed: bool = True, compression: str | None = None, preview: bool = False, difficulty: str = "standard",
) -> SynthSummary:
    """Render and write `patients` synthetic patients (some with a follow-up study); see the module doc."""
    if patients < 1:
        raise ValueError(f"patients={patients}: need at least 1")
    out_dir = Path(out_dir)
    dicom_dir = out_dir / "dicom"
    if dicom_dir.exists() and any(dicom_dir.iterdir()):
        raise FileExistsError(f"{dicom_dir} already holds files; choose an empty output folder")
    plans = plan_dataset(patients, size, slices_per_study, seed, compression, difficulty)
    start = time.perf_counter()
    written: list[_Written] = []
    variants: Counter[str] = Counter()
    shown = negative = None
    for plan in plans:
        hu, labels = render_study(np.random.default_rng([seed, plan.index]), plan.header.rows, slices_per_study,
                                  subtypes=plan.subtypes, difficulty=plan.difficulty)
        written += _write_series(dicom_dir, plan, hu, labels, seed)
        variants.update(_variant_names(plan, len(hu)))
        if shown is None or labels[:, :-1].max(0).sum() > shown[2][:, :-1].max(0).sum():
            shown = (plan, hu, labels)
        if negative is None and difficulty == "hard" and not labels.any():
            negative = hu  # the hard preview also shows a study without bleeds: its mimics
    bad = _write_malformed(written, seed) if malformed else {}
    labels_csv = _write_labels(out_dir / "labels.csv", written, seed)
    phi_values = sorted({v for plan in plans for v in plan.header.phi.values()}
                        | {plan.header.study_date for plan in plans})
    (out_dir / "phi_values.json").write_text(json.dumps(phi_values, indent=1) + "\n")
    seconds = time.perf_counter() - start
    preview_png = None
    if preview:
        from ich_ray.synthetic.preview import write_preview

        preview_png = write_preview(out_dir / "preview.png", shown[1], shown[2], shown[0].header, negative)
    all_labels = np.stack([w.labels for w in written])
    summary = SynthSummary(
        n_slices=len(written), n_files=len(written) + len(bad) - int("truncated" in bad),
        n_positive=int(all_labels[:, -1].sum()), n_malformed=len(bad), seconds=seconds,
        slices_per_s=len(written) / seconds, dicom_dir=dicom_dir, labels_csv=labels_csv, phi_values=phi_values,
        preview_png=preview_png, malformed_files=bad, variant_counts=dict(sorted(variants.items())),
        label_counts={name: int(all_labels[:, i].sum()) for i, name in enumerate(LABELS)},
    )
    log.info("synth (%s): %d patients, %d studies, %d slices (%d positive), %d files (%d malformed) at %d px "
             "in %.1f s: %.1f slices/s", difficulty, patients, len(plans), summary.n_slices, summary.n_positive,
             summary.n_files, summary.n_malformed, size, seconds, summary.slices_per_s)
    return summary


def _variant_names(plan: SeriesPlan, n: int) -> Counter[str]:
    h = plan.header
    window = "window_multi" if len(h.window_center) > 1 else "window_single"
    return Counter({h.pixel_format: n, f"syntax_{h.transfer_syntax}": n, window: n, f"matrix_{h.rows}x{h.cols}": n})


def _write_series(dicom_dir: Path, plan: SeriesPlan, hu: np.ndarray, labels: np.ndarray, seed: int) -> list[_Written]:
    """Write one series' slices in a shuffled order (file order never tells a reader the z order)."""
    h = plan.header
    folder = dicom_dir / h.patient_id / h.study_uid / h.series_uid
    folder.mkdir(parents=True, exist_ok=True)
    out, encoder = [], SeriesWriter(h)
    for z in np.random.default_rng([seed, plan.index, 1]).permutation(len(hu)):
        sop_uid = uid(seed, "sop", plan.index, int(z))
        path = folder / f"{sop_uid}.dcm"
        path.write_bytes(encoder.slice_bytes(hu[z], int(z), sop_uid))
        out.append(_Written(path, sop_uid, labels[z], 2 * h.rows * h.cols if h.transfer_syntax == "none" else 0))
    return out


def _write_malformed(written: list[_Written], seed: int) -> dict[str, str]:
    """A truncated slice (header intact, pixel data cut short; it keeps its labels), junk and an empty file."""
    rng = np.random.default_rng([seed, 0xBAD])
    candidates = [w for w in written if w.pixel_bytes] or written
    victim = candidates[int(rng.integers(len(candidates)))]
    data = victim.path.read_bytes()
    cut = victim.pixel_bytes // 2 or len(data) // 4  # pixel data is the last element: the header stays whole
    victim.path.write_bytes(data[: len(data) - cut])
    folder = victim.path.parent
    junk = folder / f"{uid(seed, 'junk')}.dcm"
    junk.write_text("This is not a DICOM file: synthetic junk for ich-ray robustness tests.\n" * 8)
    empty = folder / f"{uid(seed, 'empty')}.dcm"
    empty.write_bytes(b"")
    return {"truncated": str(victim.path), "not_dicom": str(junk), "empty": str(empty)}


def _write_labels(path: Path, written: list[_Written], seed: int) -> Path:
    rows = [(f"ID_{w.sop_uid}_{name}", int(w.labels[i])) for w in written for i, name in enumerate(LABELS)]
    rng = np.random.default_rng([seed, 0xD0B])
    n_dup = max(3, round(DUPLICATE_FRACTION * len(rows)))
    rows += [rows[i] for i in sorted(rng.choice(len(rows), size=min(n_dup, len(rows)), replace=False))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("ID", "Label"))
        writer.writerows(rows)
    return path
