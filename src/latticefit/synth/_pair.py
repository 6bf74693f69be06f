"""Part of :mod:`_core` (see its docstring): pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidDataError
from ._lattice import _check_shape, perovskite_111
from ._particles import (
    ParticleTruth,
    _cut_by_border,
    _draw_diameters,
    _particle_table,
    _particle_truth,
    haadf_particles_image,
)
from ._truth import LatticeTruth

# ----------------------------------------------------------------------------- Fig. 4 pair


@dataclass
class PairTruth:
    """Ground truth of :func:`fig4_pair`.

    Attributes
    ----------
    lattice : LatticeTruth
        Truth of the HRTEM image (matrix net and one inclusion per dot).
    particles : ParticleTruth
        Truth of the HAADF image (the same dots, in HAADF pixel coordinates).
    dots : pandas.DataFrame
        One row per dot: ``x_nm``, ``y_nm`` (from the top-left corner of the
        field), ``x_hrtem_px``, ``y_hrtem_px``, ``x_haadf_px``, ``y_haadf_px``,
        ``diameter_nm``, ``mismatch``, ``d_angstrom`` (first-order d in the dot).
    field_nm : (float, float)
        Field of view (height, width) in nm, the same for both images.
    """

    lattice: LatticeTruth
    particles: ParticleTruth
    dots: Any
    field_nm: tuple[float, float]

    def to_dict(self) -> dict:
        """JSON-ready dict: ``dots`` records plus the ``hrtem`` and ``haadf`` truths."""
        from ..serialize import to_jsonable

        return {
            "kind": "fig4_pair",
            "field_nm": list(self.field_nm),
            "dots": to_jsonable(self.dots.to_dict(orient="records")),
            "hrtem": self.lattice.to_dict(),
            "haadf": self.particles.to_dict(),
        }


def fig4_pair(
    *,
    hrtem_shape=(1024, 1024),
    hrtem_pixel_size_nm: float = 0.025,
    haadf_shape=(512, 512),
    dot_diameter_nm: float = 4.0,
    dot_rsd: float = 0.06,
    n_dots: int = 4,
    mismatch: float = 0.0024,
    rotation_deg: float = 12.0,
    hrtem_background: float = 3.0,
    hrtem_contrast: float = 1.0,
    hrtem_noise_sigma: float = 0.5,
    hrtem_dose: float | None = None,
    dot_contrast: float = 1.15,
    edge_nm: float = 0.2,
    haadf_background: float = 60.0,
    haadf_particle_contrast: float = 1.5,
    haadf_dose: float | None = 60.0,
    probe_sigma_nm: float = 0.08,
    seed: int | None = 0,
):
    """An HRTEM perovskite [111] image with embedded dots and a HAADF image of the same field (Fig. 4 case).

    The HRTEM image is :func:`perovskite_111` with ``n_dots`` inclusions of
    lattice mismatch ``mismatch`` (+0.24 %: dot {1-10} d = 4.205 Å against
    4.195 Å in the matrix). The HAADF image covers the same field (its pixel
    size is ``field / haadf_shape``) and shows the same dots as bright
    spheres over a smooth matrix background.

    Parameters
    ----------
    hrtem_shape, hrtem_pixel_size_nm : (int, int), float
        HRTEM image size and pixel size; they fix the field of view.
    haadf_shape : (int, int)
        HAADF image size (same field, so its pixel size is ``field / shape``).
    dot_diameter_nm, dot_rsd, n_dots : float, float, int
        Dot sizes (normal distribution) and number (at most 8; one per
        quadrant for 4, jittered by +-5 % of the field).
    mismatch : float
        Relative lattice-parameter change inside the dots.
    rotation_deg : float
        Direction of the perovskite ``a1`` (projection of [100]).
    hrtem_background, hrtem_contrast, hrtem_noise_sigma, hrtem_dose : float
        HRTEM rendering (see :func:`lattice_image`).
    dot_contrast : float
        Fringe contrast inside a dot relative to the matrix.
    edge_nm : float
        Width of the blend at the dot rim in the HRTEM image.
    haadf_background, haadf_particle_contrast, haadf_dose, probe_sigma_nm : float
        HAADF rendering (see :func:`haadf_dots`).
    seed : int, optional
        Seed of every random draw (sizes, positions, noise).

    Returns
    -------
    hrtem : Micrograph
    haadf : Micrograph
    truth : PairTruth

    Examples
    --------
    >>> hr, hd, t = fig4_pair(hrtem_shape=(256, 256), haadf_shape=(128, 128), hrtem_pixel_size_nm=0.05)
    >>> len(t.dots), hd.pixel_size_nm
    (4, (0.1, 0.1))
    """
    source = "synth:fig4_pair"
    geo = _pair_geometry(hrtem_shape, haadf_shape, hrtem_pixel_size_nm, source)
    rng = np.random.default_rng(seed)
    dots = _draw_dots(rng, geo, n_dots, dot_diameter_nm, dot_rsd, source)
    incl = _dot_inclusions(dots, mismatch, hrtem_contrast * dot_contrast, edge_nm)
    hrtem_seed, haadf_seed = (int(s) for s in rng.integers(0, 2**63 - 1, size=2))
    hrtem, lt = perovskite_111(
        geo.hrtem_shape,
        pixel_size_nm=geo.ps_hrtem,
        rotation_deg=rotation_deg,
        contrast=hrtem_contrast,
        noise_sigma=hrtem_noise_sigma,
        dose=hrtem_dose,
        inclusions=incl,
        seed=hrtem_seed,
        background=hrtem_background,
    )
    hrtem.source = source + ":hrtem"
    haadf = haadf_particles_image(
        geo.haadf_shape,
        dots.x_haadf_px,
        dots.y_haadf_px,
        dots.diameter_nm,
        pixel_size_nm=geo.ps_haadf,
        reference_diameter_nm=float(dot_diameter_nm),
        background=haadf_background,
        gradient=_HAADF_GRADIENT,
        particle_contrast=haadf_particle_contrast,
        probe_sigma_nm=probe_sigma_nm,
        dose=haadf_dose,
        seed=haadf_seed,
    )
    haadf.source = source + ":haadf"
    pt = _particle_truth(
        _haadf_dot_table(dots.x_haadf_px, dots.y_haadf_px, dots.diameter_nm, geo.ps_haadf, geo.haadf_shape),
        geo.ps_haadf,
        geo.haadf_shape,
        diameter_nm=dot_diameter_nm,
        rsd=dot_rsd,
        background=haadf_background,
        gradient=_HAADF_GRADIENT,
        particle_contrast=haadf_particle_contrast,
        probe_sigma_nm=probe_sigma_nm,
        dose=haadf_dose,
    )
    table = _dots_table(dots, mismatch, lt)
    return hrtem, haadf, PairTruth(lattice=lt, particles=pt, dots=table, field_nm=geo.field_nm)


#: relative background variation of the HAADF image of :func:`fig4_pair`
_HAADF_GRADIENT = 0.15


@dataclass(frozen=True)
class _PairGeometry:
    """Image sizes and pixel sizes (nm, (y, x) for HAADF) of the two images of one field (height, width nm)."""

    hrtem_shape: tuple[int, int]
    haadf_shape: tuple[int, int]
    ps_hrtem: float
    ps_haadf: tuple[float, float]
    field_nm: tuple[float, float]


def _pair_geometry(hrtem_shape, haadf_shape, hrtem_pixel_size_nm, source) -> _PairGeometry:
    """Check both shapes; the HRTEM image fixes the field, the HAADF pixel size is ``field / haadf_shape``."""
    hh, hw = _check_shape(hrtem_shape, source)
    dh, dw = _check_shape(haadf_shape, source)
    ps_hr = float(hrtem_pixel_size_nm)
    field_h, field_w = hh * ps_hr, hw * ps_hr
    ps_hd = (field_h / dh, field_w / dw)
    return _PairGeometry((hh, hw), (dh, dw), ps_hr, ps_hd, (field_h, field_w))


@dataclass(frozen=True)
class _Dots:
    """Dot centres in nm (from the field corner) and in the pixel coordinates of both images; diameters (nm)."""

    x_nm: np.ndarray
    y_nm: np.ndarray
    x_hrtem_px: np.ndarray
    y_hrtem_px: np.ndarray
    x_haadf_px: np.ndarray
    y_haadf_px: np.ndarray
    diameter_nm: np.ndarray


def _draw_dots(rng, geo: _PairGeometry, n_dots, dot_diameter_nm, dot_rsd, source) -> _Dots:
    """Draw the dot diameters (normal), then their jittered centres; convert to both images' pixel coordinates."""
    diam = _draw_diameters(rng, n_dots, float(dot_diameter_nm), float(dot_rsd), "normal")
    x_nm, y_nm = _dot_centres_nm(rng, n_dots, geo.field_nm, source)
    # pixel centres: HRTEM pixel i covers [i, i+1] * ps from the field corner
    ps_hr, ps_hd = geo.ps_hrtem, geo.ps_haadf
    x_hr, y_hr = x_nm / ps_hr - 0.5, y_nm / ps_hr - 0.5
    x_hd, y_hd = x_nm / ps_hd[1] - 0.5, y_nm / ps_hd[0] - 0.5
    return _Dots(x_nm, y_nm, x_hr, y_hr, x_hd, y_hd, diam)


