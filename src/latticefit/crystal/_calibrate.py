"""Part of :mod:`_calibration` (see its docstring): calibrate."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _calibration_affine as ca
from ..errors import AnalysisError, LatticefitError
from ..micrograph import as_micrograph
from ._calibration_record import Calibration, _phase, _roi_dict
from ._indexing import check_index_params, index_lattice, spot_uncertainties


def fit_pixel_scale(g_obs_inv_nm, g_calc_inv_nm, *, sigma_inv_nm=None, anisotropic: bool = False):
    """Fit ``g_obs = diag(kx, ky) R(dtheta) g_calc`` (or ``k R g_calc``) by weighted least squares.

    Parameters
    ----------
    g_obs_inv_nm, g_calc_inv_nm : array (n, 2)
        Observed (file calibration) and predicted (true) reciprocal vectors, same order.
    sigma_inv_nm : array (n,) or (n, 2), optional
        1-sigma errors of the observed components; uniform weights when absent.
    anisotropic : bool
        Separate factors along x and y.

    Returns
    -------
    dict
        ``k_yx`` (ky, kx), ``k_yx_err``, ``k`` and ``k_err`` (isotropic or the mean of the two),
        ``rotation_deg`` and ``chi2_reduced``. Errors are scaled by sqrt(chi2_reduced) when it
        exceeds 1 (residual distortion larger than the stated errors).

    Examples
    --------
    >>> from latticefit.crystal import fit_pixel_scale
    >>> import numpy as np
    >>> gc = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    >>> r = fit_pixel_scale(gc * [1.02, 0.98], gc, anisotropic=True)
    >>> [round(v, 4) for v in r["k_yx"]]
    [0.98, 1.02]
    """
    from scipy.optimize import least_squares

    go = np.asarray(g_obs_inv_nm, float).reshape(-1, 2)
    gc = np.asarray(g_calc_inv_nm, float).reshape(-1, 2)
    n = len(go)
    if n < 1 or (anisotropic and n < 2):
        raise AnalysisError(f"{n} indexed spots are too few to fit a pixel size")
    sig = (
        np.ones((n, 2))
        if sigma_inv_nm is None
        else np.broadcast_to(np.asarray(sigma_inv_nm, float).reshape(n, -1), (n, 2)).copy()
    )
    sig = np.where(sig > 0, sig, np.nan)
    if np.all(np.isnan(sig)):
        sig = np.ones((n, 2))
    sig = np.where(np.isnan(sig), np.nanmin(sig), sig)
    k0 = float(np.sum(np.hypot(*go.T)) / np.sum(np.hypot(*gc.T)))
    th0 = float(np.angle(np.sum((go[:, 0] + 1j * go[:, 1]) * np.conj(gc[:, 0] + 1j * gc[:, 1]))))

    def model(p):
        if anisotropic:
            kx, ky, th = p
        else:
            kx = ky = p[0]
            th = p[1]
        c, s = math.cos(th), math.sin(th)
        x = c * gc[:, 0] - s * gc[:, 1]
        y = s * gc[:, 0] + c * gc[:, 1]
        return np.stack([kx * x, ky * y], 1)

    def resid(p):
        return ((model(p) - go) / sig).ravel()

    p0 = [k0, k0, th0] if anisotropic else [k0, th0]
    sol = least_squares(resid, p0, method="lm" if 2 * n > len(p0) else "trf")
    dof = max(2 * n - len(p0), 1)
    chi2r = float(np.sum(sol.fun**2) / dof)
    J = sol.jac
    try:
        cov = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        cov = np.full((len(p0), len(p0)), np.nan)
    if sigma_inv_nm is None:
        cov = cov * chi2r  # unit weights: the scatter is the only error estimate
    elif chi2r > 1:
        cov = cov * chi2r
    err = np.sqrt(np.abs(np.diag(cov)))
    if anisotropic:
        kx, ky, th = sol.x
        ekx, eky = err[0], err[1]
        k = 0.5 * (kx + ky)
        ek = 0.5 * math.sqrt(ekx**2 + eky**2 + 2 * cov[0, 1])
    else:
        kx = ky = k = sol.x[0]
        ekx = eky = ek = err[0]
        th = sol.x[1]
    return {
        "k_yx": (float(ky), float(kx)),
        "k_yx_err": (float(eky), float(ekx)),
        "k": float(k),
        "k_err": float(ek),
        "rotation_deg": math.degrees(th),
        "chi2_reduced": chi2r,
    }


def _measure_reference(measure_lattice, mg, roi, kw):
    """The reference region's lattice. Spots off it are dropped, and the warning says why they stay out.

    They cannot calibrate the phase: kept and indexed (``keep_unindexed``), the scan-noise spots of a real
    STEM frame (``Acquisition_18.emd``: 31 at 0.33-0.48 Å) are matched to high-index reflections and raise
    chi2/dof of the affine fit from 3.9 to 17000.
    """
    from ..lattice._steps import KEEP_UNINDEXED_HINT

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = measure_lattice(mg, roi=roi, **kw)
    for w in caught:
        msg = str(w.message).replace(KEEP_UNINDEXED_HINT, ": off the reference lattice, they cannot calibrate it")
        warnings.warn(msg, w.category, stacklevel=3)
    return res


def calibrate(
    image,
    roi=None,
    phase="SrTiO3",
    *,
    zone_axis=None,
    anisotropic: bool = False,
    affine: bool = False,
    tiles=None,
    pixel_size=None,
    d_range_angstrom=None,
    max_index: int = 3,
    scale_range=(0.8, 1.25),
    beam_energy_kv: float | None = None,
) -> Calibration:
    """Calibrate the pixel size (or the full affine pixel matrix) on a region of known structure.

    Measures the lattice in ``roi`` (:func:`latticefit.lattice.measure_lattice`), indexes it against
    ``phase`` with a free scale (optionally at a given ``zone_axis``) and fits the calibration from
    every spot explained by an allowed reflection.

    With ``affine=True`` the model is ``g_file = A_file^-T A^T R g_calc``: the 2x2 pixel-to-nm
    matrix ``A`` (x scale, y scale, shear; upper triangular, the x pixel step along x) and the
    crystal's rotation ``R``, fitted linearly by weighted least squares over every indexed spot
    (each with its 2x2 covariance; errors scaled by sqrt(chi2/dof) when the scatter is
    significantly larger than the errors). The result carries the scale factors, anisotropy and
    shear with their 1-sigma errors, the matrix covariance, the residual of each reflection after
    correction and the non-linear distortion over ``tiles`` of the region.

    Parameters
    ----------
    image : Micrograph, hyperspy Signal2D or 2-D array
        Needs a nominal pixel size (``pixel_size=`` for an array or an uncalibrated file).
    roi : Rect, Circle, Mask or None
        Reference region (None: the whole image).
    phase : str, Phase or path to a CIF
    zone_axis : (u, v, w), optional
        Restrict the indexing to this zone axis (and its symmetry equivalents).
    anisotropic : bool
        Fit separate y and x pixel sizes (no shear).
    affine : bool
        Fit the full affine pixel matrix (scale x, scale y, shear) with its covariance.
    tiles : (int, int), False or None
        Tiles (rows, columns) of the region for the non-linear distortion (affine only); None: 3 x 3
        when each tile keeps >= 128 px, else 2 x 2, else none; False: skip.
    scale_range : (float, float)
        Range searched for ``true / file``; it stays inside (1/sqrt(2), sqrt(2)) because a square net
        scaled by 1/sqrt(2) and turned by 45 deg indexes the same spots ((100) read as (110)).

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        Without a nominal pixel size.
    AnalysisError
        When the region cannot be indexed as ``phase`` (fewer than 2 allowed spots match, or fewer
        than 3 spots of 2 independent directions for an affine fit).

    Examples
    --------
    >>> from latticefit.crystal import calibrate
    >>> from latticefit import synth
    >>> mg, _ = synth.cubic_001((256, 256), pixel_size_nm=0.02, noise_sigma=0.3)
    >>> cal = calibrate(mg.with_pixel_size(0.021), None, "SrTiO3", affine=True, tiles=False)
    >>> round(cal.scale_factor_yx[1], 3), abs(cal.shear_deg) < 0.1
    (0.952, True)
    """
    from ..lattice._measure import measure_lattice

    max_index, scale_range, beam_energy_kv = check_index_params(
        max_index, scale_range, beam_energy_kv, optional_kv=True
    )
    mg = as_micrograph(image, pixel_size)
    file_ps = mg.require_calibration()
    ph = _phase(phase)
    # 1. measure the lattice of the reference region; 2. index it as the phase with a free scale
    kw = {} if d_range_angstrom is None else {"d_range_angstrom": d_range_angstrom}
    res = _measure_reference(measure_lattice, mg, roi, kw)
    kv = beam_energy_kv or mg.beam_energy_kv or 200.0
    idx = _index_reference(res, ph, zone_axis, scale_range, max_index, kv, affine)
    best = _require_indexed(idx, ph, zone_axis, mg.source)
    # 3. fit the calibration to every spot explained by an allowed reflection
    spots = best.spots
    ok = (spots["status"] == "allowed").to_numpy()
    go = spots.loc[ok, ["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    gc = spots.loc[ok, ["gx_calc_inv_nm", "gy_calc_inv_nm"]].to_numpy(float)
    common = {
        "file_pixel_size_nm": tuple(file_ps),
        "phase": ph,
        "zone_axis": best.zone_axis,
        "n_spots": int(ok.sum()),
        "indexing": idx,
        "source": mg.source,
        "roi": _roi_dict(roi),
        "lattice_spots": res.spots,
        "image_shape": tuple(mg.shape),
        "created_utc": _now(),
    }
    if affine:
        cov = _component_covs(res.spots, ok)
        return _calibrate_affine(mg, roi, go, gc, cov, spots.loc[ok], common, tiles=tiles, measure_kw=kw)
    sig = _component_sigmas(res.spots, ok)
    return _scale_calibration(
        fit_pixel_scale(go, gc, sigma_inv_nm=sig, anisotropic=anisotropic), file_ps, anisotropic, common
    )


def _index_reference(res, ph, zone_axis, scale_range, max_index, kv, affine):
    """Index the reference lattice as ``ph`` with a free scale (wider tolerances for an affine fit)."""
    # an affine distortion of a few % and degrees moves spots beyond the default indexing tolerances
    tol = {"tol_d": 0.05, "tol_angle_deg": 4.0} if affine else {}
    return index_lattice(
        res,
        [ph],
        zone_axes=None if zone_axis is None else [tuple(zone_axis)],
        free_scale=True,
        scale_range=scale_range,
        max_index=max_index,
        beam_energy_kv=kv,
        **tol,
    )


def _require_indexed(idx, ph, zone_axis, source):
    """The best indexing solution; :class:`AnalysisError` when fewer than 2 spots match allowed reflections."""
    best = idx.best
    if best is None or best.n_matched < 2:
        raise AnalysisError(
            f"the region cannot be indexed as {ph.label}"
            f"{'' if zone_axis is None else ' along ' + str(list(zone_axis))}: "
            f"{0 if best is None else best.n_matched} spots match allowed reflections",
            source,
        )
    return best


def _scale_calibration(fit: dict, file_ps, anisotropic: bool, common: dict) -> Calibration:
    """The :class:`Calibration` of an isotropic or y/x scale fit (:func:`fit_pixel_scale`)."""
    ky, kx = fit["k_yx"]
    eky, ekx = fit["k_yx_err"]
    return Calibration(
        pixel_size_nm=(file_ps[0] * ky, file_ps[1] * kx),
        pixel_size_err_nm=(file_ps[0] * eky, file_ps[1] * ekx),
        scale_factor=fit["k"],
        scale_factor_err=fit["k_err"],
        scale_factor_yx=(ky, kx),
        scale_factor_yx_err=(eky, ekx),
        anisotropic=bool(anisotropic),
        rotation_deg=fit["rotation_deg"],
        chi2_reduced=fit["chi2_reduced"],
        **common,
    )


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _component_covs(spots, ok):
    """Per-spot 2x2 covariance of (gx, gy) (1/nm)^2 from the lattice table, or None."""
    if spots is None or len(spots) != len(ok) or not {"cov_xx", "cov_xy", "cov_yy"} <= set(spots.columns):
        return None
    s = spots.loc[ok]
    c = np.stack([np.stack([s.cov_xx, s.cov_xy], 1), np.stack([s.cov_xy, s.cov_yy], 1)], 1).astype(float)
    if not np.all(np.isfinite(c)) or np.any(np.linalg.det(c) <= 0):
        return None
    return c


def _affine_from_fit(fit: ca.AffineFit, A_file: np.ndarray):
    """Pixel matrix, its covariance, [kx, ky, anisotropy %, shear °] with covariance, rotation, mirror."""
    A, rot, mirror = ca.pixel_matrix_from_reciprocal(fit.M, A_file)

    def to_A(m):
        Mm = m.reshape(2, 2)
        if mirror:  # keep the same branch inside the finite differences
            Mm = Mm @ np.diag([1.0, -1.0])
        return ca._lq_upper(A_file.T @ Mm)[0].ravel()

    _, cov_A = ca.propagate(to_A, fit.M.ravel(), fit.cov_M)
    p, cov_p = ca.propagate(lambda a: ca.affine_parameters(a.reshape(2, 2), A_file), A.ravel(), cov_A)
    return A, cov_A, p, cov_p, rot, mirror


def _calibrate_affine(mg, roi, go, gc, cov, ref_spots, common, *, tiles, measure_kw) -> Calibration:
    n = len(go)
    if n < 3 or _spread_deg(go) < 10.0:
        raise AnalysisError(f"an affine calibration needs >= 3 indexed spots along >= 2 directions, got {n}", mg.source)
    A_file = mg.pixel_matrix_nm
    fit = ca.fit_reciprocal_matrix(go, gc, cov)
    A, cov_A, p, cov_p, rot, _ = _affine_from_fit(fit, A_file)
    ep = np.sqrt(np.abs(np.diag(cov_p)))
    kx, ky = float(p[0]), float(p[1])
    k = 0.5 * (kx + ky)
    ek = 0.5 * math.sqrt(abs(cov_p[0, 0] + cov_p[1, 1] + 2 * cov_p[0, 1]))
    py, px = math.hypot(*A[:, 1]), math.hypot(*A[:, 0])
    residuals = _residual_table(go, gc, cov, fit, A, A_file, ref_spots)
    cal = Calibration(
        pixel_size_nm=(py, px),
        pixel_size_err_nm=(common["file_pixel_size_nm"][0] * ep[1], common["file_pixel_size_nm"][1] * ep[0]),
        scale_factor=k,
        scale_factor_err=ek,
        scale_factor_yx=(ky, kx),
        scale_factor_yx_err=(float(ep[1]), float(ep[0])),
        anisotropic=True,
        matrix_nm_per_px=A,
        matrix_cov=cov_A,
        model="affine",
        anisotropy_percent=float(p[2]),
        anisotropy_err_percent=float(ep[2]),
        shear_deg=float(p[3]),
        shear_err_deg=float(ep[3]),
        rotation_deg=rot,
        chi2_reduced=fit.chi2 / fit.dof if fit.dof else float("nan"),
        residuals=residuals,
        **common,
    )
    if tiles is not False:
        cal.nonlinear = nonlinear_distortion(mg, roi, go, gc, A, tiles=tiles, measure_kw=measure_kw)
    return cal


def _spread_deg(g) -> float:
    """Largest angle (deg, 0-90) between the directions of the vectors g."""
    a = np.arctan2(g[:, 1], g[:, 0])
    d = np.abs(((a[:, None] - a[None, :]) + np.pi / 2) % np.pi - np.pi / 2)
    return float(np.degrees(d.max())) if d.size else 0.0


def _residual_table(go, gc, cov, fit, A, A_file, ref_spots):
    """Each reflection after correction: corrected d against the tabulated d, and its angle residual."""
    import pandas as pd

    T = np.linalg.inv(A).T @ A_file.T  # g_file -> corrected g
    g_cor = go @ T.T
    g_pred = (gc @ fit.M.T) @ T.T  # the model's prediction in corrected units (|g_pred| = |g_calc|)
    d_cor = 10.0 / np.linalg.norm(g_cor, axis=1)
    d_calc = 10.0 / np.linalg.norm(gc, axis=1)
    gn = np.linalg.norm(g_cor, axis=1)
    u = g_cor / gn[:, None]
    if cov is None:
        sig = np.full(len(go), np.nan)
    else:
        cc = np.einsum("ij,njk,lk->nil", T, cov, T)
        sig = np.sqrt(np.einsum("ni,nij,nj->n", u, cc, u)) / gn
    rel = d_cor / d_calc - 1.0
    dang = np.degrees(np.angle((g_cor[:, 0] + 1j * g_cor[:, 1]) / (g_pred[:, 0] + 1j * g_pred[:, 1])))
    return pd.DataFrame(
        {
            "h": ref_spots["h"].to_numpy(int),
            "k": ref_spots["k"].to_numpy(int),
            "l": ref_spots["l"].to_numpy(int),
            "d_calc_angstrom": d_calc,
            "d_corrected_angstrom": d_cor,
            "d_err_angstrom": d_cor * sig,
            "residual_percent": 100.0 * rel,
            "angle_residual_deg": dang,
            "z": rel / sig,
        }
    )


def _tile_grid(box, tiles, min_px: int = 128):
    y0, y1, x0, x1 = box
    H, W = y1 - y0, x1 - x0
    if tiles is None:
        tiles = next(((t, t) for t in (3, 2) if min(H, W) // t >= min_px), None)
        if tiles is None:
            return []
    ny, nx = (int(tiles), int(tiles)) if np.isscalar(tiles) else (int(tiles[0]), int(tiles[1]))
    hs, ws = H // ny, W // nx
    from ..roi import Rect

    return [Rect(x0 + c * ws, y0 + r * hs, ws, hs) for r in range(ny) for c in range(nx)]


def nonlinear_distortion(
    image, roi, g_file, g_calc, A_global, *, tiles=None, measure_kw=None, match_tolerance: float = 0.03
) -> dict | None:
    """Residual non-linear distortion: the local affine calibration of each tile against the global one.

    The region (its bounding box; the whole image for ``roi=None``) is cut into ``tiles``; the
    lattice of each tile is measured, its spots are assigned the reflections of the nearest
    reference spots (``g_file``, ``g_calc``) and its own pixel matrix ``A_t`` is fitted as in
    :func:`calibrate`. The local deviation is the symmetric part ``e`` of ``A_t A^-1 - I``; its
    size per tile is the rms principal strain ``sqrt((e_xx^2 + e_yy^2 + 2 e_xy^2) / 2)``. The
    raw rms over the tiles includes the tiles' own statistical scatter (``noise_rms_percent``,
    from their covariances); ``rms_percent = sqrt(raw^2 - noise^2)`` (0 when below the noise) is
    the distortion a linear correction leaves.

    Returns
    -------
    dict or None
        ``rms_percent``, ``raw_rms_percent``, ``noise_rms_percent``, ``max_percent``, ``n_tiles``,
        ``grid`` and ``tiles`` (per tile: ``x_px``, ``y_px``, ``w_px``, ``h_px``, ``n_spots``,
        ``e_xx_percent``, ``e_yy_percent``, ``e_xy_percent``, ``magnitude_percent``,
        ``magnitude_noise_percent``); None when fewer than 2 tiles could be fitted.
    """
    from ..lattice._measure import measure_lattice
    from ..roi import as_roi

    mg = as_micrograph(image)
    r = as_roi(roi)
    box = (0, mg.shape[0], 0, mg.shape[1])
    if r is not None:
        ys, xs = np.nonzero(r.mask(mg.shape))
        box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    rects = _tile_grid(box, tiles)
    if len(rects) < 2:
        return None
    A_file = mg.pixel_matrix_nm
    out = []
    for rect in rects:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = measure_lattice(mg, roi=rect, **(measure_kw or {}))
        except LatticefitError:
            continue
        if t.spots is None or len(t.spots) < 3:
            continue
        gt = t.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        ct = np.stack(
            [np.stack([t.spots.cov_xx, t.spots.cov_xy], 1), np.stack([t.spots.cov_xy, t.spots.cov_yy], 1)], 1
        ).astype(float)
        rows, calc = [], []
        for i, g in enumerate(gt):
            dist = np.minimum(np.linalg.norm(g_file - g, axis=1), np.linalg.norm(g_file + g, axis=1))
            j = int(np.argmin(dist / np.linalg.norm(g_file, axis=1)))
            if dist[j] / np.linalg.norm(g_file[j]) <= match_tolerance:
                s = 1.0 if np.linalg.norm(g_file[j] - g) <= np.linalg.norm(g_file[j] + g) else -1.0
                rows.append(i)
                calc.append(s * g_calc[j])
        if len(rows) < 3 or _spread_deg(gt[rows]) < 10.0:
            continue
        try:
            fit = ca.fit_reciprocal_matrix(gt[rows], np.array(calc), ct[rows])
            A_t, cov_t, *_ = _affine_from_fit(fit, A_file)
        except np.linalg.LinAlgError:
            continue
        e, cov_e = ca.propagate(lambda a: ca.strain_of(a.reshape(2, 2), A_global), A_t.ravel(), cov_t)
        mag2 = (e[0] ** 2 + e[1] ** 2 + 2 * e[2] ** 2) / 2
        noise2 = (cov_e[0, 0] + cov_e[1, 1] + 2 * cov_e[2, 2]) / 2
        out.append(
            {
                "x_px": int(rect.x),
                "y_px": int(rect.y),
                "w_px": int(rect.w),
                "h_px": int(rect.h),
                "n_spots": len(rows),
                "e_xx_percent": 100 * float(e[0]),
                "e_yy_percent": 100 * float(e[1]),
                "e_xy_percent": 100 * float(e[2]),
                "magnitude_percent": 100 * math.sqrt(mag2),
                "magnitude_noise_percent": 100 * math.sqrt(max(noise2, 0.0)),
            }
        )
    if len(out) < 2:
        return None
    raw = math.sqrt(float(np.mean([t["magnitude_percent"] ** 2 for t in out])))
    noise = math.sqrt(float(np.mean([t["magnitude_noise_percent"] ** 2 for t in out])))
    return {
        "rms_percent": math.sqrt(max(raw**2 - noise**2, 0.0)),
        "raw_rms_percent": raw,
        "noise_rms_percent": noise,
        "max_percent": max(t["magnitude_percent"] for t in out),
        "n_tiles": len(out),
        "n_tiles_tried": len(rects),
        "tiles": out,
        "definition": "rms over tiles of the rms principal strain of sym(A_tile A_global^-1 - I), "
        "tile noise removed in quadrature",
    }


def _component_sigmas(spots, ok):
    """Per-spot 1-sigma errors of gx and gy (1/nm) from the lattice table, or None."""
    if spots is None:
        return None
    s = spots.loc[ok] if len(spots) == len(ok) else None
    if s is None:
        return None
    if {"cov_xx", "cov_yy"} <= set(s.columns):
        sx = np.sqrt(np.abs(s["cov_xx"].to_numpy(float)))
        sy = np.sqrt(np.abs(s["cov_yy"].to_numpy(float)))
        if np.all(np.isfinite(sx)) and np.all(np.isfinite(sy)) and np.all(sx > 0) and np.all(sy > 0):
            return np.stack([sx, sy], 1)
    if "d_err_angstrom" in s.columns:
        g = s[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        sr, _ = spot_uncertainties(g, d_err_angstrom=s["d_err_angstrom"].to_numpy(float))
        if np.all(np.isfinite(sr)) and np.all(sr > 0):
            return np.stack([sr, sr], 1)
    return None
