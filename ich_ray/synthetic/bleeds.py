"""Intracranial bleeds: where each subtype sits, what shape it has, and which slices it marks positive.

A bleed is a 3D object: centred at level `t_centre` (0 vertex .. 1 skull base) and shrinking to nothing
`t_half` away. On each slice it is drawn only where it covers at least `MIN_AREA_MM2` of brain, and a slice
is labelled positive exactly when it is drawn, so labels never claim an invisible bleed (that area is
about 13 pixels at 128 px).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ich_ray.labels import SUBTYPES

if TYPE_CHECKING:
    from ich_ray.synthetic.phantom import Anatomy, Grid, Slice

MIN_AREA_MM2 = 50.0
# Relative frequency of each subtype among bleeds (roughly RSNA's order: subdural and IPH most common).
SUBTYPE_WEIGHTS = {"epidural": 0.10, "intraparenchymal": 0.26, "intraventricular": 0.18,
                   "subarachnoid": 0.22, "subdural": 0.24}
EDEMA_HU = 7.0
# The hard difficulty: RSNA's label counts (subdural most common, epidural rare) and how often a second
# subtype comes with the first (SAH with IPH/IVH often together), per first subtype.
RSNA_WEIGHTS = {"epidural": 0.03, "intraparenchymal": 0.24, "intraventricular": 0.15,
                "subarachnoid": 0.25, "subdural": 0.33}
RSNA_COMPANIONS = {
    "epidural": {"subdural": 0.25, "subarachnoid": 0.25},
    "intraparenchymal": {"intraventricular": 0.40, "subarachnoid": 0.35, "subdural": 0.15},
    "intraventricular": {"intraparenchymal": 0.55, "subarachnoid": 0.40},
    "subarachnoid": {"intraparenchymal": 0.30, "intraventricular": 0.25, "subdural": 0.30},
    "subdural": {"subarachnoid": 0.30, "intraparenchymal": 0.12},
}
SIZE_MEDIAN, SIZE_SIGMA, SIZE_RANGE = 0.6, 0.55, (0.2, 2.0)  # log-normal bleed size: many small, few large


@dataclass(frozen=True)
class Bleed:
    subtype: str
    t_centre: float
    t_half: float
    hu: float
    params: dict = field(default_factory=dict)

    def extent(self, t: float) -> float:
        """1 at the centre level, falling to 0 at +-t_half (an ellipsoid's profile)."""
        u = (t - self.t_centre) / self.t_half
        return float(np.sqrt(1 - u * u)) if abs(u) < 1 else 0.0


def angle_diff(theta: np.ndarray, theta0: float) -> np.ndarray:
    """Signed angle theta - theta0 wrapped to (-pi, pi]."""
    return (theta - theta0 + np.pi) % (2 * np.pi) - np.pi


def draw_subtypes(rng: np.random.Generator, p_positive: float = 0.6) -> tuple[str, ...]:
    """A random bleed mix for one study: none, or one subtype plus sometimes a second."""
    if rng.random() >= p_positive:
        return ()
    first = _weighted_subtype(rng)
    return (first, _weighted_subtype(rng)) if rng.random() < 0.35 else (first,)


def draw_subtypes_rsna(rng: np.random.Generator, first: str | None = None) -> tuple[str, ...]:
    """A positive study's subtypes: `first` (default: drawn with RSNA_WEIGHTS) plus its companions."""
    first = first or _weighted_subtype(rng, RSNA_WEIGHTS)
    companions = RSNA_COMPANIONS[first]
    draws = rng.random(len(companions))
    return (first, *(s for s, p, u in zip(companions, companions.values(), draws, strict=True) if u < p))


def _weighted_subtype(rng: np.random.Generator, table: dict[str, float] = SUBTYPE_WEIGHTS) -> str:
    weights = np.array([table[s] for s in SUBTYPES])
    return str(rng.choice(SUBTYPES, p=weights / weights.sum()))


def _lateral_angle(rng: np.random.Generator) -> float:
    """Convexity bleeds sit over the temporal/parietal lobes: either side, front or back."""
    return float(rng.choice([0.0, np.pi]) + rng.uniform(-0.7, 0.7))


def sample_bleeds(rng: np.random.Generator, anatomy: Anatomy, subtypes: tuple[str, ...]) -> list[Bleed]:
    out = []
    for subtype in subtypes:
        hu = rng.uniform(62, 85)
        if subtype == "epidural":
            out.append(Bleed(subtype, rng.uniform(0.3, 0.65), rng.uniform(0.13, 0.2), hu, {
                "theta": _lateral_angle(rng), "half_angle": rng.uniform(0.3, 0.5), "thick": rng.uniform(10, 18)}))
        elif subtype == "subdural":
            out.append(Bleed(subtype, rng.uniform(0.25, 0.6), rng.uniform(0.18, 0.3), hu, {
                "theta": _lateral_angle(rng), "half_angle": rng.uniform(0.8, 1.3), "thick": rng.uniform(5, 10)}))
        elif subtype == "intraparenchymal":
            angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.55)
            out.append(Bleed(subtype, rng.uniform(0.3, 0.68), rng.uniform(0.09, 0.16), hu, {
                "x": radius * anatomy.half_lr * np.cos(angle), "y": radius * anatomy.half_ap * np.sin(angle),
                "radius": rng.uniform(8, 16), "lobes": tuple(rng.uniform(0, 2 * np.pi, 3))}))
        elif subtype == "intraventricular":
            out.append(Bleed(subtype, rng.uniform(0.36, 0.56), rng.uniform(0.12, 0.2), hu,
                             {"fill": rng.uniform(0.45, 0.85)}))
        elif subtype == "subarachnoid":
            basal = bool(rng.random() < 0.4)
            centre = rng.uniform(0.62, 0.74) if basal else rng.uniform(0.2, 0.55)
            out.append(Bleed(subtype, centre, rng.uniform(0.12, 0.22), hu, {
                "basal": basal, "theta": _lateral_angle(rng), "half_angle": rng.uniform(0.6, 1.3)}))
        else:
            raise ValueError(f"unknown bleed subtype {subtype!r}; valid: {', '.join(SUBTYPES)}")
    return out


