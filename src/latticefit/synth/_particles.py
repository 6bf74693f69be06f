"""Part of :mod:`_core` (see its docstring): particles."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidDataError
from ..micrograph import Micrograph
from ..units import pixel_size_pair_nm
from ._lattice import _apply_noise, _check_shape, _synth_micrograph

# ----------------------------------------------------------------------------- HAADF particles


@dataclass
class ParticleTruth:
    """Ground truth of a HAADF particle field.

    Attributes
    ----------
    particles : pandas.DataFrame
        One row per particle: ``x_px``, ``y_px`` (centre in pixel index
        coordinates, sub-pixel), ``diameter_nm``, ``diameter_px`` (along x),
        ``edge`` (the sphere's disk extends beyond the image area
        ``[-0.5, width - 0.5] x [-0.5, height - 0.5]``), ``touching``
        (member of a deliberate touching pair), ``pair`` (pair id or -1),
        ``gap_nm`` (surface gap to its partner, NaN when not in a pair).
    pixel_size_nm : (float, float)
        Pixel size (y, x) in nm.
    diameter_nm, rsd : float
        Mean and relative standard deviation of the size distribution drawn from.
    background, gradient, particle_contrast, probe_sigma_nm, dose : float
        Rendering parameters (see :func:`haadf_dots`).
    """

    particles: Any
    pixel_size_nm: tuple[float, float]
    diameter_nm: float
    rsd: float
    background: float
    gradient: float
    particle_contrast: float
    probe_sigma_nm: float
    dose: float | None
    shape: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict:
        """JSON-ready dict; ``particles`` is a list of records."""
        from ..serialize import to_jsonable

        recs = to_jsonable(self.particles.to_dict(orient="records"))
        return {
            "kind": "particles",
            "shape": list(self.shape),
            "pixel_size_nm": list(self.pixel_size_nm),
            "diameter_nm": self.diameter_nm,
            "rsd": self.rsd,
            "background": self.background,
            "gradient": self.gradient,
            "particle_contrast": self.particle_contrast,
            "probe_sigma_nm": self.probe_sigma_nm,
            "dose": self.dose,
            "n_particles": int(len(self.particles)),
            "particles": recs,
        }


def _sphere_chord_primitive(x, c2):
    """Primitive of ``2 sqrt(c^2 - x^2)`` (x clipped to [-c, c])."""
    c = np.sqrt(c2)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.clip(x, -c, c)
        ratio = np.where(c > 0, xc / np.where(c > 0, c, 1.0), 0.0)
        val = xc * np.sqrt(np.maximum(c2 - xc * xc, 0.0)) + c2 * np.arcsin(np.clip(ratio, -1.0, 1.0))
    return np.where(c2 > 0, val, 0.0)


def _sphere_pixel_means(xc_nm, yc_nm, radius_nm, col_edges_nm, row_edges_nm, *, supersample: int = 8) -> np.ndarray:
    """Mean projected thickness (nm) of a sphere over each pixel of a window.

    Exact integration along x (closed form), midpoint rule with ``supersample``
    sub-rows along y.
    """
    ny = len(row_edges_nm) - 1
    s = int(supersample)
    # sub-row centres
    y_lo = row_edges_nm[:-1]
    dy = np.diff(row_edges_nm)
    sub = (np.arange(s) + 0.5) / s
    ys = (y_lo[:, None] + dy[:, None] * sub[None, :]).ravel() - yc_nm  # (ny*s,)
    c2 = np.maximum(radius_nm**2 - ys**2, 0.0)
    xe = col_edges_nm - xc_nm
    P = _sphere_chord_primitive(xe[None, :], c2[:, None])  # (ny*s, nx+1)
    area_x = np.diff(P, axis=1)  # integral of chord over each pixel's x range, per sub-row
    mean_rows = area_x.reshape(ny, s, -1).mean(axis=1)
    return mean_rows / np.diff(col_edges_nm)[None, :]


def sphere_thickness_image(shape, x_px, y_px, diameter_nm, *, pixel_size_nm=0.1, supersample: int = 8) -> np.ndarray:
    """Sum of the projected thicknesses (nm) of spheres, averaged over each pixel's area.

    The chord ``2 sqrt(R^2 - r^2)`` is integrated exactly along x and with a
    ``supersample``-point midpoint rule along y, so the image sum times the
    pixel area equals the sphere volume ``pi D^3 / 6`` to ~1e-5 (for the part
    inside the image). Each sphere is rendered only in its bounding box.

    Parameters
    ----------
    shape : (int, int)
        Image (height, width).
    x_px, y_px, diameter_nm : array_like
        Centres (pixel index coordinates) and diameters (nm).
    pixel_size_nm : float or (float, float)
        Pixel size in nm.

    Examples
    --------
    >>> t = sphere_thickness_image((64, 64), [31.3], [30.8], [4.0], pixel_size_nm=0.1)
    >>> round(float(t.sum()) * 0.1 * 0.1 / (math.pi * 4.0**3 / 6), 4)
    1.0
    """
    h, w = _check_shape(shape, "sphere_thickness_image")
    py, px = pixel_size_pair_nm(pixel_size_nm)
    out = np.zeros((h, w), dtype=np.float64)
    for xc, yc, d in zip(np.atleast_1d(x_px), np.atleast_1d(y_px), np.atleast_1d(diameter_nm)):
        R = float(d) / 2.0
        rx, ry = R / px, R / py
        x0, x1 = max(0, int(math.floor(xc - rx - 0.5))), min(w, int(math.ceil(xc + rx + 0.5)) + 1)
        y0, y1 = max(0, int(math.floor(yc - ry - 0.5))), min(h, int(math.ceil(yc + ry + 0.5)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        col_edges = (np.arange(x0, x1 + 1) - 0.5) * px
        row_edges = (np.arange(y0, y1 + 1) - 0.5) * py
        out[y0:y1, x0:x1] += _sphere_pixel_means(
            float(xc) * px, float(yc) * py, R, col_edges, row_edges, supersample=supersample
        )
    return out


def _smooth_background(h, w, rng, background, gradient) -> np.ndarray:
    """``background * (1 + gradient * p)`` with p a plane plus low-frequency cosines, peak-to-valley 1, mean 0."""
    if gradient == 0:
        return np.full((h, w), float(background))
    yy = (np.arange(h) / max(h - 1, 1))[:, None]
    xx = (np.arange(w) / max(w - 1, 1))[None, :]
    ang = rng.uniform(0, 2 * np.pi)
    p = 0.7 * (math.cos(ang) * xx + math.sin(ang) * yy)
    lowf = np.zeros((h, w))
    for _ in range(3):
        fx, fy = rng.uniform(0.3, 1.2, size=2)
        ph = rng.uniform(0, 2 * np.pi)
        lowf = lowf + np.cos(2 * np.pi * (fx * xx + fy * yy) + ph)
    lowf = lowf / max(np.ptp(lowf), 1e-12)
    p = p + 0.3 * lowf
    p = (p - p.mean()) / max(float(np.ptp(p)), 1e-12)
    return float(background) * (1.0 + float(gradient) * p)


def haadf_particles_image(
    shape,
    x_px,
    y_px,
    diameter_nm,
    *,
    pixel_size_nm=0.1,
    reference_diameter_nm: float | None = None,
    background: float = 100.0,
    gradient: float = 0.3,
    particle_contrast: float = 1.0,
    probe_sigma_nm: float = 0.1,
    dose: float | None = 50.0,
    seed: int | None = 0,
    title: str = "HAADF",
    supersample: int = 8,
) -> Micrograph:
    """Render a HAADF-STEM image of given spheres (see :func:`haadf_dots` for the model).

    Parameters
    ----------
    shape : (int, int)
        Image (height, width).
    x_px, y_px, diameter_nm : array_like
        Particle centres (pixel index coordinates) and diameters (nm).
    reference_diameter_nm : float, optional
        Thickness at which a particle adds ``particle_contrast * background``
        (default: the mean diameter).
    pixel_size_nm, background, gradient, particle_contrast, probe_sigma_nm, dose, seed, title
        As in :func:`haadf_dots`.
    supersample : int
        Sub-rows per pixel of the midpoint rule along y (the x integral is exact).

    Returns
    -------
    Micrograph
        Calibrated image (mode ``'HAADF'``, 300 kV, source ``'synth:haadf'``).

    Examples
    --------
    >>> mg = haadf_particles_image((64, 64), [32.0], [32.0], [3.0], pixel_size_nm=0.1, dose=None, gradient=0.0)
    >>> round(float(mg.data.max()), 1)  # background 100 + chord 3 nm * 100 / 3 nm, slightly blurred
    199.5
    """
    source = "synth:haadf"
    h, w = _check_shape(shape, source)
    ps = pixel_size_pair_nm(pixel_size_nm)
    diam = np.atleast_1d(np.asarray(diameter_nm, dtype=np.float64))
    if len(diam) and not np.all(diam > 0):
        raise InvalidDataError("particle diameters must be > 0 nm", source)
    if reference_diameter_nm is None:
        reference_diameter_nm = float(diam.mean()) if len(diam) else 1.0
    rng = np.random.default_rng(seed)
    bg = _smooth_background(h, w, rng, background, gradient)
    thick = sphere_thickness_image((h, w), x_px, y_px, diam, pixel_size_nm=ps, supersample=supersample)
    img = bg + (float(background) * float(particle_contrast) / float(reference_diameter_nm)) * thick
    img = _probe_blur(img, probe_sigma_nm, ps)
    img = _apply_noise(img, rng, noise_sigma=0.0, dose=dose, background=background, source=source)
    return _synth_micrograph(img, ps, source=source, title=title, mode="HAADF", function="haadf", seed=seed)


def _probe_blur(img, probe_sigma_nm, ps) -> np.ndarray:
    """Gaussian probe blur of standard deviation ``probe_sigma_nm`` (none when it is 0 or None)."""
    if probe_sigma_nm and probe_sigma_nm > 0:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, sigma=(probe_sigma_nm / ps[0], probe_sigma_nm / ps[1]), mode="reflect", truncate=4.0)
    return img


def _draw_diameters(rng, n, mean, rsd, distribution):
    sd = mean * rsd
    if distribution == "normal":
        out = rng.normal(mean, sd, size=n)
        bad = out < 0.3 * mean
        while np.any(bad):  # truncate: redraw the (rare) unphysical ones
            out[bad] = rng.normal(mean, sd, size=int(bad.sum()))
            bad = out < 0.3 * mean
        return out
    if distribution == "lognormal":
        s2 = math.log(1.0 + rsd**2)
        return rng.lognormal(math.log(mean) - s2 / 2.0, math.sqrt(s2), size=n)
    raise InvalidDataError(f"distribution must be 'normal' or 'lognormal', got {distribution!r}", "synth:haadf_dots")


def _place_particles(rng, h, w, ps, diam, n_pairs, allow_edge, min_gap_nm, max_gap_nm, max_tries, source):
    """Random sequential placement; returns x_px, y_px, pair id, gap_nm."""
    py, px = ps
    n = len(diam)
    R = diam / 2.0
    xs = np.full(n, np.nan)
    ys = np.full(n, np.nan)
    pair = np.full(n, -1, dtype=int)
    gaps = np.full(n, np.nan)
    placed = np.zeros(n, dtype=bool)

    def fits(x_nm, y_nm, r, ignore=()):
        if not placed.any():
            return True
        idx = np.flatnonzero(placed)
        if ignore:
            idx = idx[~np.isin(idx, ignore)]
        dx = xs[idx] * px - x_nm
        dy = ys[idx] * py - y_nm
        return bool(np.all(np.hypot(dx, dy) >= R[idx] + r + min_gap_nm))

    W_nm, H_nm = w * px, h * py  # image spans [-0.5 px, w - 0.5 px]
    crowd = float(np.sum(np.pi * (R + min_gap_nm / 2.0) ** 2)) / (W_nm * H_nm)
    hint = (
        f"the field is too crowded ({crowd:.0%} of it covered, counting half the minimum gap; random "
        "placement jams near 55 %): use fewer or smaller particles or a larger shape"
    )

    def draw_centre(r, interior):
        m = r + 0.5 if interior else 0.0
        lo_x, hi_x = -0.5 * px + m, W_nm - 0.5 * px - m
        lo_y, hi_y = -0.5 * py + m, H_nm - 0.5 * py - m
        if hi_x <= lo_x or hi_y <= lo_y:
            raise InvalidDataError(f"a {2 * r:.3g} nm particle does not fit in the {w}x{h} px field", source)
        return rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)

    # touching pairs first (kept inside the field so that they are clean cases)
    for p in range(n_pairs):
        i, j = 2 * p, 2 * p + 1
        for _ in range(max_tries):
            gap = rng.uniform(0.0, max_gap_nm)
            theta = rng.uniform(0, 2 * np.pi)
            x1, y1 = draw_centre(R[i], True)
            dist = R[i] + R[j] + gap
            x2, y2 = x1 + dist * math.cos(theta), y1 + dist * math.sin(theta)
            m = R[j] + 0.5
            if not (-0.5 * px + m <= x2 <= W_nm - 0.5 * px - m and -0.5 * py + m <= y2 <= H_nm - 0.5 * py - m):
                continue
            if fits(x1, y1, R[i]) and fits(x2, y2, R[j]):
                xs[i], ys[i], xs[j], ys[j] = x1 / px, y1 / py, x2 / px, y2 / py
                placed[i] = placed[j] = True
                pair[i] = pair[j] = p
                gaps[i] = gaps[j] = gap
                break
        else:
            raise InvalidDataError(f"could not place touching pair {p} after {max_tries} tries: {hint}", source)
    for i in range(2 * n_pairs, n):
        for _ in range(max_tries):
            x, y = draw_centre(R[i], not allow_edge)
            if fits(x, y, R[i]):
                xs[i], ys[i] = x / px, y / py
                placed[i] = True
                break
        else:
            raise InvalidDataError(f"could not place particle {i} of {n} after {max_tries} tries: {hint}", source)
    return xs, ys, pair, gaps


def haadf_dots(
    shape=(1024, 1024),
    *,
    pixel_size_nm=0.1,
    diameter_nm: float = 7.0,
    rsd: float = 0.08,
    n_particles: int = 80,
    n_touching_pairs: int = 8,
    allow_edge: bool = True,
    background: float = 100.0,
    gradient: float = 0.3,
    particle_contrast: float = 1.0,
    probe_sigma_nm: float = 0.1,
    dose: float | None = 50.0,
    seed: int | None = 0,
    distribution: str = "normal",
    min_gap_nm: float = 1.0,
    max_touching_gap_nm: float = 0.3,
    supersample: int = 8,
    title: str = "HAADF",
):
    """A HAADF-STEM field of spherical nanoparticles, with every particle's centre and diameter.

    Model: each particle is a sphere whose signal is its projected thickness
    ``2 sqrt(R^2 - r^2)`` averaged over the pixel area (exact along x,
    ``supersample`` sub-rows along y), scaled so that a chord of length
    ``diameter_nm`` (the mean) adds ``particle_contrast * background``; it sits
    on a background ``background * (1 + gradient * p(x, y))`` where ``p`` is a
    plane plus low-frequency cosines with zero mean and peak-to-valley 1 (so
    ``gradient`` is the relative variation across the field). The sum is
    blurred by a Gaussian probe of standard deviation ``probe_sigma_nm`` and
    given Poisson noise with ``dose`` electrons/px at the background level
    (``image = Poisson(I dose / background) background / dose``).

    Diameters are drawn from a normal distribution (mean ``diameter_nm``,
    standard deviation ``rsd * diameter_nm``, redrawn below 0.3x the mean) or
    a log-normal one with the same mean and RSD. Particles are placed by
    random sequential addition with surface gaps >= ``min_gap_nm``, except
    ``n_touching_pairs`` deliberate pairs whose surfaces are 0 to
    ``max_touching_gap_nm`` apart (kept inside the field). With
    ``allow_edge`` the other centres are drawn anywhere in the field, so some
    particles are cut by the border.

    Parameters
    ----------
    shape : (int, int)
        Image (height, width).
    pixel_size_nm : float or (float, float)
        Pixel size in nm.
    diameter_nm, rsd : float
        Mean diameter (nm) and relative standard deviation of the sizes.
    n_particles : int
        Total number of particles (including the ``2 * n_touching_pairs``).
    n_touching_pairs : int
        Pairs whose surfaces touch or nearly touch.
    allow_edge : bool
        Allow particles cut by the image border.
    background, gradient, particle_contrast, probe_sigma_nm, dose
        See above; ``dose=None`` gives a noise-free image.
    seed : int, optional
        Seed of ``numpy.random.default_rng`` (sizes, positions, background, noise).
    distribution : {'normal', 'lognormal'}
        Size distribution.
    min_gap_nm, max_touching_gap_nm : float
        Smallest surface gap between non-paired particles; largest gap of a touching pair.

    Returns
    -------
    mg : Micrograph
        Calibrated float32 image (mode ``'HAADF'``, 300 kV, source ``'synth:haadf_dots'``);
        with Poisson noise it holds non-negative counts (integers when
        ``background / dose`` is an integer) that cast to uint16 exactly.
    truth : ParticleTruth
        ``truth.particles`` DataFrame (``x_px``, ``y_px``, ``diameter_nm``,
        ``edge``, ``touching``, ``pair``, ``gap_nm``, ``diameter_px``).

    Examples
    --------
    >>> mg, truth = haadf_dots((256, 256), diameter_nm=4.0, n_particles=20, n_touching_pairs=2, seed=3)
    >>> len(truth.particles), int(truth.particles.touching.sum())
    (20, 4)
    """
    source = "synth:haadf_dots"
    h, w = _check_shape(shape, source)
    ps = pixel_size_pair_nm(pixel_size_nm)
    n_particles, n_touching_pairs = _check_dot_counts(n_particles, n_touching_pairs, diameter_nm, rsd, source)
    rng = np.random.default_rng(seed)
    diam = _draw_diameters(rng, n_particles, float(diameter_nm), float(rsd), distribution)
    xs, ys, pair, gaps = _place_particles(
        rng, h, w, ps, diam, n_touching_pairs, allow_edge, float(min_gap_nm), float(max_touching_gap_nm), 5000, source
    )
    edge = _cut_by_border(xs, ys, diam / 2.0, ps, (h, w))
    img_seed = int(rng.integers(0, 2**63 - 1))
    mg = haadf_particles_image(
        (h, w),
        xs,
        ys,
        diam,
        pixel_size_nm=ps,
        reference_diameter_nm=float(diameter_nm),
        background=background,
        gradient=gradient,
        particle_contrast=particle_contrast,
        probe_sigma_nm=probe_sigma_nm,
        dose=dose,
        seed=img_seed,
        title=title,
        supersample=supersample,
    )
    mg.source = source
    mg.metadata = {"synth": {"function": "haadf_dots", "seed": seed}}
    table = _particle_table(xs, ys, diam, ps, edge=edge.astype(bool), touching=pair >= 0, pair=pair, gap_nm=gaps)
    truth = _particle_truth(
        table,
        ps,
        (h, w),
        diameter_nm=diameter_nm,
        rsd=rsd,
        background=background,
        gradient=gradient,
        particle_contrast=particle_contrast,
        probe_sigma_nm=probe_sigma_nm,
        dose=dose,
    )
    return mg, truth


def _check_dot_counts(n_particles, n_touching_pairs, diameter_nm, rsd, source) -> tuple[int, int]:
    """``0 <= 2 * n_touching_pairs <= n_particles`` (as ints), ``diameter_nm > 0`` and ``rsd >= 0``."""
    n_particles, n_touching_pairs = int(n_particles), int(n_touching_pairs)
    if n_particles < 0 or n_touching_pairs < 0 or 2 * n_touching_pairs > n_particles:
        raise InvalidDataError(
            f"need 0 <= 2 * n_touching_pairs <= n_particles, got {n_touching_pairs} pairs and {n_particles} particles",
            source,
        )
    if not diameter_nm > 0 or not rsd >= 0:
        raise InvalidDataError(f"diameter_nm must be > 0 and rsd >= 0, got {diameter_nm}, {rsd}", source)
    return n_particles, n_touching_pairs


def _cut_by_border(xs, ys, R, ps, shape) -> np.ndarray:
    """Spheres (centres in px, radii in nm) whose disk extends beyond ``[-0.5, w - 0.5] x [-0.5, h - 0.5]``."""
    h, w = shape
    py, px = ps
    return ((xs - R / px) < -0.5) | ((xs + R / px) > w - 0.5) | ((ys - R / py) < -0.5) | ((ys + R / py) > h - 0.5)


def _particle_table(xs, ys, diam, ps, *, edge, touching, pair, gap_nm, **extra):
    """The ``ParticleTruth.particles`` DataFrame (``extra`` columns appended in order)."""
    import pandas as pd

    cols = {
        "x_px": xs,
        "y_px": ys,
        "diameter_nm": diam,
        "diameter_px": diam / ps[1],
        "edge": edge,
        "touching": touching,
        "pair": pair,
        "gap_nm": gap_nm,
    }
    cols.update(extra)
    return pd.DataFrame(cols)


def _particle_truth(
    table, ps, shape, *, diameter_nm, rsd, background, gradient, particle_contrast, probe_sigma_nm, dose
) -> ParticleTruth:
    """A :class:`ParticleTruth` of the table with the rendering parameters as floats."""
    return ParticleTruth(
        particles=table,
        pixel_size_nm=ps,
        diameter_nm=float(diameter_nm),
        rsd=float(rsd),
        background=float(background),
        gradient=float(gradient),
        particle_contrast=float(particle_contrast),
        probe_sigma_nm=float(probe_sigma_nm),
        dose=None if dose is None else float(dose),
        shape=tuple(shape),
    )
