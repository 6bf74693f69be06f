"""Part of :mod:`_indexing` (see its docstring): index_search."""

from __future__ import annotations

import math

import numpy as np

from ._index_nets import COST_UNMATCHED, MISSING_FULL_INTENSITY, MISSING_MIN_INTENSITY, PENALTY_MISSING, _ZoneNet
from ._index_results import IndexingSolution


# ------------------------------------------------------------- helpers
def spot_uncertainties(g_inv_nm, *, cov=None, d_err_angstrom=None, azimuth_err_deg=None):
    """Radial and tangential 1-sigma errors (1/nm) of each spot from whatever is known.

    ``cov`` (n, 2, 2) in (1/nm)^2 wins; else ``d_err_angstrom`` (radial) and ``azimuth_err_deg``
    (tangential; defaults to the radial error); zeros when nothing is given.
    """
    g = np.asarray(g_inv_nm, float).reshape(-1, 2)
    r = np.hypot(g[:, 0], g[:, 1])
    u = g / np.where(r > 0, r, 1.0)[:, None]
    t = np.stack([-u[:, 1], u[:, 0]], 1)
    if cov is not None:
        C = np.asarray(cov, float).reshape(-1, 2, 2)
        sr = np.sqrt(np.maximum(np.einsum("ni,nij,nj->n", u, C, u), 0))
        st = np.sqrt(np.maximum(np.einsum("ni,nij,nj->n", t, C, t), 0))
        return np.nan_to_num(sr), np.nan_to_num(st)
    sr = np.zeros(len(g))
    if d_err_angstrom is not None:
        d = 10.0 / np.where(r > 0, r, np.inf)
        sr = np.nan_to_num(np.asarray(d_err_angstrom, float).reshape(-1) / d * r)
    st = sr.copy()
    if azimuth_err_deg is not None:
        st = np.nan_to_num(np.radians(np.asarray(azimuth_err_deg, float).reshape(-1)) * r)
    return sr, st


