"""The Fig. 4 lattice report: HRTEM + HAADF overview, matrix and dot regions, their FFTs, a comparison table.

:func:`build_lattice_report` chooses (or takes) a matrix region and a dot
region in an HRTEM image, measures the lattice of each with
:func:`latticefit.lattice.measure_lattice`, compares them with
:func:`latticefit.lattice.compare_regions`, optionally indexes the spots
against phases, and draws a multi-panel figure with
:func:`plot_lattice_report`:

- (a) the HRTEM overview with a scale bar and the analysed regions outlined;
- (b) the HAADF of the same area with the segmented dots outlined (when given);
- (c), (e) the enlarged matrix and dot regions with measured fringes drawn and labelled;
- (d), (f) their power spectra on calibrated reciprocal axes (1/nm), the refined
  spots circled and the angle between the basis spots marked;
- a table of each reflection in both regions, their difference with its
  uncertainty and whether it is significant.

Regions not given are chosen automatically: the dot from the HAADF
segmentation (HAADF pixel coordinates are mapped to HRTEM pixels through the
physical size, when both images cover the same field of view) or, without a
usable HAADF, from a local lattice/contrast anomaly map of the HRTEM itself;
the matrix as a square as far from every dot as possible.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _plotstyle as ps
from ..errors import LatticefitWarning
from ..micrograph import Micrograph, as_micrograph
from . import _report_steps as steps
from ._drawing import (  # noqa: F401
    _ROLE_TITLE,
    COMPACT_WIDTH_MM,
    MAX_TABLE_ROWS,
    _dark_box,
    _display_signs,
    _draw_fft,
    _draw_haadf,
    _draw_notes,
    _draw_overview,
    _draw_region,
    _draw_roi,
    _draw_table,
    _matrix_row,
    _mode_title,
    _nice_step,
    _note_lines,
    _reflection_name,
    _region_image,
    _region_title,
    comparison_rows,
    plot_lattice_report,
)
from ._fov import (  # noqa: F401
    ANOMALY_RESOLUTION_NM,
    DOT_MARGIN_NM,
    DOT_RADIUS_FRACTION,
    FFT_DISPLAY_WINDOW,
    FOV_RTOL,
    MATRIX_MAX_SIDE_PX,
    FieldOfViewCheck,
    _fov_nm,
    check_fields_of_view,
    haadf_to_hrtem_points,
)
from ._fringes import (  # noqa: F401
    _basis_angle,
    _basis_rows,
    _parse_hkl_text,
    _pixel_matrix,
    _spot_table,
    fringe_phase,
    fringe_segments,
    hkl_label,
    plain_text,
)
from ._regions import (  # noqa: F401
    RegionChoice,
    anomaly_blobs,
    anomaly_map,
    choose_dot_from_anomaly,
    choose_dot_from_particles,
    choose_matrix_region,
)
from ._report_steps import _min_region_px, _particles_in_hrtem, _warn  # noqa: F401 - used by report._dots

__all__ = [
    "LatticeReport",
    "RegionChoice",
    "FieldOfViewCheck",
    "check_fields_of_view",
    "haadf_to_hrtem_points",
    "anomaly_map",
    "choose_dot_from_particles",
    "choose_dot_from_anomaly",
    "choose_matrix_region",
    "fringe_phase",
    "fringe_segments",
    "hkl_label",
    "plain_text",
    "comparison_rows",
    "summary_lines",
    "build_lattice_report",
    "plot_lattice_report",
    "lattice_report",
]


# =====================================================================  analysis
@dataclass
class RegionResult:
    """One analysed region: where it is, its lattice, its power spectrum, its indexing."""

    choice: RegionChoice
    lattice: Any
    spectrum: Any
    indexing: Any = None
    hkl: dict = field(default_factory=dict)  # spot row -> (h, k, l)
    basis_rows: tuple | None = None  # rows of the two spots drawn (default: the lattice basis)

    @property
    def role(self) -> str:
        return self.choice.role

    def drawn_rows(self):
        """Rows (in ``lattice.spots``) of the two spots whose fringes, labels and angle are drawn."""
        return self.basis_rows if self.basis_rows is not None else _basis_rows(self.lattice)

    def display_sign(self, row: int) -> int:
        """+1/-1: which Friedel mate of spot ``row`` the figure labels (the drawn pair at an acute angle)."""
        return int(_display_signs(self.lattice.spots, self.drawn_rows())[row])

    def d_label(self, row: int, *, symbol_index: int | None = None) -> str:
        """``'d(01-1) = 4.195 ± 0.003 Å'`` (hkl when indexed, else d1/d2) for spot ``row``."""
        s = self.lattice.spots.iloc[row]
        val = ps.format_uncertain(float(s["d_angstrom"]), float(s.get("d_err_angstrom", np.nan)), "Å")
        hkl = self.hkl.get(row)
        if hkl is not None:
            sign = self.display_sign(row)
            return f"d{hkl_label(tuple(sign * v for v in hkl))} = {val}"
        name = f"$d_{symbol_index}$" if symbol_index is not None else "d"
        return f"{name} = {val}"


#: version of the ``LatticeReport.to_dict`` JSON (``latticefit report``'s OUT.json)
REPORT_SCHEMA_VERSION = 1


@dataclass
class LatticeReport:
    """Everything the Fig. 4 report shows, and the figure itself.

    Attributes
    ----------
    hrtem, haadf : Micrograph
        The images (``haadf`` may be None).
    regions : dict
        ``{'matrix': RegionResult, 'dot': RegionResult}``.
    comparison : object or None
        :func:`latticefit.lattice.compare_regions` result (``.table``, ``.to_dict()``).
    haadf_particles : ParticleResult or None
        The HAADF segmentation.
    fov : FieldOfViewCheck or None
    anomaly : ndarray or None
        The HRTEM anomaly map when the dot was chosen from it.
    notes : list of str
        Warnings shown on the figure and printed on stderr.
    figure : matplotlib Figure or None
        Filled by :func:`plot_lattice_report`.
    """

    hrtem: Micrograph
    haadf: Micrograph | None
    regions: dict
    comparison: Any = None
    haadf_particles: Any = None
    fov: FieldOfViewCheck | None = None
    anomaly: np.ndarray | None = None
    phases: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    figure: Any = None
    whole: Any = None  # LatticeResult of the whole HRTEM (reference spots, region size)
    calibration: Any = None  # the self-calibration on the matrix region (calibrate_on='matrix'), or None

    # ------------------------------------------------------------ outputs
    def reflections_table(self):
        """One row per reflection and region: d, its uncertainty, azimuth, Miller ``h, k, l`` (a pandas DataFrame).

        ``h, k, l`` are integers (missing where the spot is not indexed); ``n1, n2`` are the lattice basis indices.
        """
        import pandas as pd

        rows = []
        for role, reg in self.regions.items():
            sp = reg.lattice.spots
            for i in range(len(sp)):
                r = {"region": role, **_miller_columns(reg.hkl.get(i))}
                for c in sp.columns:
                    r[c] = sp.iloc[i][c]
                rows.append(r)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        out = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "hrtem": self.hrtem.summary(),
            "haadf": self.haadf.summary() if self.haadf is not None else None,
            "field_of_view": self.fov.to_dict() if self.fov is not None else None,
            "regions": {},
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "phases": [getattr(p, "name", str(p)) for p in self.phases],
            "whole_image_basis": getattr(self.whole, "basis", None),
            "notes": list(self.notes),
            "calibration": (
                self.calibration.to_dict() if self.calibration is not None else self.hrtem.calibration_info
            ),
        }
        for role, reg in self.regions.items():
            out["regions"][role] = {
                "choice": reg.choice.to_dict(),
                "lattice": reg.lattice.to_dict(),
                "hkl": {str(k): list(v) if not isinstance(v, str) else v for k, v in reg.hkl.items()},
                "indexing": reg.indexing.to_dict() if hasattr(reg.indexing, "to_dict") else None,
            }
        if self.haadf_particles is not None:
            out["haadf_particles"] = self.haadf_particles.summary if hasattr(self.haadf_particles, "summary") else None
        return out

    def comparison_table(self):
        """The figure's table as a DataFrame: every reflection measured in both regions (all rows)."""
        import pandas as pd

        cmp = self.comparison
        if cmp is None or len(cmp.table) == 0:
            return pd.DataFrame(columns=["reflection", "h", "k", "l"])
        t = cmp.table.copy()
        names = [row[0] for row in comparison_rows(self, mathtext=False)]
        t.insert(0, "reflection", names)
        mat = self.regions["matrix"]
        signed = [
            tuple(mat.display_sign(int(i)) * v for v in mat.hkl[int(i)]) if int(i) in mat.hkl else None
            for i in t["spot_a"]
        ]
        for pos, (col, values) in enumerate(_miller_table(signed).items(), start=1):
            t.insert(pos, col, values)
        t["delta_d_angstrom"] = t["d_b_angstrom"] - t["d_a_angstrom"]
        t["delta_d_err_angstrom"] = np.hypot(t["d_a_err_angstrom"], t["d_b_err_angstrom"])
        return t.rename(
            columns={
                "d_a_angstrom": "d_matrix_angstrom",
                "d_a_err_angstrom": "d_matrix_err_angstrom",
                "d_b_angstrom": "d_dot_angstrom",
                "d_b_err_angstrom": "d_dot_err_angstrom",
                "spot_a": "spot_matrix",
                "spot_b": "spot_dot",
            }
        )

    def save(self, out) -> list[Path]:
        """Write the figure (``OUT.pdf|png|svg`` + a 300-dpi PNG), ``OUT.json``, ``OUT.csv`` (the comparison
        table: one row per reflection measured in both regions) and ``OUT_spots.csv`` (every spot of each region).
        """
        from ..serialize import atomic_write_text, write_json

        paths = ps.output_paths(out)
        spots_csv = paths["csv"].with_name(paths["csv"].stem + "_spots.csv")
        if self.figure is None:
            plot_lattice_report(self)
        written = ps.save_figure(self.figure, paths["figure"])
        write_json({**self.to_dict(), "provenance": _provenance(self)}, paths["json"])
        atomic_write_text(paths["csv"], self.comparison_table().to_csv(index=False))
        atomic_write_text(spots_csv, self.reflections_table().to_csv(index=False))
        return written + [paths["json"], paths["csv"], spots_csv]


