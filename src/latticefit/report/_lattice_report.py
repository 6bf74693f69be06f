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
from scipy import ndimage as ndi

from .. import _plotstyle as ps
from ..errors import AnalysisError, LatticefitWarning, RegionError
from ..micrograph import Micrograph, as_micrograph
from ..roi import Circle, as_roi
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


def _warn(notes: list, message: str) -> None:
    notes.append(message)
    warnings.warn(message, LatticefitWarning, stacklevel=3)


#: a region should hold at least this many periods of the largest lattice spacing
MIN_PERIODS_PER_REGION = 10


def _min_region_px(whole, pyx, shape) -> int:
    """Side (px) of a region holding MIN_PERIODS_PER_REGION periods of the strongest first-order spacing."""
    H, W = shape
    sp = getattr(whole, "spots", None)
    d_nm = None
    if sp is not None and len(sp):
        first = sp[sp["order"] == 1] if "order" in sp else sp
        first = first if len(first) else sp
        top = first.sort_values("snr", ascending=False).head(3) if "snr" in first else first.head(3)
        d_nm = float(top["d_angstrom"].max()) / 10.0
    side = MIN_PERIODS_PER_REGION * d_nm / min(pyx) if d_nm else min(H, W) / 4
    return int(np.clip(side, 64, max(64, min(H, W) / 2)))


def _shrunk(c: Circle) -> Circle:
    """The dot disk measured: DOT_RADIUS_FRACTION of the segmented radius (at least 16 px: a 32 px region)."""
    r = max(DOT_RADIUS_FRACTION * c.r, min(c.r, 16.0))
    return Circle(c.x, c.y, r)


def _fit_circle_inside(c: Circle, r: float, shape) -> Circle:
    """A circle of radius ``r`` (at most half the shorter side) near ``c``'s centre, wholly inside the image."""
    H, W = shape
    r = float(min(r, (min(H, W) - 2) / 2))
    x = float(np.clip(c.x, r, W - 1 - r))
    y = float(np.clip(c.y, r, H - 1 - r))
    return Circle(x, y, r)


