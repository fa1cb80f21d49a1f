"""Windows: known values at the edges and centre, clipping, channel stacking."""

from __future__ import annotations

import numpy as np
import pytest

from ich_ray.imaging.windows import WINDOWS, Window, apply_window, parse_window, parse_windows, stack_windows


def test_named_windows_match_the_contract():
    assert (WINDOWS["brain"].center, WINDOWS["brain"].width) == (40, 80)
    assert (WINDOWS["subdural"].center, WINDOWS["subdural"].width) == (80, 200)
    assert (WINDOWS["bone"].center, WINDOWS["bone"].width) == (600, 2800)


def test_apply_window_known_values_and_clipping():
    brain = WINDOWS["brain"]  # 0..80 HU
    hu = np.array([-1000, 0, 20, 40, 60, 80, 3000], dtype=np.float32)
    out = apply_window(hu, brain)
    np.testing.assert_allclose(out, [0, 0, 0.25, 0.5, 0.75, 1, 1])
    assert out.dtype == np.float32
    bone = apply_window(np.array([-800.0, 600.0, 2000.0]), WINDOWS["bone"])
    np.testing.assert_allclose(bone, [0, 0.5, 1])


def test_parse_window_specs():
    assert parse_window("brain") is WINDOWS["brain"]
    assert parse_window("stroke:32:8") == Window("stroke", 32.0, 8.0)
    assert [w.name for w in parse_windows("brain,bone")] == ["brain", "bone"]
    with pytest.raises(ValueError, match="'lung'"):
        parse_window("lung")
    with pytest.raises(ValueError, match="width must be > 0"):
        parse_window("flat:40:0")


def test_stack_windows_channel_order():
    hu = np.full((4, 5), 40.0, dtype=np.float32)
    out = stack_windows(hu, ("brain", "subdural", WINDOWS["bone"]))
    assert out.shape == (4, 5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.5, (40 - (-20)) / 200, (40 - (-800)) / 2800])
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="HxW"):
        stack_windows(np.zeros((2, 2, 2)), ("brain",))


def test_apply_window_into_a_view_of_a_canvas():
    hu = np.linspace(-100, 200, 12, dtype=np.float32).reshape(3, 4)
    canvas = np.full((5, 6), -1.0, dtype=np.float32)
    returned = apply_window(hu, WINDOWS["brain"], out=canvas[1:4, 1:5])
    np.testing.assert_array_equal(canvas[1:4, 1:5], apply_window(hu, WINDOWS["brain"]))
    assert np.shares_memory(returned, canvas) and (canvas[0] == -1).all() and (canvas[:, 0] == -1).all()