def _miller_columns(hkl) -> dict:
    """``{"h": h, "k": k, "l": l}`` of one reflection, missing (``pd.NA``) when it is not indexed."""
    import pandas as pd

    if hkl is None:
        return {"h": pd.NA, "k": pd.NA, "l": pd.NA}
    return {"h": int(hkl[0]), "k": int(hkl[1]), "l": int(hkl[2])}


def _miller_table(hkls) -> dict:
    """Integer (nullable ``Int64``) ``h``, ``k``, ``l`` columns of a list of Miller triples or ``None``."""
    import pandas as pd

    rows = [_miller_columns(v) for v in hkls]
    return {c: pd.array([r[c] for r in rows], dtype="Int64") for c in ("h", "k", "l")}


def build_lattice_report(
    hrtem,
    haadf=None,
    *,
    roi_matrix=None,
    roi_dot=None,
    phases=None,
    pixel_size=None,
    d_range_angstrom=None,
    diameter_range_nm=None,
    free_scale=False,
    calibration=None,
    calibrate_on=None,
    keep_unindexed=False,
) -> LatticeReport:
    """Choose the regions, measure and compare their lattices, index them: everything Fig. 4 shows.

    Parameters
    ----------
    hrtem : Micrograph, Signal2D or ndarray
        The calibrated HRTEM image.
    haadf : Micrograph, Signal2D or ndarray, optional
        HAADF-STEM of the same area; its segmented dots are outlined and used to
        place the dot region when ``roi_dot`` is not given.
    roi_matrix : Rect or (x, y, w, h), optional
        Matrix region in HRTEM pixels (default: a square far from every dot).
    roi_dot : Circle or (x, y, r), optional
        Dot region in HRTEM pixels (default: from the HAADF, else from the
        HRTEM's local lattice/contrast anomaly map).
    phases : list of str or Phase, optional
        Phases to index the spots against (:func:`latticefit.crystal.get_phase` names).
    pixel_size : float or str, optional
        Overrides the HRTEM calibration.
    d_range_angstrom : (float, float), optional
        Spacings considered by :func:`latticefit.lattice.measure_lattice`.
    diameter_range_nm : (float, float), optional
        Dot sizes kept by :func:`latticefit.particles.find_particles` on the HAADF.
    free_scale : bool
        Index with a free scale (``latticefit.indexing.index_lattice(..., free_scale=True)``), for an
        image whose calibration is off. Without it, a region that fixed-scale indexing cannot explain
        is retried with a free scale automatically, with a note giving the implied calibration factor.
    calibration : Calibration, dict or path to a calibration JSON, optional
        A lattice calibration applied to the HRTEM (see :mod:`latticefit.calibration`).
    calibrate_on : ``'matrix'`` or None
        Self-calibration: the matrix region, of the first of ``phases``, calibrates the HRTEM affinely
        (:func:`latticefit.calibration.calibrate` with ``affine=True``) before both regions are measured,
        so the dot is measured in corrected units, free of magnification and linear scan distortion.

    Returns
    -------
    LatticeReport
        Without a figure; call :func:`plot_lattice_report` (or use :func:`lattice_report`).

    Raises
    ------
    RegionError
        When a given region lies outside the HRTEM or is too small.
    CalibrationError
        When the HRTEM has no pixel size.
    """
    from ..lattice._measure import measure_lattice
    from ..spectrum import power_spectrum

    hr = as_micrograph(hrtem, pixel_size, calibration=calibration)
    pyx = hr.require_calibration()
    notes: list[str] = []
    steps.check_options(hr, calibrate_on, phases)
    roi_matrix, roi_dot = steps.given_regions(hr, hrtem, roi_matrix, roi_dot, pixel_size)
    ha = as_micrograph(haadf) if haadf is not None else None
    fov, particles, mapped = steps.haadf_dots(hr, ha, diameter_range_nm, notes)
    # the whole-image lattice: the reference spots of the anomaly map and the smallest useful region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticefitWarning)
        whole = measure_lattice(hr, d_range_angstrom=d_range_angstrom, systematic="none")
    min_side = steps._min_region_px(whole, pyx, hr.shape)
    need_anomaly = mapped is None and (roi_dot is None or roi_matrix is None)
    anomaly = steps.lattice_anomaly(hr, whole, pyx) if need_anomaly else None
    dot_choice, whole_dot = steps.choose_dot(hr, roi_dot, mapped, anomaly, min_side, notes)
    exclude = steps.dot_exclusion(hr.shape, pyx, mapped, anomaly, whole_dot) if roi_matrix is None else None
    mat_choice = steps.choose_matrix(hr, roi_matrix, exclude, min_side)
    hr, self_cal = steps.self_calibrate(hr, calibrate_on, phases, mat_choice.roi, d_range_angstrom, notes)
    comparison = steps.compare_chosen(hr, mat_choice, dot_choice, d_range_angstrom, keep_unindexed, notes)
    regions = {
        ch.role: RegionResult(ch, lat, power_spectrum(hr, roi=ch.roi, window=FFT_DISPLAY_WINDOW))
        for ch, lat in ((mat_choice, comparison.a), (dot_choice, comparison.b))
    }
    phase_objs = list(phases or [])
    if phase_objs:
        steps.index_regions(regions, phase_objs, notes, free_scale=free_scale)
        steps.align_dot_labels(regions, comparison)
    regions["dot"].basis_rows = steps.matched_basis_rows(regions, comparison)
    return LatticeReport(
        hrtem=hr,
        haadf=ha,
        regions=regions,
        comparison=comparison,
        haadf_particles=particles,
        fov=fov,
        anomaly=anomaly,
        phases=phase_objs,
        notes=notes,
        whole=whole,
        calibration=self_cal,
    )