def _dot_inclusions(dots: _Dots, mismatch, contrast, edge_nm) -> list[dict]:
    """The ``lattice_image`` inclusions of the dots (HRTEM pixel centres, radius, mismatch, contrast, rim)."""
    return [
        {
            "x_px": float(x),
            "y_px": float(y),
            "radius_nm": float(d) / 2.0,
            "mismatch": float(mismatch),
            "contrast": float(contrast),
            "edge_nm": float(edge_nm),
        }
        for x, y, d in zip(dots.x_hrtem_px, dots.y_hrtem_px, dots.diameter_nm)
    ]


def _dots_table(dots: _Dots, mismatch, lt: LatticeTruth):
    """:attr:`PairTruth.dots`: one row per dot with both images' coordinates and the dot's first-order d."""
    import pandas as pd

    return pd.DataFrame(
        {
            "x_nm": dots.x_nm,
            "y_nm": dots.y_nm,
            "x_hrtem_px": dots.x_hrtem_px,
            "y_hrtem_px": dots.y_hrtem_px,
            "x_haadf_px": dots.x_haadf_px,
            "y_haadf_px": dots.y_haadf_px,
            "diameter_nm": dots.diameter_nm,
            "mismatch": float(mismatch),
            "d_angstrom": [float(i["d_angstrom"][0]) for i in lt.inclusions],
        }
    )


