"""Model fits: projected spheres convolved with the probe, fitted jointly per group of touching particles."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _kernels as K
from ._noise import NoiseModel

#: patches are block-averaged so that the smallest radius of a group spans at least this many fit pixels
FIT_RADIUS_PX = 7


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
    #: chi2_red over each particle's own disc (:func:`latticefit.particles._groupfit._disc_chi2`); the group's
    #: where the disc is too small
    chi2_disc: np.ndarray = None  # type: ignore[assignment]
    #: chi2_red of the group's fit pixels outside all its discs
    #: (:func:`latticefit.particles._groupfit._background_residual`)
    chi2_bg: np.ndarray = None  # type: ignore[assignment]
    #: RMS of the model misfit over each particle's disc beyond the noise, as a fraction of its fitted height
    misfit: np.ndarray = None  # type: ignore[assignment]
    #: each particle's group background surface: ``N_BACKGROUND`` terms, then ``xc, yc`` (fit px) and the
    #: window's ``x0, y0, b`` (:func:`latticefit.particles._own_background.fitted_background`)
    bg_surface: np.ndarray = None  # type: ignore[assignment]

    def concat(self, other: _Fit) -> _Fit:
        """These fits followed by ``other``'s (its groups renumbered after these; the probe sigma is this one's)."""
        from dataclasses import fields, replace

        arrays = {}
        for f in fields(self):
            if f.name == "sigma_px":
                continue
            b = getattr(other, f.name)
            if f.name == "group":
                b = b + (int(self.group.max()) + 1 if self.group.size else 0)
            arrays[f.name] = np.concatenate([getattr(self, f.name), b])
        return replace(self, **arrays)

    def where(self, use, other: _Fit) -> _Fit:
        """``other``'s fits for the particles ``use`` (boolean mask), these for the rest (same particles); the
        group ids stay these.
        """
        from dataclasses import fields, replace

        arrays = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name not in ("sigma_px", "group") and a is not None and b is not None:
                arrays[f.name] = np.where(use.reshape((-1,) + (1,) * (np.ndim(a) - 1)), b, a)
        return replace(self, **arrays)

    def select(self, keep) -> _Fit:
        """The fits of the particles ``keep`` (boolean mask); the probe sigma is shared."""
        from dataclasses import fields, replace

        arrays = {f.name: getattr(self, f.name)[keep] for f in fields(self) if f.name != "sigma_px"}
        return replace(self, **arrays)


@dataclass
class _Window:
    """The box of one group in full-resolution px (``x0:x1``, ``y0:y1``) and its ``ny`` x ``nx`` fit pixels of ``b`` px."""

    x0: int
    x1: int
    y0: int
    y1: int
    nx: int
    ny: int
    b: int

    def pixel_centres(self):
        """Full-resolution px of the fit pixels' centres: ``x0 + (u + 0.5) b - 0.5`` (row) and the column of y."""
        fx = self.x0 + (np.arange(self.nx) + 0.5) * self.b - 0.5
        fy = (self.y0 + (np.arange(self.ny) + 0.5) * self.b - 0.5)[:, None]
        return fx, fy


