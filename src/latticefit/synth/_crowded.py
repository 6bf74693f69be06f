"""Crowded HAADF-STEM fields with known truth: rafts, chains, aggregates, touching pairs, ramps, a film edge.

:func:`haadf_crowded` is the hard companion of :func:`latticefit.synth.haadf_dots`: the dots of a
deposited quantum-dot layer sit in close-packed rafts with 0.1-1 nm surface gaps, in chains and in
random aggregates whose projections may overlap, over a background that ramps across the field and
steps up on one side where a thicker film (or carbon) begins. The sphere rendering, the probe blur and
the Poisson noise are those of :func:`latticefit.synth.haadf_particles_image`.

Examples
--------
>>> mg, truth = haadf_crowded((256, 256), pixel_size_nm=0.1, diameter_nm=4.0, n_groups=3, seed=1)
>>> bool(len(truth.particles) > 10), set(truth.particles.kind) <= {"aggregate", "chain", "isolated", "pair", "raft"}
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidDataError
from ..units import pixel_size_pair_nm
from ._core import (
    _apply_noise,
    _check_shape,
    _draw_diameters,
    sphere_thickness_image,
)
from ._lattice import _synth_micrograph
from ._particles import _cut_by_border, _particle_table, _particle_truth, _probe_blur

__all__ = ["LAYOUTS", "benchmark_field", "haadf_crowded"]

#: group layouts drawn by :func:`haadf_crowded`
LAYOUTS = ("raft", "chain", "aggregate", "pair")


def _grow_group(rng, diam, layout, gap_nm, overlap_frac):
    """Centres (nm, relative) of one group of spheres of diameters ``diam``, grown by sequential contact.

    Every new sphere touches one placed sphere at a surface gap drawn from ``gap_nm`` (negative gaps,
    projected overlaps, with probability ``overlap_frac`` for aggregates); no other pair is closer than the
    smallest gap. ``raft``: the contact with most neighbours wins among several tries (compact, close
    packed); ``chain``: contact to the last sphere, direction wandering by <= 35 deg; ``aggregate``:
    a random placed sphere (branching); ``pair``: two spheres 0-0.3 nm apart.
    """
    n = len(diam)
    R = diam / 2.0
    xy = np.zeros((n, 2))
    gaps = np.full(n, np.nan)
    lo, hi = gap_nm
    heading = rng.uniform(0, 2 * np.pi)
    for i in range(1, n):
        best, best_score = None, -1
        tries = 80 if layout == "raft" else 60
        for _ in range(tries):
            if layout == "pair":
                j, g = 0, rng.uniform(0.0, 0.3)
            else:
                j = i - 1 if layout == "chain" else int(rng.integers(0, i))
                g = rng.uniform(lo, hi)
                if layout == "aggregate" and rng.random() < overlap_frac:
                    g = -rng.uniform(0.05, 0.2) * min(diam[i], diam[j])
            if layout == "chain":
                th = heading + rng.uniform(-0.6, 0.6)
            else:
                th = rng.uniform(0, 2 * np.pi)
            p = xy[j] + (R[i] + R[j] + g) * np.array([math.cos(th), math.sin(th)])
            d = np.hypot(*(xy[:i] - p).T) - R[:i] - R[i]
            d[j] = np.inf
            if np.all(d >= max(lo, 0.1) - 1e-9):
                score = int(np.sum(d < hi + 0.3)) if layout == "raft" else 0
                if score > best_score:
                    best, best_score, best_g, best_th = p, score, g, th
                if layout != "raft":
                    break
        if best is None:
            return xy[:i], gaps[:i]
        xy[i] = best
        gaps[i] = best_g
        if layout == "chain":
            heading = best_th
    return xy, gaps


def haadf_crowded(
    shape=(1024, 1024),
    *,
    pixel_size_nm=0.1,
    diameter_nm: float = 4.0,
    rsd: float = 0.08,
    n_groups: int = 12,
    group_size=(3, 9),
    layouts=LAYOUTS,
    n_isolated: int = 10,
    gap_nm=(0.1, 1.0),
    overlap_frac: float = 0.2,
    background: float = 100.0,
    ramp: float = 0.5,
    film_edge: float = 0.4,
    particle_contrast: float = 1.0,
    probe_sigma_nm: float = 0.1,
    dose: float | None = 50.0,
    seed: int | None = 0,
    supersample: int = 4,
    title: str = "HAADF",
):
    """A crowded HAADF-STEM field of spheres with every sphere's centre and diameter.

    Groups (``n_groups`` of ``group_size`` spheres, layouts cycled from ``layouts``) are grown by
    :func:`_grow_group` and dropped at random positions (their outlines at least 2 nm from other groups;
    a group may be cut by the image border), then ``n_isolated`` single spheres. The background is
    ``background * (1 + ramp * u)`` with ``u`` a linear ramp from -0.5 to 0.5 across the field in a
    random direction, plus ``film_edge * background`` on one side of a gently curved line (a thicker
    film or carbon edge, smoothed over 1 nm). Rendering, probe and Poisson noise as
    :func:`latticefit.synth.haadf_particles_image` (``dose`` counts/px at ``background``).

    Parameters
    ----------
    shape : (int, int)
        Image (height, width).
    pixel_size_nm : float or (float, float)
        Pixel size in nm.
    diameter_nm, rsd : float
        Mean diameter (nm) and relative SD of the (normal) size distribution.
    n_groups : int
        Number of groups (rafts, chains, aggregates, pairs).
    group_size : (int, int)
        Smallest and largest number of spheres per group (pairs always have 2).
    layouts : sequence of str
        Group layouts cycled over the groups (:data:`LAYOUTS`).
    n_isolated : int
        Extra single spheres (surface gap >= 2 nm to everything).
    gap_nm : (float, float)
        Range of the surface gaps within a group.
    overlap_frac : float
        Fraction of the contacts in aggregates whose projections overlap (gap -5 to -20 % of a diameter).
    background, ramp, film_edge, particle_contrast, probe_sigma_nm, dose, seed, supersample, title
        Rendering (see above and :func:`latticefit.synth.haadf_dots`).

    Returns
    -------
    mg : Micrograph
        Calibrated float32 image (source ``'synth:haadf_crowded'``).
    truth : ParticleTruth
        ``truth.particles`` with ``x_px``, ``y_px``, ``diameter_nm``, ``diameter_px``, ``edge``, ``touching``
        (surface gap to some neighbour < 1.5 nm), ``pair`` (group id, -1 for isolated), ``gap_nm``
        (gap to the sphere it was grown from), ``kind`` (layout of its group or ``'isolated'``).

    Examples
    --------
    >>> mg, truth = haadf_crowded((200, 200), pixel_size_nm=0.15, n_groups=2, n_isolated=2, seed=0)
    >>> mg.data.shape, bool(truth.particles.touching.any())
    ((200, 200), True)
    """
    source = "synth:haadf_crowded"
    h, w = _check_shape(shape, source)
    ps = pixel_size_pair_nm(pixel_size_nm)
    py, px = ps
    _check_sizes_and_layouts(diameter_nm, rsd, layouts, source)
    rng = np.random.default_rng(seed)
    field_nm = (w * px, h * py)
    size = (float(diameter_nm), float(rsd))
    placed = _place_spheres(rng, field_nm, size, n_groups, group_size, layouts, n_isolated, gap_nm, overlap_frac)
    spheres = placed.visible(field_nm)
    xs, ys = spheres.cx / px - 0.5, spheres.cy / py - 0.5
    bg = _ramp_and_film_edge(rng, (h, w), ps, background, ramp, film_edge)
    thick = sphere_thickness_image((h, w), xs, ys, spheres.d, pixel_size_nm=ps, supersample=supersample)
    img = bg + (background * particle_contrast / float(diameter_nm)) * thick
    img = _probe_blur(img, probe_sigma_nm, ps)
    img = _apply_noise(img, rng, noise_sigma=0.0, dose=dose, background=background, source=source)
    mg = _synth_micrograph(img, ps, source=source, title=title, mode="HAADF", function="haadf_crowded", seed=seed)
    R = spheres.d / 2.0
    table = _particle_table(
        xs,
        ys,
        spheres.d,
        ps,
        edge=_cut_by_border(xs, ys, R, ps, (h, w)),
        touching=_touching(spheres.cx, spheres.cy, R),
        pair=np.array(spheres.group, int),
        gap_nm=np.array(spheres.gap, float),
        kind=spheres.kind,
    )
    truth = _particle_truth(
        table,
        ps,
        (h, w),
        diameter_nm=diameter_nm,
        rsd=rsd,
        background=background,
        gradient=ramp,
        particle_contrast=particle_contrast,
        probe_sigma_nm=probe_sigma_nm,
        dose=dose,
    )
    return mg, truth


def benchmark_field(kind: str, diameter_nm: float, pixel_size_nm: float, dose: float, seed: int, scale: int = 1):
    """One field of ``benchmarks/bench_particles_crowded.py`` (and of the tests that pin its results).

    ``kind='crowd'``: 512 x 512 px, probe sigma ``min(0.1 nm, 0.3 px)``; ``'small'``: 256 x 256 px (about 900
    dots of 5-8 px), probe sigma 0.3 px; ``scale`` multiplies the side (``--field-scale``). About 30 % of the
    field is covered by dots: as many isolated dots as groups, ``max(3, round(16 (field / 15 D)^2))`` of each.

    Examples
    --------
    >>> mg, truth = benchmark_field("small", 4.0, 0.8, 20.0, seed=0)
    >>> mg.shape, len(truth.particles) > 500
    ((256, 256), True)
    """
    n = (512 if kind == "crowd" else 256) * int(scale)
    field_nm = n * pixel_size_nm
    n_groups = max(3, round(16 * field_nm**2 / (15 * diameter_nm) ** 2))
    return haadf_crowded(
        (n, n),
        pixel_size_nm=pixel_size_nm,
        diameter_nm=diameter_nm,
        n_groups=n_groups,
        n_isolated=n_groups,
        dose=dose,
        seed=seed,
        probe_sigma_nm=min(0.1, 0.3 * pixel_size_nm) if kind == "crowd" else 0.3 * pixel_size_nm,
    )


def _check_sizes_and_layouts(diameter_nm, rsd, layouts, source) -> None:
    """``diameter_nm > 0``, ``rsd >= 0`` and a non-empty ``layouts`` taken from :data:`LAYOUTS`."""
    if not diameter_nm > 0 or not rsd >= 0:
        raise InvalidDataError(f"diameter_nm must be > 0 and rsd >= 0, got {diameter_nm}, {rsd}", source)
    bad = [lay for lay in layouts if lay not in LAYOUTS]
    if bad or not len(layouts):
        raise InvalidDataError(f"layouts must be taken from {LAYOUTS}, got {list(layouts)}", source)


@dataclass
class _Spheres:
    """Spheres of a crowded field: centres ``cx``, ``cy`` and diameters ``d`` (nm from the field corner), with
    the group id (-1 isolated), kind (layout or ``'isolated'``) and growth gap (nm) of each.
    """

    cx: Any
    cy: Any
    d: Any
    group: list
    kind: list
    gap: list

    def visible(self, field_nm) -> _Spheres:
        """The spheres that show in the field (a group may hang over the border), centres and diameters as arrays."""
        W_nm, H_nm = field_nm
        cx, cy, dd = np.array(self.cx), np.array(self.cy), np.array(self.d)
        vis = (cx + dd / 2 > 0) & (cx - dd / 2 < W_nm) & (cy + dd / 2 > 0) & (cy - dd / 2 < H_nm)
        gid, kind, gg = (list(np.asarray(a, dtype=object)[vis]) for a in (self.group, self.kind, self.gap))
        return _Spheres(cx[vis], cy[vis], dd[vis], gid, kind, gg)


def _place_spheres(rng, field_nm, size, n_groups, group_size, layouts, n_isolated, gap_nm, overlap_frac) -> _Spheres:
    """Grow the groups and drop them at random positions (outlines >= 2 nm from other groups), then the
    isolated spheres; returns lists ``cx, cy, d`` (nm), group id, kind and growth gap of every sphere.
    """
    W_nm, H_nm = field_nm
    diameter_nm, rsd = size
    cx, cy, dd, gid, kind, gg = [], [], [], [], [], []

    def free(x, y, r, margin):
        if not cx:
            return True
        d = np.hypot(np.array(cx) - x, np.array(cy) - y) - np.array(dd) / 2 - r
        return bool(np.all(d >= margin))

    def add(x, y, d, g, k, gap):
        for lst, v in ((cx, x), (cy, y), (dd, d), (gid, g), (kind, k), (gg, gap)):
            lst.append(v)

    for g in range(int(n_groups)):
        layout = layouts[g % len(layouts)]
        m = 2 if layout == "pair" else int(rng.integers(group_size[0], group_size[1] + 1))
        diam = _draw_diameters(rng, m, diameter_nm, rsd, "normal")
        xy, gaps = _grow_group(rng, diam, layout, gap_nm, overlap_frac)
        diam = diam[: len(xy)]
        for _ in range(400):
            pts = xy + [rng.uniform(0, W_nm), rng.uniform(0, H_nm)]
            if all(free(x, y, r, 2.0) for (x, y), r in zip(pts, diam / 2)):
                break
        else:
            continue
        for (x, y), d, gap in zip(pts, diam, gaps):
            add(x, y, d, g, layout, gap)
    for d in _draw_diameters(rng, int(n_isolated), diameter_nm, rsd, "normal"):
        for _ in range(400):
            x, y = rng.uniform(0, W_nm), rng.uniform(0, H_nm)
            if free(x, y, d / 2, 2.0):
                add(x, y, d, -1, "isolated", np.nan)
                break
    return _Spheres(cx, cy, dd, gid, kind, gg)


def _ramp_and_film_edge(rng, shape, ps, background, ramp, film_edge) -> np.ndarray:
    """Background: a linear ramp across the field in a random direction plus a film edge on one side of a
    gently curved line (smoothed over 1 nm).
    """
    h, w = shape
    py, px = ps
    W_nm, H_nm = w * px, h * py
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    ang = rng.uniform(0, 2 * np.pi)
    u = math.cos(ang) * xx * px + math.sin(ang) * yy * py
    u = (u - u.min()) / max(np.ptp(u), 1e-12) - 0.5
    bg = background * (1.0 + ramp * u)
    if film_edge:
        ang2 = rng.uniform(0, 2 * np.pi)
        nrm = math.cos(ang2) * (xx * px - W_nm / 2) + math.sin(ang2) * (yy * py - H_nm / 2)
        tang = -math.sin(ang2) * (xx * px - W_nm / 2) + math.cos(ang2) * (yy * py - H_nm / 2)
        line = nrm - 0.3 * min(W_nm, H_nm) - 0.05 * min(W_nm, H_nm) * np.sin(2 * np.pi * tang / max(W_nm, H_nm))
        bg = bg + film_edge * background * 0.5 * (1.0 + np.tanh(line / 1.0))
    return bg


def _touching(cx: np.ndarray, cy: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Spheres whose surface gap to some neighbour is < 1.5 nm."""
    if len(cx) <= 1:
        return np.zeros(len(cx), bool)
    sep = np.hypot(cx[:, None] - cx[None, :], cy[:, None] - cy[None, :]) - R[:, None] - R[None, :]
    np.fill_diagonal(sep, np.inf)
    return sep.min(axis=1) < 1.5
