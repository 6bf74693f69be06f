"""Comparing two regions of one image: matched reflections, their relative differences and the verdict.

:func:`compare_lattices` matches every reflection of region a with the nearest one of region b (or its
Friedel mate) within ``match_tolerance`` of |g|, and reports ``Δd/d = d_b / d_a - 1`` with its error: the
statistical part (Fisher, each region scaled by its lattice-fit Birge ratio sqrt(chi2/dof) when its spots
deviate from a perfect lattice) and the pair's systematic part (``lattice._syspair``: each region's random
part and, with a trend across the field, the trend over their separation) in quadrature. The
first-order mean is a generalised least-squares mean over the matched reflections with their full covariance
(systematic parts correlated within a region). A calibration common to both regions cancels in the ratio.
:func:`compare_regions` measures both regions first (:func:`latticefit.lattice.measure_lattice`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LatticefitError, LatticefitWarning, check_param
from ..micrograph import as_micrograph
from ..roi import as_roi
from ._match import match_greedy
from ._measure import LatticeResult, measure_lattice
from ._syspair import pair_rel_d_cov

__all__ = ["RegionComparison", "compare_lattices", "compare_regions", "COMPARISON_SCHEMA_VERSION"]

#: version of the ``RegionComparison.to_dict`` JSON (``latticefit compare --json``)
COMPARISON_SCHEMA_VERSION = 1


def _err_parts(spots: pd.DataFrame, i: int) -> tuple[float, float]:
    """(statistical, systematic) d error of row ``i`` (Å); (total, 0) for a table without the parts."""
    if "d_err_stat_angstrom" in spots.columns:
        return float(spots.d_err_stat_angstrom.iat[i]), float(spots.d_err_sys_angstrom.iat[i])
    return float(spots.d_err_angstrom.iat[i]), 0.0


def _rel_diff_cov(rows: pd.DataFrame, res_a: LatticeResult, res_b: LatticeResult) -> np.ndarray:
    """Covariance of the relative differences of matched reflections: statistical (diagonal) plus the two
    regions' systematic part, correlated between reflections (one local deformation moves them all) and,
    with a trend across the field, depending on the regions' separation (``lattice._syspair.pair_rel_d_cov``).
    """
    cov = np.diag(rows["rel_diff_err_stat"].to_numpy(float) ** 2)
    if len(rows):
        cov = cov + pair_rel_d_cov(res_a, rows["spot_a"].to_numpy(int), res_b, rows["spot_b"].to_numpy(int))
    return cov


def _pair_systematic(table: pd.DataFrame, res_a, res_b, z_threshold: float) -> None:
    """Replace each row's systematic part by the pair's (separation-dependent with a trend), in place."""
    if not len(table) or all(getattr(r, "systematic", None) is None for r in (res_a, res_b)):
        return
    ratio = table["d_b_angstrom"].to_numpy(float) / table["d_a_angstrom"].to_numpy(float)
    stat2 = table["rel_diff_err_stat"].to_numpy(float) ** 2
    var_sys = np.diag(_rel_diff_cov(table, res_a, res_b)) - stat2
    table["rel_diff_err"] = np.sqrt(stat2 + ratio**2 * var_sys)
    table["z"] = table["rel_diff"] / table["rel_diff_err"]
    table["significant"] = np.abs(table["z"].to_numpy(float)) > z_threshold


def _gls_mean(x: np.ndarray, cov: np.ndarray) -> tuple[float, float, float]:
    """Generalised least-squares mean of correlated values: (mean, its 1-sigma error, chi2)."""
    ci = np.linalg.pinv(cov)
    one = np.ones(len(x))
    var = 1.0 / float(one @ ci @ one)
    m = var * float(one @ ci @ x)
    r = x - m
    return m, math.sqrt(var), float(r @ ci @ r)


def _has_systematic(res: LatticeResult) -> bool:
    """Whether the region's errors include a significant systematic term (the image's own variation)."""
    model = getattr(res, "systematic", None)
    return model is not None and model.significant


def _birge_ratio(res: LatticeResult) -> float:
    """sqrt(chi2/dof) of a region's basis fit when significantly above 1 (p < 0.001), else 1."""
    from scipy import special

    b = res.basis
    if not b or not b.get("dof") or b["dof"] <= 0 or b.get("chi2") is None:
        return 1.0
    if special.chdtrc(b["dof"], b["chi2"]) >= 1e-3:  # = scipy.stats.chi2.sf
        return 1.0
    return float(math.sqrt(b["chi2"] / b["dof"]))


