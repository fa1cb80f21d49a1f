import numpy as np
import pytest

from ich_ray.labels import LABELS, SUBTYPES
from ich_ray.synthetic.phantom import AIR, render_study


def _study(subtypes, seed=0, size=96, n=20):
    return render_study(np.random.default_rng(seed), size, n, subtypes=subtypes)


def test_shapes_types_and_any_is_or():
    hu, labels = _study(("subdural", "intraventricular"))
    assert hu.shape == (20, 96, 96) and hu.dtype == np.int16
    assert labels.shape == (20, len(LABELS)) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[:, -1], labels[:, :-1].max(axis=1))


def test_same_rng_seed_same_study():
    a, la = _study(("epidural",), seed=5)
    b, lb = _study(("epidural",), seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)


def test_hu_ranges_of_anatomy():
    hu, _ = _study((), size=128)
    mid = hu[len(hu) // 2]
    assert abs(np.median(mid[:10, :]) - AIR) < 10  # air in the corners
    assert 1400 < mid.max() < 2000  # cortical bone of the skull tables
    centre = mid[40:88, 40:88]
    brainish = centre[(centre > -50) & (centre < 100)]
    assert 20 < np.median(brainish) < 42  # grey/white matter mix
    assert (centre < 18).mean() > 0.005  # ventricles (CSF) at mid level


def test_blank_slices_above_and_below_the_head():
    hu, labels = _study((), size=64)
    for z in (0, -1):
        assert (hu[z] > 500).sum() == 0  # no skull: only air and the head-rest
        assert (hu[z] > 0).sum() > 0  # the head-rest line is there
        assert labels[z].sum() == 0


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_each_subtype_spans_adjacent_slices_and_shows_as_blood(subtype):
    hu, labels = _study((subtype,), seed=11, size=128)
    rows = np.flatnonzero(labels[:, SUBTYPES.index(subtype)])
    assert len(rows) >= 2, f"{subtype}: positive on {rows}"
    assert np.all(np.diff(rows) == 1), f"{subtype}: not contiguous {rows}"
    healthy, _ = render_study(np.random.default_rng(11), 128, 20, subtypes=())
    for z in rows:  # blood (50-90 HU) where the healthy twin has brain or CSF
        blood = (hu[z] > 55) & (hu[z] < 100) & (healthy[z] < 50) & (healthy[z] > -10)
        assert blood.sum() >= 5, f"{subtype}: slice {z} barely shows blood"


def test_no_bleeds_no_labels():
    _, labels = _study(())
    assert labels.sum() == 0


def test_non_square_matrix():
    hu, _ = render_study(np.random.default_rng(1), 64, 10, width=80, subtypes=())
    assert hu.shape == (10, 64, 80)


def test_bad_arguments():
    with pytest.raises(ValueError, match="slices_per_study"):
        _study((), n=4)
    with pytest.raises(ValueError, match="subtype"):
        _study(("bogus",))
