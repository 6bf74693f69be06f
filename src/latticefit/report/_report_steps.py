"""The steps of :func:`latticefit.report.build_lattice_report`, in the order it runs them.

1. Check the options and the given regions (:func:`check_options`, :func:`given_regions`).
2. Segment the dots of the HAADF and map them into HRTEM pixels after checking that both images show one
   field (:func:`haadf_dots`).
3. Measure the whole HRTEM once: its strongest spots set the smallest useful region and, when no HAADF places
   the dots, drive the lattice/contrast anomaly map (:func:`lattice_anomaly`).
4. Choose the dot region (:func:`choose_dot`: given, largest HAADF dot, strongest anomaly, or a flagged
   fallback), then the matrix square clear of every dot (:func:`dot_exclusion`, :func:`choose_matrix`).
5. Optionally calibrate the HRTEM affinely on the matrix region (:func:`self_calibrate`).
6. Measure and compare both regions (:func:`compare_chosen`, with the look-elsewhere correction when the
   dot region was chosen because it deviates), then index both against the phases (:func:`index_regions`)
   and give the dot the matrix's labels (:func:`align_dot_labels`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

from .. import _plotstyle as ps
from ..errors import AnalysisError, LatticefitWarning, RegionError
from ..roi import Circle, as_roi
from ._fov import (
    ANOMALY_RESOLUTION_NM,
    DOT_MARGIN_NM,
    DOT_RADIUS_FRACTION,
    MATRIX_MAX_SIDE_PX,
    FieldOfViewCheck,
    check_fields_of_view,
    haadf_to_hrtem_points,
)
from ._fringes import _basis_rows
from ._regions import (
    RegionChoice,
    anomaly_blobs,
    anomaly_map,
    choose_dot_from_anomaly,
    choose_dot_from_particles,
    choose_matrix_region,
)


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


#: fixed-scale indexing that explains fewer than this fraction of a region's spots is retried with a free scale
MIN_INDEXED_FRACTION = 0.5


def _n_matched(res) -> int:
    spots = getattr(res, "spots", None)
    if spots is None or getattr(res, "best", None) is None or "status" not in spots:
        return 0
    return int(spots["status"].isin(["allowed", "extinct"]).sum())


def index_regions(regions: dict, phases: list, notes: list, *, free_scale: bool = False) -> None:
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


def align_dot_labels(regions: dict, comparison) -> None:
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


def matched_basis_rows(regions: dict, comparison):
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


# ===================================================================== the steps of build_lattice_report
def check_options(hr, calibrate_on, phases) -> None:
    """Refuse option combinations that cannot work, before anything is measured."""
    if calibrate_on not in (None, "matrix"):
        raise AnalysisError(f"calibrate_on must be 'matrix' or None, got {calibrate_on!r}", hr.source)
    if calibrate_on and not phases:
        raise AnalysisError("calibrate_on='matrix' needs the matrix phase (phases=[...], CLI --phase)", hr.source)
    if calibrate_on and hr.affine_nm_per_px is not None:
        raise AnalysisError("give either a calibration or calibrate_on='matrix', not both", hr.source)


def given_regions(hr, hrtem, roi_matrix, roi_dot, pixel_size):
    """The user's regions as ROI objects (None where not given), each checked to lie inside the HRTEM."""
    from ..roi import extract

    roi_matrix, roi_dot = (as_roi(r, hrtem, pixel_size=pixel_size) for r in (roi_matrix, roi_dot))
    for role, roi in (("matrix", roi_matrix), ("dot", roi_dot)):
        if roi is not None:
            try:
                extract(hr.data, roi)
            except RegionError as e:
                raise RegionError(f"--roi-{role}: {e.message}", hr.source) from None
    return roi_matrix, roi_dot


def haadf_dots(hr, ha, diameter_range_nm, notes):
    """Field-of-view check and dot segmentation of the HAADF: ``(fov, particles, mapped)``.

    ``mapped`` holds the dots' centres, diameters and edge flags in HRTEM pixels (None when the HAADF is
    absent, its field does not agree with the HRTEM's, or no dot was found).
    """
    if ha is None:
        return None, None, None
    fov = check_fields_of_view(hr, ha)
    if not fov.agree:
        _warn(notes, fov.message)
    particles = None
    try:
        from ..particles._pipeline import find_particles

        particles = find_particles(ha, diameter_range_nm=diameter_range_nm)
    except Exception as e:  # noqa: BLE001 - the report goes on without outlines
        _warn(notes, f"HAADF dot segmentation failed ({' '.join(str(e).split())}); no outlines drawn")
    mapped = None
    if particles is not None and fov.agree and len(particles.table):
        mapped = _particles_in_hrtem(particles, fov)
    return fov, particles, mapped


def lattice_anomaly(hr, whole, pyx):
    """The HRTEM's local lattice/contrast anomaly map from the three strongest first-order spots (or None)."""
    sp = whole.spots
    if sp is None or not len(sp):
        return None
    first = sp[sp["order"] == 1] if "order" in sp else sp
    first = first.sort_values("snr", ascending=False).head(3) if "snr" in first else first.head(3)
    g_px = first[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float) @ hr.pixel_matrix_nm  # A^T g, cycles/px
    return anomaly_map(hr.data, g_px, smooth_px=max(4.0, ANOMALY_RESOLUTION_NM / pyx[1]))


