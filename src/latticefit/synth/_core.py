"""Synthetic micrographs with exact ground truth (deterministic, seeded).

Two image families, each returned as ``(Micrograph, truth)``:

- :func:`lattice_image` (and the presets :func:`perovskite_111`,
  :func:`rocksalt_111`, :func:`cubic_001`): an HRTEM-like image of a 2-D
  Bravais net of Gaussian columns with any basis, rotation, pixel size and
  noise, optionally with embedded disks ("inclusions", e.g. quantum dots)
  whose lattice parameter differs by a given mismatch. The truth is a
  :class:`LatticeTruth` (real and reciprocal basis, first-order reflections,
  their d-spacings in Å, azimuths, the angle between plane families).
- :func:`haadf_dots` (and :func:`haadf_particles_image` for a given particle
  list): a HAADF-STEM field of spherical particles whose intensity is their
  projected thickness, over a slowly varying background, blurred by the probe,
  with Poisson noise; some particles touch in pairs, some are cut by the
  border. The truth is a :class:`ParticleTruth` (every particle's centre in
  pixels and diameter in nm).
- :func:`fig4_pair`: an HRTEM perovskite [111] image with four embedded dots
  and a HAADF image of the same field with the same dots.

Conventions
-----------
- Pixel ``(row, col)`` has its centre at integer coordinates ``x = col``,
  ``y = row``; x points right, y points down. A physical position is
  ``(x * pixel_size_x, y * pixel_size_y)`` nm. Pixel ``col`` covers
  ``[col - 0.5, col + 0.5]``; the image covers ``[-0.5, width - 0.5]``.
- Vectors are ``(x, y)`` pairs: real space in nm, reciprocal space ``(gx, gy)``
  in 1/nm. An azimuth is measured from +x towards +y (clockwise on screen).
- ``rotation_deg`` is the direction of the first lattice vector ``a1``.

Lattice rendering model
-----------------------
The ideal image of an infinite net of Gaussian columns
``w_j exp(-|r - R - r_j|^2 / 2 sigma^2)`` is the Fourier series

    f(r) = (2 pi sigma^2 / A_cell) sum_G exp(-2 pi^2 sigma^2 |G|^2) F(G) exp(2 pi i G.(r - r0))

over the reciprocal lattice ``G = h b1 + k b2``, with the structure factor
``F(G) = sum_j w_j exp(-2 pi i (h u_j + k v_j))``. It is summed over every
``G`` whose term exceeds ``1e-7`` of the largest, and sampled at the pixel
centres (point sampling, aliasing included, no pixel-area integration). The
image is ``background + contrast * (f - mean f) / (max f - min f)``: its mean
is ``background`` and ``contrast`` is the peak-to-valley amplitude of the
noise-free column pattern; the contrast-to-noise ratio is
``contrast / noise_sigma``. A negative ``contrast`` gives dark columns.

Noise model
-----------
``noise_sigma`` adds Gaussian noise of that standard deviation.
``dose`` draws Poisson noise with ``dose`` electrons per pixel at the
``background`` level: ``image = Poisson(I * dose / background) * background / dose``
(a detector gain of ``background / dose`` counts per electron; with
``background == dose`` the image holds integer counts).

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.perovskite_111(shape=(256, 256), seed=1)
>>> truth.d_angstrom.round(3).tolist(), truth.angle_deg
([4.195, 4.195, 4.195], 60.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidDataError
from ..micrograph import Micrograph
from ..units import pixel_size_pair_nm

__all__ = [
    "LatticeTruth",
    "ParticleTruth",
    "PairTruth",
    "lattice_image",
    "perovskite_111",
    "rocksalt_111",
    "cubic_001",
    "haadf_dots",
    "haadf_particles_image",
    "fig4_pair",
    "reciprocal_basis",
    "sphere_thickness_image",
    "MAPBBR3_A_NM",
    "PBS_A_NM",
    "SRTIO3_A_NM",
]

#: Cubic lattice parameter of CH3NH3PbBr3 (Pm-3m), nm.
MAPBBR3_A_NM = 0.5933
#: Cubic lattice parameter of PbS (Fm-3m, rock salt), nm.
PBS_A_NM = 0.5936
#: Cubic lattice parameter of SrTiO3 (Pm-3m), nm.
SRTIO3_A_NM = 0.3905

#: Terms of the Fourier series below this fraction of the largest are dropped.
_TERM_TOL = 1e-7
#: Two reciprocal vectors whose lengths agree to this relative tolerance are one shell.
_SHELL_RTOL = 1e-6


# ----------------------------------------------------------------------------- geometry


def _net_vectors(a_nm: float, b_nm: float, gamma_deg: float, rotation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Real-space basis ``a1``, ``a2`` as (x, y) nm vectors; a1 along rotation_deg, a2 at gamma_deg from a1."""
    t = math.radians(rotation_deg)
    g = math.radians(gamma_deg)
    a1 = a_nm * np.array([math.cos(t), math.sin(t)])
    a2 = b_nm * np.array([math.cos(t + g), math.sin(t + g)])
    return a1, a2