def _wrap_pi(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _base_pairs(zo: np.ndarray, order: np.ndarray, tol_ang: np.ndarray, n_top: int = 6):
    """Pairs of strong, non-collinear spots (indices into zo), strongest combinations first.

    Pairs are ordered by the sum of their strength ranks, so a spurious strong spot cannot
    occupy every one of the first pairs.
    """
    top = order[: min(len(order), n_top)]
    ranked = []
    for a_i in range(len(top)):
        for b_i in range(a_i + 1, len(top)):
            i, j = top[a_i], top[b_i]
            ang = abs(_wrap_pi(np.angle(zo[j]) - np.angle(zo[i])))
            ang = min(ang, np.pi - ang)
            if ang > max(np.radians(12.0), 3 * (tol_ang[i] + tol_ang[j])):
                ranked.append((a_i + b_i, b_i, (int(i), int(j))))
    return [p for *_, p in sorted(ranked)]


def _hypotheses(net: _ZoneNet, zo, i, j, tol_r, tol_t, smin, smax):
    """Transforms c (complex, |c| = scale) and mirror flags mapping net onto spots i and j."""
    ri, rj = abs(zo[i]), abs(zo[j])
    p = net.absz
    ki = ri / p
    kj = rj / p
    ci = np.nonzero((ki >= smin * (1 - tol_r[i])) & (ki <= smax * (1 + tol_r[i])))[0]
    cj = np.nonzero((kj >= smin * (1 - tol_r[j])) & (kj <= smax * (1 + tol_r[j])))[0]
    if ci.size == 0 or cj.size == 0:
        return np.zeros(0, complex), np.zeros(0, bool)
    A, B = np.meshgrid(ci, cj, indexing="ij")
    A, B = A.ravel(), B.ravel()
    ok = A != B
    ratio = (rj / ri) / (p[B] / p[A])
    ok &= np.abs(ratio - 1) <= tol_r[i] + tol_r[j]
    ang_o = _wrap_pi(np.angle(zo[j]) - np.angle(zo[i]))
    ang_p = _wrap_pi(np.angle(net.z[B]) - np.angle(net.z[A]))
    tol = tol_t[i] + tol_t[j]
    prop = ok & (np.abs(_wrap_pi(ang_o - ang_p)) <= tol)
    mirr = ok & (np.abs(_wrap_pi(ang_o + ang_p)) <= tol)
    cs, ms = [], []
    for sel, mirror in ((prop, False), (mirr, True)):
        if not np.any(sel):
            continue
        pa, pb = net.z[A[sel]], net.z[B[sel]]
        if mirror:
            pa, pb = np.conj(pa), np.conj(pb)
        c = (np.conj(pa) * zo[i] + np.conj(pb) * zo[j]) / (np.abs(pa) ** 2 + np.abs(pb) ** 2)
        cs.append(c)
        ms.append(np.full(c.size, mirror))
    if not cs:
        return np.zeros(0, complex), np.zeros(0, bool)
    c = np.concatenate(cs)
    m = np.concatenate(ms)
    return c, m


def _evaluate(net: _ZoneNet, c: np.ndarray, mirror: np.ndarray, zo, tol_r, tol_t, gmax_obs):
    """Vectorised scoring of H hypotheses. Returns cost (H,), best index (H, n), q (H, n), n_missing (H,)."""
    zp = np.where(mirror[:, None], np.conj(net.z)[None, :], net.z[None, :]) * c[:, None]  # (H, m)
    u = zo / np.abs(zo)
    delta = zp[:, None, :] - zo[None, :, None]  # (H, n, m)
    rot = delta * np.conj(u)[None, :, None]
    scale_o = np.abs(zo)[None, :, None]
    zr = rot.real / (scale_o * tol_r[None, :, None])
    zt = rot.imag / (scale_o * tol_t[None, :, None])
    q = zr * zr + zt * zt
    eff = np.where(q <= 1.0, 9.0 * q + net.penalty[None, None, :], np.inf)
    best = np.argmin(eff, axis=2)  # (H, n)
    beff = np.take_along_axis(eff, best[..., None], 2)[..., 0]
    bq = np.take_along_axis(q, best[..., None], 2)[..., 0]
    cost_spot = np.where(np.isfinite(beff), beff, COST_UNMATCHED)
    matched = np.isfinite(beff)
    # missing: strong allowed reflections inside the observed range that no spot explains
    inrange = (
        (np.abs(zp) <= gmax_obs * 0.98) & (net.kind == 0)[None, :] & (net.intensity >= MISSING_MIN_INTENSITY)[None, :]
    )
    weight = np.minimum(1.0, net.intensity / MISSING_FULL_INTENSITY)
    used = np.zeros(zp.shape, bool)
    H, n = best.shape
    rows = np.repeat(np.arange(H), n)
    used[rows[matched.ravel()], best.ravel()[matched.ravel()]] = True
    # a spot explains both Friedel mates: mark the mate too (the net holds both signs)
    mate = _friedel_mate(net)
    used |= used[:, mate]
    missing = inrange & ~used
    n_missing = missing.sum(axis=1) // 2
    # both Friedel mates are counted: half a penalty each
    cost = cost_spot.sum(axis=1) + 0.5 * PENALTY_MISSING * (missing * weight[None, :]).sum(axis=1)
    return cost, best, np.where(matched, bq, np.inf), n_missing


def _friedel_mate(net: _ZoneNet) -> np.ndarray:
    if not hasattr(net, "_mate"):
        lookup = {tuple(h): k for k, h in enumerate(net.hkl)}
        net._mate = np.array([lookup.get(tuple(-h), k) for k, h in enumerate(net.hkl)])
    return net._mate


def _refine(net, c, mirror, best, q, zo, tol_r, tol_t, free_scale):
    """Least-squares similarity transform on the spots matched to allowed reflections."""
    ok = np.isfinite(q) & (net.kind[best] == 0)
    if ok.sum() < 1:
        return c
    zp = net.z[best[ok]]
    if mirror:
        zp = np.conj(zp)
    w = 1.0 / (np.abs(zo[ok]) ** 2 * (tol_r[ok] ** 2 + tol_t[ok] ** 2))
    c_new = np.sum(w * np.conj(zp) * zo[ok]) / np.sum(w * np.abs(zp) ** 2)
    if not free_scale:
        c_new = c_new / abs(c_new)
    return c_new


def _implied_scale(net, c, mirror, best, q, zo, sig_r):
    """Calibration factor k = |g_obs| / |g_calc| from matched allowed spots, with its error."""
    ok = np.isfinite(q) & (net.kind[best] == 0)
    if not np.any(ok):  # only extinct matches: still say what scale they imply
        ok = np.isfinite(q)
    if not np.any(ok):
        return float("nan"), float("nan")
    zp = net.z[best[ok]]
    if mirror:
        zp = np.conj(zp)
    pred_dir = zp * c / np.abs(zp * c)
    k_i = (zo[ok] * np.conj(pred_dir)).real / np.abs(zp)
    sig = sig_r[ok] / np.abs(zp)
    n = int(ok.sum())
    if np.all(sig > 0):
        w = 1.0 / sig**2
        k = float(np.sum(w * k_i) / np.sum(w))
        formal = float(1.0 / math.sqrt(np.sum(w)))
    else:
        k = float(np.mean(k_i))
        formal = 0.0
    scatter = float(np.std(k_i, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return k, max(formal, scatter)


def _best_transform(net, zo, pairs, order, r, tol_r, tol_t, smin, smax, free_scale, gmax_obs):
    """Best refined transform of one zone net for the given base pairs (None: no hypothesis).

    Returns (cost, n spots matched to allowed reflections, c, mirror).
    """
    cs, ms = [], []
    if pairs is not None:
        for i, j in pairs:
            c, m = _hypotheses(net, zo, i, j, tol_r, tol_t, smin, smax)
            cs.append(c)
            ms.append(m)
    else:  # a single spot or collinear spots: orient on the strongest spot only
        i = order[0]
        k = r[i] / net.absz
        sel = (k >= smin * (1 - tol_r[i])) & (k <= smax * (1 + tol_r[i]))
        for mirror in (False, True):
            p = np.conj(net.z[sel]) if mirror else net.z[sel]
            cs.append(zo[i] / p)
            ms.append(np.full(p.size, mirror))
    if not cs:
        return None
    c = np.concatenate(cs)
    m = np.concatenate(ms)
    if c.size == 0:
        return None
    if not free_scale:
        c = c / np.abs(c)
    # identical transforms from symmetry-equivalent labellings: keep one
    key = np.round(np.angle(c) * 200) + 1e4 * np.round(np.abs(c) * 500) + 1e9 * m
    _, first = np.unique(key, return_index=True)
    c, m = c[first], m[first]
    cost, best, q, _ = _evaluate(net, c, m, zo, tol_r, tol_t, gmax_obs)
    h = int(np.argmin(cost))
    c_ref = _refine(net, c[h], m[h], best[h], q[h], zo, tol_r, tol_t, free_scale)
    if free_scale and not (smin * 0.98 <= abs(c_ref) <= smax * 1.02):
        c_ref = c[h]
    cost2, best2, q2, _ = _evaluate(net, np.array([c_ref]), m[h : h + 1], zo, tol_r, tol_t, gmax_obs)
    if cost2[0] > cost[h]:  # refinement made it worse (rare): keep the hypothesis
        c_ref, cost2, best2, q2 = c[h], cost[h : h + 1], best[h : h + 1], q[h : h + 1]
    n_allowed = int(np.sum(np.isfinite(q2[0]) & (net.kind[best2[0]] == 0)))
    return float(cost2[0]), n_allowed, c_ref, bool(m[h])


def _solution(phase, net, c, mirror, zo, tol_r, tol_t, sig_r, gmax_obs, free_scale):
    import pandas as pd

    cost, best, q, n_missing = _evaluate(net, np.array([c]), np.array([mirror]), zo, tol_r, tol_t, gmax_obs)
    best, q = best[0], q[0]
    k, k_err = _implied_scale(net, c, mirror, best, q, zo, sig_r)
    zp = net.z[best]
    if mirror:
        zp = np.conj(zp)
    zp_img = zp * c
    matched = np.isfinite(q)
    kind = net.kind[best]
    status = np.where(~matched, "unmatched", np.where(kind == 0, "allowed", "extinct"))
    hkl = net.hkl[best]
    d_obs = 10.0 / np.abs(zo)
    d_calc = 10.0 / net.absz[best]
    kk = k if (free_scale and np.isfinite(k)) else 1.0
    residual = kk * d_obs - d_calc
    dphi = np.degrees(_wrap_pi(np.angle(zo) - np.angle(zp_img)))
    reasons = [net.reason[b] if (m and kd > 0) else "" for b, m, kd in zip(best, matched, kind)]
    spots = pd.DataFrame(
        {
            "gx_inv_nm": zo.real,
            "gy_inv_nm": zo.imag,
            "d_angstrom": d_obs,
            "h": hkl[:, 0],
            "k": hkl[:, 1],
            "l": hkl[:, 2],
            "status": status,
            "d_calc_angstrom": d_calc,
            "residual_angstrom": residual,
            "angle_residual_deg": dphi,
            "chi2": np.where(matched, 9.0 * q, np.nan),
            "extinction_reason": reasons,
            # predicted vector of the assigned reflection in the image frame at scale 1
            "gx_calc_inv_nm": (zp * c / abs(c)).real,
            "gy_calc_inv_nm": (zp * c / abs(c)).imag,
        }
    )
    e1_angle = math.degrees(math.atan2(c.imag, c.real))
    za = np.angle(zo[matched])
    spread = np.abs(((za[:, None] - za[None, :]) + np.pi / 2) % np.pi - np.pi / 2) if za.size else np.zeros((0, 0))
    determined = bool(spread.size and spread.max() > math.radians(5.0))
    return IndexingSolution(
        phase,
        net.uvw,
        e1_angle,
        bool(mirror),
        k,
        k_err,
        free_scale,
        float(cost[0]),
        spots,
        int(n_missing[0]),
        determined,
    )