def _particles_in_hrtem(particles, fov: FieldOfViewCheck):
    """Mapped particle centres and diameters in HRTEM pixels, plus edge flags."""
    t = particles.table
    x, y = haadf_to_hrtem_points(t["x_px"].to_numpy(float), t["y_px"].to_numpy(float), fov)
    # diameters: nm -> HRTEM px (the HRTEM pixel size along x)
    return x, y, t["diameter_nm"].to_numpy(float), (t["edge"].to_numpy(bool) if "edge" in t else None)


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
    from ..lattice._measure import compare_regions, measure_lattice
    from ..roi import extract
    from ..spectrum import power_spectrum

    hr = as_micrograph(hrtem, pixel_size, calibration=calibration)
    pyx = hr.require_calibration()
    notes: list[str] = []
    if calibrate_on not in (None, "matrix"):
        raise AnalysisError(f"calibrate_on must be 'matrix' or None, got {calibrate_on!r}", hr.source)
    if calibrate_on and not phases:
        raise AnalysisError("calibrate_on='matrix' needs the matrix phase (phases=[...], CLI --phase)", hr.source)
    if calibrate_on and hr.affine_nm_per_px is not None:
        raise AnalysisError("give either a calibration or calibrate_on='matrix', not both", hr.source)
    ha = as_micrograph(haadf) if haadf is not None else None
    H, W = hr.shape

    roi_matrix, roi_dot = (as_roi(r, hrtem, pixel_size=pixel_size) for r in (roi_matrix, roi_dot))
    for role, roi in (("matrix", roi_matrix), ("dot", roi_dot)):
        if roi is not None:
            try:
                extract(hr.data, roi)
            except RegionError as e:
                raise RegionError(f"--roi-{role}: {e.message}", hr.source) from None

    fov = None
    particles = None
    mapped = None
    if ha is not None:
        fov = check_fields_of_view(hr, ha)
        if not fov.agree:
            _warn(notes, fov.message)
        try:
            from ..particles._pipeline import find_particles

            particles = find_particles(ha, diameter_range_nm=diameter_range_nm)
        except Exception as e:  # noqa: BLE001 - the report goes on without outlines
            _warn(notes, f"HAADF dot segmentation failed ({' '.join(str(e).split())}); no outlines drawn")
        if particles is not None and fov.agree and len(particles.table):
            mapped = _particles_in_hrtem(particles, fov)

    # whole-image lattice: the reference spots of the anomaly map and the smallest useful region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticefitWarning)
        whole = measure_lattice(hr, d_range_angstrom=d_range_angstrom, systematic="none")  # reference spots only
    min_side = _min_region_px(whole, pyx, (H, W))

    # ------------------------------------------------------- dot region
    anomaly = None
    dot_full = None  # the whole dot (its segmented radius), kept clear of the matrix square
    if mapped is None and (roi_dot is None or roi_matrix is None):
        sp = whole.spots
        if sp is not None and len(sp):
            first = sp[sp["order"] == 1] if "order" in sp else sp
            first = first.sort_values("snr", ascending=False).head(3) if "snr" in first else first.head(3)
            g_px = first[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float) @ hr.pixel_matrix_nm  # A^T g, cycles/px
            smooth = max(4.0, ANOMALY_RESOLUTION_NM / pyx[1])
            anomaly = anomaly_map(hr.data, g_px, smooth_px=smooth)
    if roi_dot is not None:
        dot_choice = RegionChoice("dot", roi_dot, "given")
        dot_full = roi_dot
    else:
        dot_choice = None
        if mapped is not None:
            x, y, dnm, edge = mapped
            c = choose_dot_from_particles(x, y, dnm / pyx[1], (H, W), edge=edge)
            if c is not None:
                dot_full = c
                dot_choice = RegionChoice(
                    "dot", _shrunk(c), "haadf", f"largest HAADF dot inside the HRTEM, {DOT_RADIUS_FRACTION:g} R"
                )
        if dot_choice is None:
            peak = 0.0
            c = None
            if anomaly is not None:
                c, peak = choose_dot_from_anomaly(anomaly)
            if c is not None:
                dot_full = c
                dot_choice = RegionChoice(
                    "dot",
                    _shrunk(c),
                    "anomaly",
                    f"strongest HRTEM lattice/contrast anomaly (z = {peak:.1f}), {DOT_RADIUS_FRACTION:g} R",
                )
            else:
                if anomaly is not None:
                    c, _ = choose_dot_from_anomaly(anomaly, threshold=0.0)
                c = _fit_circle_inside(c if c is not None else Circle(W / 2, H / 2, 1.0), min_side / 2, (H, W))
                dot_choice = RegionChoice(
                    "dot", c, "fallback", f"no dot found (anomaly z = {peak:.1f} < 3.5): most deviating area"
                )
                _warn(
                    notes,
                    f"{hr.name}: no dot found automatically (give --roi-dot); region B is the most "
                    "deviating area of the HRTEM",
                )

    # ------------------------------------------------------- matrix region
    if roi_matrix is not None:
        mat_choice = RegionChoice("matrix", roi_matrix, "given")
    else:
        margin = DOT_MARGIN_NM / pyx[1]
        exclude = np.zeros((H, W), bool)
        yy, xx = np.ogrid[:H, :W]
        if mapped is not None:
            x, y, dnm, _ = mapped
            for xi, yi, di in zip(x, y, dnm / pyx[1]):
                exclude |= (xx - xi) ** 2 + (yy - yi) ** 2 <= (0.5 * di + margin) ** 2
        elif anomaly is not None:  # every candidate dot of the anomaly map, not only the chosen one
            blobs = anomaly_blobs(anomaly)
            if blobs.any():  # the map's edges are only known to its resolution
                exclude |= ndi.distance_transform_edt(~blobs) <= max(margin, ANOMALY_RESOLUTION_NM / pyx[1])
        full = dot_full if dot_full is not None else dot_choice.roi
        if isinstance(full, Circle):
            exclude |= (xx - full.x) ** 2 + (yy - full.y) ** 2 <= (full.r + margin) ** 2
        else:
            exclude |= full.mask((H, W))
        rect = choose_matrix_region(
            (H, W), exclude, side_px=max(MATRIX_MAX_SIDE_PX, min_side), min_side_px=min(min_side, min(H, W))
        )
        mat_choice = RegionChoice("matrix", rect, "auto", "largest square clear of every dot")

    # ------------------------------------------------------- self-calibration on the matrix
    self_cal = None
    if calibrate_on == "matrix":
        from ..crystal._calibration import calibrate

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            self_cal = calibrate(
                hr, mat_choice.roi, list(phases)[0], affine=True, tiles=False, d_range_angstrom=d_range_angstrom
            )
        hr = self_cal.apply(hr)
        _warn(notes, f"calibrated on the matrix region: {self_cal.describe()}")
    if hr.calibration_info:
        _warn(
            notes,
            f"lengths in calibrated nm ({hr.calibration_info.get('reference_phase')}, "
            f"{hr.calibration_info.get('model')}); {hr.calibration_info.get('validity')}",
        )

    # ------------------------------------------------------- measurements
    # compare_regions measures both regions; its results are the regions' lattices
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatticefitWarning)
        comparison = compare_regions(
            hr,
            mat_choice.roi,
            dot_choice.roi,
            d_range_angstrom=d_range_angstrom,
            labels=("matrix", "dot"),
            keep_unindexed=keep_unindexed,
        )
    if dot_choice.method in ("fallback", "anomaly"):  # chosen because it deviates: look-elsewhere correction
        from ..lattice._systematic import apply_look_elsewhere

        fb = dot_choice.method == "fallback"
        _warn(
            notes,
            apply_look_elsewhere(
                comparison,
                (H, W),
                dot_choice.roi,
                why="it deviates most" if fb else "it is the strongest HRTEM anomaly",
                name="region B" if fb else "the dot region",
            ),
        )
    region_msgs = [str(m) for lat in (comparison.a, comparison.b) for m in (getattr(lat, "warnings", None) or [])]
    for w in caught:  # the per-region warnings are repeated below with the region's name
        if not any(str(w.message).endswith(m) for m in region_msgs):
            _warn(notes, str(w.message))
    regions = {}
    for ch, lat in ((mat_choice, comparison.a), (dot_choice, comparison.b)):
        name = "region B" if ch.method == "fallback" else ch.role
        for msg in getattr(lat, "warnings", []) or []:
            _warn(notes, f"{name}: {msg}")
        spec = power_spectrum(hr, roi=ch.roi, window=FFT_DISPLAY_WINDOW)
        regions[ch.role] = RegionResult(ch, lat, spec)

    # ------------------------------------------------------- indexing
    phase_objs = list(phases or [])
    if phase_objs:
        _index_regions(regions, phase_objs, notes, free_scale=free_scale)
        _align_dot_labels(regions, comparison)
    regions["dot"].basis_rows = _matched_basis_rows(regions, comparison)

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


