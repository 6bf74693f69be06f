"""Numba kernels of the blurred projected-sphere profile ``g(rho, s)``, each beside its numpy reference.

``g(rho, s)`` is the chord length ``2*sqrt(1 - rho**2)`` of a unit sphere blurred by a 2-D Gaussian of
standard deviation ``s`` (in units of the radius): the intensity model of one HAADF dot
(:mod:`latticefit.particles._fit_kernels`).

- :func:`sphere_profile_table` looks ``g`` up in a table built once (:class:`ProfileTable`,
  :func:`profile_table`; kept on disk beside numba's cache, :func:`table_values`; :func:`table_lookup` is the
  numba lookup of one point);
- :func:`sphere_profile_direct` evaluates one value by quadrature;
- :func:`sphere_profile_reference` is the numpy brute-force reference (2-D pixel integration).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
from numba import njit, prange

__all__ = [
    "TABLE_RHO_MAX",
    "TABLE_S_MIN",
    "TABLE_S_MAX",
    "ProfileTable",
    "profile_table",
    "sphere_profile_table",
    "sphere_profile_direct",
    "sphere_profile_reference",
    "table_lookup",
]

TABLE_RHO_MAX = 4.0
TABLE_S_MIN = 0.006
TABLE_S_MAX = 0.5
TABLE_N_RHO = 3201  # step 1/800
TABLE_N_S = 64

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)


# ----------------------------------------------------------------- the profile
@njit(cache=True)
def _blurred_ball(r, s):
    """Radial profile of a unit ball convolved with an isotropic 3-D Gaussian of std ``s``."""
    a = 1.0 / (s * math.sqrt(2.0))
    if r < 1e-9:
        # limit r -> 0
        return math.erf(a) - 2.0 * a / math.sqrt(math.pi) * math.exp(-a * a)
    t1 = 0.5 * (math.erf((1.0 - r) * a) + math.erf((1.0 + r) * a))
    t2 = (
        s
        / (r * math.sqrt(2.0 * math.pi))
        * (math.exp(-((1.0 - r) ** 2) / (2.0 * s * s)) - math.exp(-((1.0 + r) ** 2) / (2.0 * s * s)))
    )
    return t1 - t2


@njit(cache=True)
def _profile_value(rho, s, glx, glw):
    # The 2-D blurred projection of a ball equals the projection of the ball
    # blurred in 3-D (blurring along z does not change a projection):
    # g(rho) = 2 * int_0^inf u(sqrt(rho^2 + z^2)) dz, u = blurred ball.
    r_in = 1.0 - 7.0 * s
    r_out = 1.0 + 7.0 * s
    za = 0.0
    if r_in > rho:
        za = math.sqrt(r_in * r_in - rho * rho)
    if r_out <= rho:
        return 0.0
    zb = math.sqrt(r_out * r_out - rho * rho)
    total = za  # u == 1 to 1e-11 inside r_in
    half = 0.5 * (zb - za)
    mid = 0.5 * (zb + za)
    acc = 0.0
    for i in range(glx.shape[0]):
        z = mid + half * glx[i]
        acc += glw[i] * _blurred_ball(math.sqrt(rho * rho + z * z), s)
    total += acc * half
    return 2.0 * total


def sphere_profile_direct(rho, s):
    """Blurred projected unit-sphere profile ``g(rho, s)`` by quadrature (no table).

    ``g(0, 0) = 2`` (the chord through the centre); ``s`` is the Gaussian
    standard deviation in units of the radius.
    """
    rho = np.atleast_1d(np.asarray(rho, dtype=np.float64))
    out = np.empty(rho.shape)
    for i, r in enumerate(rho.ravel()):
        out.flat[i] = _profile_value(float(r), float(s), _GL_X, _GL_W)
    return out


@njit(cache=True, parallel=True)
def _build_table(rho_grid, s_grid, glx, glw):
    out = np.empty((s_grid.shape[0], rho_grid.shape[0]))
    for k in prange(s_grid.shape[0]):
        for i in range(rho_grid.shape[0]):
            out[k, i] = _profile_value(rho_grid[i], s_grid[k], glx, glw)
    return out


def _cache_path(rho, s) -> Path:
    """Where the table of grids ``rho``, ``s`` is kept: numba's cache folder, keyed by this module's source."""
    key = hashlib.sha1(Path(__file__).read_bytes() + rho.tobytes() + s.tobytes()).hexdigest()[:16]
    folder = os.environ.get("NUMBA_CACHE_DIR") or Path(__file__).parent / "__pycache__"
    return Path(folder) / f"sphere_profile_table_{key}.npy"


def table_values(rho, s, *, cache: bool = True):
    """``g`` on the grids ``rho`` x ``s`` (:func:`_build_table`), read from and written to a disk cache.

    The quadrature of 200 000 values takes about 0.2 s at every start of a command; the cache is keyed by
    the source of this module and the grids, so any change to the model builds it again. A cache that
    cannot be read or written is passed over (the table is then built in memory).
    """
    path = _cache_path(rho, s) if cache else None
    if path is not None and path.is_file():
        try:
            g = np.load(path, allow_pickle=False)
            if g.shape == (s.size, rho.size) and g.dtype == np.float64:
                return g
        except (OSError, ValueError):
            pass
    g = _build_table(rho, s, _GL_X, _GL_W)
    if path is not None:
        try:  # written under a unique name and renamed: batch workers may race for it
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, g, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            pass
    return g


class ProfileTable:
    """Tabulated ``g(rho, s)`` with its derivatives on a (log s, rho) grid."""

    def __init__(self, n_rho: int = TABLE_N_RHO, n_s: int = TABLE_N_S, *, cache: bool = True):
        self.rho = np.linspace(0.0, TABLE_RHO_MAX, n_rho)
        self.log_s = np.linspace(math.log(TABLE_S_MIN), math.log(TABLE_S_MAX), n_s)
        s = np.exp(self.log_s)
        g = table_values(self.rho, s, cache=cache)
        self.g = g
        self.g_rho = np.gradient(g, self.rho, axis=1)
        # derivative with respect to s (not log s)
        self.g_s = np.gradient(g, self.log_s, axis=0) / s[:, None]
        self.drho = float(self.rho[1] - self.rho[0])
        self.dlogs = float(self.log_s[1] - self.log_s[0])
        self.packed = np.ascontiguousarray(np.stack([self.g, self.g_rho, self.g_s]))
        self.params = np.array([self.drho, self.log_s[0], self.dlogs], dtype=np.float64)

    def __call__(self, rho, s):
        """Bilinear lookup of (g, dg/drho, dg/ds) at arrays ``rho`` and ``s``."""
        rho = np.asarray(rho, dtype=np.float64)
        s = np.broadcast_to(np.asarray(s, dtype=np.float64), rho.shape)
        out = np.empty((3,) + rho.shape)
        _lookup_many(rho.ravel(), np.ascontiguousarray(s).ravel(), self.packed, self.params, out.reshape(3, -1))
        return out[0], out[1], out[2]


_TABLE: ProfileTable | None = None


def profile_table() -> ProfileTable:
    """The shared profile table (read once per process from its disk cache, or built: ~0.2 s)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = ProfileTable()
    return _TABLE


