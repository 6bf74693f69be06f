"""Numba kernels of the HAADF particle analysis, each paired with a pure-numpy reference.

The kernels are the hot loops of :mod:`latticefit.particles`:

- :func:`sphere_profile_table` tabulates the projected-sphere profile blurred by
  a Gaussian (the intensity model of a dot); :func:`sphere_profile_direct`
  evaluates one value by quadrature, :func:`sphere_profile_reference` is the
  numpy brute-force reference (2-D pixel integration);
- :func:`scale_space_maxima` / :func:`scale_space_maxima_ref` find the local
  maxima of a (scale, y, x) Laplacian-of-Gaussian stack above a per-scale threshold;
- :func:`prune_blobs` / :func:`prune_blobs_ref` keep the strongest of
  overlapping detections;
- :func:`paint_disks` / :func:`paint_disks_ref` rasterise disks;
- :func:`fit_groups` is a Levenberg-Marquardt fit of groups of touching
  blurred spheres over a quadratic background (one group per bounding-box patch),
  run in parallel over the groups; :func:`sphere_model_ref` evaluates the same
  model and its Jacobian with numpy for the tests.

Model (fit units are pixels of the fitted patch)::

    I(x, y) = b0 + bx*(x - xc) + by*(y - yc)
              + bxx*u**2 + bxy*u*v + byy*v**2        (u = (x - xc)/(xc + 1), v = (y - yc)/(yc + 1))
              + sum_k H_k / 2 * g(r_k / R_k, s_eff / R_k)

The background is a quadratic surface (``N_BACKGROUND = 6`` terms): over a
patch a few particle diameters wide a real (or synthetic) background curves,
and on well-exposed images a plane leaves a size error larger than the
statistical one. The quadratic terms use coordinates scaled to about +-1 over
the patch so that the Fisher matrix stays well conditioned.

where ``g(rho, s)`` is the chord length ``2*sqrt(1 - rho**2)`` of a unit sphere
blurred by a 2-D Gaussian of standard deviation ``s`` (so ``H`` is the peak
height of a sharp sphere, proportional to amplitude * R), and
``s_eff**2 = sigma_probe**2 + 1/12`` adds the pixel box (variance 1/12 per axis).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: number of background terms of a group's parameter vector (quadratic surface)
N_BACKGROUND = 6

__all__ = [
    "N_BACKGROUND",
    "TABLE_RHO_MAX",
    "TABLE_S_MIN",
    "TABLE_S_MAX",
    "ProfileTable",
    "profile_table",
    "sphere_profile_table",
    "sphere_profile_direct",
    "sphere_profile_reference",
    "table_lookup",
    "scale_space_maxima",
    "scale_space_maxima_ref",
    "prune_blobs",
    "prune_blobs_ref",
    "bin_image",
    "fit_groups",
    "sphere_model_ref",
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


class ProfileTable:
    """Tabulated ``g(rho, s)`` with its derivatives on a (log s, rho) grid."""

    def __init__(self, n_rho: int = TABLE_N_RHO, n_s: int = TABLE_N_S):
        self.rho = np.linspace(0.0, TABLE_RHO_MAX, n_rho)
        self.log_s = np.linspace(math.log(TABLE_S_MIN), math.log(TABLE_S_MAX), n_s)
        s = np.exp(self.log_s)
        g = _build_table(self.rho, s, _GL_X, _GL_W)
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
    """The shared profile table (built once per process, ~0.1 s)."""
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
def _s_cells(p, npart, fit_sigma, s_fixed2, tab, tp):
    """Per-sphere s-cell (k, ts) of the current parameters: computed once per model evaluation."""
    nb = N_BACKGROUND + 1 if fit_sigma else N_BACKGROUND
    s2 = (p[N_BACKGROUND] * p[N_BACKGROUND] + 1.0 / 12.0) if fit_sigma else s_fixed2
    seff = math.sqrt(s2)
    cells = np.empty((npart, 2))
    for k in range(npart):
        R = p[nb + 4 * k + 2]
        if R < 0.05:
            R = 0.05
        kk, ts = _s_index(seff / R, tp, tab.shape[1])
        cells[k, 0] = kk
        cells[k, 1] = ts
    return cells


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


# ----------------------------------------------------------- scale-space maxima
@njit(cache=True)
def scale_space_maxima(stack, thresholds, border):
    """Local maxima of ``stack[k, y, x]`` over the 3x3x3 neighbourhood above ``thresholds[k]``.

    A point is kept when its value exceeds the threshold of its scale, is
    ``>=`` every neighbour (scales beyond the stack and pixels beyond the image
    are not neighbours) and is strictly greater than the neighbours that come
    before it in raster order (so a flat plateau yields one point). Pixels within
    ``border`` of the image edge are skipped.

    Returns
    -------
    ndarray (n, 4)
        Rows ``(k, y, x, value)``.
    """
    ns, h, w = stack.shape
    cap = 4096
    out = np.empty((cap, 4))
    n = 0
    for k in range(ns):
        thr = thresholds[k]
        for i in range(border, h - border):
            for j in range(border, w - border):
                v = stack[k, i, j]
                if v <= thr:
                    continue
                ok = True
                for dk in range(-1, 2):
                    kk = k + dk
                    if kk < 0 or kk >= ns:
                        continue
                    for di in range(-1, 2):
                        ii = i + di
                        if ii < 0 or ii >= h:
                            continue
                        for dj in range(-1, 2):
                            jj = j + dj
                            if jj < 0 or jj >= w:
                                continue
                            if dk == 0 and di == 0 and dj == 0:
                                continue
                            u = stack[kk, ii, jj]
                            before = (dk < 0) or (dk == 0 and (di < 0 or (di == 0 and dj < 0)))
                            if u > v or (before and u == v):
                                ok = False
                                break
                        if not ok:
                            break
                    if not ok:
                        break
                if ok:
                    if n == cap:
                        bigger = np.empty((cap * 2, 4))
                        bigger[:cap] = out
                        out = bigger
                        cap *= 2
                    out[n, 0] = k
                    out[n, 1] = i
                    out[n, 2] = j
                    out[n, 3] = v
                    n += 1
    return out[:n].copy()


def scale_space_maxima_ref(stack, thresholds, border):
    """Numpy reference of :func:`scale_space_maxima` (same rows, same order)."""
    from scipy import ndimage as ndi

    stack = np.asarray(stack, dtype=np.float64)
    ns, h, w = stack.shape
    padded = np.pad(stack, 1, mode="constant", constant_values=-np.inf)
    keep = stack > np.asarray(thresholds)[:, None, None]
    for dk in (-1, 0, 1):
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if dk == di == dj == 0:
                    continue
                nb = padded[1 + dk : 1 + dk + ns, 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
                before = (dk < 0) or (dk == 0 and (di < 0 or (di == 0 and dj < 0)))
                keep &= (nb < stack) if before else (nb <= stack)
    del ndi
    if border > 0:
        keep[:, :border, :] = False
        keep[:, h - border :, :] = False
        keep[:, :, :border] = False
        keep[:, :, w - border :] = False
    k, i, j = np.nonzero(keep)
    return np.column_stack([k, i, j, stack[k, i, j]]).astype(np.float64)


# ----------------------------------------------------------------------- prune
@njit(cache=True)
def prune_blobs(y, x, r, strength, overlap):
    """Greedy non-maximum suppression of blobs.

    Blobs are visited from the strongest; one is rejected when its centre lies
    closer than ``max(r_i, r_j) + overlap * min(r_i, r_j)`` to an already
    accepted blob ``j`` (two touching spheres, ``d = r_i + r_j``, both stay for
    ``overlap < 1``; a small blob centred on the rim of a larger one goes).

    Returns
    -------
    ndarray of bool
        ``True`` for the kept blobs (input order).
    """
    n = y.shape[0]
    order = np.argsort(-strength, kind="mergesort")
    keep = np.zeros(n, dtype=np.bool_)
    acc = np.empty(n, dtype=np.int64)
    na = 0
    for oi in range(n):
        i = order[oi]
        ok = True
        for a in range(na):
            j = acc[a]
            lim = max(r[i], r[j]) + overlap * min(r[i], r[j])
            dy = y[i] - y[j]
            dx = x[i] - x[j]
            if dy * dy + dx * dx < lim * lim:
                ok = False
                break
        if ok:
            keep[i] = True
            acc[na] = i
            na += 1
    return keep


def prune_blobs_ref(y, x, r, strength, overlap):
    """Pure-python reference of :func:`prune_blobs`."""
    order = np.argsort(-np.asarray(strength), kind="mergesort")
    kept: list[int] = []
    for i in order:
        if all(np.hypot(y[i] - y[j], x[i] - x[j]) >= max(r[i], r[j]) + overlap * min(r[i], r[j]) for j in kept):
            kept.append(int(i))
    out = np.zeros(len(y), dtype=bool)
    out[kept] = True
    return out


# ----------------------------------------------------------------------- binning
def bin_image(img, f):
    """Mean over ``f x f`` blocks (the ragged last row/column of blocks is dropped), float32.

    Plain numpy (a reshape and two sums run at C speed; a numba kernel is not faster).
    """
    f = int(f)
    h, w = img.shape[0] // f, img.shape[1] // f
    a = np.asarray(img)[: h * f, : w * f]
    out = a.reshape(h, f, w, f).sum(axis=3, dtype=np.float64).sum(axis=1)
    return (out / (f * f)).astype(np.float32)


# ----------------------------------------------------------------- model + fit
@njit(cache=True)
def _model_point(xx, yy, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, jac, cells):
    """Model value at (xx, yy) and (if jac is non-empty) its gradient into ``jac``.

    ``cells`` are the per-sphere table cells of ``s`` (:func:`_s_cells`).
    """
    nb = N_BACKGROUND + 1 if fit_sigma else N_BACKGROUND
    u = (xx - xc) / (xc + 1.0)
    w = (yy - yc) / (yc + 1.0)
    v = p[0] + p[1] * (xx - xc) + p[2] * (yy - yc) + p[3] * u * u + p[4] * u * w + p[5] * w * w
    want = jac.shape[0] > 0
    if want:
        jac[0] = 1.0
        jac[1] = xx - xc
        jac[2] = yy - yc
        jac[3] = u * u
        jac[4] = u * w
        jac[5] = w * w
    if fit_sigma:
        sig = p[N_BACKGROUND]
        s2 = sig * sig + 1.0 / 12.0
        if want:
            jac[N_BACKGROUND] = 0.0
    else:
        sig = 0.0
        s2 = s_fixed2
    seff = math.sqrt(s2)
    for k in range(npart):
        o = nb + 4 * k
        x0 = p[o]
        y0 = p[o + 1]
        R = p[o + 2]
        H = p[o + 3]
        if R < 0.05:
            R = 0.05
        dx = xx - x0
        dy = yy - y0
        r = math.sqrt(dx * dx + dy * dy)
        rho = r / R
        s = seff / R
        g, gr, gs = _lookup_k(rho, int(cells[k, 0]), cells[k, 1], tab, tp)
        v += 0.5 * H * g
        if want:
            if r > 1e-9:
                jac[o] = -0.5 * H * gr * dx / (r * R)
                jac[o + 1] = -0.5 * H * gr * dy / (r * R)
            else:
                jac[o] = 0.0
                jac[o + 1] = 0.0
            jac[o + 2] = -0.5 * H * (rho * gr + s * gs) / R
            jac[o + 3] = 0.5 * g
            if fit_sigma:
                # d s / d sig = sig / (seff * R)
                jac[N_BACKGROUND] += 0.5 * H * gs * sig / (seff * R)
    return v


@njit(cache=True)
def _solve_spd(a, b):
    """Solve a small symmetric positive-definite system by Cholesky; returns (x, ok)."""
    n = a.shape[0]
    L = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if s <= 0.0:
                    return np.zeros(n), False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    y = np.zeros(n)
    for i in range(n):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    x = np.zeros(n)
    for i in range(n - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, n):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return x, True


@njit(cache=True)
def _invert_spd(a):
    n = a.shape[0]
    inv = np.empty((n, n))
    ok_all = True
    for c in range(n):
        e = np.zeros(n)
        e[c] = 1.0
        x, ok = _solve_spd(a, e)
        if not ok:
            ok_all = False
        inv[:, c] = x
    return inv, ok_all


@njit(cache=True)
def _normal_eq(xs, ys, data, wts, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp):
    m = p.shape[0]
    JtJ = np.zeros((m, m))
    Jtr = np.zeros(m)
    chi2 = 0.0
    jac = np.empty(m)
    cells = _s_cells(p, npart, fit_sigma, s_fixed2, tab, tp)
    for q in range(data.shape[0]):
        w = wts[q]
        if w <= 0.0:
            continue
        v = _model_point(xs[q], ys[q], p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, jac, cells)
        r = data[q] - v
        chi2 += w * r * r
        for a in range(m):
            ja = jac[a] * w
            if ja == 0.0:
                continue
            Jtr[a] += ja * r
            for b in range(a + 1):
                JtJ[a, b] += ja * jac[b]
    for a in range(m):
        for b in range(a):
            JtJ[b, a] = JtJ[a, b]
    return JtJ, Jtr, chi2


@njit(cache=True)
def _chi2(xs, ys, data, wts, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp):
    chi2 = 0.0
    nojac = np.empty(0)
    cells = _s_cells(p, npart, fit_sigma, s_fixed2, tab, tp)
    for q in range(data.shape[0]):
        w = wts[q]
        if w <= 0.0:
            continue
        v = _model_point(xs[q], ys[q], p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, nojac, cells)
        r = data[q] - v
        chi2 += w * r * r
    return chi2


@njit(cache=True)
def _fit_one(xs, ys, data, wts, p0, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, max_iter, r_min, r_max):
    p = p0.copy()
    m = p.shape[0]
    lam = 1e-3
    JtJ, Jtr, chi2 = _normal_eq(xs, ys, data, wts, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp)
    nb = N_BACKGROUND + 1 if fit_sigma else N_BACKGROUND
    it = 0
    converged = False
    for it in range(max_iter):
        A = JtJ.copy()
        for a in range(m):
            A[a, a] += lam * (JtJ[a, a] + 1e-12)
        step, ok = _solve_spd(A, Jtr)
        if not ok:
            lam *= 10.0
            if lam > 1e8:
                break
            continue
        pn = p + step
        for k in range(npart):
            o = nb + 4 * k
            if pn[o + 2] < r_min:
                pn[o + 2] = r_min
            if pn[o + 2] > r_max:
                pn[o + 2] = r_max
        if fit_sigma:
            pn[N_BACKGROUND] = abs(pn[N_BACKGROUND])
        c2 = _chi2(xs, ys, data, wts, pn, npart, xc, yc, fit_sigma, s_fixed2, tab, tp)
        if c2 <= chi2:
            rel = (chi2 - c2) / max(chi2, 1e-300)
            p = pn
            lam = max(lam * 0.2, 1e-7)
            JtJ, Jtr, chi2 = _normal_eq(xs, ys, data, wts, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp)
            # converged when every centre and radius moved by < 1e-3 fit px
            small = True
            for k in range(npart):
                o = nb + 4 * k
                if abs(step[o]) > 1e-3 or abs(step[o + 1]) > 1e-3 or abs(step[o + 2]) > 1e-3:
                    small = False
            if small or rel < 1e-9:
                converged = True
                break
        else:
            lam *= 8.0
            if lam > 1e8:
                converged = True  # no further decrease possible: at the minimum to precision
                break
    return p, JtJ, chi2, it + 1, converged


@njit(cache=True)
def fit_groups(
    xs, ys, data, wts, pix_off, params, par_off, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, max_iter, r_min, r_max
):
    """Levenberg-Marquardt fit of every group of blurred spheres.

    Parameters
    ----------
    xs, ys, data, wts : 1-D float64 arrays
        Pixel coordinates (fit px), values and weights (1/variance; 0 = ignore)
        of all groups concatenated; group ``g`` owns ``pix_off[g]:pix_off[g+1]``.
    params : 1-D float64
        Initial parameters of all groups concatenated (``par_off``), each
        ``[b0, bx, by, bxx, bxy, byy, (sigma), x0, y0, R, H, x0, y0, R, H, ...]``.
    npart : int64 array
        Number of spheres of each group.
    xc, yc : float64 arrays
        Reference point of each group's background plane.
    fit_sigma : bool
        Whether the probe sigma is a (shared, per-group) parameter.
    s_fixed2 : float64 array
        Effective blur variance (probe + pixel box) of each group when sigma is fixed.
    tab, tp : arrays
        The packed profile table and its grid parameters.

    Returns
    -------
    params_out, fisher (concatenated per group, row-major m*m), chi2, n_iter, converged
    """
    ng = npart.shape[0]
    out = params.copy()
    msq = np.zeros(ng + 1, dtype=np.int64)
    for g in range(ng):
        m = par_off[g + 1] - par_off[g]
        msq[g + 1] = msq[g] + m * m
    fisher = np.zeros(msq[ng])
    chi2 = np.zeros(ng)
    nit = np.zeros(ng, dtype=np.int64)
    conv = np.zeros(ng, dtype=np.bool_)
    for g in range(ng):  # serial: OpenMP threads lose badly on a shared, oversubscribed machine
        a, b = pix_off[g], pix_off[g + 1]
        c, d = par_off[g], par_off[g + 1]
        p, JtJ, c2, it, cv = _fit_one(
            xs[a:b],
            ys[a:b],
            data[a:b],
            wts[a:b],
            params[c:d],
            npart[g],
            xc[g],
            yc[g],
            fit_sigma,
            s_fixed2[g],
            tab,
            tp,
            max_iter,
            r_min,
            r_max,
        )
        out[c:d] = p
        m = d - c
        fisher[msq[g] : msq[g + 1]] = JtJ.ravel()
        chi2[g] = c2
        nit[g] = it
        conv[g] = cv
    return out, fisher, msq, chi2, nit, conv


@njit(cache=True)
def _model_many(xs, ys, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, want_jac):
    n = xs.shape[0]
    m = p.shape[0]
    vals = np.empty(n)
    jacs = np.zeros((n, m if want_jac else 0))
    buf = np.empty(m if want_jac else 0)
    cells = _s_cells(p, npart, fit_sigma, s_fixed2, tab, tp)
    for q in range(n):
        vals[q] = _model_point(xs[q], ys[q], p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, buf, cells)
        if want_jac:
            jacs[q] = buf
    return vals, jacs


def evaluate_model(xs, ys, p, npart, xc, yc, fit_sigma, s_fixed2, want_jac=False):
    """Model (and Jacobian) of one group at points, through the numba kernel (for tests/plots)."""
    t = profile_table()
    return _model_many(
        np.asarray(xs, float),
        np.asarray(ys, float),
        np.asarray(p, float),
        int(npart),
        float(xc),
        float(yc),
        bool(fit_sigma),
        float(s_fixed2),
        t.packed,
        t.params,
        bool(want_jac),
    )


def sphere_model_ref(xs, ys, p, npart, xc, yc, fit_sigma, s_fixed2):
    """Numpy reference of the group model (values only), using the table through numpy."""
    t = profile_table()
    xs = np.asarray(xs, float)
    ys = np.asarray(ys, float)
    nb = N_BACKGROUND + 1 if fit_sigma else N_BACKGROUND
    u = (xs - xc) / (xc + 1.0)
    w = (ys - yc) / (yc + 1.0)
    v = p[0] + p[1] * (xs - xc) + p[2] * (ys - yc) + p[3] * u * u + p[4] * u * w + p[5] * w * w
    s2 = (p[nb - 1] ** 2 + 1.0 / 12.0) if fit_sigma else s_fixed2
    for k in range(npart):
        x0, y0, R, H = p[nb + 4 * k : nb + 4 * k + 4]
        rho = np.hypot(xs - x0, ys - y0) / R
        g = t(rho, np.sqrt(s2) / R)[0]
        v = v + 0.5 * H * g
    return v


@njit(cache=True)
def eval_groups(xs, ys, pix_off, params, par_off, npart, xc, yc, fit_sigma, s_fixed2, tab, tp):
    """Model values of every group at its pixels (same layout as :func:`fit_groups`)."""
    out = np.empty(xs.shape[0])
    nojac = np.empty(0)
    for g in range(npart.shape[0]):
        p = params[par_off[g] : par_off[g + 1]]
        cells = _s_cells(p, npart[g], fit_sigma, s_fixed2[g], tab, tp)
        for q in range(pix_off[g], pix_off[g + 1]):
            out[q] = _model_point(
                xs[q], ys[q], p, npart[g], xc[g], yc[g], fit_sigma, s_fixed2[g], tab, tp, nojac, cells
            )
    return out


@njit(cache=True)
def paint_disks(shape_h, shape_w, y, x, r):
    """Boolean image, True within ``r[i]`` of any centre ``(y[i], x[i])``."""
    out = np.zeros((shape_h, shape_w), dtype=np.bool_)
    for i in range(y.shape[0]):
        r2 = r[i] * r[i]
        i0 = max(0, int(math.floor(y[i] - r[i])))
        i1 = min(shape_h - 1, int(math.ceil(y[i] + r[i])))
        j0 = max(0, int(math.floor(x[i] - r[i])))
        j1 = min(shape_w - 1, int(math.ceil(x[i] + r[i])))
        for a in range(i0, i1 + 1):
            for b in range(j0, j1 + 1):
                if (a - y[i]) ** 2 + (b - x[i]) ** 2 <= r2:
                    out[a, b] = True
    return out


def paint_disks_ref(shape_h, shape_w, y, x, r):
    """Numpy reference of :func:`paint_disks`."""
    yy, xx = np.mgrid[:shape_h, :shape_w]
    out = np.zeros((shape_h, shape_w), dtype=bool)
    for a, b, c in zip(y, x, r):
        out |= (yy - a) ** 2 + (xx - b) ** 2 <= c * c
    return out


# ------------------------------------------------------------- region measures
@njit(cache=True)
def _cross(o0, o1, a0, a1, b0, b1):
    return (a0 - o0) * (b1 - o1) - (a1 - o1) * (b0 - o0)


@njit(cache=True)
def _hull_props(px, py):
    """Convex hull (monotone chain) of points: (feret_max, feret_min, area)."""
    n = px.shape[0]
    if n == 0:
        return np.nan, np.nan, np.nan
    order = np.argsort(px * 1e6 + py)
    xs = px[order]
    ys = py[order]
    hx = np.empty(2 * n)
    hy = np.empty(2 * n)
    k = 0
    for i in range(n):
        while k >= 2 and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    t = k + 1
    for i in range(n - 2, -1, -1):
        while k >= t and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    m = k - 1  # last point repeats the first
    if m < 3:
        ext = max(xs.max() - xs.min(), ys.max() - ys.min())
        return ext, 0.0, 0.0
    area = 0.0
    fmax2 = 0.0
    for i in range(m):
        j = (i + 1) % m
        area += hx[i] * hy[j] - hx[j] * hy[i]
        for q in range(i + 1, m):
            d2 = (hx[i] - hx[q]) ** 2 + (hy[i] - hy[q]) ** 2
            if d2 > fmax2:
                fmax2 = d2
    fmin = np.inf
    for i in range(m):
        j = (i + 1) % m
        ex = hx[j] - hx[i]
        ey = hy[j] - hy[i]
        ln = math.sqrt(ex * ex + ey * ey)
        if ln == 0:
            continue
        nx = -ey / ln
        ny = ex / ln
        lo = np.inf
        hi = -np.inf
        for q in range(m):
            v = hx[q] * nx + hy[q] * ny
            lo = min(lo, v)
            hi = max(hi, v)
        fmin = min(fmin, hi - lo)
    return math.sqrt(fmax2), fmin, 0.5 * abs(area)


@njit(cache=True)
def region_measures_all(labels, img, n):
    """Shape measurements of labels 1..n in one pass (see :func:`latticefit.particles.region_measures`).

    Returns an (n, 15) array: area, centroid y, centroid x, axis_major, axis_minor, orientation,
    perimeter, solidity, feret_max, feret_min, intensity_mean, bbox y0, x0, y1, x1 (NaN for absent labels).

    Long on purpose: one fused pass over the label image (moments, crack perimeter, boundary pixels) and
    then one hull per label; splitting it would mean a pass per measure. Its reference is
    ``skimage.measure.regionprops`` (``tests/test_particles.py::test_region_measure_kernel_matches_numpy_reference``).
    """
    h, w = labels.shape
    acc = np.zeros((n + 1, 9))  # area, sy, sx, syy, sxx, sxy, cracks, sum I, n_boundary
    bb = np.empty((n + 1, 4), dtype=np.int64)
    for k in range(n + 1):
        bb[k, 0] = h
        bb[k, 1] = w
        bb[k, 2] = -1
        bb[k, 3] = -1
    for i in range(h):
        for j in range(w):
            k = labels[i, j]
            if k <= 0 or k > n:
                continue
            acc[k, 0] += 1
            acc[k, 1] += i
            acc[k, 2] += j
            acc[k, 3] += i * i
            acc[k, 4] += j * j
            acc[k, 5] += i * j
            acc[k, 7] += img[i, j]
            c = 0
            boundary = False
            if i == 0 or labels[i - 1, j] != k:
                c += 1
            if i == h - 1 or labels[i + 1, j] != k:
                c += 1
            if j == 0 or labels[i, j - 1] != k:
                c += 1
            if j == w - 1 or labels[i, j + 1] != k:
                c += 1
            if c > 0:
                boundary = True
            acc[k, 6] += c
            if boundary:
                acc[k, 8] += 1
            bb[k, 0] = min(bb[k, 0], i)
            bb[k, 1] = min(bb[k, 1], j)
            bb[k, 2] = max(bb[k, 2], i + 1)
            bb[k, 3] = max(bb[k, 3], j + 1)
    # boundary pixel lists
    off = np.zeros(n + 2, dtype=np.int64)
    for k in range(1, n + 1):
        off[k + 1] = off[k] + int(acc[k, 8])
    bpy = np.empty(off[n + 1])
    bpx = np.empty(off[n + 1])
    fill = off.copy()
    for i in range(h):
        for j in range(w):
            k = labels[i, j]
            if k <= 0 or k > n:
                continue
            if (
                i == 0
                or labels[i - 1, j] != k
                or i == h - 1
                or labels[i + 1, j] != k
                or j == 0
                or labels[i, j - 1] != k
                or j == w - 1
                or labels[i, j + 1] != k
            ):
                bpy[fill[k]] = i
                bpx[fill[k]] = j
                fill[k] += 1
    out = np.full((n, 15), np.nan)
    for k in range(1, n + 1):
        a = acc[k, 0]
        if a == 0:
            continue
        cy = acc[k, 1] / a
        cx = acc[k, 2] / a
        vyy = acc[k, 3] / a - cy * cy
        vxx = acc[k, 4] / a - cx * cx
        vxy = acc[k, 5] / a - cy * cx
        t = 0.5 * (vxx + vyy)
        dl = math.sqrt(max(0.25 * (vxx - vyy) ** 2 + vxy * vxy, 0.0))
        l1 = t + dl
        l2 = max(t - dl, 0.0)
        ang = 0.5 * math.atan2(-2.0 * vxy, vxx - vyy) + math.pi / 2.0
        if ang > math.pi / 2.0:
            ang -= math.pi
        nb = off[k + 1] - off[k]
        cxs = np.empty(4 * nb)
        cys = np.empty(4 * nb)
        q = 0
        for b in range(off[k], off[k + 1]):
            for ox in (-0.5, 0.5):
                for oy in (-0.5, 0.5):
                    cxs[q] = bpx[b] + ox
                    cys[q] = bpy[b] + oy
                    q += 1
        fmax, fmin, harea = _hull_props(cxs, cys)
        r = out[k - 1]
        r[0] = a
        r[1] = cy
        r[2] = cx
        r[3] = 4.0 * math.sqrt(l1)
        r[4] = 4.0 * math.sqrt(l2)
        r[5] = ang
        r[6] = acc[k, 6] * math.pi / 4.0
        r[7] = a / harea if harea > 0 else np.nan
        r[8] = fmax
        r[9] = fmin
        r[10] = acc[k, 7] / a
        r[11] = bb[k, 0]
        r[12] = bb[k, 1]
        r[13] = bb[k, 2]
        r[14] = bb[k, 3]
    return out