def _provenance(report) -> dict:
    """The ``provenance`` block of the report's JSON (latticefit.interop.provenance)."""
    from ..interop import provenance

    return provenance(report)


def lattice_report(hrtem, haadf=None, **kwargs) -> LatticeReport:
    """:func:`build_lattice_report` followed by :func:`plot_lattice_report`.

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, truth = synth.perovskite_111(shape=(256, 256), seed=0)  # doctest: +SKIP
    >>> rep = lattice_report(mg)  # doctest: +SKIP
    >>> rep.save("fig4.pdf")  # doctest: +SKIP
    """
    width_mm = kwargs.pop("width_mm", ps.DOUBLE_COLUMN_MM)
    rep = build_lattice_report(hrtem, haadf, **kwargs)
    plot_lattice_report(rep, width_mm=width_mm)
    return rep


def summary_lines(report: LatticeReport) -> list[str]:
    """A few lines for the terminal: each region's basis spacings and angle, and the comparison."""
    lines = []
    for role, reg in report.regions.items():
        rows = reg.drawn_rows()
        parts = []
        for k, r in enumerate(rows or ()):
            if r is not None:
                parts.append(plain_text(reg.d_label(r, symbol_index=k + 1)))
        ang, err = _basis_angle(reg.lattice, rows)
        if np.isfinite(ang):
            parts.append("angle " + ps.format_uncertain(ang, err, "°"))
        how = reg.choice.method + (f": {reg.choice.note}" if reg.choice.note else "")
        lines.append(f"{_region_title(reg)} {reg.choice.roi.describe()} ({how}): " + "; ".join(parts))
        for lat in getattr(reg.lattice, "lattices", [])[1:]:  # further lattices (a dot, twin, moire)
            lines.append(f"  {_region_title(reg)} further {lat.describe()}")
    rows = comparison_rows(report, mathtext=False)
    if rows:
        lines.append(
            f"reflection | d matrix (Å) | d {_region_title(report.regions['dot'])} (Å) | Δd (Å) | Δd/d | "
            f"significant (|z| > {report.comparison.z_threshold:g})"
        )
    for row in rows:
        lines.append("  " + " | ".join(row))
    summ = getattr(report.comparison, "summary", None) or {}
    if summ.get("mean_rel_diff") is not None:
        lines.append(
            "mean Δd/d (first order) = "
            + ps.format_uncertain(100 * summ["mean_rel_diff"], 100 * summ["mean_rel_diff_err"], "%")
            + f" (z = {summ['z']:.1f}, "
            + ("significant" if summ["significant"] else "not significant")
            + ")"
        )
    return lines
