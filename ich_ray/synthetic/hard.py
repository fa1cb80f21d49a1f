"""The `hard` difficulty: what makes real head CT hard to read, added to the standard phantom.

- Anatomy varying by study: head size, shape, position in the field of view, rotation, a pitch of the head
  against the scan plane (what a gantry tilt does: posterior structures appear at higher levels than
  anterior ones), atrophy (wider sulci, CSF rim and ventricles), grey/white contrast.
- Anatomy real brain has and the standard phantom lacks: the interhemispheric fissure with the falx, the
  posterior fossa (cerebellum with folia, brainstem, tentorium), orbits with globes and lenses.
- Hypodense findings of older heads (leukoaraiosis, an old infarct), so "unusual" does not mean "bleed".
- Hyperdense mimics, in negative and positive studies alike: calcified choroid plexus, pineal, falx plaques
  and basal ganglia; dense dural venous sinuses (superior sagittal, straight, transverse); beam hardening
  (cupping near the inner table, streaks and the dark bar between the petrous bones).
- Levels below the skull base hold the face and upper neck (`face`), as real scans do, not air.
- Thick slices: each slice is the mean of three sub-levels across its slab, so the vertex and the skull
  base get bright partial volume of bone and thin or small bleeds fall towards grey-matter HU.
- Spatially correlated noise of 3-10 HU that varies by study (scanner and kernel).

Labels stay exact: a slice is positive for a subtype when the blood it holds, summed over its slab, covers
at least `MIN_BLOOD_MM2` (a full-density equivalent area); below that the bleed is not drawn at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ich_ray.labels import SUBTYPES
from ich_ray.synthetic import bleeds
from ich_ray.synthetic.face import FACE_END, FACE_START, render_face
from ich_ray.synthetic.phantom import (
    AIR,
    CSF,
    DEEP_GREY,
    FAT,
    FOV_MM,
    GREY,
    WHITE,
    Anatomy,
    Grid,
    Slice,
    render_slice,
)

MIN_BLOOD_MM2 = 45.0  # about 7 x 7 mm of full-density blood over the slab: what a reader calls a bleed
REFERENCE_MATRIX = 512  # noise SDs are given for this matrix on the 250 mm field of view
SUB_LEVELS = (-1 / 3, 0.0, 1 / 3)  # sub-level offsets across one slice's slab, in slice spacings


@dataclass(frozen=True)
class HardParams:
    """Per-study tissue values, mimics and scanner properties of a hard study."""

    grey: float
    white: float
    deep_grey: float
    csf: float
    pitch: float  # level shift per unit of AP position (head pitch / gantry tilt)
    fissure_mm: float
    falx_hu: float
    sinus_hu: float
    cupping_hu: float
    streak_hu: float
    noise_hu: float
    grain_mm: float  # correlation length of the noise (reconstruction kernel)
    calcifications: tuple[tuple[str, float, float, float, float, float], ...]  # kind, x, y, t, radius, HU
    phases: tuple[float, ...]
    leukoaraiosis_hu: float  # periventricular white-matter hypodensity (small-vessel disease); 0 = none
    infarct: tuple[float, float, float, float, float]  # old infarct: theta, half angle, depth mm, t, t half; () none
    table_rough_mm: float  # ridges of the inner table (digital markings), so the brain surface is not a smooth curve


def sample(rng: np.random.Generator) -> tuple[Anatomy, HardParams]:
    """A study's anatomy (wider ranges than standard: size, shape, offset, rotation, atrophy) and extras."""
    atrophy = float(rng.beta(1.2, 2.5))  # most heads young-ish, a tail of atrophic ones
    anatomy = Anatomy(
        centre=(rng.uniform(-14, 14), rng.uniform(-24, 4)), rotation=rng.uniform(-0.35, 0.35),
        half_lr=rng.uniform(56, 72), half_ap=rng.uniform(74, 92), skull_mm=rng.uniform(4.5, 8),
        scalp_mm=rng.uniform(3, 8), csf_rim_mm=1.0 + 2.5 * atrophy + rng.uniform(0, 0.6),
        n_sulci=int(rng.integers(34, 48)), sulcus_mm=1.2 + 2.0 * atrophy + rng.uniform(0, 0.4),
        sulcus_depth_mm=rng.uniform(9, 16), cortex_mm=rng.uniform(3.0, 5.0),
        ventricle_scale=0.8 + 1.0 * atrophy + rng.uniform(0, 0.3), noise_hu=0.0,
        phases=tuple(rng.uniform(0, 2 * np.pi, 8)),
    )
    grey = rng.uniform(36, 44)
    params = HardParams(
        grey=grey, white=grey - rng.uniform(8, 15), deep_grey=grey - rng.uniform(0, 4), csf=rng.uniform(2, 12),
        pitch=rng.uniform(-0.12, 0.12), fissure_mm=0.8 + 2.0 * atrophy, falx_hu=rng.uniform(45, 65),
        sinus_hu=rng.uniform(45, 78), cupping_hu=rng.uniform(2, 12), streak_hu=rng.uniform(8, 30),
        noise_hu=rng.uniform(3, 10), grain_mm=rng.uniform(0.5, 1.3),
        calcifications=_calcifications(rng, anatomy), phases=tuple(rng.uniform(0, 2 * np.pi, 6)),
        leukoaraiosis_hu=float(rng.uniform(3, 9)) if rng.random() < 0.2 + 0.6 * atrophy else 0.0,
        infarct=(float(rng.uniform(-np.pi, np.pi)), float(rng.uniform(0.15, 0.4)), float(rng.uniform(12, 35)),
                 float(rng.uniform(0.3, 0.65)), float(rng.uniform(0.05, 0.12))) if rng.random() < 0.2 else (),
        table_rough_mm=float(rng.uniform(0.5, 1.8)),
    )
    return anatomy, params