#: fixed-scale indexing that explains fewer than this fraction of a region's spots is retried with a free scale
MIN_INDEXED_FRACTION = 0.5


def _n_matched(res) -> int:
    spots = getattr(res, "spots", None)
    if spots is None or getattr(res, "best", None) is None or "status" not in spots:
        return 0
    return int(spots["status"].isin(["allowed", "extinct"]).sum())


def _index_regions(regions: dict, phases: list, notes: list, *, free_scale: bool = False) -> None:
    """Index each region's spots; fills ``RegionResult.indexing`` and ``.hkl``; extinction warnings go to notes.

    With ``free_scale=False``, a region whose fixed-scale indexing explains fewer than
    :data:`MIN_INDEXED_FRACTION` of its spots (a miscalibrated image) is indexed again with a free scale;
    the free-scale solution is kept when it explains more spots, and the note states the implied
    calibration factor. Either way a poorly indexed region is named in the notes.
    """
    from ..crystal import _indexing as indexing

    names = ", ".join(getattr(p, "name", str(p)) for p in phases)
    for key, reg in regions.items():
        role = "region B" if reg.choice.method == "fallback" else key
        n = len(reg.lattice.spots) if getattr(reg.lattice, "spots", None) is not None else 0
        try:
            res = indexing.index_lattice(reg.lattice, phases, free_scale=free_scale)
        except Exception as e:  # noqa: BLE001 - the figure is still useful without hkl
            _warn(notes, f"{role}: indexing failed ({' '.join(str(e).split())})")
            continue
        m = _n_matched(res)
        if n and m < MIN_INDEXED_FRACTION * n:
            if free_scale:
                _warn(
                    notes,
                    f"{role}: indexing against {names} with a free scale matched {m}/{n} spots: another phase or zone?",
                )
            else:
                try:
                    free = indexing.index_lattice(reg.lattice, phases, free_scale=True)
                except Exception:  # noqa: BLE001
                    free = None
                mf = _n_matched(free) if free is not None else 0
                if free is not None and mf > m and mf >= MIN_INDEXED_FRACTION * n:
                    k, ke = free.scale_factor, free.scale_factor_err
                    _warn(
                        notes,
                        f"{role}: indexing against {names} matched {m}/{n} spots at the file "
                        f"calibration, {mf}/{n} with a free scale: implied calibration factor "
                        f"k = {ps.format_uncertain(k, ke)} (true/file pixel size); d shown uncorrected",
                    )
                    res = free
                else:
                    _warn(
                        notes,
                        f"{role}: indexing against {names} matched {m}/{n} spots: calibration off? try --free-scale",
                    )
        elif free_scale and res.best is not None:
            _warn(
                notes,
                f"{role}: free-scale indexing against {names}: calibration factor "
                f"k = {ps.format_uncertain(res.scale_factor, res.scale_factor_err)} (true/file pixel size)",
            )
        reg.indexing = res
        reg.hkl = _hkl_by_row(res)
        for w in _extinction_warnings(res):
            _warn(notes, f"{role}: {w}")


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