def choose_dot(hr, roi_dot, mapped, anomaly, min_side, notes):
    """The dot region: given, else the largest HAADF dot, else the strongest anomaly, else a fallback.

    Returns ``(choice, whole_dot)``: the measured region and the whole dot (its segmented radius), which the
    matrix square must keep clear of.
    """
    H, W = hr.shape
    pyx = hr.pixel_size_nm
    if roi_dot is not None:
        return RegionChoice("dot", roi_dot, "given"), roi_dot
    if mapped is not None:
        x, y, dnm, edge = mapped
        c = choose_dot_from_particles(x, y, dnm / pyx[1], (H, W), edge=edge)
        if c is not None:
            why = f"largest HAADF dot inside the HRTEM, {DOT_RADIUS_FRACTION:g} R"
            return RegionChoice("dot", _shrunk(c), "haadf", why), c
    peak, c = 0.0, None
    if anomaly is not None:
        c, peak = choose_dot_from_anomaly(anomaly)
    if c is not None:
        why = f"strongest HRTEM lattice/contrast anomaly (z = {peak:.1f}), {DOT_RADIUS_FRACTION:g} R"
        return RegionChoice("dot", _shrunk(c), "anomaly", why), c
    if anomaly is not None:
        c, _ = choose_dot_from_anomaly(anomaly, threshold=0.0)
    c = _fit_circle_inside(c if c is not None else Circle(W / 2, H / 2, 1.0), min_side / 2, (H, W))
    _warn(
        notes,
        f"{hr.name}: no dot found automatically (give --roi-dot); region B is the most deviating area of the HRTEM",
    )
    return RegionChoice("dot", c, "fallback", f"no dot found (anomaly z = {peak:.1f} < 3.5): most deviating area"), c


def dot_exclusion(shape, pyx, mapped, anomaly, whole_dot) -> np.ndarray:
    """Pixels the matrix square must avoid: every dot (HAADF, or every anomaly blob) plus a margin."""
    H, W = shape
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
    if isinstance(whole_dot, Circle):
        exclude |= (xx - whole_dot.x) ** 2 + (yy - whole_dot.y) ** 2 <= (whole_dot.r + margin) ** 2
    else:
        exclude |= whole_dot.mask((H, W))
    return exclude


def choose_matrix(hr, roi_matrix, exclude, min_side) -> RegionChoice:
    """The matrix region: given, else the largest square clear of every dot."""
    if roi_matrix is not None:
        return RegionChoice("matrix", roi_matrix, "given")
    H, W = hr.shape
    rect = choose_matrix_region(
        (H, W), exclude, side_px=max(MATRIX_MAX_SIDE_PX, min_side), min_side_px=min(min_side, min(H, W))
    )
    return RegionChoice("matrix", rect, "auto", "largest square clear of every dot")


def self_calibrate(hr, calibrate_on, phases, matrix_roi, d_range_angstrom, notes):
    """``calibrate_on='matrix'``: the matrix region calibrates the HRTEM affinely; returns ``(hr, calibration)``."""
    cal = None
    if calibrate_on == "matrix":
        from ..crystal._calibration import calibrate

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            cal = calibrate(
                hr, matrix_roi, list(phases)[0], affine=True, tiles=False, d_range_angstrom=d_range_angstrom
            )
        hr = cal.apply(hr)
        _warn(notes, f"calibrated on the matrix region: {cal.describe()}")
    if hr.calibration_info:
        info = hr.calibration_info
        _warn(
            notes,
            f"lengths in calibrated nm ({info.get('reference_phase')}, {info.get('model')}); {info.get('validity')}",
        )
    return hr, cal


def compare_chosen(hr, mat_choice, dot_choice, d_range_angstrom, keep_unindexed, notes):
    """Measure and compare the two regions (``compare_regions``); warnings become notes with the region's name.

    A dot region chosen *because* it deviates (anomaly or fallback) gets the look-elsewhere correction.
    """
    from ..lattice._compare import compare_regions

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
    if dot_choice.method in ("fallback", "anomaly"):
        from ..lattice._systematic import apply_look_elsewhere

        fb = dot_choice.method == "fallback"
        why = "it deviates most" if fb else "it is the strongest HRTEM anomaly"
        msg = apply_look_elsewhere(
            comparison, hr.shape, dot_choice.roi, why=why, name="region B" if fb else "the dot region"
        )
        _warn(notes, msg)
    region_msgs = [str(m) for lat in (comparison.a, comparison.b) for m in (getattr(lat, "warnings", None) or [])]
    for w in caught:  # the per-region warnings are repeated with the region's name
        if not any(str(w.message).endswith(m) for m in region_msgs):
            _warn(notes, str(w.message))
    for ch, lat in ((mat_choice, comparison.a), (dot_choice, comparison.b)):
        name = "region B" if ch.method == "fallback" else ch.role
        for msg in getattr(lat, "warnings", []) or []:
            _warn(notes, f"{name}: {msg}")
    return comparison