def sample_bleeds_hard(rng: np.random.Generator, anatomy: Anatomy, subtypes: tuple[str, ...]) -> list[Bleed]:
    """The standard shapes with long-tailed sizes (log-normal: many small, few large) and blood of 50-90 HU."""
    out = []
    for bleed in sample_bleeds(rng, anatomy, subtypes):
        size = float(np.clip(rng.lognormal(np.log(SIZE_MEDIAN), SIZE_SIGMA), *SIZE_RANGE))
        out.append(_resized(bleed, size, float(rng.uniform(50, 90))))
    return out


def _resized(bleed: Bleed, size: float, hu: float) -> Bleed:
    """Scale a bleed's thickness / radius / fill by `size` and its reach in z and angle less steeply."""
    p = dict(bleed.params)
    if "thick" in p:
        p["thick"] = max(1.5, p["thick"] * size)
    if "half_angle" in p:  # subarachnoid blood spreads along the sulci whatever its volume
        p["half_angle"] *= (0.75 + 0.25 * size) if bleed.subtype == "subarachnoid" else (0.55 + 0.45 * size)
    if "radius" in p:
        p["radius"] = max(2.5, p["radius"] * size)
    if "fill" in p:
        p["fill"] = float(np.clip(p["fill"] * size, 0.12, 0.9))
    return replace(bleed, t_half=bleed.t_half * (0.45 + 0.55 * min(size, 1.4)), hu=hu, params=p)


def place(plan: list[Bleed], grid: Grid) -> list[tuple[Bleed, dict]]:
    """Pair each bleed with the arrays that stay the same on every slice of its study (angles, radii)."""
    placed = []
    for bleed in plan:
        p, static = bleed.params, {}
        if "half_angle" in p:
            static["u"] = np.abs(angle_diff(grid.theta, p["theta"])) / p["half_angle"]
        if bleed.subtype == "subarachnoid":
            static["sylvian"] = grid.sylvian
        if bleed.subtype == "intraparenchymal":
            dx, dy = grid.x - p["x"], grid.y - p["y"]
            phi = np.arctan2(dy, dx)
            a, b, c = p["lobes"]
            static["r"] = np.hypot(dx, dy)
            static["radius"] = p["radius"] * (1 + 0.22 * np.sin(3 * phi + a) + 0.12 * np.sin(5 * phi + b)
                                              + 0.07 * np.sin(7 * phi + c))
        placed.append((bleed, static))
    return placed


