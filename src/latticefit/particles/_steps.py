"""The steps of :func:`latticefit.particles.find_particles` after detection, in the order it runs them.

1. **Diameters searched** (:func:`diameter_search`): the given range, or max(3 px, 1 nm) to a quarter of the
   shorter side; a smallest diameter below 3 px cannot be resolved and is refused.
2. **Model fits** (:func:`fit_and_merge`): projected spheres convolved with the probe, fitted jointly per
   group of touching particles; a detection whose fitted centre lies inside a larger fitted particle is part
   of it (a neck or shoulder of a non-spherical particle): dropped and the rest fitted again (3 rounds at most).
3. **Table** (:func:`particle_table`): the fit (diameter, centre and their errors) beside the shape of each
   segment (ECD, Feret min/max, axes, orientation, circularity, solidity), edge flags (the fitted disk crosses
   the border or the masked pixels) and unsplit clusters (low solidity or aspect).
4. **Not particles** (:func:`not_particles`): a fitted size far outside the range, a fit without a significant
   height, a detection without a segment, a failed fit on a fragment, and faint background structure (a
   flagged detection whose contrast is below ``FAINT_FRACTION`` of the accepted particles', or in one
   material a fit far too low for its diameter) are dropped.
5. **Statistics** (:func:`statistics`): the particles in the statistics (checked fits, the border rule)
   through :func:`latticefit.particles.size_summary`, with the count line's partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError
from . import _crowd as C
from . import _kernels as K
from ._background import background_at
from ._checks import (
    CHI2_FACTOR,
    FIT_ECD_BAND,
    MIN_POPULATION,
    MISFIT_FACTOR,
    MISFIT_FLOOR,
    check_fits,
    count_line_parts,
    level_factor,
    one_material,
)
from ._detect import FAINT_FRACTION, OUTLINE_FRACTION, _nested, default_diameter_range_nm
from ._groupfit import _fit_particles
from ._invalid import cut_by_mask
from ._sizestats import miles_lantuejoul_weights, size_summary


@dataclass(frozen=True)
class DiameterSearch:
    """The diameters searched, in nm and in pixels, and where the range came from."""

    dlo_nm: float
    dhi_nm: float
    dlo_px: float
    dhi_px: float
    note: str


def _parse_range(diameter_range_nm, source):
    from ..units import parse_length_nm

    if isinstance(diameter_range_nm, str):
        txt = diameter_range_nm.strip()
        unit = ""
        for u in ("nm", "A", "Å", "pm", "um", "µm"):
            if txt.endswith(u):
                unit, txt = u, txt[: -len(u)]
                break
        parts = [p for p in txt.replace(":", "-").replace(",", "-").split("-") if p.strip()]
        if len(parts) != 2:
            raise AnalysisError(
                f"diameter range {diameter_range_nm!r}: expected LO-HI with a unit, e.g. 2-15nm", source
            )
        vals = [parse_length_nm(p.strip() + unit) for p in parts]
    else:
        try:
            vals = [parse_length_nm(v) for v in diameter_range_nm]
        except TypeError:
            raise AnalysisError(f"diameter range must be (lo, hi) in nm, got {diameter_range_nm!r}", source) from None
        if len(vals) != 2:
            raise AnalysisError(f"diameter range must be (lo, hi) in nm, got {diameter_range_nm!r}", source)
    lo, hi = vals
    if not lo < hi:
        raise AnalysisError(
            f"diameter range {diameter_range_nm!r}: the lower bound must be below the upper one", source
        )
    return float(lo), float(hi)


def diameter_search(diameter_range_nm, shape, pix: float, src) -> DiameterSearch:
    """The range searched (given or default), refused when its smallest diameter cannot be resolved."""
    H, W = shape
    if diameter_range_nm is None:
        try:
            dlo, dhi = default_diameter_range_nm((H, W), pix)
        except AnalysisError as e:
            raise e.with_source(src) from None
        note = "default: max(3 px, 1 nm) to a quarter of the shorter side"
    else:
        dlo, dhi = _parse_range(diameter_range_nm, src)
        note = "given"
    dlo_px, dhi_px = dlo / pix, dhi / pix
    if dlo_px < 3.0 - 1e-9:
        raise AnalysisError(
            f"diameter range {dlo:.3g}-{dhi:.3g} nm cannot be resolved at {pix:.4g} nm/px: the smallest diameter "
            f"is {dlo_px:.2f} px, below the 3 px minimum (use a lower bound >= {3 * pix:.3g} nm)",
            src,
        )
    if dlo_px > min(H, W) / 2:
        raise AnalysisError(
            f"diameter range {dlo:.3g}-{dhi:.3g} nm: the smallest diameter ({dlo_px:.0f} px) is "
            f"more than half the image ({H}x{W} px)",
            src,
        )
    dhi_px = max(min(dhi_px, min(H, W) / 2.0), dlo_px * 1.2)
    return DiameterSearch(dlo, dhi, dlo_px, dhi_px, note)


def detection_settings(rng: DiameterSearch, false_alarms, det, bg_scale_px, noise, border_rule, keep_flagged, bad):
    """``ParticleResult.settings``: what was searched and how (filled further by the later steps)."""
    return {
        "diameter_range_nm": [rng.dlo_nm, rng.dhi_nm],
        "diameter_range": rng.note,
        "false_alarms": false_alarms,
        "threshold_sigma": det["k"],
        "log_sigmas_px": (det["sigmas"] * det["f"]).tolist(),
        "detection_binning": det["f"],
        "background_scale_px": bg_scale_px,
        "noise": noise.to_dict(),
        "edge_correction": border_rule,
        "border_rule": border_rule,
        "keep_flagged": bool(keep_flagged),
        "outline_fraction": OUTLINE_FRACTION,
        "invalid_fraction": 0.0 if bad is None else float(bad.mean()),
    }


def fit_and_merge(img, seeds, noise, probe_px, bad, rounds: int = 5, nested_overlap: float | None = None):
    """Fit every detection; drop detections nested in a larger fitted particle, and collapsed fits, and fit again.

    Nested: the centre within ``r_strong + nested_overlap * r_weak`` of a stronger one (default the pruning
    rule's ``PRUNE_OVERLAP``).

    A fit that shrank to a point (:func:`_collapsed`) found no disc, and in a joint fit it stops its group's
    neighbours from converging: a weak detection at the border between two dots (LoG strength 7.9 against
    64-72) collapsed to 0.6 px and both dots' fits failed with it. Returns ``(fit, seeds, n_merged,
    n_collapsed)``.
    """
    n_merged = n_collapsed = 0
    for k in range(rounds):
        fit = _fit_particles(img, seeds["x"], seeds["y"], seeds["r"], seeds["strength"], noise, probe_px, invalid=bad)
        # a failed fit is judged by its detection: its parameters are wherever the solver stopped
        x, y = np.where(fit.ok, fit.x, seeds["x"]), np.where(fit.ok, fit.y, seeds["y"])
        inside = _nested(x, y, np.where(fit.ok, fit.r, seeds["r"]), seeds["strength"], nested_overlap)
        collapsed = _collapsed(fit, seeds["r"]) & ~inside
        found, same = _found_elsewhere(fit, img.shape, ~(inside | collapsed), seeds)
        if not (inside.any() or collapsed.any() or found.any() or same.any()) or k == rounds - 1:
            break
        n_merged += int(inside.sum() + same.sum())
        n_collapsed += int(collapsed.sum())
        seeds = {key: v.copy() for key, v in seeds.items()}
        for key, v in (("x", fit.x), ("y", fit.y), ("r", fit.r)):
            seeds[key][found] = v[found]
        seeds = {key: v[~(inside | collapsed | same)] for key, v in seeds.items()}
    return fit, seeds, n_merged, n_collapsed


#: a failed fit found a sphere of its own when its radius is known to this fraction (1 SE) ...
FOUND_RADIUS_ERROR = 0.05
#: ... and it is at least this fraction as high as the median good fit (a background bump under a crowd of
#: 7 nm dots at the default range fitted as 8-20 nm spheres 0.15-0.35 as high, whose moves kept two dots'
#: group from converging)
FOUND_MIN_HEIGHT = 0.5


def _found_elsewhere(fit, shape, alive, seeds):
    """Failed fits that converged on a sphere away from their detection: ``(found, same)``.

    A large dot at a high dose can be detected at several points of its rim at a smaller scale (150 px dots
    at 200 counts/px, at the default range: two to three detections a dot). Their fits agree on the dot, but
    each moved too far from its own detection to pass as its fit, and every one failed. A failed fit whose
    radius is known to ``FOUND_RADIUS_ERROR``, whose centre lies in the image and whose sphere holds its own
    detection (``seeds``; a fit that ran off to another place is no evidence of a particle at its detection)
    found a sphere: its detection is moved there (``found``), unless a good fit or a better-determined found
    one already holds that sphere (centre within its radius: ``same``, dropped). Where some fits are good, a
    found sphere is at least ``FOUND_MIN_HEIGHT`` as high as their median.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> fit = SimpleNamespace(ok=np.array([True, False, False, False, False]),
    ...                       x=np.array([20.0, 20.5, 70.0, 71.0, 40.0]), y=np.array([20.0, 20.0, 70.0, 69.0, 40.0]),
    ...                       r=np.full(5, 10.0), r_err=np.array([0.1, 0.1, 0.1, 0.2, 3.0]), h=np.ones(5))
    >>> seeds = dict(x=np.array([20.0, 24.0, 64.0, 76.0, 40.0]), y=np.array([20.0, 20.0, 70.0, 69.0, 40.0]))
    >>> found, same = _found_elsewhere(fit, (100, 100), np.ones(5, bool), seeds)
    >>> found.tolist(), same.tolist()  # the second is the good first's dot; the fourth, the third's
    ([False, False, True, False, False], [False, True, False, True, False])
    """
    H, W = shape
    with np.errstate(invalid="ignore"):
        cand = (
            alive
            & ~np.asarray(fit.ok, bool)
            & (fit.h > 0)
            & (fit.r_err < FOUND_RADIUS_ERROR * fit.r)
            & (fit.x >= 0)
            & (fit.x <= W - 1)
            & (fit.y >= 0)
            & (fit.y <= H - 1)
            & (np.hypot(fit.x - seeds["x"], fit.y - seeds["y"]) < fit.r)
        )
        good = alive & np.asarray(fit.ok, bool)
        if good.any():  # as high as the good fits' particles (a sphere fitted to a background bump is not)
            cand &= fit.h >= FOUND_MIN_HEIGHT * float(np.median(fit.h[good]))
    # held by a good fit: the pruning rule without overlap (centre closer than the larger radius); among
    # the rest, the better-determined ones first (the pruning itself, by relative radius error)
    idx = np.nonzero(cand)[0]
    free = idx[~C.covered(fit.y[good], fit.x[good], fit.r[good], fit.y[idx], fit.x[idx], fit.r[idx], 0.0)]
    kept = K.prune_blobs(fit.y[free], fit.x[free], fit.r[free], -fit.r_err[free] / fit.r[free], 0.0)
    found = np.zeros(len(fit.x), bool)
    found[free[kept]] = True
    return found, cand & ~found


#: a failed fit whose radius is below this fraction of its detection's has collapsed (the bound of "changed
#: its size wildly" in the fit's own check)
COLLAPSE_FRACTION = 0.4


def _collapsed(fit, r_seed):
    """Failed fits smaller than ``COLLAPSE_FRACTION`` of their detection, in a group with other detections.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> fit = SimpleNamespace(ok=np.array([True, False, False, False]), r=np.array([5.0, 0.6, 0.6, np.nan]),
    ...                       group=np.array([0, 0, 1, 0]))
    >>> _collapsed(fit, np.array([5.0, 19.5, 19.5, 5.0])).tolist()  # the third is alone in its group
    [False, True, False, False]
    """
    shared = np.bincount(fit.group)[fit.group] > 1
    with np.errstate(invalid="ignore"):
        return ~np.asarray(fit.ok, bool) & (fit.r < COLLAPSE_FRACTION * r_seed) & shared


def _centres(reg, seeds, fit):
    """Centre of each detection: the fit, or (failed fit) the segment's centroid, or the detection."""
    ok = fit.ok
    cx_reg, cy_reg = reg["centroid-1"].to_numpy(float), reg["centroid-0"].to_numpy(float)
    xr = np.where(ok, fit.x, np.where(np.isfinite(cx_reg), cx_reg, seeds["x"]))
    yr = np.where(ok, fit.y, np.where(np.isfinite(cy_reg), cy_reg, seeds["y"]))
    return xr, yr, np.where(ok, fit.r, np.nan)


