"""A synthetic head CT study in Hounsfield units: anatomy from vertex to skull base, plus bleeds.

Geometry is in millimetres on a fixed 250 mm field of view, so the same seed gives the same head at any
matrix size. Image axes follow DICOM LPS with an identity orientation: +x is the patient's left (image
right), +y is posterior (image down), so the face is at the top and the head-rest at the bottom.

Everything that does not change along z (polar coordinates, skull thickness, sulcal phase) is computed once
per study (`Grid`); each slice then costs a few comparisons and a noise draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ich_ray.labels import LABELS
from ich_ray.synthetic import bleeds
from ich_ray.synthetic.bleeds import angle_diff

FOV_MM = 250.0
DIFFICULTIES = ("standard", "hard")
AIR, FAT, SCALP, CSF, WHITE, GREY, DEEP_GREY, HEADREST = -1000, -90, 35, 8, 25, 40, 36, 280


@dataclass(frozen=True)
class Anatomy:
    """Per-study random anatomy (mm, radians)."""

    centre: tuple[float, float]
    rotation: float
    half_lr: float  # inner-table half axes at the widest level
    half_ap: float
    skull_mm: float
    scalp_mm: float
    csf_rim_mm: float
    n_sulci: int
    sulcus_mm: float
    sulcus_depth_mm: float
    cortex_mm: float
    ventricle_scale: float
    noise_hu: float
    phases: tuple[float, ...]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Anatomy:
        return cls(
            centre=(rng.uniform(-4, 4), rng.uniform(-12, -6)), rotation=rng.uniform(-0.12, 0.12),
            half_lr=rng.uniform(62, 70), half_ap=rng.uniform(80, 88), skull_mm=rng.uniform(5, 7),
            scalp_mm=rng.uniform(4, 7), csf_rim_mm=rng.uniform(1.0, 2.2), n_sulci=int(rng.integers(34, 44)),
            sulcus_mm=rng.uniform(1.3, 2.0), sulcus_depth_mm=rng.uniform(9, 15), cortex_mm=rng.uniform(3.5, 5.0),
            ventricle_scale=rng.uniform(0.8, 1.4), noise_hu=rng.uniform(3.0, 6.0),
            phases=tuple(rng.uniform(0, 2 * np.pi, 8)),
        )


class Grid:
    """Study-constant coordinate arrays for one matrix: rotated mm coordinates, polar angle and radius."""

    def __init__(self, anatomy: Anatomy, rows: int, cols: int):
        self.anatomy, self.shape = anatomy, (rows, cols)
        self.spacing = FOV_MM / rows
        y = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2) * self.spacing
        x = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2) * self.spacing
        self.x_img, self.y_img = x[None, :], y[:, None]  # table frame (head-rest does not rotate)
        cos, sin = np.cos(anatomy.rotation), np.sin(anatomy.rotation)
        dx, dy = self.x_img - anatomy.centre[0], self.y_img - anatomy.centre[1]
        self.x = (cos * dx + sin * dy).astype(np.float32)  # head frame
        self.y = (-sin * dx + cos * dy).astype(np.float32)
        self.r = np.hypot(self.x, self.y)
        self.theta = np.arctan2(self.y, self.x)
        p = anatomy.phases
        # Inner-table radius of the widest level along each ray; a slightly bumpy ellipse.
        cos_t, sin_t = np.cos(self.theta), np.sin(self.theta)
        ellipse = 1 / np.sqrt((cos_t / anatomy.half_lr) ** 2 + (sin_t / anatomy.half_ap) ** 2)
        self.inner_r = ellipse * (1 + 0.02 * np.sin(5 * self.theta + p[0]))
        self.skull_mm = anatomy.skull_mm * (1 + 0.25 * np.sin(2 * self.theta + p[1]) + 0.15 * np.sin(3 * self.theta + p[2]))
        # Sulcal phase: integer phase = centre of a sulcus; the wobble makes them tortuous along z and depth.
        n = anatomy.n_sulci
        self.phase0 = self.theta * (n / (2 * np.pi))
        self.wobble_s = 0.25 * np.sin(2 * self.theta + p[3])
        self.wobble_c = 0.25 * np.cos(2 * self.theta + p[3])
        self.wobble_d = 0.05 * np.sin(3 * self.theta + p[4])  # sulci bend as they go deeper
        self.sylvian = np.minimum(np.abs(angle_diff(self.theta, -0.3)), np.abs(angle_diff(self.theta, np.pi + 0.3))) < 0.25
        self.mm_per_period = self.r * (2 * np.pi / n)
        self.sulcus_depths = anatomy.sulcus_depth_mm * (0.65 + 0.35 * np.sin(np.arange(n) * 2.3 + p[5]))
        self.empty_hu = self._headrest()

    def _headrest(self) -> np.ndarray:
        """HU of the empty scanner: air, the curved head-rest under the occiput and the table below it."""
        a = self.anatomy
        hu = np.full(self.shape, AIR, dtype=np.float32)
        rx, ry = a.half_lr + a.skull_mm + a.scalp_mm + 6, a.half_ap + a.skull_mm + a.scalp_mm + 4
        dx, dy = self.x_img - a.centre[0], self.y_img - a.centre[1]
        radial = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
        hu[(np.abs(radial - 1) * min(rx, ry) < 1.6) & (dy > 0.45 * ry)] = HEADREST
        table = (np.abs(self.y_img - (a.centre[1] + ry + 14)) < 2.5) & (np.abs(self.x_img) < 115)
        hu[table] = 120
        return hu

    def ellipse(self, x0: float, y0: float, a: float, b: float, angle: float = 0.0) -> np.ndarray:
        """Boolean mask of an ellipse in head-frame mm, evaluated only inside its bounding box."""
        mask = np.zeros(self.shape, dtype=bool)
        if a <= 0 or b <= 0:
            return mask
        cos, sin = np.cos(self.anatomy.rotation), np.sin(self.anatomy.rotation)
        cx = self.anatomy.centre[0] + cos * x0 - sin * y0
        cy = self.anatomy.centre[1] + sin * x0 + cos * y0
        reach = max(a, b) + 2 * self.spacing
        rows, cols = self.shape
        r0, r1 = _index_range(cy - reach, cy + reach, rows, self.spacing)
        c0, c1 = _index_range(cx - reach, cx + reach, cols, self.spacing)
        if r0 >= r1 or c0 >= c1:
            return mask
        xs, ys = self.x[r0:r1, c0:c1] - x0, self.y[r0:r1, c0:c1] - y0
        u = (np.cos(angle) * xs + np.sin(angle) * ys) / a
        v = (-np.sin(angle) * xs + np.cos(angle) * ys) / b
        mask[r0:r1, c0:c1] = u * u + v * v < 1
        return mask


def _index_range(lo_mm: float, hi_mm: float, n: int, spacing: float) -> tuple[int, int]:
    offset = (n - 1) / 2
    return max(0, int(np.floor(lo_mm / spacing + offset))), min(n, int(np.ceil(hi_mm / spacing + offset)) + 1)


def head_scale(t: float) -> float:
    """Inner-table size relative to the widest level, for t = 0 (vertex) .. 1 (skull base)."""
    if t < 0.55:
        return float(np.sqrt(max(0.0, 1 - ((0.55 - t) / 0.58) ** 2)))
    return 1 - 0.22 * ((t - 0.55) / 0.45) ** 2


@dataclass
class Slice:
    """One level of the head: HU so far plus the masks bleeds need."""

    t: float
    scale: float
    depth: np.ndarray  # mm inside the inner table (> 0 intracranial)
    intracranial: np.ndarray
    sulci: np.ndarray
    sulcus_mm: np.ndarray  # distance to the nearest sulcus centre line, mm
    sulcus_depth: np.ndarray  # depth of that sulcus, mm
    ventricles: np.ndarray
    cisterns: np.ndarray
    hu: np.ndarray


def render_slice(grid: Grid, t: float | None) -> Slice:
    """Noise-free HU of one level; t=None is a blank slice (air and head-rest only)."""
    hu = grid.empty_hu.copy()
    empty = np.zeros(grid.shape, dtype=bool)
    if t is None:
        far = np.full(grid.shape, -1e3, np.float32)
        return Slice(-1.0, 0.0, far, empty, empty, far, far, empty, empty, hu)
    a = grid.anatomy
    scale = head_scale(t)
    depth = grid.inner_r * scale - grid.r
    skull = grid.skull_mm * (1 + 0.8 * max(0.0, 0.15 - t) / 0.15)  # the vertex cuts the skull obliquely
    in_skull = (depth <= 0) & (depth > -skull)
    in_scalp = (depth <= -skull) & (depth > -skull - a.scalp_mm)
    hu[in_scalp] = np.where(depth[in_scalp] < -skull[in_scalp] - 0.45 * a.scalp_mm, SCALP, FAT)
    frac = -depth[in_skull] / skull[in_skull]  # 0 inner table .. 1 outer table; dense tables, softer diploe
    hu[in_skull] = 750 + 1000 * np.abs(2 * frac - 1) ** 1.5
    intracranial = depth > 0
    sulcus_mm, sulcus_depth = _sulcus_geometry(grid, t, depth)
    sulci = (sulcus_mm < a.sulcus_mm / 2) & (depth < sulcus_depth + a.csf_rim_mm)
    crown = np.minimum(2 * sulcus_mm / grid.mm_per_period, 1) ** 0.7  # 0 on a sulcus, 1 on a gyral crown
    grey_depth = a.csf_rim_mm + a.cortex_mm + sulcus_depth * (1.1 - crown)
    hu[intracranial] = np.where(depth[intracranial] > grey_depth[intracranial], WHITE, GREY)
    deep = _deep_grey(grid, t, scale)
    hu[deep & intracranial] = DEEP_GREY
    ventricles = _ventricles(grid, t, scale) & (depth > 8)
    cisterns = _cisterns(grid, t) & (depth > 5)
    csf = intracranial & ((depth < a.csf_rim_mm) | sulci | ventricles | cisterns)
    hu[csf] = CSF
    _skull_base(grid, t, hu, intracranial)
    soft = intracranial & (hu > -20) & (hu < 200)
    return Slice(t, scale, depth, soft, sulci & soft, sulcus_mm, sulcus_depth, ventricles, cisterns, hu)


def _sulcus_geometry(grid: Grid, t: float, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) to the nearest sulcus centre line and that sulcus' depth; the Sylvian fissures are deep."""
    a = grid.anatomy
    phase = grid.phase0 + grid.wobble_s * np.cos(7 * t) + grid.wobble_c * np.sin(7 * t) + grid.wobble_d * depth
    nearest = np.rint(phase)
    distance = np.abs(phase - nearest) * grid.mm_per_period
    depth = grid.sulcus_depths[nearest.astype(np.int64) % a.n_sulci]
    if 0.42 < t < 0.78:
        depth = np.where(grid.sylvian, depth * 2.2, depth)
    return distance, depth


