"""Part of :mod:`_core` (see its docstring): series."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidDataError

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
    """F at fractional coordinates (u[i], v[j]) -> array (len(u), len(v))."""
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


def _render_series(
    series: _NetSeries, rows: np.ndarray, cols: np.ndarray, pixel_size_nm, origin_px, *, dtype=np.float64
) -> np.ndarray:
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