def _calcifications(rng: np.random.Generator, a: Anatomy) -> tuple:
    """Physiological calcifications, each present with its usual frequency in adults."""
    out = []
    if rng.random() < 0.75:  # choroid plexus in the atria, usually both sides
        for side in (-1, 1) if rng.random() < 0.8 else (rng.choice([-1, 1]),):
            out.append(("choroid", side * 0.24 * a.half_lr * a.ventricle_scale, 0.31 * a.half_ap,
                        rng.uniform(0.48, 0.6), rng.uniform(1.5, 4.5), rng.uniform(90, 400)))
    if rng.random() < 0.6:
        out.append(("pineal", 0.0, 0.12 * a.half_ap, rng.uniform(0.6, 0.68), rng.uniform(1.5, 4), rng.uniform(90, 350)))
    if rng.random() < 0.3:  # globus pallidus, symmetric
        r, hu, t = rng.uniform(1.2, 3), rng.uniform(70, 220), rng.uniform(0.54, 0.64)
        out += [("basal", side * 0.27 * a.half_lr, -0.06 * a.half_ap, t, r, hu) for side in (-1, 1)]
    for _ in range(rng.poisson(0.8)):  # plaques along the falx
        out.append(("falx", 0.0, rng.uniform(-0.7, 0.7) * a.half_ap, rng.uniform(0.15, 0.5),
                    rng.uniform(1.2, 3), rng.uniform(120, 500)))
    return tuple((kind, float(x), float(y), float(t), float(r), float(hu)) for kind, x, y, t, r, hu in out)