def _group_window(shape, x, y, rg, b, margin):
    """The group's box (its disks plus ``margin``, clipped to the image), a whole number of ``b`` px blocks."""
    H, W = shape
    x0 = int(math.floor(max(0.0, (x - rg).min() - margin)))
    x1 = int(math.ceil(min(W, (x + rg).max() + margin + 1)))
    y0 = int(math.floor(max(0.0, (y - rg).min() - margin)))
    y1 = int(math.ceil(min(H, (y + rg).max() + margin + 1)))
    return _Window(x0, x1, y0, y1, max(1, (x1 - x0) // b), max(1, (y1 - y0) // b), b)


def _binned(a, w: _Window):
    """The window's cut of ``a``, block-averaged by ``b`` (float64)."""
    patch = a[w.y0 : w.y0 + w.ny * w.b, w.x0 : w.x0 + w.nx * w.b].astype(np.float64)
    if w.b > 1:
        patch = patch.reshape(w.ny, w.b, w.nx, w.b).mean(axis=(1, 3))
    return patch


def _patch_weights(w: _Window, g, x, y, r, group, tree, rmax_all, fit_sigma_px, invalid):
    """Fit-pixel weights: 0 on blocks with a NaN/inf pixel and on the particles of other groups reaching in."""
    b = w.b
    fx, fy = w.pixel_centres()
    wts = np.ones((w.ny, w.nx))
    if invalid is not None:  # NaN/inf pixels of the file carry no weight (a block with one is left out)
        nb = invalid[w.y0 : w.y0 + w.ny * b, w.x0 : w.x0 + w.nx * b]
        wts[(nb.reshape(w.ny, b, w.nx, b).any(axis=(1, 3)) if b > 1 else nb)] = 0.0
    # mask the particles of other groups that reach into the patch
    cx, cy = 0.5 * (w.x0 + w.x1), 0.5 * (w.y0 + w.y1)
    rad = 0.5 * math.hypot(w.x1 - w.x0, w.y1 - w.y0) + rmax_all
    near = np.asarray(tree.query_ball_point([cx, cy], rad), dtype=np.int64)
    near = near[group[near] != g]
    if near.size:
        reach = r[near] + 2.0 * fit_sigma_px + 1.5 * b
        ddx = np.maximum(np.maximum(w.x0 - x[near], x[near] - w.x1), 0.0)
        ddy = np.maximum(np.maximum(w.y0 - y[near], y[near] - w.y1), 0.0)
        for k, rk in zip(near[np.hypot(ddx, ddy) < reach], reach[np.hypot(ddx, ddy) < reach]):
            wts[(fx - x[k]) ** 2 + (fy - y[k]) ** 2 < rk * rk] = 0.0
    return wts


def _median(a) -> float:
    """``np.median`` of a 1-D array by one partition (its call overhead is most of the time on small rings).

    Examples
    --------
    >>> _median(np.array([3.0, 1.0, 2.0])), _median(np.array([4.0, 1.0, 3.0, 2.0]))
    (2.0, 2.5)
    """
    n = a.size
    h = n // 2
    if n % 2:
        return float(np.partition(a, h)[h])
    p = np.partition(a, [h - 1, h])
    return 0.5 * (float(p[h - 1]) + float(p[h]))


def _start_params(patch, wts, w: _Window, idx, x, y, r, fit_sigma_px):
    """Starting values: background (median of the ring outside the disks), then (u, v, R, height) per particle."""
    b = w.b
    fx, fy = w.pixel_centres()
    inside = np.zeros((w.ny, w.nx), bool)
    for k in idx:
        inside |= (fx - x[k]) ** 2 + (fy - y[k]) ** 2 < (1.3 * r[k] + 2 * fit_sigma_px) ** 2
    ring = patch[(~inside) & (wts > 0)]
    b0 = _median(ring) if ring.size >= 5 else float(np.percentile(patch, 10))
    p = [b0] + [0.0] * (K.N_BACKGROUND - 1)
    heights = []
    for k in idx:
        u = (x[k] - w.x0 + 0.5) / b - 0.5
        v = (y[k] - w.y0 + 0.5) / b - 0.5
        iu, iv = int(np.clip(round(u), 0, w.nx - 1)), int(np.clip(round(v), 0, w.ny - 1))
        hk = float(patch[iv, iu] - b0)
        core = ((fx - x[k]) ** 2 + (fy - y[k]) ** 2 <= (0.5 * r[k]) ** 2) & (wts > 0)
        if hk <= 0 and core.any():  # a noisy centre pixel: the mean of the central quarter of the disc
            hk = float(patch[core].mean() - b0)
        heights.append(hk)
        p += [u, v, r[k] / b, 0.0]
    p = np.array(p)
    p[K.N_BACKGROUND + 3 :: 4] = _start_heights(np.array(heights), b0)
    return p


def _start_heights(h, b0):
    """Starting heights: where one is still not positive, the group's median positive one.

    At a height of ~0 the model does not depend on a sphere's centre and radius: the fit's step for them is
    unbounded. A dot of a raft whose centre pixel lay at the background (8 px dots at 20 counts/px) started
    at 1e-4, ran off to 1e5 px, and the singular Fisher matrix of its group failed all eight dots' fits
    (``bench_particles_crowded.py --seed 800``).

    Examples
    --------
    >>> _start_heights(np.array([50.0, -3.0, 70.0]), 100.0).tolist()
    [50.0, 60.0, 70.0]
    """
    floor = 1e-6 * max(abs(b0), 1.0)
    pos = h[h > floor]
    fill = float(np.median(pos)) if pos.size else floor
    return np.where(h > floor, h, fill)


def _prepare_groups(img, x, y, r, group, members, fit_sigma_px, b_of_group, margin_extra, invalid=None):
    """Cut the binned patch of each group; returns the flat arrays the numba fit takes.

    The windows and the other groups' particles near each are found here, the patches cut, weighted and
    started by :func:`latticefit.particles._prep_kernels.prepare_patches` (:func:`_prepare_groups_ref` is
    its numpy reference, with the same result).
    """
    from ._prep_kernels import prepare_patches

    wins = _group_windows(img.shape, x, y, r, members, fit_sigma_px, b_of_group, margin_extra)
    win = np.array([(w.x0, w.x1, w.y0, w.y1, w.nx, w.ny, w.b) for w in wins], np.int64).reshape(-1, 7)
    mem_off = np.concatenate([[0], np.cumsum([len(m) for m in members])]).astype(np.int64)
    mem_idx = np.concatenate(members).astype(np.int64) if members else np.zeros(0, np.int64)
    near_off, near_idx = _near_other_groups(win, x, y, r, group)
    inv = np.zeros((0, 0), bool) if invalid is None else np.ascontiguousarray(invalid, bool)
    xs, ys, data, wts, pix_off, params, par_off = prepare_patches(
        np.ascontiguousarray(img), inv, win, mem_off, mem_idx, near_off, near_idx,
        np.asarray(x, float), np.asarray(y, float), np.asarray(r, float), float(fit_sigma_px), K.N_BACKGROUND,
    )  # fmt: skip
    return dict(
        xs=xs,
        ys=ys,
        data=data,
        wts=wts,
        pix_off=pix_off,
        params=params,
        par_off=par_off,
        npart=np.diff(mem_off),
        xc=0.5 * (win[:, 4] - 1.0),
        yc=0.5 * (win[:, 5] - 1.0),
        origin=[(int(v[0]), int(v[2]), int(v[6])) for v in win],
    )


def _group_windows(shape, x, y, r, members, fit_sigma_px, b_of_group, margin_extra):
    """Each group's :func:`_group_window`: its disks plus 0.4 of its largest radius, 3 probe sigmas, 2 blocks
    and ``margin_extra``.
    """
    out = []
    for g, idx in enumerate(members):
        b = int(b_of_group[g])
        margin = 0.4 * r[idx].max() + 3.0 * fit_sigma_px + 2.0 * b + margin_extra
        out.append(_group_window(shape, x[idx], y[idx], r[idx], b, margin))
    return out


def _near_other_groups(win, x, y, r, group):
    """CSR lists of the particles of other groups within a window's half-diagonal + the largest radius."""
    from scipy.spatial import cKDTree

    if not len(win):
        return np.zeros(1, np.int64), np.zeros(0, np.int64)
    tree = cKDTree(np.column_stack([x, y]))
    cx, cy = 0.5 * (win[:, 0] + win[:, 1]), 0.5 * (win[:, 2] + win[:, 3])
    rad = 0.5 * np.hypot(win[:, 1] - win[:, 0], win[:, 3] - win[:, 2]) + float(r.max())
    lists = tree.query_ball_point(np.column_stack([cx, cy]), rad)
    near = [np.asarray(sorted(q), np.int64) for q in lists]
    near = [q[group[q] != g] for g, q in enumerate(near)]
    off = np.concatenate([[0], np.cumsum([len(q) for q in near])]).astype(np.int64)
    return off, (np.concatenate(near) if off[-1] else np.zeros(0, np.int64))


def _prepare_groups_ref(img, x, y, r, group, members, fit_sigma_px, b_of_group, margin_extra, invalid=None):
    """Numpy reference of :func:`_prepare_groups` (one group at a time)."""
    from scipy.spatial import cKDTree

    cols = {key: [] for key in ("xs", "ys", "data", "wts", "params", "npart", "xc", "yc", "origin")}
    pix_off, par_off = [0], [0]
    tree = cKDTree(np.column_stack([x, y])) if len(x) else None
    rmax_all = float(r.max()) if len(r) else 0.0
    windows = _group_windows(img.shape, x, y, r, members, fit_sigma_px, b_of_group, margin_extra)
    for g, (idx, w) in enumerate(zip(members, windows)):
        patch = _binned(img, w)
        # fit coordinates: fit-pixel index (u, v); full px = x0 + (u + 0.5) b - 0.5
        vv, uu = np.mgrid[: w.ny, : w.nx]
        wts = _patch_weights(w, g, x, y, r, group, tree, rmax_all, fit_sigma_px, invalid)
        p = _start_params(patch, wts, w, idx, x, y, r, fit_sigma_px)
        cols["xs"].append(uu.ravel().astype(np.float64))
        cols["ys"].append(vv.ravel().astype(np.float64))
        cols["data"].append(patch.ravel())
        cols["wts"].append(wts.ravel())
        pix_off.append(pix_off[-1] + patch.size)
        cols["params"].append(p)
        par_off.append(par_off[-1] + len(p))
        cols["npart"].append(len(idx))
        cols["xc"].append(0.5 * (w.nx - 1))
        cols["yc"].append(0.5 * (w.ny - 1))
        cols["origin"].append((w.x0, w.y0, w.b))
    return dict(
        xs=np.concatenate(cols["xs"]),
        ys=np.concatenate(cols["ys"]),
        data=np.concatenate(cols["data"]),
        wts=np.concatenate(cols["wts"]),
        pix_off=np.array(pix_off, np.int64),
        params=np.concatenate(cols["params"]),
        par_off=np.array(par_off, np.int64),
        npart=np.array(cols["npart"], np.int64),
        xc=np.array(cols["xc"]),
        yc=np.array(cols["yc"]),
        origin=cols["origin"],
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


@dataclass
class _Solution:
    """The joint fit of all groups: parameters, packed Fisher matrices (offsets ``msq``), chi2, convergence."""

    params: np.ndarray
    fisher: np.ndarray
    msq: np.ndarray
    chi2: np.ndarray
    conv: np.ndarray
    wts: np.ndarray  # the pixel weights at the solution
    model: np.ndarray | None = None  # the model at the solution's pixels, when already evaluated


def _isolated_groups(members, x, y, r, strength, shape, n_max=24):
    """Single-particle groups whose disk lies 2-3 px inside the image, brightest first (at most ``n_max``)."""
    H, W = shape
    iso = [
        g
        for g, m in enumerate(members)
        if len(m) == 1
        and x[m[0]] - r[m[0]] > 2
        and y[m[0]] - r[m[0]] > 2
        and x[m[0]] + r[m[0]] < W - 3
        and y[m[0]] + r[m[0]] < H - 3
    ]
    return sorted(iso, key=lambda g: -strength[members[g][0]])[:n_max]


#: the sigma² of the isolated particles agree when the chi2 per degree of freedom of their precision-weighted
#: mean is at most this (0.4-0.8 on synthetic fields of one probe; 8-16 on the real Velox view, 12 on the EMI)
SIGMA_AGREEMENT = 3.0


def _fit_probe_sigma(prep, iso, bsz, sigma_guess, r):
    """Probe sigma (full px) from free fits of the isolated groups ``iso``.

    Where their sigma² agree (:data:`SIGMA_AGREEMENT`), the square root of their precision-weighted mean;
    otherwise (particles that do not share one profile, as on the real files) the median of the sigmas.
    sigma² carries Fisher information at 0 where sigma does not (SE(sigma²) = 2 sigma SE(sigma) stays
    finite), so a fit that finds no blur counts with its weight instead of as a zero. The median alone was
    the median of noise at 6 px per diameter: on an aggregate field its estimates were 0.008-3.8 px for a
    true 0.30, it went 0.13 -> 0.40 px over the merge rounds, and the diameters moved by 1.5 %.
    ``sigma_guess`` when none converges; clipped to [0, 0.4 median(r)].
    """
    sig, se = [], []
    if iso:
        sub = _subset(prep, iso)
        p_s, off_s = _insert_sigma(sub, sigma_guess / bsz[iso])
        out, F, msq, chi2, _it, conv = _run_fit(sub, True, np.zeros(len(iso)), p_s, off_s, sub["wts"])
        npix = np.add.reduceat(sub["wts"] > 0, sub["pix_off"][:-1])
        for j, g in enumerate(iso):
            sg = abs(out[off_s[j] + K.N_BACKGROUND]) * bsz[g]
            if conv[j] and np.isfinite(sg):
                sig.append(sg)
                cov = _covariance(F[msq[j] : msq[j + 1]], off_s[j + 1] - off_s[j], chi2[j], npix[j], True)
                var = cov[K.N_BACKGROUND, K.N_BACKGROUND]  # the sigma parameter (unweighted fit)
                se.append(math.sqrt(var) * bsz[g] if var > 0 else np.nan)
    probe_sigma_px = combined_sigma(np.array(sig), np.array(se)) if sig else sigma_guess
    return float(np.clip(probe_sigma_px, 0.0, 0.4 * float(np.median(r))))


def combined_sigma(sig, se) -> float:
    """One probe sigma from per-particle estimates ``sig`` and their standard errors ``se`` (NaN: unknown).

    sqrt of the precision-weighted mean of sigma² (SE(sigma²) = 2 sigma SE(sigma)) where the estimates
    agree (chi2 per degree of freedom <= :data:`SIGMA_AGREEMENT`), else the median of ``sig``.

    Examples
    --------
    >>> sig = np.array([0.01, 0.24, 0.31, 0.36])  # one probe: the fit that found no blur counts
    >>> round(combined_sigma(sig, np.array([5.0, 0.2, 0.15, 0.2])), 3), float(np.median(sig))
    (0.252, 0.275)
    >>> combined_sigma(np.array([0.0, 0.8, 0.9]), np.array([3.0, 0.02, 0.02]))  # they disagree: the median
    0.8
    """
    ok = np.isfinite(se) & (se > 0)
    if ok.sum() >= 2:
        v = sig[ok] ** 2
        w = 1.0 / np.maximum(2.0 * sig[ok] * se[ok], 1e-3) ** 2  # floored at 1e-3 px²: a fit at exactly 0
        mean = float(np.dot(w, v) / w.sum())
        if np.dot(w, (v - mean) ** 2) / (len(v) - 1) <= SIGMA_AGREEMENT:
            return math.sqrt(mean)
    return float(np.median(sig))


def _count_weights(prep, par, s2, bsz, noise: NoiseModel, model=None):
    """Weights 1/variance of the model ``par`` (counting noise, per fit pixel of ``b`` x ``b`` px); 0 where masked."""
    bb = np.repeat(bsz, np.diff(prep["pix_off"]))
    model = _model_values(prep, par, s2) if model is None else model
    var = (noise.gain * np.maximum(model, noise.gain) + noise.offset) / (bb * bb)
    return np.where(prep["wts"] > 0, 1.0 / var, 0.0)


def _model_values(prep, par, s2):
    """The fitted model of every group at its pixels."""
    t = K.profile_table()
    return K.eval_groups(
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


def _fit_all_groups(prep, noise: NoiseModel, s2, bsz) -> _Solution:
    """All groups with the probe sigma fixed.

    Counts: weights 1/variance of the model (from the starting values, then refreshed once at the solution,
    where the Fisher matrix is taken); otherwise unweighted.
    """
    if noise.counts:
        w0 = _count_weights(prep, prep["params"], s2, bsz, noise)
        out, F, msq, chi2, _nit, conv = _run_fit(prep, False, s2, prep["params"], prep["par_off"], w0)
        # Fisher matrix and chi2 at the solution with the variance of the fitted model (no further steps:
        # max_iter=0 only evaluates the normal equations)
        model = _model_values(prep, out, s2)
        w1 = _count_weights(prep, out, s2, bsz, noise, model)
        out, F, msq, chi2, _nit, _conv = _run_fit(prep, False, s2, out, prep["par_off"], w1, max_iter=0)
        return _Solution(out, F, msq, chi2, conv, w1, model)
    out, F, msq, chi2, _nit, conv = _run_fit(prep, False, s2, prep["params"], prep["par_off"], prep["wts"])
    return _Solution(out, F, msq, chi2, conv, prep["wts"])


def _group_covariance(sol: _Solution, g, p, npix, noise: NoiseModel):
    """Covariance of group ``g``'s parameters ``p``; without counting noise scaled by the residual variance.

    (The group's reduced chi2 against the noise model is :func:`latticefit.particles._groupfit._disc_chi2`'s.)
    """
    return _covariance(sol.fisher[sol.msq[g] : sol.msq[g + 1]], len(p), sol.chi2[g], npix, not noise.counts)


def _covariance(fisher_flat, m, chi2, npix, residual_scaled):
    """Inverse of one group's packed ``m`` x ``m`` Fisher matrix (NaN when singular), times the residual
    variance ``chi2 / (npix - m)`` when ``residual_scaled`` (an unweighted fit).
    """
    try:
        cov = np.linalg.inv(fisher_flat.reshape(m, m))
    except np.linalg.LinAlgError:
        cov = np.full((m, m), np.nan)
    return cov * (chi2 / max(int(npix) - m, 1)) if residual_scaled else cov


def _unpack(prep, members, sol: _Solution, x, y, r, noise: NoiseModel, bsz, group, probe_sigma_px):
    """Per-particle values in full-resolution px, their errors, and whether the fit found the particle.

    Returns ``(fit, own_ok)``: ``own_ok`` tells which particles pass their own checks (centre, size,
    height, error) whether or not their group converged; ``fit.ok`` is that and the convergence.

    ``chi2_red`` is left NaN: :func:`latticefit.particles._groupfit._disc_chi2` fills it, with the chi2 of the
    discs.
    """
    n = len(x)
    fx = np.full(n, np.nan)
    fy, fr, fh, ex, ey, er, eh = (np.full(n, np.nan) for _ in range(7))
    ok = np.zeros(n, bool)
    own_ok = np.zeros(n, bool)
    chi2_red = np.full(n, np.nan)
    bg_level = np.full(n, np.nan)
    bg_surface = np.full((n, K.N_BACKGROUND + 5), np.nan)
    po = prep["pix_off"]
    npix = np.array([int((prep["wts"][po[g] : po[g + 1]] > 0).sum()) for g in range(len(members))])
    for g, idx in enumerate(members):
        p = sol.params[prep["par_off"][g] : prep["par_off"][g + 1]]
        cov = _group_covariance(sol, g, p, npix[g], noise)
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
            bg_level[k] = p[0]
            bg_surface[k] = np.concatenate([p[: K.N_BACKGROUND], [prep["xc"][g], prep["yc"][g], x0, y0, b]])
            # a fit that wandered off its seed or changed its size wildly did not find this particle
            moved = math.hypot(fx[k] - x[k], fy[k] - y[k]) > 0.6 * r[k] + 2.0
            own_ok[k] = bool(
                np.isfinite(er[k])
                and Hh > 0
                and 0.31 * b < fr[k]
                and er[k] < 0.5 * fr[k]
                and np.all(np.isfinite(dg))
                and np.all(dg >= 0)
                and not moved
                and 0.4 * r[k] < fr[k] < 2.5 * r[k]
            )
            ok[k] = own_ok[k] and bool(sol.conv[g])
    fit = _Fit(
        fx, fy, fr, fh, ex, ey, er, ok, group, chi2_red, bg_level, float(probe_sigma_px), eh, bg_surface=bg_surface
    )
    return fit, own_ok


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
