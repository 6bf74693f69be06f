"""Internal calibration against a known phase, and lattice mismatch in absolute Å.

:func:`calibrate` measures the lattice in a region of known structure
(e.g. the perovskite matrix, or a SrTiO3 substrate), indexes it against that
phase with a free scale and returns a :class:`Calibration`: the true pixel
size with its uncertainty and the factor ``scale_factor = true / file`` pixel
size (``g_file = k g_true``, so ``d_true = k d_file``). ``Calibration.apply``
puts the calibration on other images or regions of the same session.

:func:`mismatch` compares a second region (e.g. a quantum dot) with the
reference region of the same image. Each spot of the second region gets an
absolute d-spacing with two errors:

- ``d_err_angstrom``: measurement and calibration errors added in quadrature
  (what an absolute number needs);
- ``mismatch_err_percent``: the error of the ratio ``d_other / d_ref`` to the
  matching reference spot, from the two measurement errors only, because the
  pixel size (and any error in it) is common to both regions and cancels in
  the ratio. This is the error a dot-vs-matrix comparison needs.

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.cubic_001((256, 256), pixel_size_nm=0.02, noise_sigma=0.3)
>>> cal = calibrate(mg.with_pixel_size(0.021), None, "SrTiO3")      # the file claims 0.021 nm
>>> round(cal.scale_factor, 3), round(cal.pixel_size_nm[0], 4)
(0.952, 0.02)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .crystal import Phase, format_hkl, get_phase, load_cif
from .errors import AnalysisError
from .indexing import IndexingResult, index_lattice, spot_uncertainties
from .micrograph import Micrograph, as_micrograph

__all__ = ["Calibration", "calibrate", "fit_pixel_scale", "MismatchResult", "mismatch"]


def _phase(phase) -> Phase:
    if isinstance(phase, Phase):
        return phase
    s = str(phase)
    if s.lower().endswith(".cif"):
        return load_cif(s)
    return get_phase(s)


def _roi_dict(roi):
    from .roi import as_roi

    r = as_roi(roi)
    return None if r is None else r.to_dict()


@dataclass(eq=False)
class Calibration:
    """Pixel size fitted from a region of known structure.

    Attributes
    ----------
    pixel_size_nm, pixel_size_err_nm : (float, float)
        Calibrated pixel size (y, x) and its 1-sigma error, nm.
    scale_factor, scale_factor_err : float
        ``true / file`` pixel size (isotropic, or the mean of y and x when anisotropic).
    scale_factor_yx, scale_factor_yx_err : (float, float)
        Per-axis factors (equal to the isotropic one unless ``anisotropic``).
    file_pixel_size_nm : (float, float)
        Pixel size the file claimed.
    phase : Phase
    zone_axis : (u, v, w)
    anisotropic : bool
    n_spots : int
        Indexed spots the fit used.
    indexing : IndexingResult
        The indexing of the reference region.
    """

    pixel_size_nm: tuple[float, float]
    pixel_size_err_nm: tuple[float, float]
    scale_factor: float
    scale_factor_err: float
    scale_factor_yx: tuple[float, float]
    scale_factor_yx_err: tuple[float, float]
    file_pixel_size_nm: tuple[float, float]
    phase: Phase
    zone_axis: tuple
    anisotropic: bool
    n_spots: int
    indexing: IndexingResult | None = None
    source: str | None = None
    roi: dict | None = None
    lattice_spots: object = None

    def apply(self, micrograph, *, pixel_size=None) -> Micrograph:
        """A copy of ``micrograph`` carrying this calibration.

        An image whose nominal pixel size equals the reference file's gets the calibrated pixel
        size; an image at another nominal magnification has its own pixel size multiplied by the
        scale factor (the correction of the session). An uncalibrated image gets the calibrated
        pixel size.

        Examples
        --------
        >>> import numpy as np
        >>> from latticefit.micrograph import Micrograph
        >>> from latticefit.crystal import get_phase
        >>> cal = Calibration((0.019, 0.019), (1e-5, 1e-5), 0.95, 1e-3, (0.95, 0.95), (1e-3, 1e-3),
        ...                   (0.02, 0.02), get_phase("SrTiO3"), (0, 0, 1), False, 4)
        >>> cal.apply(Micrograph(np.zeros((64, 64)), pixel_size_nm=(0.04, 0.04))).pixel_size_nm
        (0.038, 0.038)
        """
        mg = as_micrograph(micrograph, pixel_size)
        if mg.pixel_size_nm is None or np.allclose(mg.pixel_size_nm, self.file_pixel_size_nm, rtol=1e-6):
            new = tuple(float(v) for v in self.pixel_size_nm)
        else:
            ky, kx = self.scale_factor_yx
            new = (mg.pixel_size_nm[0] * ky, mg.pixel_size_nm[1] * kx)
        return replace(mg, pixel_size_nm=new, data=mg.data)

    def to_dict(self) -> dict:
        return {
            "file": self.source,
            "roi": self.roi,
            "phase": self.phase.name,
            "space_group": self.phase.space_group,
            "zone_axis": list(self.zone_axis),
            "file_pixel_size_nm": list(self.file_pixel_size_nm),
            "pixel_size_nm": list(self.pixel_size_nm),
            "pixel_size_err_nm": list(self.pixel_size_err_nm),
            "scale_factor": self.scale_factor,
            "scale_factor_err": self.scale_factor_err,
            "scale_factor_yx": list(self.scale_factor_yx),
            "scale_factor_yx_err": list(self.scale_factor_yx_err),
            "anisotropic": self.anisotropic,
            "n_spots": self.n_spots,
        }

    def describe(self) -> str:
        py, px = self.pixel_size_nm
        ey, ex = self.pixel_size_err_nm
        za = "[" + " ".join(str(v) for v in self.zone_axis) + "]"
        return (f"{self.phase.label} {za} from {self.n_spots} spots: pixel size y {py:.6g} ± {ey:.2g} nm, "
                f"x {px:.6g} ± {ex:.2g} nm; scale factor (true/file) {self.scale_factor:.5f} ± "
                f"{self.scale_factor_err:.5f}")

    def __repr__(self) -> str:
        return f"Calibration({self.describe()})"


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
    sig = np.ones((n, 2)) if sigma_inv_nm is None else np.broadcast_to(
        np.asarray(sigma_inv_nm, float).reshape(n, -1), (n, 2)).copy()
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
    chi2r = float(np.sum(sol.fun ** 2) / dof)
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
        ek = 0.5 * math.sqrt(ekx ** 2 + eky ** 2 + 2 * cov[0, 1])
    else:
        kx = ky = k = sol.x[0]
        ekx = eky = ek = err[0]
        th = sol.x[1]
    return {"k_yx": (float(ky), float(kx)), "k_yx_err": (float(eky), float(ekx)), "k": float(k),
            "k_err": float(ek), "rotation_deg": math.degrees(th), "chi2_reduced": chi2r}


def calibrate(image, roi=None, phase="SrTiO3", *, zone_axis=None, anisotropic: bool = False, pixel_size=None,
              d_range_angstrom=None, max_index: int = 3, scale_range=(0.7, 1.3),
              beam_energy_kv: float | None = None) -> Calibration:
    """Calibrate the pixel size on a region of known structure.

    Measures the lattice in ``roi`` (:func:`latticefit.lattice.measure_lattice`), indexes it against
    ``phase`` with a free scale (optionally at a given ``zone_axis``) and fits the pixel size from
    every spot explained by an allowed reflection.

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
        Fit separate y and x pixel sizes.
    scale_range : (float, float)
        Range searched for ``true / file``.

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        Without a nominal pixel size.
    AnalysisError
        When the region cannot be indexed as ``phase`` (fewer than 2 allowed spots match).
    """
    from .lattice import measure_lattice

    mg = as_micrograph(image, pixel_size)
    file_ps = mg.require_calibration()
    ph = _phase(phase)
    kw = {} if d_range_angstrom is None else {"d_range_angstrom": d_range_angstrom}
    res = measure_lattice(mg, roi=roi, **kw)
    kv = beam_energy_kv or mg.beam_energy_kv or 200.0
    idx = index_lattice(res, [ph], zone_axes=None if zone_axis is None else [tuple(zone_axis)],
                        free_scale=True, scale_range=scale_range, max_index=max_index, beam_energy_kv=kv)
    best = idx.best
    if best is None or best.n_matched < 2:
        raise AnalysisError(f"the region cannot be indexed as {ph.label}"
                            f"{'' if zone_axis is None else ' along ' + str(list(zone_axis))}: "
                            f"{0 if best is None else best.n_matched} spots match allowed reflections", mg.source)
    spots = best.spots
    ok = (spots["status"] == "allowed").to_numpy()
    go = spots.loc[ok, ["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    gc = spots.loc[ok, ["gx_calc_inv_nm", "gy_calc_inv_nm"]].to_numpy(float)
    sig = _component_sigmas(res.spots, ok)
    fit = fit_pixel_scale(go, gc, sigma_inv_nm=sig, anisotropic=anisotropic)
    ky, kx = fit["k_yx"]
    eky, ekx = fit["k_yx_err"]
    return Calibration(
        pixel_size_nm=(file_ps[0] * ky, file_ps[1] * kx),
        pixel_size_err_nm=(file_ps[0] * eky, file_ps[1] * ekx),
        scale_factor=fit["k"], scale_factor_err=fit["k_err"],
        scale_factor_yx=(ky, kx), scale_factor_yx_err=(eky, ekx),
        file_pixel_size_nm=tuple(file_ps), phase=ph, zone_axis=best.zone_axis, anisotropic=bool(anisotropic),
        n_spots=int(ok.sum()), indexing=idx, source=mg.source, roi=_roi_dict(roi), lattice_spots=res.spots)


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


# ------------------------------------------------------------- mismatch
@dataclass(eq=False)
class MismatchResult:
    """Absolute d-spacings of a second region and its mismatch to the reference region.

    ``spots`` columns: gx_inv_nm, gy_inv_nm, hkl (from the matching reference spot, or None),
    d_file_angstrom (file calibration), d_angstrom (calibrated), d_err_angstrom (measurement and
    calibration), d_err_measurement_angstrom, d_err_calibration_angstrom, ref_d_angstrom,
    ref_d_err_angstrom, d_calc_angstrom (tabulated d of the phase), mismatch_percent
    (``d_other / d_ref - 1``), mismatch_err_percent (measurement errors only: the calibration cancels).
    """

    calibration: Calibration
    spots: object
    roi_other: dict | None = None
    lattice_other: dict | None = None

    def to_dict(self) -> dict:
        return {"calibration": self.calibration.to_dict(), "roi_other": self.roi_other,
                "spots": self.spots.to_dict("records"), "lattice_other": self.lattice_other}

    def table(self) -> str:
        lines = [f"calibration: {self.calibration.describe()}",
                 f"{'hkl':>10} {'d (Å)':>8} {'± total':>8} {'± meas':>8} {'d_ref (Å)':>9} {'mismatch %':>11} {'±':>6}"]
        for r in self.spots.to_dict("records"):
            hkl = "-" if r["hkl"] is None else format_hkl(r["hkl"])
            mm = "" if not np.isfinite(r["mismatch_percent"]) else f"{r['mismatch_percent']:+.3f}"
            me = "" if not np.isfinite(r["mismatch_err_percent"]) else f"{r['mismatch_err_percent']:.3f}"
            rd = "" if not np.isfinite(r["ref_d_angstrom"]) else f"{r['ref_d_angstrom']:.4f}"
            lines.append(f"{hkl:>10} {r['d_angstrom']:8.4f} {r['d_err_angstrom']:8.4f} "
                         f"{r['d_err_measurement_angstrom']:8.4f} {rd:>9} {mm:>11} {me:>6}")
        return "\n".join(lines)


def _abs_d(g, k_yx):
    """Calibrated d (Å) of file-calibrated vectors g (n, 2): g_true = (gx / kx, gy / ky)."""
    ky, kx = k_yx
    gt = np.stack([g[:, 0] / kx, g[:, 1] / ky], 1)
    return 10.0 / np.hypot(gt[:, 0], gt[:, 1])


def mismatch(image, roi_ref, roi_other, phase="MAPbBr3", *, zone_axis=None, calibration: Calibration | None = None,
             anisotropic: bool = False, pixel_size=None, match_angle_deg: float = 5.0, match_ratio: float = 0.1,
             d_range_angstrom=None) -> MismatchResult:
    """Absolute d-spacings of ``roi_other`` calibrated on ``roi_ref`` (known ``phase``), with mismatch.

    Each spot of the second region is paired with the reference spot of the same orientation
    (azimuth within ``match_angle_deg``, |g| within ``match_ratio``), inherits its (hkl), and gets
    ``mismatch_percent = 100 (d_other / d_ref - 1)`` whose error holds only the two measurement
    errors (the common pixel size cancels), while the absolute ``d_angstrom`` carries measurement
    and calibration errors in quadrature.

    Parameters
    ----------
    calibration : Calibration, optional
        Reuse an existing calibration of this image (else :func:`calibrate` on ``roi_ref``).

    Returns
    -------
    MismatchResult
    """
    import pandas as pd

    from .lattice import measure_lattice

    mg = as_micrograph(image, pixel_size)
    cal = calibration or calibrate(mg, roi_ref, phase, zone_axis=zone_axis, anisotropic=anisotropic,
                                   d_range_angstrom=d_range_angstrom)
    kw = {} if d_range_angstrom is None else {"d_range_angstrom": d_range_angstrom}
    other = measure_lattice(mg, roi=roi_other, **kw)
    osp = other.spots
    if osp is None or len(osp) == 0:
        raise AnalysisError("no lattice spots found in the second region", mg.source)
    ref = cal.indexing.best.spots
    ref_err = cal.lattice_spots["d_err_angstrom"].to_numpy(float) if cal.lattice_spots is not None and \
        "d_err_angstrom" in cal.lattice_spots.columns and len(cal.lattice_spots) == len(ref) else np.full(len(ref), np.nan)
    ref_ok = (ref["status"] == "allowed").to_numpy()
    rg = ref[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    og = osp[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    o_err = osp["d_err_angstrom"].to_numpy(float) if "d_err_angstrom" in osp.columns else np.full(len(og), np.nan)
    k = cal.scale_factor_yx
    d_abs = _abs_d(og, k)
    d_file = 10.0 / np.hypot(og[:, 0], og[:, 1])
    rel_meas = o_err / d_file
    err_meas = d_abs * rel_meas
    err_cal = d_abs * cal.scale_factor_err / cal.scale_factor
    rows = []
    for i in range(len(og)):
        j = _match_ref(og[i], rg, ref_ok, match_angle_deg, match_ratio)
        row = {"gx_inv_nm": og[i, 0], "gy_inv_nm": og[i, 1], "d_file_angstrom": d_file[i], "d_angstrom": d_abs[i],
               "d_err_angstrom": float(np.hypot(err_meas[i], err_cal[i])),
               "d_err_measurement_angstrom": err_meas[i], "d_err_calibration_angstrom": err_cal[i],
               "hkl": None, "ref_d_angstrom": np.nan, "ref_d_err_angstrom": np.nan, "d_calc_angstrom": np.nan,
               "mismatch_percent": np.nan, "mismatch_err_percent": np.nan}
        if j is not None:
            rd_file = 10.0 / np.hypot(*rg[j])
            ratio = d_file[i] / rd_file
            rel = math.hypot(rel_meas[i], ref_err[j] / rd_file)
            row.update({"hkl": [int(ref.h.iloc[j]), int(ref.k.iloc[j]), int(ref.l.iloc[j])],
                        "ref_d_angstrom": float(_abs_d(rg[j:j + 1], k)[0]),
                        "ref_d_err_angstrom": float(_abs_d(rg[j:j + 1], k)[0] * ref_err[j] / rd_file),
                        "d_calc_angstrom": float(ref.d_calc_angstrom.iloc[j]),
                        "mismatch_percent": 100.0 * (ratio - 1.0), "mismatch_err_percent": 100.0 * ratio * rel})
        rows.append(row)
    lat = other.to_dict() if hasattr(other, "to_dict") else None
    return MismatchResult(cal, pd.DataFrame(rows), _roi_dict(roi_other), lat)


def _match_ref(g, rg, ok, max_angle_deg, max_ratio):
    best, best_d = None, np.inf
    a = math.atan2(g[1], g[0])
    r = math.hypot(*g)
    for j in np.nonzero(ok)[0]:
        aj = math.atan2(rg[j, 1], rg[j, 0])
        da = abs((math.degrees(a - aj) + 90.0) % 180.0 - 90.0)  # Friedel: directions mod 180
        dr = abs(r / math.hypot(*rg[j]) - 1.0)
        if da <= max_angle_deg and dr <= max_ratio and da + 100 * dr < best_d:
            best, best_d = j, da + 100 * dr
    return best