def _hkl_by_row(index_result) -> dict:
    """``{spot row: (h, k, l)}`` of the spots the best solution explains (allowed or extinct)."""
    spots = getattr(index_result, "spots", None)
    if spots is None or getattr(index_result, "best", None) is None:
        return {}
    out = {}
    for i, r in enumerate(spots.to_dict("records")):
        if r.get("status") in ("allowed", "extinct"):
            out[i] = (int(r["h"]), int(r["k"]), int(r["l"]))
    return out


def _extinction_warnings(index_result) -> list[str]:
    """One line per candidate phase that can only explain some spots with extinct reflections.

    E.g. ``'3 spots (d = 4.199, 4.194, 4.196 Å) need reflections extinct in PbS (Fm-3m: F-centring ...)'``.
    """
    spots = getattr(index_result, "spots", None)
    if spots is None:
        return []
    by_phase: dict[str, list] = {}
    reasons: dict[str, set] = {}
    for r in spots.to_dict("records"):
        for k, name in enumerate(r.get("extinct_in") or []):
            by_phase.setdefault(name, []).append(float(r["d_angstrom"]))
            why = (
                (r.get("extinction_reasons") or [""] * (k + 1))[k] if k < len(r.get("extinction_reasons") or []) else ""
            )
            if why:
                reasons.setdefault(name, set()).add(why.split(": ", 1)[-1])
    out = []
    for name, ds in by_phase.items():
        ds_txt = ", ".join(f"{d:.3f}" for d in sorted(set(round(d, 3) for d in ds), reverse=True))
        why = "; ".join(sorted(reasons.get(name, ())))
        n = len(ds)
        out.append(
            f"{n} spot{'s' if n > 1 else ''} (d = {ds_txt} Å) need{'' if n > 1 else 's'} reflections "
            f"extinct in {name}" + (f" ({why})" if why else "")
        )
    return out


def _align_dot_labels(regions: dict, comparison) -> None:
    """Give the dot's spots the (hkl) of the matched matrix spots (sign-aligned to each g).

    The two regions are indexed independently, so equivalent but different labels
    ((1-10) vs (-101)) could name one reflection; the matrix labels win when the dot's
    label belongs to the same {hkl} family.
    """
    mat, dot = regions.get("matrix"), regions.get("dot")
    if mat is None or dot is None or comparison is None or len(comparison.table) == 0:
        return
    sa, sb = mat.lattice.spots, dot.lattice.spots
    for r in comparison.table.to_dict("records"):
        i, j = int(r["spot_a"]), int(r["spot_b"])
        ha, hb = mat.hkl.get(i), dot.hkl.get(j)
        if ha is None:
            continue
        if hb is not None and sorted(map(abs, ha)) != sorted(map(abs, hb)):
            continue  # a different family: keep the dot's own label
        ga = np.array([sa["gx_inv_nm"].iat[i], sa["gy_inv_nm"].iat[i]])
        gb = np.array([sb["gx_inv_nm"].iat[j], sb["gy_inv_nm"].iat[j]])
        sign = 1 if np.linalg.norm(ga - gb) <= np.linalg.norm(ga + gb) else -1
        dot.hkl[j] = tuple(sign * int(v) for v in ha)


def _matched_basis_rows(regions: dict, comparison):
    """Rows of the dot's spots matched to the matrix basis spots (so both panels label the same reflections)."""
    mat = regions.get("matrix")
    if mat is None or comparison is None or len(comparison.table) == 0:
        return None
    rows_a = _basis_rows(mat.lattice)
    if rows_a is None:
        return None
    match = {int(r["spot_a"]): int(r["spot_b"]) for r in comparison.table.to_dict("records")}
    rows_b = tuple(match.get(r) if r is not None else None for r in rows_a)
    return rows_b if rows_b[0] is not None and rows_b[1] is not None else None


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
