"""Per-dot lattice statistics: every dot against one matrix region, and a population verdict.

The founding paper's claim of "perfect lattice matching" rests on one dot and one matrix FFT. A claim
about the dots is a claim about all of them: :func:`measure_dots` measures every dot that lies wholly
inside the HRTEM against one matrix region, and states what the population says.

Method
------
1. **Dots.** Given circles (HRTEM pixels), or the HAADF segmentation (:func:`latticefit.particles.find_particles`;
   only particles in the size statistics, mapped onto the HRTEM when both fields of view agree), or the HRTEM's
   lattice/contrast anomaly map. A dot is measured when its whole disk lies inside the HRTEM.
2. **Matrix.** The largest square clear of every dot (plus a margin), measured once with
   :func:`latticefit.lattice.measure_lattice` (its error includes the image's systematic variation).
3. **Each dot.** The lattice of the central disk (``DOT_RADIUS_FRACTION`` of the radius), with the systematic
   model of the image estimated once at the median dot size, compared with the matrix
   (:func:`latticefit.lattice.compare_lattices`): the generalised least-squares mean ``Δd/d`` of the
   first-order reflections with its 1-sigma error. A dot whose reflection amplitudes, relative to the
   matrix's, scatter (:func:`fringe_change` > ``FRINGE_CHANGE_LN``) projects another structure factor
   through the matrix, which biases its FFT spacing by about 1 % on multislice images; the error then
   includes ``PROJECTION_SYSTEMATIC_PERCENT``, common to all dots. Optionally the GPA mean in-plane strain (half the
   dilatation) of the dot core minus a ring of matrix around it (:func:`latticefit.gpa.region_contrast`;
   its SE includes the scatter of the same contrast elsewhere in the matrix, and a dot that changes the
   fringe amplitude is noted as not a strain measurement).
4. **Population.** Each dot's ``Δd/d`` has an error of its own and a part common to all dots (the matrix
   region's own error). The weighted mean over dots uses the dot-only errors; the χ² of the dots about it
   tests whether they are consistent with one value (p > 0.05); when they are not, the standard error is
   scaled by sqrt(χ²/dof) (Birge) so real dot-to-dot scatter widens it. The matrix part is added in
   quadrature: ``SE = sqrt(SE_dots² + σ_matrix²)``. The verdict is significant when ``|mean| > 3 SE``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import AnalysisError, LatticefitError, LatticefitWarning
from ..micrograph import as_micrograph
from ..roi import Circle, Rect, as_roi
from ._lattice_report import (
    ANOMALY_RESOLUTION_NM,
    DOT_MARGIN_NM,
    DOT_RADIUS_FRACTION,
    MATRIX_MAX_SIDE_PX,
    _min_region_px,
    _particles_in_hrtem,
    anomaly_blobs,
    anomaly_map,
    check_fields_of_view,
    choose_matrix_region,
)
from ._projection import FRINGE_CHANGE_LN, PROJECTION_SYSTEMATIC_PERCENT, fringe_change

__all__ = ["DotStatistics", "measure_dots", "population_verdict", "DOT_COLUMNS"]

#: the columns of :attr:`DotStatistics.table`, one row per dot
DOT_COLUMNS = [
    "dot",
    "x_px",
    "y_px",
    "radius_px",
    "diameter_nm",
    "diameter_err_nm",
    "source",
    "status",
    "n_reflections",
    "rel_diff_percent",
    "rel_diff_err_percent",
    "rel_diff_err_dot_percent",
    "projection_err_percent",
    "fringe_change_rms_ln",
    "z",
    "gpa_strain_percent",
    "gpa_strain_err_percent",
    "gpa_amplitude_ratio_g1",
    "gpa_amplitude_ratio_g2",
    "gpa_fringe_changed",
    "note",
]
#: a dot region holds at least this many periods of the strongest spacing across its diameter
MIN_PERIODS_ACROSS_DOT = 6.0


@dataclass
class DotStatistics:
    """Every dot's lattice against the matrix, and the population verdict.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per dot (:data:`DOT_COLUMNS`): centre and radius in HRTEM px, diameter in nm (HAADF model
        fit, or the region's equivalent diameter), where it came from (``given``, ``haadf``, ``anomaly``),
        ``status`` (``measured`` or why not), ``rel_diff_percent`` = 100 (d_dot / d_matrix - 1), mean over
        the first-order reflections, with its 1-sigma error (``rel_diff_err_percent``, total;
        ``rel_diff_err_dot_percent``, the dot's own part; ``projection_err_percent``, the projection
        systematic of a dot that changes the fringes, ``fringe_change_rms_ln`` its measure), ``z``, and the GPA mean in-plane strain
        ``(exx + eyy) / 2`` of the dot core minus a matrix ring (``gpa_strain_percent``, ± 1 SE: noise and
        the scatter of the same contrast elsewhere in the matrix), which an isotropic expansion makes equal
        to ``Δd/d`` (the GPA maps are smoothed to their resolution, so a dot not much larger than it reads
        low), and the median fringe amplitudes of the dot core over the ring (``gpa_amplitude_ratio_g1/g2``):
        beyond 1 ± 25 % ``gpa_fringe_changed`` is True and the note says the GPA value is not a strain
        measurement (a projected dot changes the fringe's structure factor, which GPA reads as displacement).
    reflections : pandas.DataFrame
        Every matched reflection of every dot (the rows of :func:`latticefit.lattice.compare_lattices`
        with a ``dot`` column).
    matrix_roi : Rect
    summary : dict
        ``n``, ``mean_rel_diff_percent``, ``se_percent`` (1 SE, matrix part included), ``se_dots_percent``,
        ``matrix_err_percent`` (the part common to all dots: the matrix region's error and, when a dot
        changes the fringes, the projection systematic), ``chi2``, ``dof``, ``p_consistent``, ``consistent``, ``birge_scale``, ``z``,
        ``significant``, ``test``.
    notes : list of str
    """

    table: pd.DataFrame
    reflections: pd.DataFrame
    matrix_roi: Rect | None
    summary: dict
    notes: list = field(default_factory=list)
    source: str = ""
    schema_version: int = 1
    #: the GPA :class:`~latticefit.gpa.StrainMap` the ``gpa_strain`` columns come from (None without GPA);
    #: drawn as the strain panel of :func:`plot_dot_statistics`, not written to the JSON (save it as .hspy)
    strain: Any = field(default=None, repr=False)

    def verdict(self) -> str:
        """The population verdict in one line (with the test used)."""
        s = self.summary
        if not s.get("n"):
            return "dots - matrix: no dot measured"
        cons = "yes" if s["consistent"] else f"no (dot-to-dot scatter: SE scaled by {s['birge_scale']:.2f})"
        return (
            f"dots - matrix = {s['mean_rel_diff_percent']:+.2f} ± {s['se_percent']:.2f} % (± 1 SE, N = {s['n']}, "
            f"χ² consistent with one value: {cons}, p = {s['p_consistent']:.2g}), "
            f"{'significant' if s['significant'] else 'not significant'} (|z| = {abs(s['z']):.1f}; "
            f"{s['test']})"
        )

    def __str__(self) -> str:
        lines = [
            f"{self.source or 'image'}: {len(self.table)} dot(s), matrix "
            f"{self.matrix_roi.describe() if self.matrix_roi is not None else '-'}"
        ]
        lines.append("  dot      x      y   d (nm)   Δd/d (%)  ± 1σ (%)      z  GPA strain (%)   status")
        for r in self.table.itertuples():
            gpa = (
                f"{r.gpa_strain_percent:+.2f} ± {r.gpa_strain_err_percent:.2f}{'†' if r.gpa_fringe_changed else ' '}"
                if np.isfinite(r.gpa_strain_percent)
                else "-"
            )
            rd = (
                f"{r.rel_diff_percent:+9.3f}  {r.rel_diff_err_percent:8.3f}  {r.z:+5.1f}"
                if np.isfinite(r.rel_diff_percent)
                else f"{'-':>9}  {'-':>8}  {'-':>5}"
            )
            lines.append(f"  {r.dot:3d} {r.x_px:6.0f} {r.y_px:6.0f} {r.diameter_nm:8.2f}  {rd}  {gpa:>15}  {r.status}")
        if self.table["gpa_fringe_changed"].any():
            lines.append("  † the fringe amplitude changes inside the dot: the GPA value is not a strain measurement")
        lines.append(self.verdict())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "kind": "latticefit.dot_statistics",
            "source": self.source,
            "matrix_roi": None if self.matrix_roi is None else self.matrix_roi.to_dict(),
            "summary": self.summary,
            "verdict": self.verdict(),
            "notes": list(self.notes),
            "dots": self.table.to_dict(orient="records"),
            "reflections": self.reflections.to_dict(orient="records"),
        }


# ------------------------------------------------------------------ step 1: the dots
@dataclass(frozen=True)
class _Dot:
    x_px: float
    y_px: float
    r_px: float
    diameter_nm: float
    diameter_err_nm: float
    source: str


def _dots_given(dots, px_nm: float) -> list[_Dot]:
    out = []
    for d in dots:
        c = as_roi(d)
        if not isinstance(c, Circle):
            raise AnalysisError(f"dots must be circles (x, y, r) in HRTEM pixels, got {c!r}")
        out.append(_Dot(float(c.x), float(c.y), float(c.r), 2 * c.r * px_nm, float("nan"), "given"))
    return out


def _dots_from_haadf(hr, ha, diameter_range_nm, notes) -> list[_Dot] | None:
    from ..particles._pipeline import find_particles

    fov = check_fields_of_view(hr, ha)
    if not fov.agree:
        notes.append(fov.message)
        return None
    res = find_particles(ha, diameter_range_nm=diameter_range_nm)
    t = res.table
    if not len(t):
        return []
    keep = (t["in_statistics"].to_numpy(bool) if "in_statistics" in t else ~t["edge"].to_numpy(bool)).copy()
    if "cluster_unsplit" in t:
        keep &= ~t["cluster_unsplit"].to_numpy(bool)
    x, y, dnm, _ = _particles_in_hrtem(res, fov)
    err = t["diameter_err_nm"].to_numpy(float) if "diameter_err_nm" in t else np.full(len(t), np.nan)
    px = hr.pixel_size_nm[1]
    return [
        _Dot(float(x[i]), float(y[i]), float(dnm[i] / px / 2), float(dnm[i]), float(err[i]), "haadf")
        for i in np.flatnonzero(keep)
    ]


def _dots_from_anomaly(hr, whole) -> list[_Dot]:
    sp = whole.spots
    if sp is None or not len(sp):
        return []
    first = sp[sp["order"] == 1] if "order" in sp else sp
    first = first.sort_values("snr", ascending=False).head(3)
    g_px = first[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float) @ hr.pixel_matrix_nm
    px = hr.pixel_size_nm[1]
    score = anomaly_map(hr.data, g_px, smooth_px=max(4.0, ANOMALY_RESOLUTION_NM / px))
    lab, n = ndi.label(anomaly_blobs(score))
    out = []
    for i in range(1, n + 1):
        yy, xx = np.nonzero(lab == i)
        r = math.sqrt(len(yy) / math.pi)
        out.append(_Dot(float(xx.mean()), float(yy.mean()), r, 2 * r * px, float("nan"), "anomaly"))
    return out


def _inside(d: _Dot, shape) -> bool:
    H, W = shape
    return d.x_px - d.r_px >= 0 and d.y_px - d.r_px >= 0 and d.x_px + d.r_px <= W - 1 and d.y_px + d.r_px <= H - 1


# ------------------------------------------------------------------ step 2: the matrix
def _matrix_square(hr, dots: list[_Dot], min_side: int) -> Rect:
    H, W = hr.shape
    margin = DOT_MARGIN_NM / hr.pixel_size_nm[1]
    yy, xx = np.ogrid[:H, :W]
    exclude = np.zeros((H, W), bool)
    for d in dots:
        exclude |= (xx - d.x_px) ** 2 + (yy - d.y_px) ** 2 <= (d.r_px + margin) ** 2
    return choose_matrix_region(
        (H, W), exclude, side_px=max(MATRIX_MAX_SIDE_PX, min_side), min_side_px=min(min_side, min(H, W))
    )


# ------------------------------------------------------------------ step 3: each dot
def _matrix_rel_err(cmp) -> float:
    """Relative error of the matrix's own mean spacing over the first-order reflections used."""
    t = cmp.table
    first = t[t["order"] <= 1] if len(t[t["order"] <= 1]) else t
    rel = first["d_a_err_angstrom"].to_numpy(float) / first["d_a_angstrom"].to_numpy(float)
    rel = rel[np.isfinite(rel) & (rel > 0)]
    return float(1.0 / math.sqrt(np.sum(rel**-2.0))) if len(rel) else float("nan")


def _measure_one(hr, k: int, d: _Dot, matrix, model, d_range, min_r_px: float):
    from ..lattice._compare import compare_lattices
    from ..lattice._measure import measure_lattice

    row = dict(
        dot=k,
        x_px=d.x_px,
        y_px=d.y_px,
        radius_px=d.r_px,
        diameter_nm=d.diameter_nm,
        diameter_err_nm=d.diameter_err_nm,
        source=d.source,
        status="measured",
        n_reflections=0,
        rel_diff_percent=np.nan,
        rel_diff_err_percent=np.nan,
        rel_diff_err_dot_percent=np.nan,
        projection_err_percent=0.0,
        fringe_change_rms_ln=np.nan,
        z=np.nan,
        gpa_strain_percent=np.nan,
        gpa_strain_err_percent=np.nan,
        gpa_amplitude_ratio_g1=np.nan,
        gpa_amplitude_ratio_g2=np.nan,
        gpa_fringe_changed=False,
        note="",
    )
    r = max(DOT_RADIUS_FRACTION * d.r_px, min(d.r_px, 16.0))
    if r < min_r_px:
        row["status"] = "too small"
        row["note"] = f"disk of {2 * r:.0f} px holds < {MIN_PERIODS_ACROSS_DOT:g} periods of the lattice"
        return row, None, float("nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            lat = measure_lattice(hr, roi=Circle(d.x_px, d.y_px, r), d_range_angstrom=d_range, systematic=model)
            cmp = compare_lattices(matrix, lat, labels=("matrix", f"dot {k}"), name=hr.name)
    except LatticefitError as e:
        row["status"] = "no lattice"
        row["note"] = " ".join(e.message.split()) if hasattr(e, "message") else str(e)
        return row, None, float("nan")
    s = cmp.summary
    if not s.get("n"):
        row["status"] = "no common reflection"
        return row, None, float("nan")
    m_err = _matrix_rel_err(cmp)
    tot = float(s["mean_rel_diff_err"])
    dot_only = math.sqrt(max(tot**2 - m_err**2, (0.1 * tot) ** 2)) if np.isfinite(m_err) else tot
    change = fringe_change(cmp.table, matrix.spots, lat.spots)
    proj = PROJECTION_SYSTEMATIC_PERCENT / 100 if change > FRINGE_CHANGE_LN else 0.0
    tot = math.hypot(tot, proj)
    row.update(
        n_reflections=int(s["n"]),
        rel_diff_percent=100 * float(s["mean_rel_diff"]),
        rel_diff_err_percent=100 * tot,
        rel_diff_err_dot_percent=100 * dot_only,
        projection_err_percent=100 * proj,
        fringe_change_rms_ln=change,
        z=float(s["mean_rel_diff"]) / tot,
    )
    if proj:
        _add_note(
            row,
            f"the dot changes the fringes (reflection amplitudes relative to the matrix scatter by "
            f"{change:.2f} in ln): a projected inclusion biases its FFT spacing; ± {PROJECTION_SYSTEMATIC_PERCENT:g} % "
            "(1 SD, measured on multislice images) added",
        )
    refl = cmp.table.assign(dot=k)
    return row, refl, m_err


def _gpa_contrast(hr, matrix_roi, rows, notes, dots):
    """Each measured dot's GPA mean in-plane strain (core minus a matrix ring); returns the StrainMap or None.

    The SE holds the noise and the scatter of the same contrast at other places of the matrix (every dot
    left out); a dot whose fringe amplitude differs from the ring's is noted as not a strain measurement.
    """
    from ..gpa import disc_masks, dots_mask, region_contrast, strain_map

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            sm = strain_map(hr, reference=matrix_roi)
    except LatticefitError as e:
        notes.append(f"GPA not available ({' '.join(str(e).split())}); dilatation column left empty")
        return None
    exclude = dots_mask(hr.shape, [(d.x_px, d.y_px, d.r_px) for d in dots])
    for row in rows:
        if row["status"] != "measured":
            continue
        inside, ring = disc_masks(hr.shape, row["x_px"], row["y_px"], row["radius_px"])
        c = region_contrast(sm, inside, ring, "dilatation", exclude=exclude | inside)
        # the mean in-plane strain (exx + eyy) / 2 = dilatation / 2: what Δd/d of an isotropic expansion is
        row["gpa_strain_percent"] = 50 * c.difference
        row["gpa_strain_err_percent"] = 50 * c.se_difference
        row["gpa_amplitude_ratio_g1"] = c.amplitude_ratio_g1
        row["gpa_amplitude_ratio_g2"] = c.amplitude_ratio_g2
        row["gpa_fringe_changed"] = bool(c.amplitude_changed)
        if c.amplitude_changed:
            msg = (
                f"GPA not a strain measurement here: fringe amplitude x{c.amplitude_ratio_g1:.2f}, "
                f"x{c.amplitude_ratio_g2:.2f} of the matrix ring (the dot changes the fringe, not only its phase)"
            )
            _add_note(row, msg)
    return sm


def _add_note(row: dict, msg: str) -> None:
    """Append ``msg`` to the row's note ("; " between notes)."""
    row["note"] = f"{row['note']}; {msg}" if row["note"] else msg


# ------------------------------------------------------------------ step 4: the population
def population_verdict(rel_diff, err_dot, matrix_err, *, z_threshold: float = 3.0) -> dict:
    """Weighted mean of per-dot relative differences with a common matrix error, and a χ² consistency test.

    Parameters
    ----------
    rel_diff, err_dot : array_like
        Each dot's ``Δd/d`` (any unit) and its own 1-sigma error (without the matrix part).
    matrix_err : float
        The 1-sigma error common to every dot (the matrix region's), same unit.

    Returns
    -------
    dict
        See :attr:`DotStatistics.summary`; values in the unit of the input.

    Examples
    --------
    >>> s = population_verdict([0.10, 0.12, 0.08], [0.02, 0.02, 0.02], 0.01)
    >>> round(s["mean"], 3), round(s["se"], 4), s["consistent"], s["significant"]
    (0.1, 0.0153, True, True)
    """
    from .._stats import chi2_sf

    x, e = np.asarray(rel_diff, float), np.asarray(err_dot, float)
    ok = np.isfinite(x) & np.isfinite(e) & (e > 0)
    x, e = x[ok], e[ok]
    n = len(x)
    test = (
        "weighted mean over dots, χ² test of one common value (p > 0.05), Birge-scaled SE, matrix error "
        "common to all dots added in quadrature; significant when |mean| > 3 SE"
    )
    if n == 0:
        return {"n": 0, "test": test}
    w = e**-2.0
    mean = float(np.sum(w * x) / np.sum(w))
    se_dots = float(1.0 / math.sqrt(np.sum(w)))
    chi2 = float(np.sum(w * (x - mean) ** 2))
    dof = n - 1
    p = chi2_sf(chi2, dof) if dof > 0 else 1.0
    birge = math.sqrt(chi2 / dof) if dof > 0 and chi2 > dof else 1.0
    se_dots *= birge
    m = float(matrix_err) if np.isfinite(matrix_err) else 0.0
    se = math.hypot(se_dots, m)
    z = mean / se if se > 0 else float("inf")
    return {
        "n": n,
        "mean": mean,
        "se": se,
        "se_dots": se_dots,
        "matrix_err": m,
        "chi2": chi2,
        "dof": dof,
        "p_consistent": p,
        "consistent": bool(p > 0.05),
        "birge_scale": birge,
        "z": z,
        "significant": bool(abs(z) > z_threshold),
        "test": test,
    }


def measure_dots(
    hrtem,
    haadf=None,
    *,
    dots=None,
    roi_matrix=None,
    d_range_angstrom=None,
    diameter_range_nm=None,
    pixel_size=None,
    calibration=None,
    gpa: bool = True,
    z_threshold: float = 3.0,
) -> DotStatistics:
    """Measure the lattice of every dot against one matrix region; the population verdict.

    Parameters
    ----------
    hrtem : Micrograph, Signal2D or ndarray
        The calibrated HRTEM.
    haadf : Micrograph, Signal2D or ndarray, optional
        HAADF of the same area: its segmented dots (in the size statistics) are the dots.
    dots : list of Circle or (x, y, r), optional
        The dots in HRTEM pixels (instead of the HAADF or the anomaly map).
    roi_matrix : Rect or (x, y, w, h), optional
        The matrix region (default: the largest square clear of every dot).
    d_range_angstrom, diameter_range_nm, pixel_size, calibration
        As in :func:`build_lattice_report`.
    gpa : bool
        Add each dot's GPA mean in-plane strain (core minus a matrix ring) for comparison.
    z_threshold : float
        Significance threshold of the population mean.

    Returns
    -------
    DotStatistics

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, _ = synth.perovskite_111(shape=(768, 768), noise_sigma=0.3, seed=4, inclusions=[
    ...     dict(x_px=200, y_px=560, radius_nm=3.0, mismatch=0.01),
    ...     dict(x_px=560, y_px=560, radius_nm=3.0, mismatch=0.01)])
    >>> st = measure_dots(mg, dots=[(200, 560, 110), (560, 560, 110)], gpa=False)
    >>> st.summary["n"], st.summary["significant"], round(st.summary["mean_rel_diff_percent"])
    (2, True, 1)
    """
    from ..lattice._measure import measure_lattice

    hr = as_micrograph(hrtem, pixel_size, calibration=calibration)
    pyx = hr.require_calibration()
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticefitWarning)
        whole = measure_lattice(hr, d_range_angstrom=d_range_angstrom, systematic="none")
    found = None
    if dots is not None:
        found = _dots_given(dots, pyx[1])
    elif haadf is not None:
        found = _dots_from_haadf(hr, as_micrograph(haadf), diameter_range_nm, notes)
    if found is None:
        found = _dots_from_anomaly(hr, whole)
    inside = [d for d in found if _inside(d, hr.shape)]
    if len(inside) < len(found):
        notes.append(f"{len(found) - len(inside)} dot(s) cut by the HRTEM border not measured")
    if not inside:
        raise AnalysisError("no dot lies wholly inside the HRTEM (give dots=, or a HAADF of the same area)", hr.source)
    min_side = _min_region_px(whole, pyx, hr.shape)
    mroi = as_roi(roi_matrix) if roi_matrix is not None else _matrix_square(hr, inside, min_side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticefitWarning)
        matrix = measure_lattice(hr, roi=mroi, d_range_angstrom=d_range_angstrom)
    d_max_nm = float(matrix.spots["d_angstrom"].max()) / 10 if len(matrix.spots) else 0.0
    min_r_px = 0.5 * MIN_PERIODS_ACROSS_DOT * d_max_nm / pyx[1]
    model = _systematic_at_dot_scale(hr, matrix, inside, d_range_angstrom, notes)
    rows, refl, m_errs = [], [], []
    for k, d in enumerate(inside):
        row, r, m_err = _measure_one(hr, k, d, matrix, model, d_range_angstrom, min_r_px)
        rows.append(row)
        if r is not None:
            refl.append(r)
            m_errs.append(m_err)
    sm = _gpa_contrast(hr, mroi, rows, notes, found) if gpa else None
    table = pd.DataFrame(rows, columns=DOT_COLUMNS)
    ok = table["status"] == "measured"
    m_err = float(np.nanmedian(m_errs)) if m_errs else float("nan")
    proj = float(table.loc[ok, "projection_err_percent"].max()) if ok.any() else 0.0
    if proj > 0:
        notes.append(
            f"{int((table.loc[ok, 'projection_err_percent'] > 0).sum())} of {int(ok.sum())} dot(s) change the "
            f"fringes: the projection error ± {proj:g} % (1 SD) is common to all dots and added to the "
            "population's SE like the matrix error"
        )
    v = population_verdict(
        table.loc[ok, "rel_diff_percent"],
        table.loc[ok, "rel_diff_err_dot_percent"],
        math.hypot(100 * m_err, proj) if np.isfinite(m_err) else proj,
        z_threshold=z_threshold,
    )
    summary = _summary(v, len(found))
    reflections = pd.concat(refl, ignore_index=True) if refl else pd.DataFrame()
    return DotStatistics(
        table=table,
        reflections=reflections,
        matrix_roi=mroi,
        summary=summary,
        notes=notes,
        source=hr.source or hr.name,
        strain=sm,
    )


def _systematic_at_dot_scale(hr, matrix, inside, d_range_angstrom, notes):
    """The image's systematic lattice variation for regions of the median dot size ("none" when unavailable)."""
    from ..lattice._measure import measure_lattice
    from ..lattice._systematic import estimate_systematic

    side = int(2 * np.median([max(DOT_RADIUS_FRACTION * d.r_px, 16.0) for d in inside]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticefitWarning)
        try:
            return estimate_systematic(
                hr,
                matrix.spots,
                (side, side),
                measure=measure_lattice,
                measure_kwargs=dict(d_range_angstrom=d_range_angstrom),
            )
        except LatticefitError as e:
            notes.append(
                f"no estimate of the image's systematic variation at the dot scale ({e}); "
                "dot errors are statistical only"
            )
    return "none"


def _summary(v: dict, n_found: int) -> dict:
    """``DotStatistics.summary`` from :func:`population_verdict`'s result."""
    summary = {"n": v["n"], "n_dots_found": n_found, "test": v["test"]}
    if v["n"]:
        summary.update(
            mean_rel_diff_percent=v["mean"],
            se_percent=v["se"],
            se_dots_percent=v["se_dots"],
            matrix_err_percent=v["matrix_err"],
            chi2=v["chi2"],
            dof=v["dof"],
            p_consistent=v["p_consistent"],
            consistent=v["consistent"],
            birge_scale=v["birge_scale"],
            z=v["z"],
            significant=v["significant"],
        )
    return summary