def _edge_flags(reg, xr, yr, rad, fb, ok, shape, bad):
    """Cut by the border (the fitted disk crosses it; the segment touches it when no disk decides) or the mask."""
    H, W = shape
    bb0, bb1 = reg["bbox-0"].to_numpy(float), reg["bbox-1"].to_numpy(float)
    bb2, bb3 = reg["bbox-2"].to_numpy(float), reg["bbox-3"].to_numpy(float)
    touches = (bb0 <= 0) | (bb1 <= 0) | (bb2 >= H) | (bb3 >= W)
    touches = np.where(np.isnan(bb0), False, touches)
    cut = (xr - rad < -0.5) | (yr - rad < -0.5) | (xr + rad > W - 0.5) | (yr + rad > H - 0.5)
    # labels on a coarse detection grid (f > 1) are blocky by up to f px: a region touching the border is
    # then evidence of a cut only when there is no fitted disk to decide (the disk crossing the border is)
    edge = (touches if fb == 1 else touches & ~ok) | cut
    if bad is not None:  # cut by the masked (NaN) pixels, as by the border
        edge |= cut_by_mask(bad, xr, yr, rad)
    return edge, miles_lantuejoul_weights(bb2 - bb0, bb3 - bb1, (H, W))


def outline_radius(q, s):
    """Radius (in sphere radii) where a projected sphere blurred by ``s`` (radii) falls to ``q`` of its centre.

    Examples
    --------
    >>> outline_radius(np.array([0.2, 0.6]), np.array([0.01, 0.01])).round(3).tolist()
    [0.978, 0.8]
    """
    from ._profile_kernels import sphere_profile_table

    q = np.asarray(q, float)
    rho = np.linspace(0.0, 2.0, 801)
    s = np.clip(np.nan_to_num(np.asarray(s, float), nan=0.01), 1e-3, None)
    g0 = np.maximum(sphere_profile_table(np.zeros(q.shape), s), 1e-300)

    def frac(k):
        return sphere_profile_table(rho[k], s) / g0

    # the first grid point below q, by bisection: the profile falls monotonically with rho
    lo, hi = np.zeros(q.shape, int), np.full(q.shape, rho.size)  # frac >= q before lo; frac < q from hi on
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        below = frac(np.minimum(mid, rho.size - 1)) < q
        hi = np.where((lo < hi) & below, mid, hi)
        lo = np.where((lo < hi) & ~below, mid + 1, lo)
    k = np.where(hi == rho.size, 1, np.clip(hi, 1, rho.size - 1))  # none below: as the first cell
    f0, f1 = frac(k - 1), frac(k)
    t = np.clip((f0 - q) / np.maximum(f0 - f1, 1e-12), 0.0, 1.0)
    return rho[k - 1] + t * (rho[1] - rho[0])