def paint(placed: list[tuple[Bleed, dict]], grid: Grid, level: Slice, rng: np.random.Generator) -> np.ndarray:
    """Draw every bleed present at this level into `level.hu`; return the five subtype labels (uint8)."""
    labels = np.zeros(len(SUBTYPES), dtype=np.uint8)
    for bleed, static in placed:
        mask = bleed_mask(bleed, static, level)
        if mask is None or mask.sum() * grid.spacing**2 < MIN_AREA_MM2:
            continue
        draw(bleed, static, level, mask, bleed.hu + rng.normal(0, 2.0))
        labels[SUBTYPES.index(bleed.subtype)] = 1
    return labels


def bleed_mask(bleed: Bleed, static: dict, level: Slice) -> np.ndarray | None:
    """The pixels of `level` this bleed fills (None when the level is outside its extent)."""
    k = bleed.extent(level.t)
    if k == 0:
        return None
    return _SHAPES[bleed.subtype](bleed, static, k, level) & level.intracranial


def draw(bleed: Bleed, static: dict, level: Slice, mask: np.ndarray, hu: float) -> None:
    """Write the bleed (and an intraparenchymal clot's rim of oedema) into `level.hu`."""
    if bleed.subtype == "intraparenchymal":
        halo = _iph(bleed, static, bleed.extent(level.t) * 1.35, level) & level.intracranial & ~mask
        level.hu[halo] -= EDEMA_HU
    level.hu[mask] = hu


def _convexity(bleed: Bleed, static: dict, k: float, level: Slice, power: float) -> np.ndarray:
    """Blood between the inner skull table and the brain: thickest at `theta`, tapering at the ends."""
    thickness = bleed.params["thick"] * k * np.clip(1 - (static["u"] / np.sqrt(k)) ** power, 0, None)
    return (level.depth > 0) & (level.depth < thickness)


def _epidural(bleed: Bleed, static: dict, k: float, level: Slice) -> np.ndarray:
    return _convexity(bleed, static, k, level, power=2)  # parabolic profile: a biconvex lens


def _subdural(bleed: Bleed, static: dict, k: float, level: Slice) -> np.ndarray:
    return _convexity(bleed, static, k, level, power=4)  # flat profile hugging the skull: a crescent


def _iph(bleed: Bleed, static: dict, k: float, level: Slice) -> np.ndarray:
    return (static["r"] < static["radius"] * k) & (level.depth > 6)


def _ivh(bleed: Bleed, static: dict, k: float, level: Slice) -> np.ndarray:
    """Blood settles in the dependent (posterior, for a supine patient) part of the ventricles."""
    if not level.ventricles.any():
        return level.ventricles
    ys = np.nonzero(level.ventricles)[0]  # image rows increase posteriorly
    return level.ventricles & (np.arange(level.hu.shape[0])[:, None] >= np.quantile(ys, 1 - bleed.params["fill"] * k))


def _sah(bleed: Bleed, static: dict, k: float, level: Slice) -> np.ndarray:
    """Thin lines of blood in the sulci of one convexity, or in the basal cisterns and Sylvian fissures."""
    wide_sulci = (level.sulcus_mm < 1.3) & (level.depth < level.sulcus_depth + 1.5)
    if bleed.params["basal"]:
        return level.cisterns | (wide_sulci & static["sylvian"] & (level.depth > 3))
    return (static["u"] < 1) & (level.depth < 22) & (wide_sulci | (level.depth < 1.2))


_SHAPES = {"epidural": _epidural, "subdural": _subdural, "intraparenchymal": _iph,
           "intraventricular": _ivh, "subarachnoid": _sah}