#: where fig4_pair puts its dots (fractions of the field, x, y): well inside and apart, one per quadrant first
DOT_SITES = [(0.27, 0.28), (0.72, 0.3), (0.3, 0.73), (0.7, 0.7), (0.5, 0.5), (0.5, 0.15), (0.15, 0.5), (0.85, 0.5)]


def _dot_centres_nm(rng, n_dots: int, field_nm, source: str):
    """Dot centres (nm from the field corner) at :data:`DOT_SITES`, jittered by up to 5 % of the field."""
    field_h, field_w = field_nm
    if n_dots > len(DOT_SITES):
        raise InvalidDataError(f"fig4_pair places at most {len(DOT_SITES)} dots, got n_dots={n_dots}", source)
    x_nm = np.array([DOT_SITES[i][0] for i in range(n_dots)]) * field_w + rng.uniform(-0.05, 0.05, n_dots) * field_w
    y_nm = np.array([DOT_SITES[i][1] for i in range(n_dots)]) * field_h + rng.uniform(-0.05, 0.05, n_dots) * field_h
    return x_nm, y_nm


def _haadf_dot_table(x_hd, y_hd, diam, ps_hd, shape):
    """The HAADF truth table of the dots (``ParticleTruth.particles`` columns; no touching pairs)."""
    n = len(diam)
    edge = _cut_by_border(x_hd, y_hd, diam / 2.0, ps_hd, shape)
    return _particle_table(
        x_hd, y_hd, diam, ps_hd, edge=edge, touching=np.zeros(n, bool), pair=-np.ones(n, int), gap_nm=np.full(n, np.nan)
    )