class HardStudy:
    """Study-constant arrays of the hard extras (folia, streak field) and the per-slice rendering."""

    def __init__(self, grid: Grid, params: HardParams):
        self.grid, self.p = grid, params
        a, g, ph = grid.anatomy, grid, params.phases
        self.midline = np.abs(g.x)
        # cerebellar folia: thin CSF clefts curving around the fourth ventricle
        rc = np.hypot(g.x, g.y - 0.1 * a.half_ap)
        self.folia = np.sin(2 * np.pi * rc / 3.2 + 2 * np.sin(3 * g.theta + ph[0])) > 0.75
        # beam hardening between the petrous bones: a dark bar across the posterior fossa, bright streaks
        # fanning out from each petrous apex
        apex_y = 0.14 * a.half_ap
        bar = np.exp(-(((g.y - apex_y) / 4.0) ** 2)) * (np.abs(g.x) < 0.55 * a.half_lr)
        fan = sum(np.cos(9 * np.arctan2(g.y - apex_y, g.x - s * 0.3 * a.half_lr) + ph[1 + (s > 0)]) ** 8
                  for s in (-1, 1))
        behind = np.clip((g.y - apex_y) / (0.3 * a.half_ap), 0, 1)
        self.streaks = (params.streak_hu * (0.6 * fan * behind - bar)).astype(np.float32)
        # inner-table ridges: two patterns mixed by level (as the sulcal wobble), added to the inner radius
        self.inner_r, self.skull_mm = g.inner_r, g.skull_mm
        waves = [(k, ph[3] + k * ph[4]) for k in (19, 31, 47)]
        self.ridges = [params.table_rough_mm / 3 * sum(f(k * g.theta + phase) for k, phase in waves)
                       for f in (np.sin, np.cos)]

    def level_t(self, t: float, y_fraction: float) -> float:
        """The level a structure at AP position `y_fraction` (-1 front .. 1 back) sits at, given the pitch."""
        return t + self.p.pitch * y_fraction

    def render(self, t: float) -> Slice:
        """One sub-level: the standard anatomy, re-valued tissues, then the hard anatomy and mimics."""
        if t > FACE_START:
            return render_face(self.grid, t)
        ridges = np.cos(9 * t) * self.ridges[0] + np.sin(9 * t) * self.ridges[1]
        self.grid.inner_r = self.inner_r + ridges  # this study's grid: the rendering below reads it
        self.grid.skull_mm = np.maximum(self.skull_mm - ridges, 2.0)
        level = render_slice(self.grid, t)
        hu, p = level.hu, self.p
        tissues = [(hu == old, new) for old, new in ((GREY, p.grey), (WHITE, p.white), (DEEP_GREY, p.deep_grey),
                                                     (CSF, p.csf))]
        for mask, new in tissues:
            hu[mask] = new
        brain = level.intracranial & (level.depth > self.grid.anatomy.csf_rim_mm)
        self._posterior_fossa(level, brain)
        self._fissure_and_sinuses(level)
        self._calcified(level)
        self._chronic(level, brain)
        orbits = self._orbits(level)
        level.intracranial &= (hu > -20) & (hu < 200) & ~orbits
        return level

    def _posterior_fossa(self, level: Slice, brain: np.ndarray) -> None:
        a, g, hu = self.grid.anatomy, self.grid, level.hu
        t = self.level_t(level.t, 0.6)
        if t < 0.7:
            return
        k = float(np.clip((t - 0.7) / 0.08, 0, 1))
        tentorium_y = a.half_ap * (0.55 - 0.45 * k) - 0.004 * g.x**2  # the tentorium slopes down and back
        below = brain & (g.y > tentorium_y) & ~level.ventricles & ~level.cisterns
        hu[below] = np.where(self.folia[below], self.p.csf + 6, self.p.grey - 2)  # cerebellar cortex and folia
        hu[below & (np.abs(g.x) < 0.09 * a.half_lr) & ~self.folia] = self.p.white + 3  # vermis
        hu[brain & (np.abs(g.y - tentorium_y) < 0.9) & (k < 1)] = self.p.falx_hu  # tentorial edge
        stem = g.ellipse(0.0, 0.2 * a.half_ap, 0.17 * a.half_lr * k, 0.13 * a.half_ap * k)
        hu[stem & brain & ~level.ventricles] = self.p.white + 4
        level.sulci &= ~below

    def _fissure_and_sinuses(self, level: Slice) -> None:
        a, g, hu, p = self.grid.anatomy, self.grid, level.hu, self.p
        if level.t < 0.62:  # interhemispheric fissure with the falx in it, above the corpus callosum level
            span = 0.95 if level.t < 0.4 else 0.95 * (1 - (level.t - 0.4) / 0.22)
            fissure = level.intracranial & (self.midline < p.fissure_mm) & (np.abs(g.y) > (1 - span) * a.half_ap)
            hu[fissure] = p.csf
            hu[fissure & (self.midline < 0.6)] = p.falx_hu
        depth, inside = level.depth, level.intracranial
        back = self.level_t(level.t, 0.9)
        if back < 0.72:  # superior sagittal sinus: a triangle against the inner table at the midline
            sss = inside & (depth < 7) & (self.midline < 4.5 * (1 - depth / 7)) & (g.y > 0)
            hu[sss] = p.sinus_hu
        if 0.72 < back < 0.86:  # transverse sinuses along the posterior inner table
            transverse = inside & (depth < 4.5) & (np.abs(g.theta - np.pi / 2) < 1.1) & (np.abs(g.theta - np.pi / 2) > 0.1)
            hu[transverse] = p.sinus_hu
        if 0.45 < self.level_t(level.t, 0.5) < 0.72:  # straight sinus
            hu[inside & (self.midline < 2.2) & (g.y > 0.45 * a.half_ap) & (depth > 6)] = p.sinus_hu

    def _chronic(self, level: Slice, brain: np.ndarray) -> None:
        """Hypodense findings of older heads, never bright: leukoaraiosis and an old infarct (near CSF HU)."""
        a, g, p, hu = self.grid.anatomy, self.grid, self.p, level.hu
        if p.leukoaraiosis_hu and 0.25 < level.t < 0.58:
            around = np.zeros(g.shape, dtype=bool)
            for side in (-1, 1):
                around |= g.ellipse(side * 0.14 * a.half_lr, -0.05 * a.half_ap, 0.2 * a.half_lr * a.ventricle_scale,
                                    0.5 * a.half_ap)
            hu[around & brain & (hu == np.float32(p.white))] -= p.leukoaraiosis_hu
        if p.infarct and abs(level.t - p.infarct[3]) < p.infarct[4]:
            theta, half, depth = p.infarct[:3]
            k = np.sqrt(1 - ((level.t - p.infarct[3]) / p.infarct[4]) ** 2)
            wedge = brain & (np.abs(bleeds.angle_diff(g.theta, theta)) < half * k) & (level.depth < depth * k)
            hu[wedge & (hu < 60)] = p.csf + 8

    def _calcified(self, level: Slice) -> None:
        for _kind, x, y, t, radius, value in self.p.calcifications:
            u = (self.level_t(level.t, y / self.grid.anatomy.half_ap) - t) / 0.04
            if abs(u) < 1:
                r = radius * np.sqrt(1 - u * u)
                level.hu[self.grid.ellipse(x, y, r, r * 1.3) & level.intracranial] = value

    def _orbits(self, level: Slice) -> np.ndarray:
        """Globes (vitreous, a dense lens in front) in orbital fat, in front of the anterior cranial fossa."""
        a, g, hu = self.grid.anatomy, self.grid, level.hu
        mask = np.zeros(g.shape, dtype=bool)
        t = self.level_t(level.t, -0.9)
        k = float(np.sin(np.pi * np.clip((t - 0.8) / 0.2, 0, 1)))
        if k < 0.3:
            return mask
        for side in (-1, 1):
            x, y = side * 0.4 * a.half_lr, -0.82 * a.half_ap
            fat = g.ellipse(x, y, 16 * k, 14 * k)
            globe = g.ellipse(x, y - 2, 11 * k, 11 * k)
            hu[fat] = FAT
            hu[globe] = 45  # sclera
            hu[g.ellipse(x, y - 2, 10 * k, 10 * k)] = 10  # vitreous
            hu[g.ellipse(x, y - 11 * k, 3.5 * k, 1.5 * k)] = 100  # lens
            mask |= fat
        hu[g.ellipse(0.0, -0.8 * a.half_ap, 0.12 * a.half_lr * k, 0.1 * a.half_ap * k)] = AIR  # nasal cavity
        return mask

    def artefacts(self, hu: np.ndarray, level: Slice) -> None:
        """Beam hardening on the slab-averaged slice: cupping near the inner table, posterior-fossa streaks."""
        soft = level.intracranial
        hu[soft] += self.p.cupping_hu * np.exp(-level.depth[soft] / 5.0)
        k = float(np.clip((self.level_t(level.t, 0.3) - 0.74) / 0.08, 0, 1))
        if k > 0:
            hu[soft] += k * self.streaks[soft]