@dataclass(eq=False)
class RegionComparison:
    """Matched reflections of two regions of one image and their relative differences.

    Attributes
    ----------
    a, b : LatticeResult
        The two regions' lattices.
    table : pandas.DataFrame
        One row per matched reflection: ``spot_a``, ``spot_b`` (rows of
        ``a.spots``/``b.spots``), ``d_a_angstrom``, ``d_a_err_angstrom``,
        ``d_b_angstrom``, ``d_b_err_angstrom``, ``rel_diff`` (``d_b / d_a - 1``),
        ``rel_diff_err``, ``z`` (``rel_diff / rel_diff_err``), ``significant``
        (``|z| > z_threshold``), ``azimuth_a_deg``, ``dazimuth_deg`` (b - a),
        ``dazimuth_err_deg``, ``snr_a``, ``snr_b``, ``order``,
        ``rel_diff_err_stat`` and ``z_stat`` (statistical part only; the
        ``d_*_err_angstrom``, ``rel_diff_err`` and ``z`` columns include the
        image's systematic term).
    summary : dict
        Generalised least-squares mean relative difference of the
        first-order reflections (``mean_rel_diff``, ``mean_rel_diff_err``,
        ``z``, ``significant``, ``chi2``, ``n``; ``mean_rel_diff_stat``,
        ``mean_rel_diff_err_stat``, ``z_stat`` with statistical errors only).
    labels : (str, str)
    z_threshold : float
    warnings : list of str
        E.g. that a region's errors were scaled by its lattice-fit sqrt(chi2/dof).
    """

    a: LatticeResult
    b: LatticeResult
    table: pd.DataFrame
    summary: dict
    labels: tuple[str, str] = ("a", "b")
    z_threshold: float = 3.0
    warnings: list = field(default_factory=list)
    calibration: Any = None  # the self-calibration on region a (calibrate_on), or None

    @property
    def notes(self) -> list:
        """The comparison's warnings (the same list as ``warnings``)."""
        return self.warnings

    def to_csv(self, path) -> None:
        """Write :attr:`table` (one row per matched reflection) as CSV."""
        from ..serialize import atomic_write_text

        atomic_write_text(path, self.table.to_csv(index=False))

    def to_dict(self) -> dict:
        out = {
            "schema_version": COMPARISON_SCHEMA_VERSION,
            "labels": list(self.labels),
            "z_threshold": self.z_threshold,
            "regions": {self.labels[0]: self.a.to_dict(), self.labels[1]: self.b.to_dict()},
            "matches": self.table.to_dict(orient="records"),
            "summary": self.summary,
            "warnings": list(self.warnings),
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out


def compare_regions(
    image,
    roi_a,
    roi_b,
    *,
    pixel_size=None,
    d_range_angstrom=None,
    z_threshold: float = 3.0,
    match_tolerance: float = 0.08,
    labels=("a", "b"),
    calibrate_on=None,
    phase=None,
    calibration=None,
    systematic="auto",
    **measure_kwargs,
) -> RegionComparison:
    """Match the reflections of two regions of one image and report their relative differences.

    The relative difference of a spacing, ``d_b / d_a - 1``, does not depend on
    the magnification calibration, so a 0.2 % lattice mismatch between a dot
    and its matrix can be significant even when the calibration is only known
    to a few %.

    Parameters
    ----------
    image : Micrograph, Signal2D or array_like
    roi_a, roi_b : region
        The two regions (e.g. the matrix and a dot); hyperspy ROIs are in the
        calibrated units of ``image`` (before ``calibration``/``calibrate_on``).
    d_range_angstrom : optional
        Passed to :func:`measure_lattice`.
    z_threshold : float
        A difference is significant when ``|rel_diff| > z_threshold * rel_diff_err``.
    match_tolerance : float
        Largest relative distance ``|g_a - g_b| / |g_a|`` of a match.
    labels : (str, str)
        Names of the regions in the output.
    calibrate_on : ``'matrix'``, ``'a'`` or None
        Self-calibration: region a (the matrix), of known ``phase``, calibrates the image affinely
        (:func:`latticefit.calibration.calibrate`, ``affine=True``) and both regions are measured in
        corrected units (the result's ``calibration``).
    phase : str, Phase or CIF path
        The phase of region a, for ``calibrate_on``.
    calibration : Calibration, dict or path, optional
        A lattice calibration applied to the image first.
    systematic : {"auto", "none"} or SystematicModel
        The image's systematic lattice variation in each region's errors (see
        :func:`measure_lattice`); ``rel_diff_err`` and ``z`` use the total
        (statistical + systematic) errors, ``rel_diff_err_stat`` and
        ``z_stat`` the statistical part only.
    **measure_kwargs
        Other :func:`measure_lattice` options.

    Returns
    -------
    RegionComparison

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.roi import Circle, Rect
    >>> mg, t = synth.perovskite_111(shape=(512, 512), noise_sigma=0.3, seed=2,
    ...     inclusions=[dict(x_px=380, y_px=380, radius_nm=3.5, mismatch=0.03)])
    >>> cmp = compare_regions(mg, Rect(20, 20, 220, 220), Circle(380, 380, 70), labels=("matrix", "dot"))
    >>> bool(cmp.summary["significant"]), round(cmp.summary["mean_rel_diff"], 2)
    (True, 0.03)
    """
    z_threshold = check_param("z_threshold", z_threshold, lo=0, lo_open=True)
    match_tolerance = check_param("match_tolerance", match_tolerance, lo=0, hi=1, lo_open=True, hi_open=True)
    roi_a, roi_b = (
        as_roi(r, image, pixel_size=pixel_size) for r in (roi_a, roi_b)
    )  # hyperspy ROIs: before calibration
    mg = as_micrograph(image, pixel_size, calibration=calibration)
    self_cal = None
    if calibrate_on is not None:
        if calibrate_on not in ("matrix", "a", labels[0]):
            raise LatticefitError(f"calibrate_on must be 'matrix' (region a), got {calibrate_on!r}", mg.source)
        if phase is None:
            raise LatticefitError("calibrate_on needs the phase of region a (phase=...)", mg.source)
        from ..crystal._calibrate import calibrate

        self_cal = calibrate(mg, roi_a, phase, affine=True, tiles=False, d_range_angstrom=d_range_angstrom)
        mg = self_cal.apply(mg)
    res_a = measure_lattice(mg, roi=roi_a, d_range_angstrom=d_range_angstrom, systematic=systematic, **measure_kwargs)
    res_b = measure_lattice(mg, roi=roi_b, d_range_angstrom=d_range_angstrom, systematic=systematic, **measure_kwargs)
    return compare_lattices(
        res_a,
        res_b,
        z_threshold=z_threshold,
        match_tolerance=match_tolerance,
        labels=labels,
        name=mg.name,
        calibration=self_cal,
    )


def compare_lattices(
    res_a: LatticeResult,
    res_b: LatticeResult,
    *,
    z_threshold: float = 3.0,
    match_tolerance: float = 0.08,
    labels=("a", "b"),
    name: str = "image",
    calibration=None,
) -> RegionComparison:
    """Match the reflections of two measured regions and report their relative differences.

    The comparison step of :func:`compare_regions`, for lattices already measured (e.g. one matrix
    region compared with many dots, :func:`latticefit.report.measure_dots`). Parameters as in
    :func:`compare_regions`; ``name`` labels the warnings, ``calibration`` is recorded in the result.

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.roi import Circle, Rect
    >>> mg, t = synth.perovskite_111(shape=(512, 512), noise_sigma=0.3, seed=2,
    ...     inclusions=[dict(x_px=380, y_px=380, radius_nm=3.5, mismatch=0.03)])
    >>> a = measure_lattice(mg, roi=Rect(20, 20, 220, 220))
    >>> b = measure_lattice(mg, roi=Circle(380, 380, 70))
    >>> round(compare_lattices(a, b).summary["mean_rel_diff"], 2)
    0.03
    """
    scale_a, scale_b, notes = _birge_scales(res_a, res_b, labels)
    sa, sb = res_a.spots, res_b.spots
    rows = [
        _matched_row(sa, sb, i, j, (scale_a, scale_b), z_threshold)
        for i, j in match_reflections(sa, sb, match_tolerance)
    ]
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    _pair_systematic(table, res_a, res_b, z_threshold)
    summary = _first_order_mean(table, res_a, res_b, z_threshold)
    if not len(table):
        notes.append("no reflection is common to the two regions")
    for n in notes:
        warnings.warn(f"{name}: {n}", LatticefitWarning, stacklevel=3)
    return RegionComparison(
        a=res_a,
        b=res_b,
        table=table,
        summary=summary,
        labels=tuple(labels),
        z_threshold=z_threshold,
        warnings=notes,
        calibration=calibration,
    )


#: columns of :attr:`RegionComparison.table` (one row per matched reflection)
COMPARISON_COLUMNS = [
    "spot_a",
    "spot_b",
    "d_a_angstrom",
    "d_a_err_angstrom",
    "d_b_angstrom",
    "d_b_err_angstrom",
    "rel_diff",
    "rel_diff_err",
    "z",
    "significant",
    "azimuth_a_deg",
    "dazimuth_deg",
    "dazimuth_err_deg",
    "snr_a",
    "snr_b",
    "order",
    "rel_diff_err_stat",
    "z_stat",
]


def _birge_scales(res_a, res_b, labels):
    """Each region's error scale sqrt(chi2/dof) of its lattice fit (>= 1) and a note for each region scaled.

    A region whose spots deviate from a perfect lattice (distortion, drift, strain) scatters by more than the
    statistical errors: its errors are inflated by the Birge ratio, as the basis errors are. Not when the
    region carries a significant systematic term (``lattice._systematic``): the tiles that term comes from
    scatter by their own misfit too, so the term holds that scatter already and scaling would count it twice.
    """
    notes = []
    scales = tuple(1.0 if _has_systematic(res) else _birge_ratio(res) for res in (res_a, res_b))
    for lab, sc, res in zip(labels, scales, (res_a, res_b)):
        if sc > 1.0:
            notes.append(
                f"region {lab}: its spots deviate from a perfect lattice (chi2/dof = "
                f"{res.basis['chi2'] / res.basis['dof']:.1f}); its d errors are scaled by "
                f"sqrt(chi2/dof) = {sc:.2f}, so the significance includes that scatter"
            )
    return scales[0], scales[1], notes


def match_reflections(sa: pd.DataFrame, sb: pd.DataFrame, tolerance: float) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``: each spot of ``sa`` (in its order) with the nearest unused spot of ``sb`` or its Friedel
    mate, within ``tolerance`` x |g_a| (:func:`latticefit.lattice._match.match_greedy`).
    """
    cols = ["gx_inv_nm", "gy_inv_nm"]
    index, _ = match_greedy(sa[cols].to_numpy(float), sb[cols].to_numpy(float), tolerance)
    return [(i, int(j)) for i, j in enumerate(index) if j >= 0]


def _measurement_column(spots: pd.DataFrame, total: str, measurement: str) -> str:
    """A calibration common to both regions cancels in the ratio: use the measurement part when present."""
    return measurement if measurement in spots.columns else total


def _matched_row(sa, sb, i: int, j: int, scales, z_threshold: float) -> dict:
    """One matched reflection: ``Δd/d`` with its statistical (Birge-scaled) and total error, Δazimuth, z."""
    scale_a, scale_b = scales
    ea_col = _measurement_column(sa, "d_err_angstrom", "d_err_measurement_angstrom")
    eb_col = _measurement_column(sb, "d_err_angstrom", "d_err_measurement_angstrom")
    aza_col = _measurement_column(sa, "azimuth_err_deg", "azimuth_err_measurement_deg")
    azb_col = _measurement_column(sb, "azimuth_err_deg", "azimuth_err_measurement_deg")
    da, db = sa.d_angstrom.iat[i], sb.d_angstrom.iat[j]
    rel = db / da - 1.0
    # statistical part (Birge-scaled) and the image's systematic part, in quadrature (lattice._systematic)
    sta, stb = _err_parts(sa, i), _err_parts(sb, j)
    rel_err_stat = (db / da) * math.hypot(sta[0] / da * scale_a, stb[0] / db * scale_b)
    rel_err = (db / da) * math.hypot(rel_err_stat * da / db, sta[1] / da, stb[1] / db)
    z = rel / rel_err if rel_err > 0 else float("inf")
    return {
        "spot_a": i,
        "spot_b": j,
        "d_a_angstrom": da,
        "d_a_err_angstrom": sa[ea_col].iat[i],
        "d_b_angstrom": db,
        "d_b_err_angstrom": sb[eb_col].iat[j],
        "rel_diff": rel,
        "rel_diff_err": rel_err,
        "z": z,
        "rel_diff_err_stat": rel_err_stat,
        "z_stat": rel / rel_err_stat if rel_err_stat > 0 else float("inf"),
        "significant": bool(abs(z) > z_threshold),
        "azimuth_a_deg": sa.azimuth_deg.iat[i],
        "dazimuth_deg": ((sb.azimuth_deg.iat[j] - sa.azimuth_deg.iat[i]) + 90.0) % 180.0 - 90.0,
        "dazimuth_err_deg": math.hypot(sa[aza_col].iat[i], sb[azb_col].iat[j]),
        "snr_a": sa.snr.iat[i],
        "snr_b": sb.snr.iat[j],
        "order": int(sa.order.iat[i]),
    }


def _first_order_mean(table: pd.DataFrame, res_a, res_b, z_threshold: float) -> dict:
    """GLS mean of the first-order ``Δd/d`` (all orders when no first order matched), statistical and total."""
    if not len(table):
        return {"mean_rel_diff": None, "mean_rel_diff_err": None, "z": None, "significant": False, "chi2": None, "n": 0}
    first = table[table["order"] <= 1]
    if len(first) == 0:
        first = table
    x = first["rel_diff"].to_numpy()
    m, e, _ = _gls_mean(x, np.diag(first["rel_diff_err_stat"].to_numpy() ** 2))
    m_sys, e_tot, chi2_tot = _gls_mean(x, _rel_diff_cov(first, res_a, res_b))
    return {
        "mean_rel_diff": m_sys,
        "mean_rel_diff_err": e_tot,
        "z": m_sys / e_tot,
        "significant": bool(abs(m_sys / e_tot) > z_threshold),
        "chi2": chi2_tot,
        "n": int(len(first)),
        "mean_rel_diff_stat": m,
        "mean_rel_diff_err_stat": e,
        "z_stat": m / e,
    }