def sphere_profile_table(rho, s):
    """``g(rho, s)`` from the shared table (bilinear in rho and log s)."""
    return profile_table()(rho, s)[0]


@njit(cache=True)
def table_lookup(rho, s, tab, tp):
    """(g, g_rho, g_s) at one point; zero beyond the table's rho range, s clamped."""
    k, ts = _s_index(s, tp, tab.shape[1])
    return _lookup_k(rho, k, ts, tab, tp)


@njit(cache=True)
def _s_index(s, tp, ns):
    """Grid cell and fraction of ``s`` on the table's log-s axis (clamped)."""
    if s < 1e-12:
        s = 1e-12
    fs = (math.log(s) - tp[1]) / tp[2]
    if fs < 0.0:
        fs = 0.0
    elif fs > ns - 1.000001:
        fs = ns - 1.000001
    k = int(fs)
    if k >= ns - 1:
        k = ns - 2
    return k, fs - k


@njit(cache=True)
def _lookup_k(rho, k, ts, tab, tp):
    """(g, g_rho, g_s) at ``rho`` for a precomputed s cell ``(k, ts)``."""
    fr = rho / tp[0]
    nrho = tab.shape[2]
    if fr >= nrho - 1:
        return 0.0, 0.0, 0.0
    i = int(fr)
    tr = fr - i
    w00 = (1.0 - ts) * (1.0 - tr)
    w01 = (1.0 - ts) * tr
    w10 = ts * (1.0 - tr)
    w11 = ts * tr
    g = w00 * tab[0, k, i] + w01 * tab[0, k, i + 1] + w10 * tab[0, k + 1, i] + w11 * tab[0, k + 1, i + 1]
    gr = w00 * tab[1, k, i] + w01 * tab[1, k, i + 1] + w10 * tab[1, k + 1, i] + w11 * tab[1, k + 1, i + 1]
    gs = w00 * tab[2, k, i] + w01 * tab[2, k, i + 1] + w10 * tab[2, k + 1, i] + w11 * tab[2, k + 1, i + 1]
    return g, gr, gs


@njit(cache=True)
def _lookup_many(rho, s, tab, tp, out):
    for i in range(rho.shape[0]):
        g, gr, gs = table_lookup(rho[i], s[i], tab, tp)
        out[0, i] = g
        out[1, i] = gr
        out[2, i] = gs


def sphere_profile_reference(x, y, radius, sigma, *, n_sub: int = 16, n_z: int = 0):
    """Brute-force pixel-integrated blurred sphere at pixel centres ``(x, y)``.

    The chord length ``2*sqrt(R^2 - r^2)`` is sampled on an ``n_sub x n_sub``
    sub-grid of every pixel of a large canvas, blurred by a Gaussian of std
    ``sigma`` (px) with an FFT, and block-averaged back to pixels. Slow; for tests.

    Parameters
    ----------
    x, y : ndarray
        Pixel-centre offsets from the sphere centre (px), same shape.
    radius, sigma : float
        Sphere radius and Gaussian std in px.

    Returns
    -------
    ndarray
        Mean of the blurred chord length over each pixel (px units of length).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    half = int(math.ceil(radius + 6 * sigma + 2 + max(np.abs(x).max(), np.abs(y).max())))
    n = 2 * half + 1
    sub = (np.arange(n * n_sub) + 0.5) / n_sub - half - 0.5
    xx, yy = np.meshgrid(sub, sub)
    chord = 2.0 * np.sqrt(np.clip(radius**2 - xx**2 - yy**2, 0.0, None))
    if sigma > 0:
        f = np.fft.fftfreq(chord.shape[0], d=1.0 / n_sub)
        kx, ky = np.meshgrid(f, f)
        tf = np.exp(-2 * (np.pi**2) * (sigma**2) * (kx**2 + ky**2))
        chord = np.fft.ifft2(np.fft.fft2(chord) * tf).real
    pix = chord.reshape(n, n_sub, n, n_sub).mean(axis=(1, 3))
    ix = np.rint(x).astype(int) + half
    iy = np.rint(y).astype(int) + half
    return pix[iy, ix]
