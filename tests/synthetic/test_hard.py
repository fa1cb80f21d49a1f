import hashlib
from collections import Counter

import numpy as np
import pytest

from ich_ray.cli.main import main
from ich_ray.labels import SUBTYPES
from ich_ray.synthetic import bleeds, hard
from ich_ray.synthetic.generate import generate_dataset
from ich_ray.synthetic.phantom import Grid, head_levels, render_study


def _hard_study(seed, subtypes, size=96, n=20):
    return render_study(np.random.default_rng(seed), size, n, subtypes=subtypes, difficulty="hard")


def _bright_fraction(hu):
    """The hand-made detector of bench/quality.py: share of head pixels whose 3x3 median is 55-95 HU."""
    from scipy import ndimage

    head = (hu > 0) & (hu < 100)
    median = ndimage.median_filter(hu.astype(np.float32), size=3)
    return ((median >= 55) & (median <= 95) & head).sum() / max(1, head.sum())


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_labels_are_exactly_the_slabs_that_hold_the_bleed(subtype):
    """Each slab rendered with and without the bleed: positive exactly when its pixels changed, and then by
    at least the minimum blood area."""
    rng = np.random.default_rng(21)
    anatomy, params = hard.sample(rng)
    grid = Grid(anatomy, 128, 128)
    study = hard.HardStudy(grid, params)
    placed = bleeds.place(bleeds.sample_bleeds_hard(rng, anatomy, (subtype,)), grid)
    levels = [t for t in head_levels(24, rng) if t is not None]
    dt = levels[1] - levels[0]
    positives = 0
    for t in levels:
        with_bleed, labels = hard.render_slab(study, placed, t, dt, np.random.default_rng(1))
        without, none = hard.render_slab(study, [], t, dt, np.random.default_rng(1))
        changed = np.abs(with_bleed - without) > 1e-3
        assert none.sum() == 0
        assert labels[SUBTYPES.index(subtype)] == changed.any(), f"{subtype} at t={t:.2f}"
        assert labels.sum() == labels[SUBTYPES.index(subtype)]
        if labels.any():
            positives += 1
            assert changed.sum() * grid.spacing**2 >= hard.MIN_BLOOD_MM2
    assert positives >= 1, f"{subtype}: the seeded bleed never reached the minimum area"


def test_study_labels_any_is_or_and_bleeds_span_adjacent_slices():
    hu, labels = _hard_study(4, ("subdural", "intraparenchymal"))
    assert hu.shape == (20, 96, 96) and hu.dtype == np.int16 and labels.shape == (20, 6)
    np.testing.assert_array_equal(labels[:, -1], labels[:, :-1].max(axis=1))
    for j in np.flatnonzero(labels[:, :-1].any(axis=0)):
        rows = np.flatnonzero(labels[:, j])
        assert np.all(np.diff(rows) == 1), f"{SUBTYPES[j]} not contiguous: {rows}"


def test_negative_studies_hold_hyperdense_mimics():
    """No bleed, yet bright-blood-band pixels (sinuses, falx, calcifications, partial volume of bone)."""
    fractions = []
    for seed in range(4):
        hu, labels = _hard_study(seed, (), size=128)
        assert labels.sum() == 0
        head = [z for z in range(len(hu)) if ((hu[z] > 0) & (hu[z] < 100)).sum() > 500]
        fractions.append(np.mean([_bright_fraction(hu[z]) for z in head]))
    assert min(fractions) > 0.005, fractions


def test_calcifications_and_sinuses_are_drawn_in_the_brain():
    rng = np.random.default_rng(0)
    anatomy, params = hard.sample(rng)
    params = hard.HardParams(**{**params.__dict__, "pitch": 0.0, "calcifications": (
        ("pineal", 0.0, 0.12 * anatomy.half_ap, 0.62, 3.0, 300.0),)})
    study = hard.HardStudy(Grid(anatomy, 128, 128), params)
    level = study.render(0.62)
    assert (level.hu == 300.0).sum() >= 4  # the calcification
    assert (level.hu == np.float32(params.sinus_hu)).sum() >= 4  # superior sagittal / straight sinus


def test_hard_differs_from_standard():
    a, _ = render_study(np.random.default_rng(3), 64, 12, subtypes=())
    b, _ = render_study(np.random.default_rng(3), 64, 12, subtypes=(), difficulty="hard")
    assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() > 5


def test_noise_sigma_varies_by_study_within_3_to_10_hu():
    sigmas = [hard.sample(np.random.default_rng(s))[1].noise_hu for s in range(200)]
    assert 3 <= min(sigmas) < 4 and 9 < max(sigmas) <= 10
    params = hard.sample(np.random.default_rng(0))[1]
    assert hard.pixel_sigma(params, 250.0 / 512) == pytest.approx(params.noise_hu)  # given at 512 px
    assert hard.pixel_sigma(params, 250.0 / 256) < params.noise_hu  # larger pixels average it down
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        head_levels(20, rng)  # the study's first draws: its levels, then its anatomy
        target = hard.pixel_sigma(hard.sample(rng)[1], 250.0 / 96)
        hu, _ = _hard_study(seed, (), size=96)
        air = hu[0, :20, :].astype(float)  # a blank slice: air corner, far from the head-rest
        assert abs(air.std() - target) < 0.2 * target, (air.std(), target)


def test_subtype_mix_follows_rsna():
    rng = np.random.default_rng(0)
    draws = [bleeds.draw_subtypes_rsna(rng) for _ in range(3000)]
    first = Counter(d[0] for d in draws)
    assert first.most_common(1)[0][0] == "subdural"
    assert first["epidural"] < 0.06 * len(draws)
    sah = [d for d in draws if "subarachnoid" in d]
    assert np.mean([("intraparenchymal" in d) or ("intraventricular" in d) for d in sah]) > 0.3


def test_bleed_sizes_are_long_tailed():
    rng = np.random.default_rng(0)
    anatomy, _ = hard.sample(rng)
    radii = np.array([bleeds.sample_bleeds_hard(rng, anatomy, ("intraparenchymal",))[0].params["radius"]
                      for _ in range(400)])
    assert np.mean(radii) > np.median(radii)  # right-skewed
    assert np.mean(radii < 8) > 0.5 and radii.max() > 2.5 * np.median(radii)


def test_hard_set_is_seeded_and_the_cli_flag_writes_it(tmp_path):
    argv = ["synth", "--patients", "2", "--size", "48", "--slices", "8", "--seed", "4", "--no-malformed"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--difficulty", "hard", "--preview"]) == 0
    assert (tmp_path / "a" / "preview.png").stat().st_size > 1000  # with a row for a study without bleeds
    again = generate_dataset(tmp_path / "b", patients=2, size=48, seed=4, slices_per_study=8, malformed=False,
                             difficulty="hard")
    standard = generate_dataset(tmp_path / "c", patients=2, size=48, seed=4, slices_per_study=8, malformed=False)

    def digest(folder):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".png")
        return hashlib.sha256(b"".join(p.relative_to(folder).as_posix().encode() + p.read_bytes()
                                       for p in files)).hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert again.n_slices == standard.n_slices
    assert digest(tmp_path / "a" / "dicom") != digest(tmp_path / "c" / "dicom")
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "d"), "--difficulty", "extreme"])
    with pytest.raises(ValueError, match="difficulty"):
        render_study(np.random.default_rng(0), 48, 8, difficulty="extreme")
