"""Numba kernels of the lattice measurement, each paired with a pure-numpy reference.

The tests compare every ``*_nb`` kernel with its ``*_ref`` reference on random
input. Only hot loops live here; array-level work stays in numpy/scipy.

Kernels
-------
- :func:`periodic_power_nb`: power spectrum of Moisan's periodic component,
  fused with the smooth-component subtraction (one pass over the rfft2 array).
- :func:`ring_median_nb`: median of a spectrum over rings of constant |g|
  (the radial background).
- :func:`local_maxima_nb`: local maxima above a threshold of a spectrum.
- :func:`dirichlet_nb`, :func:`dirichlet_matrix_nb`, :func:`tone_sum_window_nb` (in :mod:`._dirichlet`):
  the DFT of a complex exponential of continuous frequency over ``n`` samples, with its first two
  derivatives, for many frequencies in closed form, and the sum of many tones over a window of bins.
- :func:`refine_tone_window_nb`: maximum-likelihood frequency of one tone from
  the DFT bins of a window (Newton iterations on the projected periodogram).
- :func:`fit_tone_pixels_nb`: Gauss-Newton least-squares fit of one 2-D
  sinusoid to masked pixels (used for disk and mask regions).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TWO_PI = 2.0 * math.pi


# Moisan's periodic component: the kernel lives in the bottom layer (``spectrum`` uses it too)
from .._fft_kernels import periodic_power_nb, periodic_power_ref  # noqa: E402, F401


# ----------------------------------------------------------------------------- radial background
@njit(cache=True)
def ring_median_nb(P, ring, n_rings, max_samples=0):
    """Median of ``P`` over each ring (``ring`` holds the ring index, -1 = not used).

    With ``max_samples > 0`` a ring with more values uses an evenly strided
    subset of about that many (in row-major order, so spread over the ring).
    """
    counts = np.zeros(n_rings + 1, np.int64)
    flatP = P.ravel()
    flatR = ring.ravel()
    for i in range(flatR.size):
        k = flatR[i]
        if k >= 0:
            counts[k + 1] += 1
    start = np.cumsum(counts)
    buf = np.empty(start[-1], np.float64)
    pos = start[:-1].copy()
    for i in range(flatR.size):
        k = flatR[i]
        if k >= 0:
            buf[pos[k]] = flatP[i]
            pos[k] += 1
    med = np.full(n_rings, np.nan)
    for k in range(n_rings):
        a, b = start[k], start[k + 1]
        if b > a:
            step = 1
            if max_samples > 0 and b - a > max_samples:
                step = (b - a) // max_samples
            med[k] = np.median(buf[a:b:step])
    return med


def ring_median_ref(P, ring, n_rings, max_samples=0):
    med = np.full(n_rings, np.nan)
    for k in range(n_rings):
        v = P[ring == k].astype(np.float64)
        if v.size:
            step = v.size // max_samples if (max_samples > 0 and v.size > max_samples) else 1
            med[k] = np.median(v[::step])
    return med


# ----------------------------------------------------------------------------- local maxima
@njit(cache=True)
def local_maxima_nb(R, valid, threshold, radius):
    """Pixels of ``R`` that are ``valid``, ``>= threshold`` and the maximum of their

    (2 radius + 1)^2 neighbourhood (neighbours outside the array are ignored).
    Returns (iy, ix) int64 arrays in row-major order.
    """
    H, W = R.shape
    ys = []
    xs = []
    for iy in range(H):
        for ix in range(W):
            v = R[iy, ix]
            if not valid[iy, ix] or v < threshold:
                continue
            ok = True
            for jy in range(max(iy - radius, 0), min(iy + radius + 1, H)):
                for jx in range(max(ix - radius, 0), min(ix + radius + 1, W)):
                    if R[jy, jx] > v:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                ys.append(iy)
                xs.append(ix)
    out_y = np.empty(len(ys), np.int64)
    out_x = np.empty(len(xs), np.int64)
    for i in range(len(ys)):
        out_y[i] = ys[i]
        out_x[i] = xs[i]
    return out_y, out_x


def local_maxima_ref(R, valid, threshold, radius):
    from scipy import ndimage

    mx = ndimage.maximum_filter(R, size=2 * radius + 1, mode="constant", cval=-np.inf)
    iy, ix = np.nonzero(valid & (R >= threshold) & (R >= mx))
    return iy.astype(np.int64), ix.astype(np.int64)


# the Dirichlet sums of a tone (closed forms and the window's tone sum): ``_dirichlet``
from ._dirichlet import (  # noqa: E402, F401
    _bin_rotations,
    _dirichlet_one,
    _dirichlet_row,
    dirichlet_matrix_nb,
    dirichlet_nb,
    dirichlet_ref,
    tone_sum_window_nb,
    tone_sum_window_ref,
)


# ----------------------------------------------------------------------------- window ML
@njit(cache=True)
def _masked_dirichlet(g, k, n, w):
    """:func:`dirichlet_nb` (S, dS/dg, d2S/dg2) with the bins not used (``w`` False) set to 0."""
    S, S1, S2 = dirichlet_nb(g, k, n)
    for i in range(k.size):
        if not w[i]:
            S[i] = 0.0
            S1[i] = 0.0
            S2[i] = 0.0
    return S, S1, S2


@njit(cache=True)
def _window_projections(Y, Sy, Sy1, Sy2, Sx, Sx1, Sx2):
    """``c = Sy^H Y conj(Sx)`` and its derivatives (c, c_y, c_x, c_yy, c_xx, c_xy)."""
    # t_ab = conj(Sy^(a))^T Y conj(Sx^(b))
    H, W = Y.shape
    tx0 = np.zeros(H, np.complex128)
    tx1 = np.zeros(H, np.complex128)
    tx2 = np.zeros(H, np.complex128)
    for i in range(H):
        a0 = 0j
        a1 = 0j
        a2 = 0j
        for j in range(W):
            y = Y[i, j]
            a0 += y * Sx[j].conjugate()
            a1 += y * Sx1[j].conjugate()
            a2 += y * Sx2[j].conjugate()
        tx0[i] = a0
        tx1[i] = a1
        tx2[i] = a2
    c = 0j
    cx = 0j
    cy = 0j
    cxx = 0j
    cyy = 0j
    cxy = 0j
    for i in range(H):
        s0 = Sy[i].conjugate()
        s1 = Sy1[i].conjugate()
        s2 = Sy2[i].conjugate()
        c += s0 * tx0[i]
        cx += s0 * tx1[i]
        cxx += s0 * tx2[i]
        cy += s1 * tx0[i]
        cyy += s2 * tx0[i]
        cxy += s1 * tx1[i]
    return c, cy, cx, cyy, cxx, cxy


@njit(cache=True)
def _norm_derivatives(S, S1, S2, n):
    """``|S|^2`` over the first ``n`` bins and its first and second derivatives along its axis."""
    v = 0.0
    d1 = 0.0
    d2 = 0.0
    for i in range(n):
        v += (S[i] * S[i].conjugate()).real
        d1 += 2.0 * (S[i].conjugate() * S1[i]).real
        d2 += 2.0 * ((S1[i] * S1[i].conjugate()).real + (S[i].conjugate() * S2[i]).real)
    return v, d1, d2


@njit(cache=True)
def _window_objective(Y, ky, kx, M, N, gy, gx, wy, wx):
    """J = |S^H Y|^2 / |S|^2 with gradient and Hessian in (gy, gx); S = Sy (x) Sx masked by wy, wx."""
    Sy, Sy1, Sy2 = _masked_dirichlet(gy, ky, M, wy)
    Sx, Sx1, Sx2 = _masked_dirichlet(gx, kx, N, wx)
    H, W = Y.shape
    c, cy, cx, cyy, cxx, cxy = _window_projections(Y, Sy, Sy1, Sy2, Sx, Sx1, Sx2)
    nyv, ny1, ny2 = _norm_derivatives(Sy, Sy1, Sy2, H)
    nxv, nx1, nx2 = _norm_derivatives(Sx, Sx1, Sx2, W)
    n = nyv * nxv
    # derivatives, order (y, x)
    p = (c * c.conjugate()).real
    py = 2.0 * (c.conjugate() * cy).real
    px = 2.0 * (c.conjugate() * cx).real
    pyy = 2.0 * ((cy * cy.conjugate()).real + (c.conjugate() * cyy).real)
    pxx = 2.0 * ((cx * cx.conjugate()).real + (c.conjugate() * cxx).real)
    pxy = 2.0 * ((cy.conjugate() * cx).real + (c.conjugate() * cxy).real)
    n_y = ny1 * nxv
    n_x = nyv * nx1
    n_yy = ny2 * nxv
    n_xx = nyv * nx2
    n_xy = ny1 * nx1
    J = p / n
    gy_ = (py * n - p * n_y) / (n * n)
    gx_ = (px * n - p * n_x) / (n * n)
    Hyy = pyy / n - 2.0 * py * n_y / n**2 - p * n_yy / n**2 + 2.0 * p * n_y * n_y / n**3
    Hxx = pxx / n - 2.0 * px * n_x / n**2 - p * n_xx / n**2 + 2.0 * p * n_x * n_x / n**3
    Hxy = pxy / n - (py * n_x + px * n_y) / n**2 - p * n_xy / n**2 + 2.0 * p * n_x * n_y / n**3
    alpha = c / n
    return J, gy_, gx_, Hyy, Hxx, Hxy, alpha


@njit(cache=True)
def _window_power(Y, ky, kx, M, N, gy, gx, wy, wx, roty, rotx):
    """The objective ``J = |S^H Y|^2 / |S|^2`` of :func:`_window_objective` alone (no derivatives).

    For the start grid: S from the closed-form sum (:func:`_dirichlet_row`), one projection instead of
    six; the same J to rounding.
    """
    H, W = Y.shape
    Sy = np.empty(H, np.complex128)
    Sx = np.empty(W, np.complex128)
    _dirichlet_row(gy, ky, M, roty, Sy, wy)
    _dirichlet_row(gx, kx, N, rotx, Sx, wx)
    c = 0j
    for i in range(H):
        if not wy[i]:
            continue
        a = 0j
        for j in range(W):
            a += Y[i, j] * Sx[j].conjugate()
        c += Sy[i].conjugate() * a
    ny = 0.0
    for i in range(H):
        ny += (Sy[i] * Sy[i].conjugate()).real
    nx = 0.0
    for j in range(W):
        nx += (Sx[j] * Sx[j].conjugate()).real
    return (c * c.conjugate()).real / (ny * nx)


@njit(cache=True)
def refine_tone_window_nb(Y, ky, kx, wy, wx, M, N, gy0, gx0, max_iter):
    """Maximise the projected periodogram of the window ``Y`` over the tone frequency.

    ``Y[i, j]`` is the DFT at integer bins (ky[i], kx[j]) of an M x N image
    (after subtraction of the other tones' models); ``wy``/``wx`` select the
    rows/columns used. Frequencies are in cycles per pixel. Returns
    ``(gy, gx, alpha, J, n_iter, ok)``: the ML frequency, the complex amplitude
    ``alpha`` (the tone is ``alpha exp(2 pi i g.r) + c.c.``), the objective and
    whether Newton converged.
    """
    gy = gy0
    gx = gx0
    # coarse start: best of a 3 x 3 grid at 1/3 bin around the start
    bestJ = -1.0
    by = gy
    bx = gx
    roty = _bin_rotations(ky, M)
    rotx = _bin_rotations(kx, N)
    for a in range(-1, 2):
        for b in range(-1, 2):
            ty = gy0 + a / (3.0 * M)
            tx = gx0 + b / (3.0 * N)
            J = _window_power(Y, ky, kx, M, N, ty, tx, wy, wx, roty, rotx)
            if J > bestJ:
                bestJ = J
                by = ty
                bx = tx
    gy = by
    gx = bx
    ok = False
    it = 0
    J, g_y, g_x, Hyy, Hxx, Hxy, alpha = _window_objective(Y, ky, kx, M, N, gy, gx, wy, wx)
    maxstep_y = 0.25 / M
    maxstep_x = 0.25 / N
    for it in range(1, max_iter + 1):
        det = Hyy * Hxx - Hxy * Hxy
        if Hyy < 0 and Hxx < 0 and det > 0:
            dy = -(Hxx * g_y - Hxy * g_x) / det
            dx = -(-Hxy * g_y + Hyy * g_x) / det
        else:  # not concave here: gradient step of a quarter bin
            gn = math.sqrt((g_y * M) ** 2 + (g_x * N) ** 2) + 1e-300
            dy = maxstep_y * g_y * M / gn
            dx = maxstep_x * g_x * N / gn
        # limit the step
        sc = max(abs(dy) / maxstep_y, abs(dx) / maxstep_x, 1.0)
        dy /= sc
        dx /= sc
        accepted = False
        for _ in range(8):
            J2, g_y2, g_x2, Hyy2, Hxx2, Hxy2, alpha2 = _window_objective(Y, ky, kx, M, N, gy + dy, gx + dx, wy, wx)
            if J2 >= J * (1.0 - 1e-14):
                accepted = True
                break
            dy *= 0.5
            dx *= 0.5
        if not accepted:
            ok = True  # cannot improve: at the (numerical) maximum
            break
        gy += dy
        gx += dx
        J, g_y, g_x, Hyy, Hxx, Hxy, alpha = J2, g_y2, g_x2, Hyy2, Hxx2, Hxy2, alpha2
        if abs(dy) * M < 1e-7 and abs(dx) * N < 1e-7:
            ok = True
            break
    return gy, gx, alpha, J, it, ok


def refine_tone_window_ref(Y, ky, kx, wy, wx, M, N, gy0, gx0, max_iter=50):
    """Reference: the same objective maximised by scipy (Nelder-Mead) from the same grid start."""
    from scipy.optimize import minimize

    def obj(g):
        Sy = dirichlet_ref(g[0], ky, M)[0] * wy
        Sx = dirichlet_ref(g[1], kx, N)[0] * wx
        c = np.conj(Sy) @ Y @ np.conj(Sx)
        return -(abs(c) ** 2) / (np.vdot(Sy, Sy).real * np.vdot(Sx, Sx).real)

    grid = [(gy0 + a / (3 * M), gx0 + b / (3 * N)) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    start = min(grid, key=lambda g: obj(np.array(g)))
    scale = np.array([1.0 / M, 1.0 / N])
    res = minimize(
        lambda t: obj(start + t * scale),
        np.zeros(2),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 4000},
    )
    g = start + res.x * scale
    Sy = dirichlet_ref(g[0], ky, M)[0] * wy
    Sx = dirichlet_ref(g[1], kx, N)[0] * wx
    alpha = (np.conj(Sy) @ Y @ np.conj(Sx)) / (np.vdot(Sy, Sy).real * np.vdot(Sx, Sx).real)
    return g[0], g[1], alpha, -res.fun


# ----------------------------------------------------------------------------- pixel GN
@njit(cache=True)
def _phasors(g, n, c):
    out = np.empty(n, np.complex128)
    for i in range(n):
        t = TWO_PI * g * (i - c)
        out[i] = complex(math.cos(t), math.sin(t))
    return out


@njit(cache=True)
def fit_tone_pixels_nb(R, xi, yi, xc, yc, gx0, gy0, max_iter):
    """Gauss-Newton fit of ``c + a cos(2 pi g.(r - rc)) + b sin(2 pi g.(r - rc))`` to pixel values.

    ``R`` holds the values at integer pixels (xi, yi); ``(xc, yc)`` is the
    centre the phase refers to. Returns
    ``(gx, gy, a, b, c, JTJ (5x5, order gx, gy, a, b, c), rss, ok)``.
    """
    n = R.size
    W = 0
    H = 0
    for i in range(n):
        if xi[i] + 1 > W:
            W = xi[i] + 1
        if yi[i] + 1 > H:
            H = yi[i] + 1
    gx = gx0
    gy = gy0
    a = 0.0
    b = 0.0
    c = 0.0
    JTJ = np.zeros((5, 5))
    ok = False
    rss = 0.0
    it = 0
    while True:
        ex = _phasors(gx, W, xc)
        ey = _phasors(gy, H, yc)
        # linear LS for (a, b, c) at fixed g
        L = np.zeros((3, 3))
        Lr = np.zeros(3)
        for i in range(n):
            e = ex[xi[i]] * ey[yi[i]]
            ct = e.real
            st = e.imag
            L[0, 0] += ct * ct
            L[0, 1] += ct * st
            L[0, 2] += ct
            L[1, 1] += st * st
            L[1, 2] += st
            Lr[0] += ct * R[i]
            Lr[1] += st * R[i]
            Lr[2] += R[i]
        L[2, 2] = n
        L[1, 0] = L[0, 1]
        L[2, 0] = L[0, 2]
        L[2, 1] = L[1, 2]
        sol = np.linalg.solve(L, Lr)
        a = sol[0]
        b = sol[1]
        c = sol[2]
        # Gauss-Newton normal equations on all five parameters
        JTJ[:, :] = 0.0
        JTr = np.zeros(5)
        rss = 0.0
        J = np.empty(5)
        for i in range(n):
            e = ex[xi[i]] * ey[yi[i]]
            ct = e.real
            st = e.imag
            r = R[i] - (c + a * ct + b * st)
            rss += r * r
            dm = TWO_PI * (-a * st + b * ct)
            J[0] = dm * (xi[i] - xc)
            J[1] = dm * (yi[i] - yc)
            J[2] = ct
            J[3] = st
            J[4] = 1.0
            for p in range(5):
                JTr[p] += J[p] * r
                for q in range(p, 5):
                    JTJ[p, q] += J[p] * J[q]
        for p in range(5):
            for q in range(p):
                JTJ[p, q] = JTJ[q, p]
        if ok or it >= max_iter:
            break
        step = np.linalg.solve(JTJ, JTr)
        gx += step[0]
        gy += step[1]
        it += 1
        if abs(step[0]) * W < 1e-7 and abs(step[1]) * H < 1e-7:
            ok = True  # one more pass evaluates everything at the final g
    return gx, gy, a, b, c, JTJ, rss, ok


def fit_tone_pixels_ref(R, xi, yi, xc, yc, gx0, gy0, max_iter=30):
    """Reference: scipy least_squares on the same model."""
    from scipy.optimize import least_squares

    xs = np.asarray(xi, float) - xc
    ys = np.asarray(yi, float) - yc

    def model(p):
        t = 2 * np.pi * (p[0] * xs + p[1] * ys)
        return p[4] + p[2] * np.cos(t) + p[3] * np.sin(t)

    t = 2 * np.pi * (gx0 * xs + gy0 * ys)
    A = np.stack([np.cos(t), np.sin(t), np.ones_like(t)], 1)
    abc = np.linalg.lstsq(A, R, rcond=None)[0]
    p0 = np.array([gx0, gy0, abc[0], abc[1], abc[2]])
    res = least_squares(lambda p: model(p) - R, p0, x_scale=[1e-3, 1e-3, 1, 1, 1], xtol=1e-14, ftol=1e-14, gtol=1e-14)
    return res.x