def _bump(t: float, lo: float, hi: float) -> float:
    """0 outside [lo, hi], rising to 1 in the middle: structures grow and shrink along z."""
    if not lo < t < hi:
        return 0.0
    return float(np.sin(np.pi * (t - lo) / (hi - lo)) ** 0.5)


def _ventricles(grid: Grid, t: float, scale: float) -> np.ndarray:
    a, g = grid.anatomy, grid
    k = a.ventricle_scale * scale
    lr, ap = a.half_lr * k, a.half_ap
    mask = np.zeros(g.shape, dtype=bool)
    body = _bump(t, 0.25, 0.52)
    horns = _bump(t, 0.42, 0.68)
    for side in (-1, 1):
        mask |= g.ellipse(side * 0.13 * lr, -0.05 * ap, 0.07 * lr * body, 0.36 * ap * body, side * 0.08)
        mask |= g.ellipse(side * 0.12 * lr, -0.30 * ap, 0.09 * lr * horns, 0.16 * ap * horns, side * 0.45)
        mask |= g.ellipse(side * 0.24 * lr, 0.33 * ap, 0.10 * lr * horns, 0.14 * ap * horns, -side * 0.5)
    third = _bump(t, 0.58, 0.74)
    mask |= g.ellipse(0.0, -0.04 * ap, 0.025 * lr * third, 0.14 * ap * third)
    fourth = _bump(t, 0.78, 0.93)
    mask |= g.ellipse(0.0, 0.42 * ap, 0.07 * lr * fourth, 0.05 * ap * fourth)
    return mask


