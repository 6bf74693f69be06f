"""Model fits: projected spheres convolved with the probe, fitted jointly per group of touching particles."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _kernels as K
from ._noise import NoiseModel

#: patches are block-averaged so that the smallest radius of a group spans at least this many fit pixels
FIT_RADIUS_PX = 7


def _union_groups(x, y, r, link, max_size=8):
    """Connected components of the 'touching' graph (centre distance < link * (r_i + r_j) + 2 px), capped."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(x)
    if n == 0:
        return np.zeros(0, int)
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_pairs(float(2 * link * r.max() + 2.0), output_type="ndarray")
    if len(pairs):
        d = np.hypot(x[pairs[:, 0]] - x[pairs[:, 1]], y[pairs[:, 0]] - y[pairs[:, 1]])
        pairs = pairs[d < link * (r[pairs[:, 0]] + r[pairs[:, 1]]) + 2.0]
    g = (
        coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        if len(pairs)
        else coo_matrix((n, n))
    )
    ncomp, lab = connected_components(g, directed=False)
    # split components larger than max_size into spatial chunks
    out = lab.copy()
    nxt = ncomp
    counts = np.bincount(lab)
    for c in np.nonzero(counts > max_size)[0]:
        idx = np.nonzero(lab == c)[0]
        order = idx[np.lexsort((x[idx], y[idx]))]
        for start in range(max_size, len(order), max_size):
            out[order[start : start + max_size]] = nxt
            nxt += 1
    _, out = np.unique(out, return_inverse=True)
    return out


@dataclass
class _Fit:
    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    h: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    r_err: np.ndarray
    ok: np.ndarray
    group: np.ndarray
    chi2_red: np.ndarray
    bg: np.ndarray
    sigma_px: float
    h_err: np.ndarray


