"""Numba kernels of the touching-spheres model and its Levenberg-Marquardt fit, beside their numpy reference.

- :func:`fit_groups` is a Levenberg-Marquardt fit of groups of touching
  blurred spheres over a quadratic background (one group per bounding-box patch);
  :func:`eval_groups` evaluates the fitted models at the groups' pixels;
- :func:`evaluate_model` evaluates one group's model (and Jacobian) through the
  numba kernel, :func:`sphere_model_ref` evaluates the same model with numpy for the tests.

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
height of a sharp sphere, proportional to amplitude * R; tabulated in
:mod:`latticefit.particles._profile_kernels`), and
``s_eff**2 = sigma_probe**2 + 1/12`` adds the pixel box (variance 1/12 per axis).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._profile_kernels import _lookup_k, _s_index, profile_table

#: number of background terms of a group's parameter vector (quadratic surface)
N_BACKGROUND = 6

__all__ = [
    "N_BACKGROUND",
    "fit_groups",
    "eval_groups",
    "evaluate_model",
    "sphere_model_ref",
]


@njit(cache=True)
def _s_cells(p, npart, fit_sigma, s_fixed2, tab, tp):
    """Per-sphere s-cell (k, ts) of the current parameters and the sphere's reach in rho: computed once per
    model evaluation.

    The reach is where the table's rows of the cell are zero, with their rho and s derivatives (the s
    derivative of row ``k + 1`` is a difference to row ``k + 2``): the profile of :func:`_profile_value`
    ends at ``1 + 7 s``. Beyond it a pixel is not evaluated (the value and gradient are exactly 0).
    """
    nb = N_BACKGROUND + 1 if fit_sigma else N_BACKGROUND
    s2 = (p[N_BACKGROUND] * p[N_BACKGROUND] + 1.0 / 12.0) if fit_sigma else s_fixed2
    seff = math.sqrt(s2)
    cells = np.empty((npart, 3))
    for k in range(npart):
        R = p[nb + 4 * k + 2]
        if R < 0.05:
            R = 0.05
        kk, ts = _s_index(seff / R, tp, tab.shape[1])
        cells[k, 0] = kk
        cells[k, 1] = ts
        cells[k, 2] = 1.0 + 7.0 * math.exp(tp[1] + tp[2] * (kk + 2)) + 3.0 * tp[0]
    return cells


@njit(cache=True)
def _background_basis(xx, yy, xc, yc, out):
    """The quadratic background's ``N_BACKGROUND`` basis functions at (xx, yy) into ``out[:6]``."""
    u = (xx - xc) / (xc + 1.0)
    w = (yy - yc) / (yc + 1.0)
    out[0] = 1.0
    out[1] = xx - xc
    out[2] = yy - yc
    out[3] = u * u
    out[4] = u * w
    out[5] = w * w


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
        _background_basis(xx, yy, xc, yc, jac)
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
        if rho >= cells[k, 2]:  # beyond the sphere's reach: no value, no gradient
            if want:
                jac[o] = 0.0
                jac[o + 1] = 0.0
                jac[o + 2] = 0.0
                jac[o + 3] = 0.0
            continue
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
def _background_block(xs, ys, wts, xc, yc):
    """The background-background block of the Fisher matrix: it depends on the pixels and weights only."""
    B = np.zeros((N_BACKGROUND, N_BACKGROUND))
    basis = np.empty(N_BACKGROUND)
    for q in range(xs.shape[0]):
        w = wts[q]
        if w <= 0.0:
            continue
        _background_basis(xs[q], ys[q], xc, yc, basis)
        for a in range(N_BACKGROUND):
            for b in range(a + 1):
                B[a, b] += w * basis[a] * basis[b]
    return B