def _deep_grey(grid: Grid, t: float, scale: float) -> np.ndarray:
    lr, ap, w = grid.anatomy.half_lr * scale, grid.anatomy.half_ap, _bump(t, 0.45, 0.72)
    mask = np.zeros(grid.shape, dtype=bool)
    for side in (-1, 1):
        mask |= grid.ellipse(side * 0.30 * lr, -0.08 * ap, 0.11 * lr * w, 0.20 * ap * w, side * 0.3)
        mask |= grid.ellipse(side * 0.12 * lr, 0.14 * ap, 0.10 * lr * w, 0.13 * ap * w)
    return mask


def _cisterns(grid: Grid, t: float) -> np.ndarray:
    """The CSF ring around the midbrain (ambient/suprasellar cisterns) at the level of the skull base."""
    w = _bump(t, 0.64, 0.84)
    if w == 0:
        return np.zeros(grid.shape, dtype=bool)
    lr, ap = grid.anatomy.half_lr, grid.anatomy.half_ap
    outer = grid.ellipse(0.0, 0.08 * ap, 0.27 * lr * w, 0.21 * ap * w)
    return outer & ~grid.ellipse(0.0, 0.10 * ap, 0.19 * lr * w, 0.15 * ap * w)


def _skull_base(grid: Grid, t: float, hu: np.ndarray, intracranial: np.ndarray) -> None:
    """Petrous ridges, clivus and sphenoid sinus: bone (and air) appearing inside the skull at the base."""
    k = float(np.clip((t - 0.74) / 0.2, 0, 1))
    if k == 0:
        return
    lr, ap = grid.anatomy.half_lr, grid.anatomy.half_ap
    bone = grid.ellipse(0.0, -0.22 * ap, 0.16 * lr * k, 0.24 * ap * k)
    for side in (-1, 1):  # petrous ridges run from the side of the skull towards the clivus
        bone |= grid.ellipse(side * 0.62 * lr, 0.18 * ap, 0.45 * lr * k, 0.08 * ap * k, -side * 0.55)
    floor = -ap * (1.05 - 0.45 * k) + 4 * np.sin(grid.x / 7 + 1.3) + 0.25 * np.abs(grid.x)
    front = intracranial & (grid.y < floor)  # below the anterior fossa: orbital roofs and ethmoid cells
    bone |= front & (grid.y > floor - 6)
    hu[bone] = 900 + 500 * np.sin(3 * grid.x[bone] / lr + 5 * grid.y[bone] / ap) ** 2
    cells = front & (grid.y <= floor - 6)
    honeycomb = np.sin(grid.x[cells] / 2.2) * np.sin(grid.y[cells] / 2.2) > -0.2
    hu[cells] = np.where(honeycomb, AIR + 150, 500)
    hu[grid.ellipse(0.0, -0.2 * ap, 0.09 * lr * k, 0.12 * ap * k)] = AIR  # sphenoid sinus


