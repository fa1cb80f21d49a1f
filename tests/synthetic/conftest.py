"""Small synthetic sets shared by the synthetic-layer tests (64 px, seeded)."""

from __future__ import annotations

import pytest

from ich_ray.synthetic.generate import generate_dataset


@pytest.fixture(scope="module")
def six_patients(tmp_path_factory):
    """6 patients, 64 px, 20 slices per study, malformed files and preview on."""
    out = tmp_path_factory.mktemp("synth6")
    return generate_dataset(out, patients=6, size=64, seed=3, preview=True)