def _prepare_groups(img, x, y, r, group, members, fit_sigma_px, b_of_group, margin_extra, invalid=None):
    """Cut the binned patch of each group; returns the flat arrays the numba fit takes."""
    H, W = img.shape
    xs_l, ys_l, data_l, w_l = [], [], [], []
    pix_off = [0]
    par_l = []
    par_off = [0]
    npart = []
    xc_l, yc_l = [], []
    origin = []
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([x, y])) if len(x) else None
    rmax_all = float(r.max()) if len(r) else 0.0
    for g, idx in enumerate(members):
        b = int(b_of_group[g])
        rg = r[idx]
        margin = 0.4 * rg.max() + 3.0 * fit_sigma_px + 2.0 * b + margin_extra
        x0 = int(math.floor(max(0.0, (x[idx] - rg).min() - margin)))
        x1 = int(math.ceil(min(W, (x[idx] + rg).max() + margin + 1)))
        y0 = int(math.floor(max(0.0, (y[idx] - rg).min() - margin)))
        y1 = int(math.ceil(min(H, (y[idx] + rg).max() + margin + 1)))
        nx = max(1, (x1 - x0) // b)
        ny = max(1, (y1 - y0) // b)
        patch = img[y0 : y0 + ny * b, x0 : x0 + nx * b].astype(np.float64)
        if b > 1:
            patch = patch.reshape(ny, b, nx, b).mean(axis=(1, 3))
        # fit coordinates: fit-pixel index (u, v); full px = x0 + (u + 0.5) b - 0.5
        vv, uu = np.mgrid[:ny, :nx]
        fx = x0 + (np.arange(nx) + 0.5) * b - 0.5  # row vector of x (full px)
        fy = (y0 + (np.arange(ny) + 0.5) * b - 0.5)[:, None]
        wts = np.ones((ny, nx))
        if invalid is not None:  # NaN/inf pixels of the file carry no weight (a block with one is left out)
            nb = invalid[y0 : y0 + ny * b, x0 : x0 + nx * b]
            wts[(nb.reshape(ny, b, nx, b).any(axis=(1, 3)) if b > 1 else nb)] = 0.0
        # mask the particles of other groups that reach into the patch
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        rad = 0.5 * math.hypot(x1 - x0, y1 - y0) + rmax_all
        near = np.asarray(tree.query_ball_point([cx, cy], rad), dtype=np.int64)
        near = near[group[near] != g]
        if near.size:
            reach = r[near] + 2.0 * fit_sigma_px + 1.5 * b
            ddx = np.maximum(np.maximum(x0 - x[near], x[near] - x1), 0.0)
            ddy = np.maximum(np.maximum(y0 - y[near], y[near] - y1), 0.0)
            for k, rk in zip(near[np.hypot(ddx, ddy) < reach], reach[np.hypot(ddx, ddy) < reach]):
                wts[(fx - x[k]) ** 2 + (fy - y[k]) ** 2 < rk * rk] = 0.0
        inside = np.zeros((ny, nx), bool)
        for k in idx:
            inside |= (fx - x[k]) ** 2 + (fy - y[k]) ** 2 < (1.3 * r[k] + 2 * fit_sigma_px) ** 2
        ring = patch[(~inside) & (wts > 0)]
        b0 = float(np.median(ring)) if ring.size >= 5 else float(np.percentile(patch, 10))
        p = [b0] + [0.0] * (K.N_BACKGROUND - 1)
        for k in idx:
            u = (x[k] - x0 + 0.5) / b - 0.5
            v = (y[k] - y0 + 0.5) / b - 0.5
            iu = int(np.clip(round(u), 0, nx - 1))
            iv = int(np.clip(round(v), 0, ny - 1))
            hk = max(float(patch[iv, iu] - b0), 1e-6 * max(abs(b0), 1.0))
            p += [u, v, r[k] / b, hk]
        xs_l.append(uu.ravel().astype(np.float64))
        ys_l.append(vv.ravel().astype(np.float64))
        data_l.append(patch.ravel())
        w_l.append(wts.ravel())
        pix_off.append(pix_off[-1] + patch.size)
        par_l.append(np.array(p))
        par_off.append(par_off[-1] + len(p))
        npart.append(len(idx))
        xc_l.append(0.5 * (nx - 1))
        yc_l.append(0.5 * (ny - 1))
        origin.append((x0, y0, b))
    return dict(
        xs=np.concatenate(xs_l),
        ys=np.concatenate(ys_l),
        data=np.concatenate(data_l),
        wts=np.concatenate(w_l),
        pix_off=np.array(pix_off, np.int64),
        params=np.concatenate(par_l),
        par_off=np.array(par_off, np.int64),
        npart=np.array(npart, np.int64),
        xc=np.array(xc_l),
        yc=np.array(yc_l),
        origin=origin,
    )


def _insert_sigma(prep, sigma_fit):
    """Parameter layout with a per-group sigma after the background terms (for the fit_sigma pass)."""
    params, offs = [], [0]
    for g in range(len(prep["npart"])):
        p = prep["params"][prep["par_off"][g] : prep["par_off"][g + 1]]
        nb = K.N_BACKGROUND
        params.append(np.concatenate([p[:nb], [sigma_fit[g]], p[nb:]]))
        offs.append(offs[-1] + len(params[-1]))
    return np.concatenate(params), np.array(offs, np.int64)


def _run_fit(prep, fit_sigma, s2, params, par_off, wts, max_iter=100):
    t = K.profile_table()
    return K.fit_groups(
        prep["xs"],
        prep["ys"],
        prep["data"],
        wts,
        prep["pix_off"],
        params,
        par_off,
        prep["npart"],
        prep["xc"],
        prep["yc"],
        fit_sigma,
        s2,
        t.packed,
        t.params,
        max_iter,
        0.3,
        1e4,
    )


def _fit_particles(img, x, y, r, strength, noise: NoiseModel, probe_sigma_px, link=1.15, invalid=None):
    """Joint model fits of all particles; returns a :class:`_Fit` (full-resolution px units)."""
    n = len(x)
    group = _union_groups(x, y, r, link)
    ng = int(group.max()) + 1
    members = [np.nonzero(group == g)[0] for g in range(ng)]
    H, W = img.shape
    sigma_guess = probe_sigma_px if probe_sigma_px is not None else max(0.5, 0.05 * float(np.median(r)))
    b_of_group = np.array([max(1, int(r[m].min() // FIT_RADIUS_PX)) for m in members])
    prep = _prepare_groups(img, x, y, r, group, members, sigma_guess, b_of_group, 0.0, invalid)
    bsz = np.array([o[2] for o in prep["origin"]], float)
    base_w = prep["wts"]

    # --- probe sigma: fitted on the brightest isolated particles, then fixed
    if probe_sigma_px is None:
        iso = [
            g
            for g, m in enumerate(members)
            if len(m) == 1
            and x[m[0]] - r[m[0]] > 2
            and y[m[0]] - r[m[0]] > 2
            and x[m[0]] + r[m[0]] < W - 3
            and y[m[0]] + r[m[0]] < H - 3
        ]
        iso = sorted(iso, key=lambda g: -strength[members[g][0]])[:24]
        sig_est = []
        if iso:
            sub = _subset(prep, iso)
            p_s, off_s = _insert_sigma(sub, sigma_guess / bsz[iso])
            out, _F, _msq, _c2, _it, conv = _run_fit(sub, True, np.zeros(len(iso)), p_s, off_s, sub["wts"])
            for j, g in enumerate(iso):
                sg = abs(out[off_s[j] + K.N_BACKGROUND]) * bsz[g]
                if conv[j] and np.isfinite(sg):
                    sig_est.append(sg)
        probe_sigma_px = float(np.median(sig_est)) if sig_est else sigma_guess
        probe_sigma_px = float(np.clip(probe_sigma_px, 0.0, 0.4 * float(np.median(r))))
    s2 = (probe_sigma_px / bsz) ** 2 + 1.0 / 12.0

    # --- all groups, sigma fixed. Counts: weights 1/variance of the model (from the starting values, then
    # refreshed once at the solution, where the Fisher matrix is taken); otherwise unweighted
    if noise.counts:
        t = K.profile_table()
        bb = np.repeat(bsz, np.diff(prep["pix_off"]))

        def _weights(par):
            model = K.eval_groups(
                prep["xs"],
                prep["ys"],
                prep["pix_off"],
                par,
                prep["par_off"],
                prep["npart"],
                prep["xc"],
                prep["yc"],
                False,
                s2,
                t.packed,
                t.params,
            )
            var = (noise.gain * np.maximum(model, noise.gain) + noise.offset) / (bb * bb)
            return np.where(base_w > 0, 1.0 / var, 0.0)

        out, F, msq, chi2, nit, conv = _run_fit(
            prep, False, s2, prep["params"], prep["par_off"], _weights(prep["params"])
        )
        # Fisher matrix and chi2 at the solution with the variance of the fitted model (no further steps:
        # max_iter=0 only evaluates the normal equations)
        out, F, msq, chi2, _nit, _conv = _run_fit(prep, False, s2, out, prep["par_off"], _weights(out), max_iter=0)
    else:
        out, F, msq, chi2, nit, conv = _run_fit(prep, False, s2, prep["params"], prep["par_off"], base_w)
    # --- unpack
    fx = np.full(n, np.nan)
    fy, fr, fh, ex, ey, er, eh = (np.full(n, np.nan) for _ in range(7))
    ok = np.zeros(n, bool)
    chi2_red = np.full(n, np.nan)
    bg_level = np.full(n, np.nan)
    npix = np.array([int((base_w[prep["pix_off"][g] : prep["pix_off"][g + 1]] > 0).sum()) for g in range(ng)])
    for g, idx in enumerate(members):
        c, d = prep["par_off"][g], prep["par_off"][g + 1]
        m = d - c
        p = out[c:d]
        Fm = F[msq[g] : msq[g + 1]].reshape(m, m)
        dof = max(npix[g] - m, 1)
        try:
            cov = np.linalg.inv(Fm)
        except np.linalg.LinAlgError:
            cov = np.full((m, m), np.nan)
        if noise.counts:
            red = chi2[g] / dof
        else:
            red = chi2[g] / dof
            cov = cov * red  # residual variance estimate
            exp_var = (noise.offset + noise.gain * max(p[0], 0.0)) / bsz[g] ** 2
            red = red / exp_var if exp_var > 0 else np.nan
        x0, y0, b = prep["origin"][g]
        for j, k in enumerate(idx):
            o = K.N_BACKGROUND + 4 * j
            u, v, R, Hh = p[o : o + 4]
            fx[k] = x0 + (u + 0.5) * b - 0.5
            fy[k] = y0 + (v + 0.5) * b - 0.5
            fr[k] = R * b
            fh[k] = Hh
            dg = np.diag(cov)[o : o + 4]
            with np.errstate(invalid="ignore"):
                ex[k], ey[k], er[k] = np.sqrt(dg[:3]) * b
                eh[k] = np.sqrt(dg[3])
            chi2_red[k] = red
            bg_level[k] = p[0]
            # a fit that wandered off its seed or changed its size wildly did not find this particle
            moved = math.hypot(fx[k] - x[k], fy[k] - y[k]) > 0.6 * r[k] + 2.0
            ok[k] = bool(
                conv[g]
                and np.isfinite(er[k])
                and Hh > 0
                and 0.31 * b < fr[k]
                and er[k] < 0.5 * fr[k]
                and np.all(np.isfinite(dg))
                and np.all(dg >= 0)
                and not moved
                and 0.4 * r[k] < fr[k] < 2.5 * r[k]
            )
    return _Fit(fx, fy, fr, fh, ex, ey, er, ok, group, chi2_red, bg_level, float(probe_sigma_px), eh)


def _subset(prep, groups):
    xs, ys, data, wts, po, pa, po2 = [], [], [], [], [0], [], [0]
    for g in groups:
        a, b = prep["pix_off"][g], prep["pix_off"][g + 1]
        c, d = prep["par_off"][g], prep["par_off"][g + 1]
        xs.append(prep["xs"][a:b])
        ys.append(prep["ys"][a:b])
        data.append(prep["data"][a:b])
        wts.append(prep["wts"][a:b])
        po.append(po[-1] + b - a)
        pa.append(prep["params"][c:d])
        po2.append(po2[-1] + d - c)
    return dict(
        xs=np.concatenate(xs),
        ys=np.concatenate(ys),
        data=np.concatenate(data),
        wts=np.concatenate(wts),
        pix_off=np.array(po, np.int64),
        params=np.concatenate(pa),
        par_off=np.array(po2, np.int64),
        npart=prep["npart"][groups],
        xc=prep["xc"][groups],
        yc=prep["yc"][groups],
    )
