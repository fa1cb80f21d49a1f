"""The seeded plan of a synthetic data set: patients -> studies -> one series each, with DICOM variants.

Variants are spread so that even a tiny set (3 patients) holds every pixel format, both window-tag forms and
(from 2 series on) one series with a different matrix size; bleed subtypes cycle over the positive studies
so a 6-patient set holds all five. The hard difficulty draws them with RSNA's frequencies and co-occurrence
instead (`bleeds.draw_subtypes_rsna`: subdural most common, epidural rare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid

from ich_ray.labels import SUBTYPES
from ich_ray.synthetic.bleeds import draw_subtypes, draw_subtypes_rsna
from ich_ray.synthetic.phantom import DIFFICULTIES, FOV_MM
from ich_ray.synthetic.writer import PIXEL_FORMATS, TRANSFER_SYNTAXES, SeriesHeader

COMPRESSIONS = ("none", "rle", "jpeg2000", "mixed")
FORMAT_WEIGHTS = (0.30, 0.55, 0.15)  # signed16, unsigned12, bad_intercept (a minority, as in RSNA)
POSITIVE_STUDIES = 0.6
SCANNERS = (("GE MEDICAL SYSTEMS", "LightSpeed VCT"), ("SIEMENS", "SOMATOM Definition AS"),
            ("TOSHIBA", "Aquilion ONE"), ("Philips", "Brilliance 64"))
SINGLE_WINDOWS = (((40.0,), (80.0,)), ((35.0,), (80.0,)), ((40.0,), (100.0,)))
MULTI_WINDOWS = (((40.0, 40.0), (80.0, 80.0)), ((36.0, 40.0), (80.0, 80.0)), ((40.0, 400.0), (80.0, 2000.0)))
_SYLLABLES = ("zel", "quor", "vex", "mir", "oru", "thal", "ysa", "krin", "bex", "nol", "zar", "quil", "xan", "vor")
_ENDINGS = ("da", "ra", "ina", "vok", "tha", "mel", "rix", "wen")


@dataclass(frozen=True)
class SeriesPlan:
    header: SeriesHeader
    subtypes: tuple[str, ...]
    index: int  # seeds this series' renderer
    difficulty: str = "standard"


def uid(seed: int, *parts: object) -> str:
    """A real-looking, reproducible UID (pydicom's root, entropy from the seed and the object's role).

    The parts are joined with a separator because pydicom concatenates entropy sources as they are:
    ("sop", 1, 11) and ("sop", 11, 1) would hash the same text and give two slices one SOPInstanceUID.
    """
    return str(generate_uid(entropy_srcs=["/".join(["ich-ray-synth", str(seed), *map(str, parts)])]))


def _word(rng: np.random.Generator) -> str:
    return (str(rng.choice(_SYLLABLES)) + str(rng.choice(_ENDINGS))).capitalize()


def patient_phi(rng: np.random.Generator) -> dict:
    first, last = _word(rng), _word(rng) + _word(rng).lower()
    return {
        "PatientName": f"Testpatient^{first} {last}",
        "PatientBirthDate": f"19{rng.integers(30, 70)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}",
        "PatientAddress": f"{rng.integers(2, 99)} {last} Lane, {_word(rng)}brook",
    }


def study_phi(rng: np.random.Generator) -> dict:
    return {
        "AccessionNumber": f"ZQ{rng.integers(10**9, 10**10)}",
        "InstitutionName": f"{_word(rng)} Synthetic General Hospital",
        "InstitutionAddress": f"{rng.integers(2, 99)} {_word(rng)} Plaza, {_word(rng)}ton",
        "ReferringPhysicianName": f"Drfake^{_word(rng)} {_word(rng)}",
        "OperatorsName": f"Techfake^{_word(rng)}",
    }


def _spread(rng: np.random.Generator, n: int, choices: tuple, weights: tuple | None = None) -> list:
    """n seeded picks in which every choice appears at least once (when n allows)."""
    picks = list(choices[: min(n, len(choices))])
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    picks += [choices[i] for i in rng.choice(len(choices), size=n - len(picks), p=p)]
    return [picks[i] for i in rng.permutation(n)]


def plan_dataset(patients: int, size: int, slices_per_study: int, seed: int, compression: str | None,
                 difficulty: str = "standard") -> list[SeriesPlan]:
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; valid: {', '.join(DIFFICULTIES)}")
    rng = np.random.default_rng([seed, 0x5EED])
    studies_per_patient = [1 + int(rng.random() < 0.3) for _ in range(patients)]  # some have a follow-up
    n = sum(studies_per_patient)
    formats = _spread(rng, n, PIXEL_FORMATS, FORMAT_WEIGHTS)
    multi = _spread(rng, n, (True, False), (0.35, 0.65))
    syntaxes = _transfer_syntaxes(rng, n, compression)
    odd_size = int(rng.integers(n)) if n >= 2 else -1
    n_positive = max(1, round(POSITIVE_STUDIES * n))
    positive_rank = {int(s): k for k, s in enumerate(rng.permutation(n)[:n_positive])}
    subtype_cycle = [SUBTYPES[i] for i in rng.permutation(len(SUBTYPES))]
    thickness = round(min(5.0, 140.0 / slices_per_study), 3)
    plans, index = [], 0
    for p, n_studies in enumerate(studies_per_patient):
        patient_id = f"ID_{rng.integers(16**8):08x}"
        phi_patient = patient_phi(rng)
        for s in range(n_studies):
            rows = math.ceil(size * 1.25 / 2) * 2 if index == odd_size else size
            windows = MULTI_WINDOWS if multi[index] else SINGLE_WINDOWS
            centre, width = windows[rng.integers(len(windows))]
            manufacturer, model = SCANNERS[rng.integers(len(SCANNERS))]
            header = SeriesHeader(
                patient_id=patient_id, study_uid=uid(seed, "study", p, s), series_uid=uid(seed, "series", p, s),
                frame_uid=uid(seed, "frame", p, s), series_number=int(rng.integers(2, 9)),
                pixel_format=formats[index], bad_intercept=float(rng.choice([1.0, 0.0])),
                window_center=centre, window_width=width, transfer_syntax=syntaxes[index],
                rows=rows, cols=rows, spacing=FOV_MM / rows, thickness=thickness,
                z_top=round(float(rng.uniform(80, 160)), 1), manufacturer=manufacturer, model=model,
                kvp=float(rng.choice([120.0, 140.0])),
                study_date=f"20{rng.integers(17, 20)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}",
                study_time=f"{rng.integers(0, 24):02d}{rng.integers(0, 60):02d}{rng.integers(0, 60):02d}",
                phi={**phi_patient, **study_phi(rng)},
            )
            rank = positive_rank.get(index)
            if difficulty == "hard":
                subtypes = () if rank is None else draw_subtypes_rsna(rng)
            else:
                subtypes = _subtypes(rng, rank, subtype_cycle)
            plans.append(SeriesPlan(header, subtypes, index, difficulty))
            index += 1
    return plans


def _subtypes(rng: np.random.Generator, rank: int | None, cycle: list[str]) -> tuple[str, ...]:
    """Positive studies take the next subtype of the cycle, sometimes plus a random second one."""
    if rank is None:
        return ()
    first = cycle[rank % len(cycle)]
    extra = tuple(s for s in draw_subtypes(rng, p_positive=0.35) if s != first)[:1]
    return (first, *extra)


def _transfer_syntaxes(rng: np.random.Generator, n: int, compression: str | None) -> list[str]:
    compression = compression or "none"
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; valid: {', '.join(COMPRESSIONS)}")
    if compression == "mixed":
        return _spread(rng, n, tuple(TRANSFER_SYNTAXES), (0.5, 0.25, 0.25))
    return [compression] * n
