"""Part of :mod:`_calibration` (see its docstring): mismatch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError
from ..micrograph import as_micrograph
from ._calibrate import calibrate
from ._calibration_record import Calibration, _roi_dict
from ._phases import format_hkl


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
        return {
            "calibration": self.calibration.to_dict(),
            "roi_other": self.roi_other,
            "spots": self.spots.to_dict("records"),
            "lattice_other": self.lattice_other,
        }

    @property
    def table(self):
        """The reflections and their mismatch against the reference as a pandas DataFrame."""
        return self.spots

    def __str__(self) -> str:
        """Readable table: each reflection's d, its reference d and the mismatch."""
        lines = [
            f"calibration: {self.calibration.describe()}",
            f"{'hkl':>10} {'d (Å)':>8} {'± total':>8} {'± meas':>8} {'d_ref (Å)':>9} {'mismatch %':>11} {'±':>6}",
        ]
        for r in self.spots.to_dict("records"):
            hkl = "-" if r["hkl"] is None else format_hkl(r["hkl"])
            mm = "" if not np.isfinite(r["mismatch_percent"]) else f"{r['mismatch_percent']:+.3f}"
            me = "" if not np.isfinite(r["mismatch_err_percent"]) else f"{r['mismatch_err_percent']:.3f}"
            rd = "" if not np.isfinite(r["ref_d_angstrom"]) else f"{r['ref_d_angstrom']:.4f}"
            lines.append(
                f"{hkl:>10} {r['d_angstrom']:8.4f} {r['d_err_angstrom']:8.4f} "
                f"{r['d_err_measurement_angstrom']:8.4f} {rd:>9} {mm:>11} {me:>6}"
            )
        return "\n".join(lines)


def _abs_d(g, k_yx):
    """Calibrated d (Å) of file-calibrated vectors g (n, 2): g_true = (gx / kx, gy / ky)."""
    ky, kx = k_yx
    gt = np.stack([g[:, 0] / kx, g[:, 1] / ky], 1)
    return 10.0 / np.hypot(gt[:, 0], gt[:, 1])


def mismatch(
    image,
    roi_ref,
    roi_other,
    phase="MAPbBr3",
    *,
    zone_axis=None,
    calibration: Calibration | None = None,
    anisotropic: bool = False,
    pixel_size=None,
    match_angle_deg: float = 5.0,
    match_ratio: float = 0.1,
    d_range_angstrom=None,
) -> MismatchResult:
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

    from ..lattice._measure import measure_lattice

    mg = as_micrograph(image, pixel_size)
    cal = calibration or calibrate(
        mg, roi_ref, phase, zone_axis=zone_axis, anisotropic=anisotropic, d_range_angstrom=d_range_angstrom
    )
    kw = {} if d_range_angstrom is None else {"d_range_angstrom": d_range_angstrom}
    other = measure_lattice(mg, roi=roi_other, **kw)
    osp = other.spots
    if osp is None or len(osp) == 0:
        raise AnalysisError("no lattice spots found in the second region", mg.source)
    ref = cal.indexing.best.spots
    ref_err = (
        cal.lattice_spots["d_err_angstrom"].to_numpy(float)
        if cal.lattice_spots is not None
        and "d_err_angstrom" in cal.lattice_spots.columns
        and len(cal.lattice_spots) == len(ref)
        else np.full(len(ref), np.nan)
    )
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
        row = {
            "gx_inv_nm": og[i, 0],
            "gy_inv_nm": og[i, 1],
            "d_file_angstrom": d_file[i],
            "d_angstrom": d_abs[i],
            "d_err_angstrom": float(np.hypot(err_meas[i], err_cal[i])),
            "d_err_measurement_angstrom": err_meas[i],
            "d_err_calibration_angstrom": err_cal[i],
            "hkl": None,
            "ref_d_angstrom": np.nan,
            "ref_d_err_angstrom": np.nan,
            "d_calc_angstrom": np.nan,
            "mismatch_percent": np.nan,
            "mismatch_err_percent": np.nan,
        }
        if j is not None:
            rd_file = 10.0 / np.hypot(*rg[j])
            ratio = d_file[i] / rd_file
            rel = math.hypot(rel_meas[i], ref_err[j] / rd_file)
            row.update(
                {
                    "hkl": [int(ref.h.iloc[j]), int(ref.k.iloc[j]), int(ref.l.iloc[j])],
                    "ref_d_angstrom": float(_abs_d(rg[j : j + 1], k)[0]),
                    "ref_d_err_angstrom": float(_abs_d(rg[j : j + 1], k)[0] * ref_err[j] / rd_file),
                    "d_calc_angstrom": float(ref.d_calc_angstrom.iloc[j]),
                    "mismatch_percent": 100.0 * (ratio - 1.0),
                    "mismatch_err_percent": 100.0 * ratio * rel,
                }
            )
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