def head_levels(n_slices: int, rng: np.random.Generator) -> list[float | None]:
    """t per slice from the top of the scan: blank slices above the vertex and below the skull base."""
    top = max(1, int(round(n_slices * rng.uniform(0.05, 0.12))))
    bottom = max(1, int(round(n_slices * rng.uniform(0.04, 0.10))))
    n_head = n_slices - top - bottom
    if n_head < 4:
        raise ValueError(f"slices_per_study={n_slices} is too few for a head (need at least 6)")
    ts = np.linspace(0.03, 0.97, n_head)
    return [None] * top + [float(t) for t in ts] + [None] * bottom


def render_study(
    rng: np.random.Generator, size: int, n_slices: int, width: int | None = None,
    subtypes: tuple[str, ...] | None = None, difficulty: str = "standard",
) -> tuple[np.ndarray, np.ndarray]:
    """A study from the top of the scan down: integer HU `int16 [Z, H, W]` and labels `uint8 [Z, 6]`.

    `width` (default `size`) gives a non-square matrix with the same pixel spacing. `subtypes` are the
    bleeds to place (default: a random mix, often none). Label columns follow `ich_ray.labels.LABELS`;
    `any` is the OR of the five subtypes. `difficulty` is one of DIFFICULTIES (`hard`: see `hard`).
    """
    if size < 32:
        raise ValueError(f"size={size} is too small; use at least 32 px")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; valid: {', '.join(DIFFICULTIES)}")
    if difficulty == "hard":
        from ich_ray.synthetic import hard

        hu, subtype_labels = hard.render_study(rng, size, width or size, head_levels(n_slices, rng), subtypes)
        return hu, np.concatenate([subtype_labels, subtype_labels.max(axis=1, keepdims=True)], axis=1)
    anatomy = Anatomy.sample(rng)
    grid = Grid(anatomy, size, width or size)
    levels = head_levels(n_slices, rng)
    if subtypes is None:
        subtypes = bleeds.draw_subtypes(rng)
    plan = bleeds.sample_bleeds(rng, anatomy, tuple(subtypes))
    hu = np.empty((n_slices, size, width or size), dtype=np.float32)
    labels = np.zeros((n_slices, len(LABELS)), dtype=np.uint8)
    placed = bleeds.place(plan, grid)
    for z, t in enumerate(levels):
        level = render_slice(grid, t)
        if t is not None:
            labels[z, :-1] = bleeds.paint(placed, grid, level, rng)
        hu[z] = level.hu
    labels[:, -1] = labels[:, :-1].max(axis=1)
    return _finish(hu, anatomy.noise_hu, grid.spacing, rng), labels


def _finish(hu: np.ndarray, noise_hu: float, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Partial-volume blur (in-plane), quantum noise, integer HU (never below the -1024 scanner floor)."""
    sigma = 0.35 / spacing + 0.3
    blurred = ndimage.gaussian_filter(hu, sigma=(0, sigma, sigma), truncate=2.5)
    blurred += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
    return np.clip(np.rint(blurred), -1024, 3000).astype(np.int16)