@njit(cache=True)
def _normal_eq(xs, ys, data, wts, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, bgblock):
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
        for a in range(N_BACKGROUND):
            Jtr[a] += w * jac[a] * r
        for a in range(N_BACKGROUND, m):  # the background block is bgblock's
            ja = jac[a] * w
            if ja == 0.0:
                continue
            Jtr[a] += ja * r
            for b in range(a + 1):
                JtJ[a, b] += ja * jac[b]
    for a in range(N_BACKGROUND):
        for b in range(a + 1):
            JtJ[a, b] = bgblock[a, b]
    for a in range(m):
        for b in range(a):
            JtJ[b, a] = JtJ[a, b]
    return JtJ, Jtr, chi2


@njit(cache=True)
def _fit_one(xs, ys, data, wts, p0, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, max_iter, r_min, r_max):
    p = p0.copy()
    m = p.shape[0]
    lam = 1e-3
    bgb = _background_block(xs, ys, wts, xc, yc)
    JtJ, Jtr, chi2 = _normal_eq(xs, ys, data, wts, p, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, bgb)
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
        # the normal equations at the trial point: its chi2 decides, and an accepted step (most are) needs them
        JtJn, Jtrn, c2 = _normal_eq(xs, ys, data, wts, pn, npart, xc, yc, fit_sigma, s_fixed2, tab, tp, bgb)
        if c2 <= chi2:
            rel = (chi2 - c2) / max(chi2, 1e-300)
            p = pn
            lam = max(lam * 0.2, 1e-7)
            JtJ, Jtr, chi2 = JtJn, Jtrn, c2
            # converged when every centre and radius moved by < 1e-3 fit px
            small = True
            for k in range(npart):
                o = nb + 4 * k
                if abs(step[o]) > 1e-3 or abs(step[o + 1]) > 1e-3 or abs(step[o + 2]) > 1e-3:
                    small = False
            if small or rel < 1e-7:
                converged = True
                break
        else:
            lam *= 8.0
            if lam > 1e8:
                converged = True  # no further decrease possible: at the minimum to precision
                break
    return p, JtJ, chi2, it + 1, converged


@njit(cache=True, parallel=True)
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
    for g in prange(ng):  # groups are independent; batch workers run with one numba thread each
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


def background_surface_ref(xs, ys, p, xc, yc):
    """The group's quadratic background (its first ``N_BACKGROUND`` parameters ``p``) at fit-pixel points (numpy)."""
    u = (xs - xc) / (xc + 1.0)
    w = (ys - yc) / (yc + 1.0)
    return p[0] + p[1] * (xs - xc) + p[2] * (ys - yc) + p[3] * u * u + p[4] * u * w + p[5] * w * w


def sphere_model_ref(xs, ys, p, npart, xc, yc, fit_sigma, s_fixed2):
    """Numpy reference of the group model (values only), using the table through numpy."""
    t = profile_table()
    xs = np.asarray(xs, float)
    ys = np.asarray(ys, float)
    nb = N_BACKGROUND + 1 if fit_sigma else N_BACKGROUND
    v = background_surface_ref(xs, ys, p, xc, yc)
    s2 = (p[nb - 1] ** 2 + 1.0 / 12.0) if fit_sigma else s_fixed2
    for k in range(npart):
        x0, y0, R, H = p[nb + 4 * k : nb + 4 * k + 4]
        rho = np.hypot(xs - x0, ys - y0) / R
        g = t(rho, np.sqrt(s2) / R)[0]
        v = v + 0.5 * H * g
    return v


@njit(cache=True, parallel=True)
def eval_groups(xs, ys, pix_off, params, par_off, npart, xc, yc, fit_sigma, s_fixed2, tab, tp):
    """Model values of every group at its pixels (same layout as :func:`fit_groups`)."""
    out = np.empty(xs.shape[0])
    nojac = np.empty(0)
    for g in prange(npart.shape[0]):
        p = params[par_off[g] : par_off[g + 1]]
        cells = _s_cells(p, npart[g], fit_sigma, s_fixed2[g], tab, tp)
        for q in range(pix_off[g], pix_off[g + 1]):
            out[q] = _model_point(
                xs[q], ys[q], p, npart[g], xc[g], yc[g], fit_sigma, s_fixed2[g], tab, tp, nojac, cells
            )
    return out