def ecd_level_factor(q, blur_px, radius_px):
    """ECD of a fitted sphere at outline level ``q`` over its ECD at ``OUTLINE_FRACTION`` (same blur).

    The fit/ECD band of :func:`latticefit.particles._checks.check_fits` holds for an outline at 20 % of the
    peak; a faint dot is cut at 3 sigma of the noise instead, up to ~60 % of its peak, and its outline
    shrinks for that reason alone (a 5 px dot at 20 counts/px: fit/ECD ~1.5 for a good fit).
    """
    from ._detect import OUTLINE_FRACTION

    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.asarray(blur_px, float) / np.asarray(radius_px, float)
    good = np.isfinite(s) & (s > 0) & np.isfinite(q)
    out = np.ones(np.shape(q))
    if good.any():
        qq = np.asarray(q, float)[good]
        out[good] = outline_radius(qq, s[good]) / outline_radius(np.full(qq.shape, OUTLINE_FRACTION), s[good])
    return out


#: an irregular segment at least CLUSTER_RATIO x as narrow (fit/ECD) as the regular ones holds one dot
CLUSTER_RATIO = 0.85


def _one_dot_segment(rr, area, level, h, ok, unsplit, one_mat: bool):
    """Irregular segments of good fits no wider than single dots': one dot each (a field of one material).

    The shape test (solidity < 0.85 or axis ratio < 0.6) flagged a quarter of the single 5-8 px dots of the
    crowded benchmark fields as clusters: 20-50 pixels cut against touching neighbours are seldom convex.
    A large dot's segment can be irregular for the same reason (a 55 px dot whose segment took the sliver of
    a dot outside the frame: solidity 0.83, fit/ECD 0.88). Several dots under one fit make the segment
    wider than the fit: their level-corrected fit/ECD falls below ``CLUSTER_RATIO`` times the median of the
    regular segments with good fits (two dots: about 1/sqrt(2)). Fits lower than ``FAINT_FRACTION`` of the
    median (background structure, dropped as faint when flagged) keep the shape test, and so does every
    segment of a field that is not one material (``one_mat``: :func:`latticefit.particles._checks.one_material`
    of the good fits).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 2.0 * rr / (2.0 * np.sqrt(area / np.pi)) * level
    ref = ok & ~unsplit & np.isfinite(ratio) & np.isfinite(h)
    if ref.sum() < MIN_POPULATION or not one_mat:
        return np.zeros(len(rr), bool)
    with np.errstate(invalid="ignore"):
        narrow = ratio >= CLUSTER_RATIO * float(np.median(ratio[ref]))
        tall = h >= FAINT_FRACTION * float(np.median(h[ref]))
    return ok & unsplit & narrow & tall


#: a segment of fewer pixels, whose sphere fits it to the noise (chi2_red over its disc at most
#: SMALL_FIT_CHI2) with a height SMALL_FIT_SIGNIFICANCE standard errors or more, is one particle
SMALL_SEGMENT_PX = 50
SMALL_FIT_CHI2 = 2.0
SMALL_FIT_SIGNIFICANCE = 10.0


def _small_segment_of_one_sphere(rr, area, fit, ok, one_mat: bool):
    """Small irregular segments that one sphere describes: one particle each (a field of several materials).

    :func:`_one_dot_segment` judges the segments of a field of one material against their population; in
    a view of several materials there is none, and the shape test alone decided: on the real Velox view a
    faint round 26 nm dot (23 px, solidity 0.84; its sphere fits to chi2_red 1.3 at 12 SE of height) and the
    dimmer dot of a touching pair (33 px; 1.1, 20 SE) were flagged as clusters and dropped as faint. A
    segment under ``SMALL_SEGMENT_PX`` pixels is seldom convex, and several particles under one sphere misfit
    it. Noise specks of 11 px there fit as well but at 6.3-6.4 SE: hence ``SMALL_FIT_SIGNIFICANCE``.
    ``one_mat``: the good fits are one material (then it does not apply).
    """
    if one_mat:
        return np.zeros(len(rr), bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            ok
            & (area < SMALL_SEGMENT_PX)
            & (fit.chi2_disc <= SMALL_FIT_CHI2)
            & (fit.h >= SMALL_FIT_SIGNIFICANCE * fit.h_err)
        )


def particle_table(reg, seeds, fit, det, shape, pix: float, bad):
    """One row per detection: the model fit beside the segment's shape, edge and cluster flags (nm)."""
    import pandas as pd

    n = len(seeds["x"])
    fb = det["f"]
    area = reg["area"].to_numpy(float)
    # background at each seed from the coarse background grid
    integ = (
        reg["intensity_mean"].to_numpy(float) - background_at(det["background"], fb, seeds["y"], seeds["x"])
    ) * area
    with np.errstate(divide="ignore", invalid="ignore"):
        circ = np.clip(4 * np.pi * area / reg["perimeter"].to_numpy(float) ** 2, 0, 1)
    ok = fit.ok
    xr, yr, rr = _centres(reg, seeds, fit)
    rad_e = np.where(np.isfinite(rr), rr, seeds["r"])
    edge, ml = _edge_flags(reg, xr, yr, rad_e, fb, ok, shape, bad)
    minor = reg["axis_minor_length"].to_numpy(float)
    major = reg["axis_major_length"].to_numpy(float)
    solidity = reg["solidity"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        unsplit = ((solidity < 0.85) | (minor / major < 0.6)) & (area > 0.5 * np.pi * rad_e**2)
    unsplit = np.where(np.isnan(solidity), False, unsplit) & ~edge
    level = ecd_level_factor(seeds["outline_fraction"], np.hypot(seeds["outline_blur_px"], fit.sigma_px), rr)
    one_mat = one_material(fit.h[ok], 2.0 * rr[ok])
    unsplit &= ~_one_dot_segment(rr, area, level, fit.h, ok, unsplit, one_mat)
    unsplit &= ~_small_segment_of_one_sphere(rr, area, fit, ok, one_mat)
    table = pd.DataFrame(
        {
            "label": np.arange(1, n + 1, dtype=np.int64),
            "x_px": xr,
            "y_px": yr,
            "diameter_nm": 2 * rr * pix,
            "diameter_err_nm": np.where(ok, 2 * fit.r_err * pix, np.nan),
            "x_err_px": np.where(ok, fit.x_err, np.nan),
            "y_err_px": np.where(ok, fit.y_err, np.nan),
            "ecd_nm": np.sqrt(4 * area / np.pi) * pix,
            "feret_max_nm": reg["feret_max"].to_numpy(float) * pix,
            "feret_min_nm": reg["feret_min"].to_numpy(float) * pix,
            "major_axis_nm": major * pix,
            "minor_axis_nm": minor * pix,
            # skimage: angle between the row axis and the major axis; report from +x, counter-clockwise on screen
            "orientation_deg": np.degrees(reg["orientation"].to_numpy(float)) - 90.0,
            "circularity": circ,
            "solidity": solidity,
            "area_nm2": area * pix * pix,
            "integrated_intensity": integ,
            "peak_height": np.where(ok, fit.h, np.nan),
            "log_radius_nm": seeds["r"] * pix,
            "hidden": seeds["hidden_id"] >= 0 if "hidden_id" in seeds else np.zeros(n, bool),
            "outline_fraction": seeds["outline_fraction"],
            "ecd_level_factor": level,
            "edge": edge.astype(bool),
            "cluster_unsplit": unsplit.astype(bool),
            "fit_ok": ok.astype(bool),
            "fit_group": fit.group.astype(np.int64),
            "chi2_red": fit.chi2_red,
            "chi2_red_disc": fit.chi2_disc,
            "chi2_red_background": fit.chi2_bg,
            "misfit_fraction": fit.misfit,
            "ml_weight": np.where(edge, np.nan, ml),
        }
    )
    table["orientation_deg"] = ((table["orientation_deg"] + 90.0) % 180.0) - 90.0
    return table


def not_particles(table, fit, rng: DiameterSearch, border_rule: str, pix: float, strength):
    """Detections that are no particle (see the module docstring): ``(mask, n_faint)``; ``strength``: the
    detections' LoG significance.
    """
    dlo, dhi = rng.dlo_nm, rng.dhi_nm
    ok = fit.ok
    edge = table["edge"].to_numpy(bool)
    ecd = table["ecd_nm"].to_numpy(float)
    solidity = table["solidity"].to_numpy(float)
    d_fit = table["diameter_nm"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        insignificant = ~(fit.h > 3.0 * fit.h_err)
    # a particle cut by the border whose sphere fit failed (a large part of it is outside, or its seed is the
    # mirror-merged blob of reflect padding) is still a particle when the segmentation finds a region of at
    # least the smallest diameter above 3 noise sigma: keep it (edge, fit_ok False) so the overlay shows it
    # (and compact: solidity >= 0.8, as a convex particle cut by a straight border; not a noisy web)
    insignificant &= ~(edge & ~ok & (ecd >= dlo) & (solidity >= 0.8))
    no_region = ~(ecd >= 0.5 * dlo)  # no region, or only the seed pixels
    # a fitted "particle" with hardly a segment (ECD below half its fit and below the smallest diameter) is a
    # bump of the background or noise, not a particle a person would outline
    # (a faint dot's segment is cut higher up its profile: its ECD is judged at that level, as in check_fits)
    ecd_at_20 = ecd / level_factor(table, ok & ~edge) if "ecd_level_factor" in table else ecd
    no_region |= ok & (ecd_at_20 < 0.5 * np.minimum(d_fit, 2 * dlo)) & (ecd_at_20 < dlo)
    if "hidden" in table:  # a hidden dot (found in the fit residual) has its neighbour's shoulder as segment
        no_region &= ~(table["hidden"].to_numpy(bool) & ok)
    small_failed = ~ok & ~(ecd >= dlo)  # failed fit on a fragment
    out = (ok & ((d_fit < dlo / 1.25) | (d_fit > dhi * 1.25))) | insignificant | no_region | small_failed
    faint = _faint(table, out, border_rule, pix, fit.h_err, strength)
    return out | faint, int(faint.sum())


def _faint(table, out, border_rule, pix, h_err, strength):
    """Flagged detections (unsplit cluster, failed fit) fainter than FAINT_FRACTION of the accepted particles.

    Background structure (a film edge, a thickness step, a stain), not a dot of the population. A real but
    non-spherical particle (chi2 or leaves_segment) of another brightness than the majority stays, rejected
    and shown. Faint: a mean contrast over the segment, or a fitted sphere height, below ``FAINT_FRACTION``
    of the accepted particles' median (a plateau left by the background at a film edge near a corner: 0.28
    of the dots' contrast, but a sphere fit 0.06 of their height; an unsplit cluster's fit sits on one dot).
    """
    pre = check_fits(table.assign(edge=table["edge"] | out), border_rule=border_rule)
    area_px = table["area_nm2"].to_numpy(float) / (pix * pix)
    contrast = table["integrated_intensity"].to_numpy(float) / np.maximum(area_px, 1.0)
    faint = np.zeros(len(table), bool)
    status = pre["status"].to_numpy(str)
    accepted = (status == "ok") & ~out
    if accepted.sum() >= 3:
        flagged = ((status == "cluster") | (pre["reject_reason"].to_numpy(str) == "no_convergence")) & ~out
        faint = flagged & (contrast < FAINT_FRACTION * float(np.median(contrast[accepted])))
        # a broad bump of the background (its mean contrast can reach 0.43 of the dots') has a weak detection;
        # so has the sliver of a particle outside the frame, which is a particle
        s = np.asarray(strength, float)
        faint |= flagged & (s < FAINT_FRACTION * float(np.median(s[accepted]))) & ~table["edge"].to_numpy(bool)
        h = table["peak_height"].to_numpy(float)
        fitted = table["fit_ok"].to_numpy(bool) & np.isfinite(h)
        if (accepted & fitted).sum() >= 3:
            faint |= flagged & fitted & (h < FAINT_FRACTION * float(np.median(h[accepted & fitted])))
            inside = fitted & ~out & ~table["edge"].to_numpy(bool)
            d = table["diameter_nm"].to_numpy(float)
            faint |= inside & _too_low_for_its_size(h, np.asarray(h_err, float), d, accepted & fitted)
    return faint


#: in a population of one material, a fit lower than this fraction of the height a dot of its diameter has
#: (``H / D`` over the median's) is a bump of the background between the dots, not one of them
BUMP_HEIGHT_FACTOR = 0.5
#: fewest accepted fits that define the population's ``H / D`` for that test (the median and MAD of 4 dots
#: already ignore one bump; a field of 4 dots at 0.06 nm/px had a film-edge plateau fitted at 0.13 of it)
BUMP_MIN_POPULATION = 4


def _too_low_for_its_size(h, h_err, d, pop):
    """Fits whose height per diameter is, by 2 SE, below ``BUMP_HEIGHT_FACTOR`` of the population's median.

    The fitted height of a projected sphere grows with its diameter, so ``H / D`` is one number for one
    material (robust SD of ``ln(H / D)`` <= ``GROUP_HEIGHT_SPREAD``): 0.75-1.25 of the median for single
    dots on the crowded benchmark fields, 0.22-0.32 for the small "dots" fitted to the background in the
    gaps of a raft at 20 counts/px, which otherwise pass every shape test and enter the statistics. The fit's
    own height error counts for the dot (a noisy 5 px dot at 20 counts/px is not dropped for its noise).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        hd = h / d
    pop = pop & np.isfinite(hd) & (hd > 0)
    if not one_material(h[pop], d[pop], BUMP_MIN_POPULATION):
        return np.zeros(len(h), bool)
    with np.errstate(invalid="ignore"):
        return (h + 2.0 * h_err) / d < BUMP_HEIGHT_FACTOR * float(np.median(hd[pop]))


def drop_detections(table, labels, drop):
    """Remove the dropped rows and their labels; the others are renumbered 1..n."""
    if not drop.any():
        return table, labels
    n = len(table)
    keep_lab = np.concatenate([[0], table["label"].to_numpy()[~drop]])
    lut = np.zeros(n + 1, np.int32)
    lut[keep_lab] = np.arange(len(keep_lab), dtype=np.int32)
    table = table[~drop].reset_index(drop=True)
    table["label"] = np.arange(1, len(table) + 1, dtype=np.int64)
    return table, lut[labels]


def statistics(table, border_rule, keep_flagged, n_boot, seed, settings, src) -> dict:
    """The size statistics of the particles in the statistics and the partition of the detections."""
    import warnings

    from ..errors import LatticefitWarning

    parts = count_line_parts(table)
    use = table["in_statistics"].to_numpy(bool)
    weights = table["ml_weight"].to_numpy(float)[use] if border_rule == "miles-lantuejoul" else None
    summary = size_summary(
        table["diameter_nm"].to_numpy(float)[use],
        table["diameter_err_nm"].to_numpy(float)[use],
        weights=weights,
        n_excluded=parts["n_edge"],
        n_boot=n_boot,
        seed=seed,
        warn=False,
    )
    summary.update({k: v for k, v in parts.items() if k != "n_detected"})
    summary["border_rule"] = border_rule
    summary["keep_flagged"] = bool(keep_flagged)
    if summary["n"] == 0:
        warnings.warn(
            f"{src or 'image'}: no particle fit for statistics: the summary is empty", LatticefitWarning, stacklevel=3
        )
    summary["n_detected"] = int(len(table))
    summary["n_fit_failed"] = int((~table["fit_ok"]).sum())
    summary["rejection"] = {
        "fit_ecd_band": list(FIT_ECD_BAND),
        "chi2_factor": CHI2_FACTOR,
        "misfit_factor": MISFIT_FACTOR,
        "misfit_floor": MISFIT_FLOOR,
        "error_scale_max": float(table["error_scale"].max()) if len(table) else 1.0,
    }
    summary["n_cluster_unsplit"] = int(table["cluster_unsplit"].sum())
    summary["probe_sigma_nm"] = settings["probe_sigma_nm"]
    boot = settings.get("error_bootstrap") or {}
    factor = boot.get("diameter_factor") if boot.get("applied") else None
    summary["diameter_error_bootstrap_factor"] = factor
    if factor is not None and factor > 1.0 and summary["n"]:
        summary["notes"] = [
            *summary.get("notes", []),
            f"per-particle errors x {factor:.3g}: a parametric bootstrap of the fits finds the Fisher errors "
            f"{100 * (factor - 1):.2g} % small at this signal",
        ]
    ecd = table["ecd_nm"].to_numpy(float)[use]
    summary["ecd_mean_nm"] = float(np.nanmean(ecd)) if ecd.size and np.isfinite(ecd).any() else None
    return summary
