"""Levels below the skull base (hard difficulty): what a head CT holds under the brain, never blank.

Real scans start at the first cervical vertebra: the medulla in the foramen magnum, mastoid air cells in
dense bone, the maxillary sinuses and nasal cavity, the mandible, the pharynx and neck muscles (40-60 HU,
inside the bright-blood band of a threshold detector). No bleed is ever drawn here: the slices hold no
brain surface, ventricle or cistern (the medulla is marked intracranial only for the partial-volume rules).
Level t runs on from the skull base: 1.0 just below it, FACE_END at the upper neck.
"""

from __future__ import annotations

import numpy as np

from ich_ray.synthetic.phantom import AIR, FAT, Grid, Slice

FACE_START, FACE_END = 0.97, 1.25
MUSCLE, BONE = 52.0, 1100.0


def render_face(grid: Grid, t: float, muscle: float = MUSCLE) -> Slice:
    """Noise-free HU of one level below the skull base, with empty masks (no bleed can sit here)."""
    a, g = grid.anatomy, grid
    u = float(np.clip((t - FACE_START) / (FACE_END - FACE_START), 0, 1))  # 0 skull base .. 1 upper neck
    hu = g.empty_hu.copy()
    lr, ap = a.half_lr + a.skull_mm + a.scalp_mm, a.half_ap + a.skull_mm + a.scalp_mm
    outline = g.ellipse(0.0, -0.04 * ap, lr * (0.97 - 0.22 * u), ap * (0.97 - 0.12 * u))
    hu[outline] = FAT
    inner = g.ellipse(0.0, -0.02 * ap, lr * (0.88 - 0.22 * u), ap * (0.9 - 0.12 * u))
    # soft tissue: muscle with fat planes between the muscle bellies
    planes = np.sin(g.x / 6.0 + 2 * np.sin(g.y / 11.0)) * np.sin(g.y / 7.5) > 0.72
    hu[inner] = np.where(planes[inner], FAT + 40, muscle)
    if u < 0.45:  # mastoids: dense bone with air cells, behind each ear
        for side in (-1, 1):
            mastoid = g.ellipse(side * 0.62 * lr, 0.22 * ap, 14 * (1 - u), 18 * (1 - u), side * 0.4)
            cells = np.sin(g.x / 1.6) * np.sin(g.y / 1.6) > 0.1
            hu[mastoid] = np.where(cells[mastoid], AIR + 200, BONE)
    if u < 0.6:  # occipital bone around the foramen magnum, the medulla in its CSF
        k = 1 - u / 0.6
        hu[g.ellipse(0.0, 0.45 * ap, 0.5 * lr * k + 6, 0.28 * ap * k + 6)] = BONE
        hu[g.ellipse(0.0, 0.3 * ap, 16, 18)] = 8.0
        hu[g.ellipse(0.0, 0.28 * ap, 10, 12)] = 30.0
    else:  # the atlas / axis: a bone ring with the dens in front, the cord in its canal
        hu[g.ellipse(0.0, 0.3 * ap, 20, 22)] = BONE
        hu[g.ellipse(0.0, 0.3 * ap, 13, 15)] = 8.0
        hu[g.ellipse(0.0, 0.28 * ap, 8, 9)] = 32.0
        hu[g.ellipse(0.0, 0.1 * ap, 6, 6)] = BONE
    if u > 0.08:  # maxillary sinuses (air boxes with thin bony walls) and the nasal cavity with its septum
        size = np.sin(np.pi * min(1.0, (u - 0.08) / 0.75))
        for side in (-1, 1):
            hu[g.ellipse(side * 0.3 * lr, -0.62 * ap, 17 * size + 1, 20 * size + 1)] = BONE
            hu[g.ellipse(side * 0.3 * lr, -0.62 * ap, 15 * size, 18 * size)] = AIR
        hu[g.ellipse(0.0, -0.7 * ap, 9 * size, 16 * size)] = AIR
        hu[g.ellipse(0.0, -0.7 * ap, 0.9, 16 * size)] = BONE
    if u > 0.35:  # mandibular rami and the pharyngeal airway
        for side in (-1, 1):
            hu[g.ellipse(side * 0.55 * lr, -0.15 * ap, 5, 14, side * 0.3)] = BONE
        hu[g.ellipse(0.0, -0.05 * ap, 10 * u, 6 * u)] = AIR
    empty = np.zeros(g.shape, dtype=bool)
    far = np.full(g.shape, -1e3, np.float32)
    return Slice(t, 0.0, far, empty, empty, far, far, empty, empty, hu)