def render_slab(study: HardStudy, placed: list, t: float, dt: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HU of one thick slice (mean of its sub-levels, bleeds drawn where they count) and its five labels."""
    levels = [study.render(t + f * dt) for f in SUB_LEVELS]
    labels = np.zeros(len(SUBTYPES), dtype=np.uint8)
    area = study.grid.spacing**2 / len(levels)
    for bleed, static in placed:
        masks = [bleeds.bleed_mask(bleed, static, level) for level in levels]
        blood = sum(int(m.sum()) for m in masks if m is not None) * area
        if blood < MIN_BLOOD_MM2:
            continue
        value = bleed.hu + rng.normal(0, 2.0)
        for level, mask in zip(levels, masks, strict=True):
            if mask is not None:
                bleeds.draw(bleed, static, level, mask, value)
        labels[SUBTYPES.index(bleed.subtype)] = 1
    hu = np.mean([level.hu for level in levels], axis=0)
    study.artefacts(hu, levels[len(levels) // 2])
    return hu, labels


def pixel_sigma(params: HardParams, spacing: float) -> float:
    """The noise SD at this pixel size: `noise_hu` is the study's SD at the 512-matrix pixel (as on RSNA
    scans); larger pixels average it down, little where the noise grain is coarser than the pixel."""
    grain2, ref = params.grain_mm**2, FOV_MM / REFERENCE_MATRIX
    return float(params.noise_hu * np.sqrt((grain2 + ref**2) / (grain2 + max(spacing, ref) ** 2)))


def finish(hu: np.ndarray, params: HardParams, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane blur, correlated noise of the study's sigma and grain, integer HU (>= -1024)."""
    blurred = ndimage.gaussian_filter(hu, sigma=(0, 0.45 / spacing + 0.3, 0.45 / spacing + 0.3), truncate=2.5)
    grain = params.grain_mm / spacing
    white = rng.standard_normal(hu.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(white, sigma=(0, grain, grain), truncate=3.0)
    noise *= np.float32(pixel_sigma(params, spacing) / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(blurred + noise), -1024, 3000).astype(np.int16)


def render_study(rng: np.random.Generator, size: int, width: int, levels: list[float | None],
                 subtypes: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """`phantom.render_study` for the hard difficulty: int16 HU [Z, H, W] and uint8 labels [Z, 5]."""
    anatomy, params = sample(rng)
    grid = Grid(anatomy, size, width)
    study = HardStudy(grid, params)
    if subtypes is None:
        subtypes = bleeds.draw_subtypes_rsna(rng) if rng.random() < 0.6 else ()
    placed = bleeds.place(bleeds.sample_bleeds_hard(rng, anatomy, tuple(subtypes)), grid)
    head = [t for t in levels if t is not None]
    dt = (head[-1] - head[0]) / max(1, len(head) - 1)
    last = levels.index(head[-1])
    levels = levels[: last + 1] + [t if t < FACE_END else None  # below the skull base: face and neck
                                   for t in (head[-1] + dt * (k + 1) for k in range(len(levels) - last - 1))]
    hu = np.empty((len(levels), size, width), dtype=np.float32)
    labels = np.zeros((len(levels), len(SUBTYPES)), dtype=np.uint8)
    for z, t in enumerate(levels):
        if t is None:
            hu[z] = render_slice(grid, None).hu
        else:
            hu[z], labels[z] = render_slab(study, placed, t, dt, rng)
    return finish(hu, params, grid.spacing, rng), labels
