"""CT display windows: HU -> [0, 1] intensity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    name: str
    center: float
    width: float

    def __post_init__(self):
        if not self.width > 0:
            raise ValueError(f"window {self.name!r}: width must be > 0, got {self.width}")

    @property
    def low(self) -> float:
        return self.center - self.width / 2

    @property
    def high(self) -> float:
        return self.center + self.width / 2


WINDOWS = {
    "brain": Window("brain", 40, 80),
    "subdural": Window("subdural", 80, 200),
    "bone": Window("bone", 600, 2800),
}


def parse_window(spec: str) -> Window:
    """`brain` (a named window) or `name:center:width` (a custom one)."""
    parts = spec.strip().split(":")
    if len(parts) == 1:
        if parts[0] not in WINDOWS:
            raise ValueError(
                f"unknown window {spec!r}; named windows: {', '.join(WINDOWS)} (or name:center:width)"
            )
        return WINDOWS[parts[0]]
    if len(parts) == 3:
        try:
            return Window(parts[0], float(parts[1]), float(parts[2]))
        except ValueError as exc:
            raise ValueError(f"bad window spec {spec!r}: {exc}") from exc
    raise ValueError(f"bad window spec {spec!r}; expected a name or name:center:width")


def parse_windows(specs: str | list[str] | tuple[str, ...]) -> tuple[Window, ...]:
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    if not specs:
        raise ValueError("at least one window is needed")
    return tuple(parse_window(s) for s in specs)


def apply_window(hu: np.ndarray, window: Window, out: np.ndarray | None = None) -> np.ndarray:
    """Clip HU to the window and scale to float32 in [0, 1]; into `out` (a float32 array of hu's shape, a
    view into a larger canvas, say) when given, else into a new array."""
    hu = np.asarray(hu, dtype=np.float32)
    if out is None:
        out = np.empty(hu.shape, dtype=np.float32)
    np.subtract(hu, np.float32(window.low), out=out)
    np.divide(out, np.float32(window.width), out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def stack_windows(hu: np.ndarray, windows) -> np.ndarray:
    """HxW HU -> HxWxC float32 in [0, 1], one channel per window (Window objects or specs for parse_window)."""
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim != 2:
        raise ValueError(f"stack_windows expects an HxW slice, got shape {hu.shape}")
    resolved = (
        parse_windows(windows)
        if isinstance(windows, str)
        else tuple(w if isinstance(w, Window) else parse_window(w) for w in windows)
    )
    if not resolved:
        raise ValueError("stack_windows: at least one window is needed")
    out = np.empty(hu.shape + (len(resolved),), dtype=np.float32)
    for c, window in enumerate(resolved):
        out[..., c] = apply_window(hu, window)
    return out