def reciprocal_basis(a1, a2) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal basis ``b1``, ``b2`` (1/nm, no 2 pi) with ``a_i . b_j = delta_ij``.

    Examples
    --------
    >>> b1, b2 = reciprocal_basis([0.4, 0.0], [0.0, 0.5])
    >>> b1.tolist(), b2.tolist()
    ([2.5, 0.0], [0.0, 2.0])
    """
    A = np.array([a1, a2], dtype=np.float64)
    B = np.linalg.inv(A).T
    return B[0].copy(), B[1].copy()


def _az180(g) -> np.ndarray:
    """Azimuths (degrees, from +x towards +y) of (n, 2) vectors folded into [0, 180), rounding-safe."""
    g = np.atleast_2d(g)
    az = np.degrees(np.arctan2(g[:, 1], g[:, 0])) % 180.0
    return np.where(az > 180.0 - 1e-9, 0.0, az)


def _friedel_representative(h: int, k: int, g: np.ndarray) -> tuple[int, int, np.ndarray]:
    """The member of the Friedel pair +-g whose azimuth lies in [0, 180)."""
    az = math.atan2(g[1], g[0])
    # tolerate rounding at exactly 180 degrees
    if az < -1e-12 or az > math.pi - 1e-12:
        return -h, -k, -g
    return h, k, g


# ----------------------------------------------------------------------------- Fourier series


@dataclass(frozen=True)
class _NetSeries:
    """Fourier terms (one per Friedel pair, plus G = 0) of a net of Gaussian columns."""

    h: np.ndarray  # (n,) int
    k: np.ndarray
    g: np.ndarray  # (n, 2) 1/nm
    coef: np.ndarray  # (n,) complex: f(r) = c0 + sum 2 Re(coef exp(2 pi i G.r))
    c0: float
    p2v: float  # peak-to-valley of f over a unit cell
    mean: float  # = c0


def _structure_factor(h, k, basis) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    F = np.zeros(h.shape, dtype=np.complex128)
    for u, v, w in basis:
        F += w * np.exp(-2j * np.pi * (h * u + k * v))
    return F


def _normalise_basis(basis) -> tuple[tuple[float, float, float], ...]:
    try:
        out = tuple((float(b[0]), float(b[1]), float(b[2]) if len(b) > 2 else 1.0) for b in basis)
    except (TypeError, ValueError, IndexError):
        raise InvalidDataError(f"basis must be a sequence of (frac_u, frac_v, weight), got {basis!r}") from None
    if not out:
        raise InvalidDataError("basis is empty: give at least one (frac_u, frac_v, weight) column")
    return out


def _net_series(a1, a2, basis, sigma_nm: float, *, tol: float = _TERM_TOL, p2v_grid: int = 192) -> _NetSeries:
    b1, b2 = reciprocal_basis(a1, a2)
    area = abs(a1[0] * a2[1] - a1[1] * a2[0])
    wsum = sum(abs(w) for _, _, w in basis)
    # |G| beyond which the Gaussian envelope is below tol
    gmax = math.sqrt(math.log(1.0 / tol) / (2.0 * math.pi**2 * sigma_nm**2))
    hmax = int(math.ceil(gmax * np.linalg.norm(a1))) + 1
    kmax = int(math.ceil(gmax * np.linalg.norm(a2))) + 1
    hh, kk = np.meshgrid(np.arange(-hmax, hmax + 1), np.arange(-kmax, kmax + 1), indexing="ij")
    hh, kk = hh.ravel(), kk.ravel()
    # one per Friedel pair: h > 0, or h == 0 and k > 0 (G = 0 separately)
    half = (hh > 0) | ((hh == 0) & (kk > 0))
    hh, kk = hh[half], kk[half]
    g = hh[:, None] * b1[None, :] + kk[:, None] * b2[None, :]
    g2 = np.einsum("ij,ij->i", g, g)
    pref = 2.0 * math.pi * sigma_nm**2 / area
    env = np.exp(-2.0 * math.pi**2 * sigma_nm**2 * g2)
    F = _structure_factor(hh, kk, basis)
    coef = pref * env * F
    keep = np.abs(coef) > tol * pref * max(wsum, 1e-300)
    hh, kk, g, coef = hh[keep], kk[keep], g[keep], coef[keep]
    c0 = float(pref * sum(w for _, _, w in basis))
    # peak-to-valley over one unit cell, on a fractional grid refined around the extrema
    n = p2v_grid
    u = np.arange(n) / n
    f = _eval_fractional(u, u, hh, kk, coef, c0)
    i_max, i_min = np.unravel_index(np.argmax(f), f.shape), np.unravel_index(np.argmin(f), f.shape)
    fmax = _refine_extremum(u[i_max[0]], u[i_max[1]], 1.0 / n, hh, kk, coef, c0, +1)
    fmin = _refine_extremum(u[i_min[0]], u[i_min[1]], 1.0 / n, hh, kk, coef, c0, -1)
    p2v = max(fmax, float(f.max())) - min(fmin, float(f.min()))
    return _NetSeries(h=hh, k=kk, g=g, coef=coef, c0=c0, p2v=float(p2v), mean=c0)


def _eval_fractional(u, v, hh, kk, coef, c0) -> np.ndarray:
    """f at fractional coordinates (u[i], v[j]) -> array (len(u), len(v))."""
    eu = np.exp(2j * np.pi * np.outer(u, hh))  # (nu, n)
    ev = np.exp(2j * np.pi * np.outer(kk, v))  # (n, nv)
    return c0 + 2.0 * np.real((eu * coef[None, :]) @ ev)


def _refine_extremum(u0, v0, step, hh, kk, coef, c0, sign) -> float:
    best = -np.inf
    for _ in range(3):
        u = u0 + step * np.linspace(-1, 1, 21)
        v = v0 + step * np.linspace(-1, 1, 21)
        f = sign * _eval_fractional(u, v, hh, kk, coef, c0)
        i, j = np.unravel_index(np.argmax(f), f.shape)
        u0, v0, best = u[i], v[j], float(f[i, j])
        step /= 10.0
    return sign * best


def _render_series(series: _NetSeries, rows: np.ndarray, cols: np.ndarray, pixel_size_nm, origin_px,
                   *, dtype=np.float64) -> np.ndarray:
    """Normalised pattern ``(f - mean) / p2v`` at pixel centres ``rows x cols`` (separable outer products)."""
    py, px = pixel_size_nm
    ox, oy = origin_px
    gx, gy = series.g[:, 0], series.g[:, 1]
    amp = 2.0 * np.abs(series.coef) / series.p2v
    phi = np.angle(series.coef)
    # 2 pi G.(r - r0) + phi = theta_x + theta_y, evaluated in float64
    theta_x = 2.0 * np.pi * np.outer(gx, (cols - ox) * px) + phi[:, None]  # (n, W)
    theta_y = 2.0 * np.pi * np.outer((rows - oy) * py, gy)  # (H, n)
    X = np.concatenate([np.cos(theta_x), np.sin(theta_x)], axis=0).astype(dtype)  # (2n, W)
    Y = np.concatenate([np.cos(theta_y) * amp, -np.sin(theta_y) * amp], axis=1).astype(dtype)  # (H, 2n)
    return Y @ X


# ----------------------------------------------------------------------------- truth objects


def _first_order(b1, b2, basis, *, hk_max: int = 8, rel_tol: float = 1e-9):
    """First-order reflections of a net with a basis.

    The shortest shell of reflections with non-zero structure factor, plus
    further shells until they span the plane; one member per Friedel pair
    (azimuth in [0, 180)), sorted by azimuth. Independent of the column width.
    """
    r = np.arange(-hk_max, hk_max + 1)
    hh, kk = np.meshgrid(r, r, indexing="ij")
    hh, kk = hh.ravel(), kk.ravel()
    half = (hh > 0) | ((hh == 0) & (kk > 0))
    hh, kk = hh[half], kk[half]
    F_abs = np.abs(_structure_factor(hh, kk, basis))
    wsum = sum(abs(w) for _, _, w in basis)
    ok = F_abs > rel_tol * wsum
    hh, kk = hh[ok], kk[ok]
    g = hh[:, None] * b1[None, :] + kk[:, None] * b2[None, :]
    gl = np.linalg.norm(g, axis=1)
    order = np.argsort(gl, kind="stable")
    chosen: list[int] = []
    i = 0
    while i < len(order):
        shell_len = gl[order[i]]
        shell = [j for j in order[i:] if abs(gl[j] - shell_len) <= _SHELL_RTOL * shell_len]
        chosen.extend(shell)
        i += len(shell)
        if np.linalg.matrix_rank(g[chosen], tol=1e-9 * shell_len) >= 2:
            break
    if not chosen:
        raise InvalidDataError(f"no reflection with non-zero structure factor up to |h|, |k| = {hk_max}: "
                               "the basis weights cancel", "synth")
    out = [_friedel_representative(int(hh[j]), int(kk[j]), g[j]) for j in chosen]
    out.sort(key=lambda t: round(float(_az180(t[2])[0]), 9))
    return out


def _enumerate_reflections(b1, b2, g_max: float, a1, a2):
    hmax = int(math.ceil(g_max * np.linalg.norm(a1))) + 1
    kmax = int(math.ceil(g_max * np.linalg.norm(a2))) + 1
    hh, kk = np.meshgrid(np.arange(-hmax, hmax + 1), np.arange(-kmax, kmax + 1), indexing="ij")
    hh, kk = hh.ravel(), kk.ravel()
    g = hh[:, None] * b1[None, :] + kk[:, None] * b2[None, :]
    gl = np.linalg.norm(g, axis=1)
    sel = (gl <= g_max * (1 + 1e-12)) & ((hh != 0) | (kk != 0))
    return hh[sel], kk[sel], g[sel], gl[sel]


@dataclass
class LatticeTruth:
    """Ground truth of a :func:`lattice_image`.

    Attributes
    ----------
    pixel_size_nm : (float, float)
        Pixel size (y, x) in nm.
    a1_nm, a2_nm : ndarray (2,)
        Real-space basis vectors (x, y) in nm.
    b1_inv_nm, b2_inv_nm : ndarray (2,)
        Reciprocal basis (gx, gy) in 1/nm, ``a_i . b_j = delta_ij``.
    g_inv_nm : ndarray (n, 2)
        First-order reflections (gx, gy) in 1/nm, one per Friedel pair (the
        member with azimuth in [0, 180)), sorted by azimuth: the shortest
        reflections with non-zero structure factor (and, for a net whose
        shortest shell is collinear, the next shell that spans the plane).
    hk : list of (int, int)
        Net indices ``(h, k)`` of ``g_inv_nm``, ``g = h b1 + k b2``.
    labels : list of str
        Crystallographic labels of ``g_inv_nm`` (3-D Miller indices for the
        crystal presets, ``'(h k)'`` otherwise).
    d_angstrom : ndarray (n,)
        d-spacings ``1 / |g|`` of ``g_inv_nm`` in Å.
    azimuth_deg : ndarray (n,)
        Azimuths of ``g_inv_nm``, degrees from +x towards +y, in [0, 180).
    angle_deg : float
        Angle between the plane families ``b1`` and ``b2``, folded to [0, 90].
    basis : tuple of (u, v, weight)
        Column basis in fractional coordinates of ``a1``, ``a2``.
    origin_px : (float, float)
        Pixel position (x, y) of the column at fractional (0, 0).
    column_sigma_nm, contrast, background, noise_sigma, dose : float
        Rendering parameters (see the module docstring).
    inclusions : list of dict
        One per embedded disk: ``x_px``, ``y_px``, ``radius_nm``,
        ``mismatch``, ``rotation_deg``, ``a1_nm``, ``a2_nm``, ``g_inv_nm``,
        ``d_angstrom``, ``azimuth_deg``, ``contrast``, ``edge_nm``.
    """

    pixel_size_nm: tuple[float, float]
    a1_nm: np.ndarray
    a2_nm: np.ndarray
    b1_inv_nm: np.ndarray
    b2_inv_nm: np.ndarray
    g_inv_nm: np.ndarray
    hk: list
    labels: list
    d_angstrom: np.ndarray
    azimuth_deg: np.ndarray
    angle_deg: float
    basis: tuple
    origin_px: tuple[float, float]
    column_sigma_nm: float
    contrast: float
    background: float
    noise_sigma: float
    dose: float | None
    inclusions: list = field(default_factory=list)
    _series: Any = field(default=None, repr=False)
    _label_fn: Any = field(default=None, repr=False)

    def reflections(self, g_max_inv_nm: float, *, half: bool = False):
        """Every reflection of the net up to ``|g| <= g_max_inv_nm`` with non-zero structure factor.

        Parameters
        ----------
        g_max_inv_nm : float
            Largest ``|g|`` in 1/nm (e.g. the Nyquist frequency ``0.5 / pixel_size_nm``).
        half : bool
            Keep one member of each Friedel pair (azimuth in [0, 180)).

        Returns
        -------
        pandas.DataFrame
            Columns ``h``, ``k``, ``label``, ``gx_inv_nm``, ``gy_inv_nm``,
            ``g_inv_nm``, ``d_angstrom``, ``azimuth_deg`` (in [0, 360), or
            [0, 180) with ``half``), ``amplitude`` (amplitude of the cosine
            fringe in image intensity units: the pattern is
            ``background + sum amplitude cos(2 pi g.(r - r0) + phase)`` over
            one member of each pair) and ``phase_rad``; sorted by ``|g|``
            then azimuth.

        Examples
        --------
        >>> mg, t = cubic_001(shape=(64, 64))
        >>> t.reflections(4.0, half=True)[["label", "d_angstrom"]].round(3).values.tolist()
        [['(1 0 0)', 3.905], ['(0 1 0)', 3.905], ['(1 1 0)', 2.761], ['(-1 1 0)', 2.761]]
        """
        import pandas as pd

        a1, a2 = self.a1_nm, self.a2_nm
        hh, kk, g, gl = _enumerate_reflections(self.b1_inv_nm, self.b2_inv_nm, g_max_inv_nm, a1, a2)
        F = _structure_factor(hh, kk, self.basis)
        wsum = sum(abs(w) for _, _, w in self.basis)
        ok = np.abs(F) > 1e-9 * wsum
        hh, kk, g, gl, F = hh[ok], kk[ok], g[ok], gl[ok], F[ok]
        area = abs(a1[0] * a2[1] - a1[1] * a2[0])
        s = self.column_sigma_nm
        p2v = self._series.p2v if self._series is not None else 1.0
        coef = (2 * math.pi * s**2 / area) * np.exp(-2 * math.pi**2 * s**2 * gl**2) * F
        amp = 2.0 * np.abs(coef) / p2v * abs(self.contrast)
        phase = np.angle(coef) + (math.pi if self.contrast < 0 else 0.0)
        az = np.degrees(np.arctan2(g[:, 1], g[:, 0])) % 360.0
        if half:
            keep = (az < 180.0 - 1e-9) | (az > 360.0 - 1e-9)
            az = np.where(az > 360.0 - 1e-9, 0.0, az)
            hh, kk, g, gl, amp, phase, az = hh[keep], kk[keep], g[keep], gl[keep], amp[keep], phase[keep], az[keep]
        lab = self._label_fn or _label_2d
        df = pd.DataFrame(
            {
                "h": hh.astype(int),
                "k": kk.astype(int),
                "label": [lab(int(a), int(b)) for a, b in zip(hh, kk)],
                "gx_inv_nm": g[:, 0],
                "gy_inv_nm": g[:, 1],
                "g_inv_nm": gl,
                "d_angstrom": 10.0 / gl,
                "azimuth_deg": az,
                "amplitude": amp,
                "phase_rad": np.angle(np.exp(1j * phase)),
            }
        )
        df["_gr"] = np.round(df["g_inv_nm"], 9)
        df["_ar"] = np.round(df["azimuth_deg"], 6)
        df = df.sort_values(["_gr", "_ar"], kind="stable").drop(columns=["_gr", "_ar"]).reset_index(drop=True)
        return df

    def to_dict(self) -> dict:
        """JSON-ready dict (lengths in the units their names state)."""
        return {
            "kind": "lattice",
            "pixel_size_nm": list(self.pixel_size_nm),
            "a1_nm": list(map(float, self.a1_nm)),
            "a2_nm": list(map(float, self.a2_nm)),
            "b1_inv_nm": list(map(float, self.b1_inv_nm)),
            "b2_inv_nm": list(map(float, self.b2_inv_nm)),
            "g_inv_nm": np.asarray(self.g_inv_nm).tolist(),
            "hk": [list(x) for x in self.hk],
            "labels": list(self.labels),
            "d_angstrom": np.asarray(self.d_angstrom).tolist(),
            "azimuth_deg": np.asarray(self.azimuth_deg).tolist(),
            "angle_deg": float(self.angle_deg),
            "basis": [list(b) for b in self.basis],
            "origin_px": list(self.origin_px),
            "column_sigma_nm": self.column_sigma_nm,
            "contrast": self.contrast,
            "background": self.background,
            "noise_sigma": self.noise_sigma,
            "dose": self.dose,
            "inclusions": [_jsonable_inclusion(i) for i in self.inclusions],
        }


def _jsonable_inclusion(inc: dict) -> dict:
    out = {}
    for k, v in inc.items():
        out[k] = np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
    return out


def _label_2d(h: int, k: int) -> str:
    return f"({h} {k})"


# ----------------------------------------------------------------------------- noise


def _apply_noise(img: np.ndarray, rng: np.random.Generator, *, noise_sigma: float, dose, background: float,
                 source: str) -> np.ndarray:
    if dose is not None:
        dose = float(dose)
        if not dose > 0:
            raise InvalidDataError(f"dose must be > 0 electrons/px, got {dose}", source)
        if not background > 0:
            raise InvalidDataError(f"Poisson noise needs background > 0 (it sets the dose level), got {background}",
                                   source)
        if float(img.min()) < 0:
            raise InvalidDataError(
                f"noise-free image goes negative (min {float(img.min()):.4g}): raise background or lower contrast "
                "before adding Poisson noise", source)
        gain = background / dose
        img = rng.poisson(img.astype(np.float64) / gain).astype(np.float64) * gain
    if noise_sigma:
        if noise_sigma < 0:
            raise InvalidDataError(f"noise_sigma must be >= 0, got {noise_sigma}", source)
        img = img + rng.normal(0.0, float(noise_sigma), size=img.shape)
    return img


def _check_shape(shape, source) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidDataError(f"shape must be (height, width), got {shape!r}", source) from None
    if h < 2 or w < 2:
        raise InvalidDataError(f"shape must be at least (2, 2), got {shape!r}", source)
    return h, w


# ----------------------------------------------------------------------------- lattice images


def lattice_image(
    shape=(512, 512),
    *,
    pixel_size_nm=0.02,
    a_nm: float = 0.4,
    b_nm: float | None = None,
    gamma_deg: float = 90.0,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    basis=((0.0, 0.0, 1.0),),
    column_sigma_nm: float = 0.04,
    contrast: float = 1.0,
    background: float = 1.0,
    noise_sigma: float = 0.0,
    dose: float | None = None,
    inclusions: Sequence[dict] = (),
    seed: int | None = 0,
    title: str = "HRTEM",
    dtype=np.float64,
    _label_fn=None,
    _source: str = "synth:lattice_image",
):
    """An HRTEM-like image of a 2-D Bravais net of Gaussian columns, with its ground truth.

    Parameters
    ----------
    shape : (int, int)
        Image (height, width) in pixels.
    pixel_size_nm : float or (float, float)
        Pixel size in nm (a number, or a (y, x) pair).
    a_nm, b_nm : float
        Lengths of ``a1`` and ``a2`` in nm (``b_nm`` defaults to ``a_nm``).
    gamma_deg : float
        Angle from ``a1`` to ``a2`` (90 square/rectangular, 120 hexagonal).
    rotation_deg : float
        Direction of ``a1``, degrees from +x towards +y.
    offset_px : (float, float)
        Pixel position (x, y) of the column at fractional (0, 0).
    basis : sequence of (u, v, weight)
        Columns in fractional coordinates of ``a1``, ``a2`` with their weights.
    column_sigma_nm : float
        Gaussian standard deviation of a column in nm.
    contrast : float
        Peak-to-valley amplitude of the noise-free column pattern (negative:
        dark columns). Contrast-to-noise is ``contrast / noise_sigma``.
    background : float
        Mean intensity of the noise-free image.
    noise_sigma : float
        Standard deviation of additive Gaussian noise.
    dose : float, optional
        Electrons per pixel at the ``background`` level for Poisson noise
        (applied before the Gaussian noise; see the module docstring).
    inclusions : sequence of dict
        Embedded disks, each with keys ``x_px``, ``y_px`` (centre, pixels),
        ``radius_nm``, ``mismatch`` (relative change of the lattice
        parameters: ``d_inclusion = d_matrix * (1 + mismatch)``) and
        optionally ``rotation_deg`` (direction of the inclusion's ``a1``;
        default the matrix's), ``contrast`` (default the matrix's) and
        ``edge_nm`` (width of a linear blend at the rim; default 0 = sharp,
        a pixel belongs to the disk when its centre is within the radius).
        The inclusion's net is coherent with the matrix at the disk centre:
        its origin is the matrix lattice point nearest to the centre.
    seed : int, optional
        Seed of ``numpy.random.default_rng`` for the noise.
    title : str
        Micrograph title.
    dtype : numpy dtype
        Precision of the rendering matrix product (``np.float32`` halves the
        time for very large images; the result is float32 either way).

    Returns
    -------
    mg : Micrograph
        Calibrated image (mode ``'HRTEM'``, 300 kV, source ``'synth:lattice_image'``).
    truth : LatticeTruth
        Exact ground truth (see :class:`LatticeTruth`).

    Examples
    --------
    >>> mg, truth = lattice_image((128, 128), pixel_size_nm=0.02, a_nm=0.4)
    >>> mg.pixel_size_nm, truth.d_angstrom.tolist(), truth.angle_deg
    ((0.02, 0.02), [4.0, 4.0], 90.0)
    """
    source = _source
    h, w = _check_shape(shape, source)
    ps = pixel_size_pair_nm(pixel_size_nm)
    b_nm = a_nm if b_nm is None else b_nm
    for name, v in (("a_nm", a_nm), ("b_nm", b_nm), ("column_sigma_nm", column_sigma_nm)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
            raise InvalidDataError(f"{name} must be a positive number, got {v!r}", source)
    if not 0.0 < float(gamma_deg) % 180.0:
        raise InvalidDataError(f"gamma_deg={gamma_deg} makes a1 and a2 collinear", source)
    basis = _normalise_basis(basis)
    a1, a2 = _net_vectors(a_nm, b_nm, gamma_deg, rotation_deg)
    b1, b2 = reciprocal_basis(a1, a2)
    series = _net_series(a1, a2, basis, column_sigma_nm)
    if series.p2v <= 1e-12 * max(series.c0, 1e-300):
        raise InvalidDataError("the column pattern has no contrast: the basis weights cancel or the columns are "
                               "much wider than the net (lower column_sigma_nm)", source)
    ox, oy = float(offset_px[0]), float(offset_px[1])
    rows = np.arange(h, dtype=np.float64)
    cols = np.arange(w, dtype=np.float64)
    img = background + contrast * _render_series(series, rows, cols, ps, (ox, oy), dtype=dtype)
    img = np.asarray(img, dtype=np.float64)

    inc_truth = []
    for n, inc in enumerate(inclusions or ()):
        img, it = _add_inclusion(img, inc, n, a_nm=a_nm, b_nm=b_nm, gamma_deg=gamma_deg, rotation_deg=rotation_deg,
                                 basis=basis, column_sigma_nm=column_sigma_nm, contrast=contrast,
                                 background=background, ps=ps, origin=(ox, oy), a1=a1, a2=a2, source=source,
                                 label_fn=_label_fn)
        inc_truth.append(it)

    rng = np.random.default_rng(seed)
    img = _apply_noise(img, rng, noise_sigma=noise_sigma, dose=dose, background=background, source=source)

    first = _first_order(b1, b2, basis)
    truth = _lattice_truth(ps, float(gamma_deg), a1, a2, b1, b2, first, basis, (ox, oy), column_sigma_nm, contrast, background,
                           noise_sigma, dose, inc_truth, series, _label_fn)
    mg = Micrograph(
        img.astype(np.float32),
        pixel_size_nm=ps,
        source=source,
        title=title,
        mode="HRTEM",
        beam_energy_kv=300.0,
        metadata={"synth": {"function": source.split(":", 1)[-1], "seed": seed}},
        signals=[title],
        file_format="synth",
    )
    return mg, truth


def _lattice_truth(ps, gamma_deg, a1, a2, b1, b2, first, basis, origin, sigma, contrast, background, noise_sigma, dose,
                   inclusions, series, label_fn) -> LatticeTruth:
    g = np.array([f[2] for f in first])
    hk = [(f[0], f[1]) for f in first]
    lab = label_fn or _label_2d
    return LatticeTruth(
        pixel_size_nm=ps,
        a1_nm=a1,
        a2_nm=a2,
        b1_inv_nm=b1,
        b2_inv_nm=b2,
        g_inv_nm=g,
        hk=hk,
        labels=[lab(a, b) for a, b in hk],
        d_angstrom=10.0 / np.linalg.norm(g, axis=1),
        azimuth_deg=_az180(g),
        angle_deg=_fold90(180.0 - gamma_deg),
        basis=tuple(basis),
        origin_px=tuple(map(float, origin)),
        column_sigma_nm=float(sigma),
        contrast=float(contrast),
        background=float(background),
        noise_sigma=float(noise_sigma),
        dose=None if dose is None else float(dose),
        inclusions=list(inclusions),
        _series=series,
        _label_fn=label_fn,
    )


def _fold90(angle: float) -> float:
    angle = angle % 180.0
    return 180.0 - angle if angle > 90.0 else angle


def _add_inclusion(img, inc, n, *, a_nm, b_nm, gamma_deg, rotation_deg, basis, column_sigma_nm, contrast, background,
                   ps, origin, a1, a2, source, label_fn):
    try:
        xc, yc = float(inc["x_px"]), float(inc["y_px"])
        radius_nm = float(inc["radius_nm"])
        mismatch = float(inc.get("mismatch", 0.0))
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidDataError(f"inclusion {n} needs x_px, y_px, radius_nm and mismatch ({e})", source) from None
    if not radius_nm > 0:
        raise InvalidDataError(f"inclusion {n}: radius_nm must be > 0, got {radius_nm}", source)
    if not mismatch > -1:
        raise InvalidDataError(f"inclusion {n}: mismatch must be > -1, got {mismatch}", source)
    rot = float(inc.get("rotation_deg", rotation_deg))
    c_inc = float(inc.get("contrast", contrast))
    edge_nm = float(inc.get("edge_nm", 0.0))
    s = 1.0 + mismatch
    ia1, ia2 = _net_vectors(a_nm * s, b_nm * s, gamma_deg, rot)
    ib1, ib2 = reciprocal_basis(ia1, ia2)
    series = _net_series(ia1, ia2, basis, column_sigma_nm)
    # coherent at the centre: origin = the matrix lattice point nearest to the disk centre
    py, px = ps
    rel = np.array([(xc - origin[0]) * px, (yc - origin[1]) * py])
    frac = np.linalg.solve(np.array([a1, a2]).T, rel)
    lp = np.round(frac) @ np.array([a1, a2])
    ox_i, oy_i = origin[0] + lp[0] / px, origin[1] + lp[1] / py
    h, w = img.shape
    r_px_x, r_px_y = (radius_nm + edge_nm / 2) / px, (radius_nm + edge_nm / 2) / py
    x0, x1 = max(0, int(math.floor(xc - r_px_x)) - 1), min(w, int(math.ceil(xc + r_px_x)) + 2)
    y0, y1 = max(0, int(math.floor(yc - r_px_y)) - 1), min(h, int(math.ceil(yc + r_px_y)) + 2)
    if x0 < x1 and y0 < y1:
        rows = np.arange(y0, y1, dtype=np.float64)
        cols = np.arange(x0, x1, dtype=np.float64)
        patch = background + c_inc * _render_series(series, rows, cols, ps, (ox_i, oy_i))
        rr = np.hypot(((cols - xc) * px)[None, :], ((rows - yc) * py)[:, None])
        if edge_nm > 0:
            wgt = np.clip((radius_nm - rr) / edge_nm + 0.5, 0.0, 1.0)
        else:
            wgt = (rr <= radius_nm).astype(np.float64)
        sub = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = sub * (1.0 - wgt) + patch * wgt
    first = _first_order(ib1, ib2, basis)
    g = np.array([f[2] for f in first])
    lab = label_fn or _label_2d
    truth = {
        "x_px": xc,
        "y_px": yc,
        "radius_nm": radius_nm,
        "mismatch": mismatch,
        "rotation_deg": rot,
        "contrast": c_inc,
        "edge_nm": edge_nm,
        "origin_px": [float(ox_i), float(oy_i)],
        "a1_nm": ia1,
        "a2_nm": ia2,
        "b1_inv_nm": ib1,
        "b2_inv_nm": ib2,
        "g_inv_nm": g,
        "hk": [[f[0], f[1]] for f in first],
        "labels": [lab(f[0], f[1]) for f in first],
        "d_angstrom": 10.0 / np.linalg.norm(g, axis=1),
        "azimuth_deg": _az180(g),
    }
    return img, truth


# ----------------------------------------------------------------------------- crystal presets


def _label_perovskite_111(h: int, k: int) -> str:
    # a1 = proj[100], a2 = proj[010] along [111]: (h, k) -> (H K L) = (h, k, -h-k)
    return _miller(h, k, -h - k)


def _label_rocksalt_111(h: int, k: int) -> str:
    # a1 = proj 1/2[110], a2 = proj 1/2[011]: (h, k) -> (-2k, 2h+2k, -2h)
    return _miller(-2 * k, 2 * h + 2 * k, -2 * h)


def _label_cubic_001(h: int, k: int) -> str:
    return _miller(h, k, 0)


def _miller(*ix: int) -> str:
    return "(" + " ".join(str(int(i)) for i in ix) + ")"


def perovskite_111(
    shape=(1024, 1024),
    *,
    pixel_size_nm=0.025,
    a_nm: float = MAPBBR3_A_NM,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    column_sigma_nm: float = 0.08,
    weights=(1.0, 0.35),
    **kwargs,
):
    """ABX3 cubic perovskite (Pm-3m, default MAPbBr3, a = 5.933 Å) viewed along [111].

    The projected columns form a hexagonal net of spacing ``a * sqrt(2/3)``
    (``a1`` = projection of [100], ``a2`` = projection of [010], 120° apart):
    Pb + CH3NH3 columns at the net points and Br columns at the three
    half-way positions. The first-order reflections are the six {1-10} at
    ``d = a / sqrt(2)`` (4.195 Å), 60° apart; the truth lists the three with
    azimuth in [0, 180) and labels them with 3-D Miller indices.

    Parameters
    ----------
    shape, pixel_size_nm, rotation_deg, offset_px, column_sigma_nm
        As in :func:`lattice_image`.
    a_nm : float
        Cubic lattice parameter in nm.
    weights : (float, float)
        Column weights of (Pb + MA) and Br.
    **kwargs
        Passed to :func:`lattice_image` (``contrast``, ``background``,
        ``noise_sigma``, ``dose``, ``inclusions``, ``seed`` ...).

    Examples
    --------
    >>> mg, t = perovskite_111(shape=(256, 256))
    >>> t.labels, round(t.angle_deg, 6)
    (['(1 0 -1)', '(0 1 -1)', '(-1 1 0)'], 60.0)
    """
    p = a_nm * math.sqrt(2.0 / 3.0)
    w0, wbr = (float(w) for w in weights)
    basis = ((0.0, 0.0, w0), (0.5, 0.0, wbr), (0.0, 0.5, wbr), (0.5, 0.5, wbr))
    kwargs.setdefault("title", "HRTEM")
    return lattice_image(shape, pixel_size_nm=pixel_size_nm, a_nm=p, b_nm=p, gamma_deg=120.0,
                         rotation_deg=rotation_deg, offset_px=offset_px, basis=basis,
                         column_sigma_nm=column_sigma_nm, _label_fn=_label_perovskite_111,
                         _source="synth:perovskite_111", **kwargs)


def rocksalt_111(
    shape=(1024, 1024),
    *,
    pixel_size_nm=0.025,
    a_nm: float = PBS_A_NM,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    column_sigma_nm: float = 0.05,
    **kwargs,
):
    """Rock-salt crystal (Fm-3m, default PbS, a = 5.936 Å) viewed along [111].

    Every projected column holds Pb and S (ABC stacking), so the columns form
    a single hexagonal net of spacing ``a / sqrt(6)``. The first-order
    reflections are the six {2-20} at ``d = a / (2 sqrt 2)`` (2.099 Å); the
    {1-10} (4.2 Å) reflections are absent.

    Examples
    --------
    >>> mg, t = rocksalt_111(shape=(128, 128))
    >>> t.d_angstrom.round(4).tolist(), t.labels[0]
    ([2.0987, 2.0987, 2.0987], '(0 2 -2)')
    """
    p = a_nm / math.sqrt(6.0)
    kwargs.setdefault("title", "HRTEM")
    return lattice_image(shape, pixel_size_nm=pixel_size_nm, a_nm=p, b_nm=p, gamma_deg=120.0,
                         rotation_deg=rotation_deg, offset_px=offset_px, basis=((0.0, 0.0, 1.0),),
                         column_sigma_nm=column_sigma_nm, _label_fn=_label_rocksalt_111,
                         _source="synth:rocksalt_111", **kwargs)


def cubic_001(
    shape=(512, 512),
    *,
    a_nm: float = SRTIO3_A_NM,
    pixel_size_nm=0.02,
    rotation_deg: float = 0.0,
    offset_px=(0.0, 0.0),
    column_sigma_nm: float = 0.05,
    basis=((0.0, 0.0, 1.0),),
    **kwargs,
):
    """Simple cubic crystal (default a = 3.905 Å, SrTiO3) viewed along [001]: a square net.

    First-order reflections {100} at ``d = a`` (the truth lists (1 0 0) and
    (0 1 0), 90° apart); :meth:`LatticeTruth.reflections` also gives the
    {110} at ``d = a / sqrt 2``.

    Examples
    --------
    >>> mg, t = cubic_001(shape=(128, 128))
    >>> t.labels, t.d_angstrom.round(4).tolist(), t.angle_deg
    (['(1 0 0)', '(0 1 0)'], [3.905, 3.905], 90.0)
    """
    kwargs.setdefault("title", "HRTEM")
    return lattice_image(shape, pixel_size_nm=pixel_size_nm, a_nm=a_nm, b_nm=a_nm, gamma_deg=90.0,
                         rotation_deg=rotation_deg, offset_px=offset_px, basis=basis,
                         column_sigma_nm=column_sigma_nm, _label_fn=_label_cubic_001,
                         _source="synth:cubic_001", **kwargs)


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
        out[y0:y1, x0:x1] += _sphere_pixel_means(float(xc) * px, float(yc) * py, R, col_edges, row_edges,
                                                 supersample=supersample)
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
    if probe_sigma_nm and probe_sigma_nm > 0:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, sigma=(probe_sigma_nm / ps[0], probe_sigma_nm / ps[1]), mode="reflect",
                              truncate=4.0)
    img = _apply_noise(img, rng, noise_sigma=0.0, dose=dose, background=background, source=source)
    return Micrograph(
        img.astype(np.float32),
        pixel_size_nm=ps,
        source=source,
        title=title,
        mode="HAADF",
        beam_energy_kv=300.0,
        metadata={"synth": {"function": "haadf", "seed": seed}},
        signals=[title],
        file_format="synth",
    )


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
    hint = (f"the field is too crowded ({crowd:.0%} of it covered, counting half the minimum gap; random "
            "placement jams near 55 %): use fewer or smaller particles or a larger shape")

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
    import pandas as pd

    source = "synth:haadf_dots"
    h, w = _check_shape(shape, source)
    ps = pixel_size_pair_nm(pixel_size_nm)
    n_particles, n_touching_pairs = int(n_particles), int(n_touching_pairs)
    if n_particles < 0 or n_touching_pairs < 0 or 2 * n_touching_pairs > n_particles:
        raise InvalidDataError(f"need 0 <= 2 * n_touching_pairs <= n_particles, got {n_touching_pairs} pairs and "
                               f"{n_particles} particles", source)
    if not diameter_nm > 0 or not rsd >= 0:
        raise InvalidDataError(f"diameter_nm must be > 0 and rsd >= 0, got {diameter_nm}, {rsd}", source)
    rng = np.random.default_rng(seed)
    diam = _draw_diameters(rng, n_particles, float(diameter_nm), float(rsd), distribution)
    xs, ys, pair, gaps = _place_particles(rng, h, w, ps, diam, n_touching_pairs, allow_edge, float(min_gap_nm),
                                          float(max_touching_gap_nm), 5000, source)
    py, px = ps
    R = diam / 2.0
    edge = ((xs - R / px) < -0.5) | ((xs + R / px) > w - 0.5) | ((ys - R / py) < -0.5) | ((ys + R / py) > h - 0.5)
    img_seed = int(rng.integers(0, 2**63 - 1))
    mg = haadf_particles_image(
        (h, w), xs, ys, diam, pixel_size_nm=ps, reference_diameter_nm=float(diameter_nm), background=background,
        gradient=gradient, particle_contrast=particle_contrast, probe_sigma_nm=probe_sigma_nm, dose=dose,
        seed=img_seed, title=title, supersample=supersample,
    )
    mg.source = source
    mg.metadata = {"synth": {"function": "haadf_dots", "seed": seed}}
    df = pd.DataFrame(
        {
            "x_px": xs,
            "y_px": ys,
            "diameter_nm": diam,
            "diameter_px": diam / px,
            "edge": edge.astype(bool),
            "touching": pair >= 0,
            "pair": pair,
            "gap_nm": gaps,
        }
    )
    truth = ParticleTruth(particles=df, pixel_size_nm=ps, diameter_nm=float(diameter_nm), rsd=float(rsd),
                          background=float(background), gradient=float(gradient),
                          particle_contrast=float(particle_contrast), probe_sigma_nm=float(probe_sigma_nm),
                          dose=None if dose is None else float(dose), shape=(h, w))
    return mg, truth


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
    import pandas as pd

    source = "synth:fig4_pair"
    hh, hw = _check_shape(hrtem_shape, source)
    dh, dw = _check_shape(haadf_shape, source)
    ps_hr = float(hrtem_pixel_size_nm)
    field_h, field_w = hh * ps_hr, hw * ps_hr
    ps_hd = (field_h / dh, field_w / dw)
    rng = np.random.default_rng(seed)
    diam = _draw_diameters(rng, n_dots, float(dot_diameter_nm), float(dot_rsd), "normal")
    # dots well inside and apart: one per quadrant, jittered
    quads = [(0.27, 0.28), (0.72, 0.3), (0.3, 0.73), (0.7, 0.7), (0.5, 0.5), (0.5, 0.15), (0.15, 0.5), (0.85, 0.5)]
    if n_dots > len(quads):
        raise InvalidDataError(f"fig4_pair places at most {len(quads)} dots, got n_dots={n_dots}", source)
    x_nm = np.array([quads[i][0] for i in range(n_dots)]) * field_w + rng.uniform(-0.05, 0.05, n_dots) * field_w
    y_nm = np.array([quads[i][1] for i in range(n_dots)]) * field_h + rng.uniform(-0.05, 0.05, n_dots) * field_h
    # pixel centres: HRTEM pixel i covers [i, i+1] * ps from the field corner
    x_hr, y_hr = x_nm / ps_hr - 0.5, y_nm / ps_hr - 0.5
    x_hd, y_hd = x_nm / ps_hd[1] - 0.5, y_nm / ps_hd[0] - 0.5
    incl = [
        {"x_px": float(x), "y_px": float(y), "radius_nm": float(d) / 2.0, "mismatch": float(mismatch),
         "contrast": float(hrtem_contrast * dot_contrast), "edge_nm": float(edge_nm)}
        for x, y, d in zip(x_hr, y_hr, diam)
    ]
    hrtem_seed, haadf_seed = (int(s) for s in rng.integers(0, 2**63 - 1, size=2))
    hrtem, lt = perovskite_111((hh, hw), pixel_size_nm=ps_hr, rotation_deg=rotation_deg, contrast=hrtem_contrast,
                               noise_sigma=hrtem_noise_sigma, dose=hrtem_dose, inclusions=incl, seed=hrtem_seed,
                               background=hrtem_background)
    hrtem.source = source + ":hrtem"
    haadf = haadf_particles_image((dh, dw), x_hd, y_hd, diam, pixel_size_nm=ps_hd,
                                  reference_diameter_nm=float(dot_diameter_nm), background=haadf_background,
                                  gradient=0.15, particle_contrast=haadf_particle_contrast,
                                  probe_sigma_nm=probe_sigma_nm, dose=haadf_dose, seed=haadf_seed)
    haadf.source = source + ":haadf"
    R = diam / 2.0
    pdf = pd.DataFrame({"x_px": x_hd, "y_px": y_hd, "diameter_nm": diam, "diameter_px": diam / ps_hd[1],
                        "edge": ((x_hd - R / ps_hd[1]) < -0.5) | ((x_hd + R / ps_hd[1]) > dw - 0.5)
                        | ((y_hd - R / ps_hd[0]) < -0.5) | ((y_hd + R / ps_hd[0]) > dh - 0.5),
                        "touching": np.zeros(n_dots, bool), "pair": -np.ones(n_dots, int),
                        "gap_nm": np.full(n_dots, np.nan)})
    pt = ParticleTruth(particles=pdf, pixel_size_nm=ps_hd, diameter_nm=float(dot_diameter_nm), rsd=float(dot_rsd),
                       background=float(haadf_background), gradient=0.15,
                       particle_contrast=float(haadf_particle_contrast), probe_sigma_nm=float(probe_sigma_nm),
                       dose=None if haadf_dose is None else float(haadf_dose), shape=(dh, dw))
    dots = pd.DataFrame({
        "x_nm": x_nm, "y_nm": y_nm, "x_hrtem_px": x_hr, "y_hrtem_px": y_hr, "x_haadf_px": x_hd,
        "y_haadf_px": y_hd, "diameter_nm": diam, "mismatch": float(mismatch),
        "d_angstrom": [float(i["d_angstrom"][0]) for i in lt.inclusions],
    })
    return hrtem, haadf, PairTruth(lattice=lt, particles=pt, dots=dots, field_nm=(field_h, field_w))
