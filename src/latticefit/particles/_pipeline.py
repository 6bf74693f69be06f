"""HAADF-STEM nanoparticle detection, segmentation and model-fit sizing.

:func:`find_particles` runs the whole analysis on one image:

1. **background**: a slowly varying matrix/thickness background, estimated by
   masked normalised Gaussian smoothing with the particles iteratively masked
   (so it works on a textured perovskite matrix as well as on flat carbon);
2. **detection**: a multi-scale Laplacian of Gaussian over the requested
   diameter range (``diameter_range_nm``), computed by FFT on a block-averaged
   image, local maxima in (scale, y, x) and overlap pruning in numba; the
   threshold of each scale is ``k`` times the noise of that scale's response,
   measured on the background pixels of the image itself, with ``k`` set by the
   expected number of false detections per image (``false_alarms``);
3. **segmentation**: seeded watershed (:func:`skimage.segmentation.watershed`)
   so touching pairs and small clusters split; particles cut by the image
   border are flagged (``edge``) and left out of the statistics (or weighted
   by Miles-Lantuéjoul); regions that look like unsplit clusters are flagged;
4. **measurements**: centre, equivalent circular diameter, Feret max/min,
   ellipse axes and orientation, circularity, integrated intensity
   (:func:`skimage.measure.regionprops_table`) and the **model-fit diameter**:
   a least-squares fit of projected spheres (thickness ``2 sqrt(R^2 - r^2)``)
   blurred by the probe over a local quadratic background, touching neighbours
   fitted jointly, with the 1-sigma error from the Fisher information (on a counting image with small
   dots at a low dose scaled by a parametric bootstrap of the fits: :mod:`._bootstrap_errors`);
5. **statistics** (:func:`latticefit.sizestats.size_summary`).

Why a model fit: a sphere's Z-contrast profile is ``sqrt(1 - r^2/R^2)``, so a
half-maximum contour sits at 0.87 R and thresholded diameters come out 8-15 %
small, by an amount that moves with the threshold. The fit measures R itself.

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.haadf_dots((512, 512), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=12,
...                              n_touching_pairs=1, seed=1)
>>> res = find_particles(mg, diameter_range_nm=(3, 12))
>>> len(res.table) == len(truth.particles)
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError, LatticefitWarning, check_param
from ..micrograph import as_micrograph
from . import _steps as st
from ._background import (  # noqa: F401
    BACKGROUND_METHOD,
    _background_grid,
    _interp_index,
    _local_plane_smooth,
    _resample,
    estimate_background,
)
from ._bootstrap_errors import with_bootstrap_errors
from ._checks import BORDER_RULES, FIT_ECD_BAND, check_fits, one_material, shoulders
from ._detect import (  # noqa: F401
    _BORDER_C,
    _BORDER_U,
    CROWD_SPLIT,
    FAINT_FRACTION,
    LOG_SIGMA_PER_RADIUS,
    MAXIMA_DENSITY,
    OUTLINE_FRACTION,
    PRUNE_OVERLAP,
    _border_corr,
    _detect,
    _nested,
    _seed_connected,
    _segment,
    _stabilise,
    _stabilised_grid,
    _subtract_background,
    _threshold_factor,
    _watershed_components,
    default_diameter_range_nm,
)
from ._fit import FIT_RADIUS_PX, _Fit, _insert_sigma, _prepare_groups, _run_fit, _subset  # noqa: F401
from ._groupfit import _fit_masking_the_rest, _fit_particles  # noqa: F401
from ._hidden import (
    HIDDEN_MAX_COVERED,
    HIDDEN_MIN_HEIGHT,
    HIDDEN_OVERLAP,
    covered_fractions,
    failed_covered,
    local_refit,
    partition_by_model,
    residual_seeds,
)
from ._invalid import inpaint, mask_note
from ._measure import _MEASURE_COLUMNS, _hull_calipers, _measure_regions, _measure_regions_ref, region_measures  # noqa: F401
from ._noise import NoiseModel, _immerkaer_tiles, _quantum, estimate_noise_model  # noqa: F401
from ._overlay import _outline_segments  # noqa: F401
from ._own_background import cut_to_own_background
from ._plot import _g, count_line, plot_overlay, summary_lines  # noqa: F401
from ._refits import polished, regrown, retried
from ._result import JSON_PARTICLE_KEYS, PARTICLES_SCHEMA_VERSION, TABLE_COLUMNS, ParticleResult, _empty_table  # noqa: F401
from ._sizestats import size_summary
from ._steps import _parse_range  # noqa: F401 - the CLI parses --diameter-range with it

__all__ = [
    "ParticleResult",
    "find_particles",
    "estimate_background",
    "estimate_noise_model",
    "NoiseModel",
    "default_diameter_range_nm",
    "plot_overlay",
    "summary_lines",
    "count_line",
    "region_measures",
    "TABLE_COLUMNS",
    "JSON_PARTICLE_KEYS",
]


def _add_calibration_error(table, mg):
    """Add the relative error of the calibrated pixel length sqrt|det A| to every diameter error."""
    from .._calibration_affine import propagate

    v, var = propagate(
        lambda a: [math.sqrt(abs(np.linalg.det(a.reshape(2, 2))))], mg.affine_nm_per_px.ravel(), mg.affine_cov
    )
    rel = math.sqrt(abs(var[0, 0])) / v[0]
    table = table.copy()
    table["diameter_err_measurement_nm"] = table["diameter_err_nm"]
    table["diameter_err_nm"] = np.hypot(table["diameter_err_nm"], rel * table["diameter_nm"])
    return table


# ============================================================== steps of find_particles
@dataclass(frozen=True)
class _Options:
    """The checked options of :func:`find_particles`."""

    probe_sigma_nm: float | None
    false_alarms: float
    background_scale_nm: float | None
    n_boot: int
    seed: int
    border_rule: str
    keep_flagged: bool


@dataclass
class _Run:
    """What the result of one image carries besides its table: calibration, range searched, detection."""

    mg: object
    src: str | None
    py: float
    px: float
    rng: st.DiameterSearch
    det: dict
    settings: dict


def _pixel_length(mg, py, px, src) -> float:
    """The pixel length used for sizes, sqrt(py px) (an affine calibration: sqrt|det A|, shear included).

    Warns (at the caller of :func:`find_particles`) when the pixels are not square.
    """
    pix = math.sqrt(mg.pixel_area_nm2)
    if abs(py - px) > 0.01 * pix:
        warnings.warn(
            f"{src or 'image'}: non-square pixels ({py:.4g} x {px:.4g} nm); sizes use their geometric mean",
            LatticefitWarning,
            stacklevel=3,
        )
    return pix


def _checked_options(
    src, probe_sigma_nm, false_alarms, background_scale_nm, n_boot, seed, edge_correction, border_rule, keep_flagged
) -> _Options:
    """The options checked (:func:`~latticefit.errors.check_param`); ``border_rule`` defaults to ``edge_correction``."""
    probe_sigma_nm = check_param("probe_sigma_nm", probe_sigma_nm, lo=0, lo_open=True, optional=True, source=src)
    false_alarms = check_param("false_alarms", false_alarms, lo=0, lo_open=True, source=src)
    background_scale_nm = check_param(
        "background_scale_nm", background_scale_nm, lo=0, lo_open=True, optional=True, source=src
    )
    n_boot = check_param("n_boot", n_boot, lo=1, integer=True, source=src)
    seed = check_param("seed", seed, lo=0, integer=True, source=src)
    border_rule = edge_correction if border_rule is None else border_rule
    if border_rule not in BORDER_RULES:
        raise AnalysisError(f"border_rule must be one of {', '.join(BORDER_RULES)}, got {border_rule!r}", src)
    return _Options(probe_sigma_nm, false_alarms, background_scale_nm, n_boot, seed, border_rule, keep_flagged)


def _background_scale_px(opts: _Options, rng: st.DiameterSearch, pix: float) -> float:
    """Smoothing length of the background in px: given, or twice the largest diameter (at least 16 px)."""
    return (opts.background_scale_nm / pix) if opts.background_scale_nm else max(2.0 * rng.dhi_px, 16.0)


def _no_particles(run: _Run) -> ParticleResult:
    """The result of an image without detections: an empty table and summary, with a warning."""
    blank = run.mg.blank_reason()
    why = f"{blank}: no particles found" if blank else "no particles found"
    warnings.warn(
        f"{run.src or 'image'}: {why} between {run.rng.dlo_nm:.3g} and {run.rng.dhi_nm:.3g} nm",
        LatticefitWarning,
        stacklevel=3,
    )
    summary = size_summary([], warn=False)
    summary["probe_sigma_nm"] = None
    return _result(run, _empty_table(), np.zeros(run.mg.data.shape, np.int32), summary)


def _with_hidden_dots(img, fit, seeds, det, noise, bad, settings):
    """Fit again with the hidden dots of the fit residual (:mod:`latticefit.particles._hidden`).

    Only for a population of one material (:func:`latticefit.particles._checks.one_material`: a mixed
    field's imperfect fits leave residuals a threshold cannot tell from dots). One joint refit with the probe
    sigma of the first, of the touching components that hold a candidate only (:func:`local_refit`), where a
    fit is nested in a stronger one only when its centre lies inside that one's disc (``HIDDEN_OVERLAP``: a
    hidden dot's projection may overlap its neighbour's); a hidden seed stays when its fit is good and at
    least ``HIDDEN_MIN_HEIGHT`` as high as the median particle (a dot of the population, not a residual of an
    imperfect model). When some are not, the fit is repeated with the good ones only (a bad candidate also
    pulls its neighbours' fits) and that round's few failures are dropped; with none good the first fit
    stands. Members the refit grew and fitted worse are fitted again alone
    (:func:`latticefit.particles._refits.regrown`). ``hidden_id``: a seed's index among the hidden candidates
    (-1: found in the image itself); ``first_row``: its index in the first fit (-1: a hidden dot).
    """
    seeds["hidden_id"] = np.full(len(seeds["x"]), -1, np.int64)
    seeds["first_row"] = np.arange(len(seeds["x"]), dtype=np.int64)
    settings["n_hidden_seeds"] = settings["n_regrown"] = 0
    if not one_material(fit.h[fit.ok], 2.0 * fit.r[fit.ok]):  # "like its neighbour" needs one population
        return fit, seeds
    cand = residual_seeds(img, fit, seeds, det, noise)
    if not len(cand["x"]):
        return fit, seeds
    cand["hidden_id"] = np.arange(len(cand["x"]), dtype=np.int64)
    cand["first_row"] = np.full(len(cand["x"]), -1, np.int64)
    refit = lambda image, sd: st.fit_and_merge(image, sd, noise, fit.sigma_px, bad, nested_overlap=HIDDEN_OVERLAP)[:2]  # noqa: E731
    for last in (False, True):
        stay = ~failed_covered(fit, seeds, cand)  # a failed fit whose dot shows in the residual is replaced
        fit2, seeds2 = local_refit(img, fit.select(stay), {key: v[stay] for key, v in seeds.items()}, cand, refit)
        hid = seeds2["hidden_id"]
        ref = fit2.ok & (hid < 0) & np.isfinite(fit2.h)
        med_h = float(np.median(fit2.h[ref])) if ref.any() else np.inf
        good = (hid >= 0) & fit2.ok & (fit2.h >= HIDDEN_MIN_HEIGHT * med_h)
        good &= ~_necks(fit2, good)
        if not good.any():
            break
        if good.sum() == (hid >= 0).sum() or last:
            keep = (hid < 0) | good  # (a second round's few failures: dropped, their neighbours kept)
            settings["n_hidden_seeds"] = int(good.sum())
            fit2, seeds2 = fit2.select(keep), {key: v[keep] for key, v in seeds2.items()}
            fit2, settings["n_regrown"] = regrown(img, fit, fit2, seeds2, noise, bad)
            return fit2, seeds2
        cand = {key: v[np.isin(cand["hidden_id"], hid[good])] for key, v in cand.items()}
    return fit, seeds


def _necks(fit, cand):
    """The candidates ``cand`` whose fitted disc lies mostly (``HIDDEN_MAX_COVERED``) inside the other good fits'."""
    ok = fit.ok & np.isfinite(fit.r)
    return covered_fractions(fit.x, fit.y, fit.r, cand & ok, ok) > HIDDEN_MAX_COVERED


def _markers(fit, seeds, shape, binning: int):
    """Watershed markers: a converged fit's centre on a binned detection, or where the detection is off its disc.

    A detection of a dot by the image border can lie off the dot (the reflect padding merges the dot with its
    mirror image: a seed 33 px from the centre of a 56 px dot on a benchmark field), and its watershed region
    is then a sliver of background while the dot's pixels go to a neighbour. A detection on a binned image
    (``binning`` > 1, large dots) sits on its coarse pixel, the fit at full resolution. At full resolution
    (small dots) the detection stays the marker: the fitted centre of a 5 px dot at 20 counts/px is no better
    a marker than its LoG maximum (F1 0.981 -> 0.979 on the benchmark's 5 px field with the fitted centres).
    """
    H, W = shape
    inside = fit.ok & (fit.x >= 0) & (fit.x <= W - 1) & (fit.y >= 0) & (fit.y <= H - 1)
    with np.errstate(invalid="ignore"):
        use = inside & ((binning > 1) | (np.hypot(fit.x - seeds["x"], fit.y - seeds["y"]) > fit.r))
    return {"x": np.where(use, fit.x, seeds["x"]), "y": np.where(use, fit.y, seeds["y"])}


def _fit_and_segment(img, seeds, det, noise, opts: _Options, pix, bad, settings):
    """Model fits (nested detections merged) and the seeded watershed of the fitted detections.

    Returns ``(fit, seeds, labels)``; ``settings`` gets the merge count and the probe sigma.
    """
    probe_px = None if opts.probe_sigma_nm is None else opts.probe_sigma_nm / pix
    fit, seeds, settings["n_merged"], settings["n_collapsed"] = st.fit_and_merge(img, seeds, noise, probe_px, bad)
    fit, n_before = retried(img, fit, seeds, noise, bad)
    fit, seeds = _with_hidden_dots(img, fit, seeds, det, noise, bad, settings)
    fit, n_after = retried(img, fit, seeds, noise, bad)
    settings["n_retried"] = n_before + n_after
    fit, settings["n_polished"] = polished(img, fit, seeds, noise, bad)
    labels, _, outline, s_seg_px = _segment(
        det["coarse"],
        _markers(fit, seeds, img.shape, det["f"]),
        det["sigmas"],
        det["f"],
        img.shape,
        det.get("pixel_noise"),
    )
    labels = partition_by_model(labels, fit, seeds["hidden_id"] >= 0)
    settings["n_own_background"] = cut_to_own_background(
        labels, img, fit, seeds, det, s_seg_px, OUTLINE_FRACTION, FIT_ECD_BAND
    )
    seeds["outline_fraction"] = outline
    seeds["outline_blur_px"] = np.full(len(outline), math.hypot(s_seg_px, det["f"] / math.sqrt(12.0)))
    if bad is not None:
        labels[bad] = 0
    settings["probe_sigma_nm"] = fit.sigma_px * pix
    settings["probe_sigma"] = "given" if opts.probe_sigma_nm is not None else "fitted (median of isolated particles)"
    return fit, seeds, labels


def _measurements(labels, img, seeds, fit, run: _Run, opts: _Options, pix, bad):
    """The particle table (fit beside the segment's shape); detections that are no particle dropped.

    Returns ``(table, labels)``; ``run.settings`` gets the drop counts.
    """
    table = st.particle_table(_measure_regions(labels, img, len(seeds["x"])), seeds, fit, run.det, img.shape, pix, bad)
    drop, run.settings["n_faint_dropped"] = st.not_particles(
        table, fit, run.rng, opts.border_rule, pix, seeds["strength"]
    )
    table, labels = st.drop_detections(table, labels, drop)
    run.settings["n_dropped"] = int(drop.sum())  # out of range or not significant in the fit: not particles
    with np.errstate(invalid="ignore", divide="ignore"):
        table["aspect_ratio"] = table["feret_max_nm"] / table["feret_min_nm"]
    return table, labels


def _checked(table, labels, opts: _Options, counts: bool, pix, settings):
    """:func:`check_fits` of the table; rejected fits mostly inside accepted ones (:func:`shoulders`) dropped
    as no particles (``settings['n_shoulders_dropped']``) and the rest checked again. Returns ``(table, labels)``.
    """

    def check(t):
        return check_fits(t, border_rule=opts.border_rule, keep_flagged=opts.keep_flagged, errors_scaled=not counts)

    checked = check(table)
    shoulder = shoulders(checked, pix)
    settings["n_shoulders_dropped"] = int(shoulder.sum())
    if not shoulder.any():
        return checked, labels
    table, labels = st.drop_detections(table, labels, shoulder)
    return check(table), labels


def _result(run: _Run, table, labels, summary) -> ParticleResult:
    """The :class:`ParticleResult`: range and pixel size in the summary, the calibration error when known."""
    summary = dict(summary)
    summary["diameter_range_nm"] = [run.rng.dlo_nm, run.rng.dhi_nm]
    summary["pixel_size_nm"] = [run.py, run.px]
    if run.mg.affine_cov is not None and len(table):
        table = _add_calibration_error(table, run.mg)
        summary["calibration"] = dict(run.mg.calibration_info or {})
    return ParticleResult(
        table=table,
        summary=summary,
        labels=labels,
        pixel_size_nm=(run.py, run.px),
        source=run.src,
        background_grid=(run.det["background"], run.det["f"]),
        settings=run.settings,
    )


def find_particles(
    image,
    *,
    roi=None,
    diameter_range_nm=None,
    pixel_size=None,
    false_alarms: float = 0.05,
    probe_sigma_nm: float | None = None,
    edge_correction: str = "exclude",
    background_scale_nm: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    source: str | None = None,
    border_rule: str | None = None,
    keep_flagged: bool = False,
) -> ParticleResult:
    """Detect, segment and size bright nanoparticles in a HAADF-STEM image.

    Parameters
    ----------
    image : Micrograph, hyperspy Signal2D or 2-D array
        The image (any numeric dtype: uint16 counts and float give the same result).
    roi : Rect, Circle, Mask, hyperspy RectangularROI/CircleROI/PolygonROI, tuple or dict, optional
        Analyse only this region (a hyperspy ROI in the image's calibrated units): particles whose centre
        lies in it are kept, those its border cuts are ``edge``; positions stay in full-image pixels.
    diameter_range_nm : (float, float) or str, optional
        Smallest and largest particle diameter searched, in nm (``(2, 15)`` or
        ``'2-15nm'``). Default: :func:`default_diameter_range_nm`, from
        max(3 px, 1 nm) to a quarter of the shorter image side. The smallest
        diameter must be at least 3 px.
    pixel_size : float, str or (float, float), optional
        Pixel size (nm for a bare number), overriding the image's calibration.
    false_alarms : float
        Expected number of noise peaks per image accepted as particles; sets the
        detection threshold in units of the measured noise of each LoG scale
        (about 4.5-5 sigma for a typical image).
    probe_sigma_nm : float, optional
        Standard deviation of the Gaussian probe. Default: fitted on the
        brightest isolated particles (median), then fixed for all fits.
    edge_correction : {'exclude', 'miles-lantuejoul', 'include'}
        Former name of ``border_rule`` (used when ``border_rule`` is None).
    border_rule : {'exclude', 'miles-lantuejoul', 'include'}, optional
        Counting rule for particles cut by the image border (Bresch et al. 2022 compare them):
        ``'exclude'`` leaves them out (biased against large particles), ``'miles-lantuejoul'`` leaves
        them out and weights the others by the inverse of their probability to lie wholly inside the
        field (unbiased), ``'include'`` keeps those whose fit passes the checks (their fit uses the
        visible part only).
    keep_flagged : bool
        Keep ``cluster`` and ``rejected`` particles (see :mod:`latticefit._particle_checks`) in the
        statistics; by default they are listed (``status``, ``reject_reason``) but left out.
    background_scale_nm : float, optional
        Smoothing length of the background (default twice the largest diameter).
    n_boot, seed : int
        Bootstrap resamples and seed of the RSD interval.
    source : str, optional
        File name for messages (default: the Micrograph's source).

    Returns
    -------
    ParticleResult
        ``.table`` (one row per particle), ``.summary``, ``.labels``.

    Raises
    ------
    AnalysisError
        When the diameter range cannot be resolved at this pixel size (< 3 px)
        or does not fit in the image.
    CalibrationError
        When the image has no pixel size and none is given.

    Notes
    -----
    An image without particles gives an empty table and ``summary['n'] == 0``
    with a :class:`~latticefit.errors.LatticefitWarning`.

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, truth = synth.haadf_dots((512, 512), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=12,
    ...                              n_touching_pairs=1, seed=1)
    >>> res = find_particles(mg, diameter_range_nm=(3, 12))
    >>> abs(res.summary["mean_nm"] - 7.0) < 0.5
    True
    """
    if roi is not None:  # the region's box, particles kept by centre (hyperspy ROIs too): _roi.py
        kw = {k: v for k, v in locals().items() if k != "roi"}
        from ._roi import find_particles_in_roi

        return find_particles_in_roi(find_particles, roi=roi, **kw)
    # 1. the image, its calibration and the options
    mg = as_micrograph(image, pixel_size, source=source)
    src = source or mg.source
    py, px = mg.require_calibration()
    pix = _pixel_length(mg, py, px, src)
    opts = _checked_options(
        src, probe_sigma_nm, false_alarms, background_scale_nm, n_boot, seed, edge_correction, border_rule, keep_flagged
    )
    # 2. the diameters searched; background scale and noise model (NaN/inf pixels masked throughout: _invalid.py)
    rng = st.diameter_search(diameter_range_nm, mg.data.shape, pix, src)
    bg_scale_px = _background_scale_px(opts, rng, pix)
    img, bad = mg.data, mg.invalid_mask
    if bad is not None:
        img = inpaint(img, bad, bg_scale_px)
    noise = estimate_noise_model(img, invalid=bad)
    # 3. detection
    seeds, det = _detect(img, rng.dlo_px, rng.dhi_px, bg_scale_px, opts.false_alarms, noise, invalid=bad)
    settings = st.detection_settings(
        rng, opts.false_alarms, det, bg_scale_px, noise, opts.border_rule, opts.keep_flagged, bad
    )
    run = _Run(mg, src, py, px, rng, det, settings)
    if seeds is None or len(seeds["x"]) == 0:
        return _no_particles(run)
    # 4. model fits, nested detections merged; segmentation
    fit, seeds, labels = _fit_and_segment(img, seeds, det, noise, opts, pix, bad, settings)
    # 5. measurements on the label image; detections that are no particle dropped
    table, labels = _measurements(labels, img, seeds, fit, run, opts, pix, bad)
    # 6. checked fits (status, reject_reason, in_statistics; errors scaled by sqrt(chi2_red)) and statistics
    table, labels = _checked(table, labels, opts, noise.counts, pix, settings)
    # (on a counting image with errors of some %: scaled where a parametric bootstrap of the fits finds more scatter)
    table, boot = with_bootstrap_errors(table, img, noise, fit.sigma_px, pix, bad, seed=opts.seed)
    settings["error_bootstrap"] = boot.to_dict()
    summary = st.statistics(table, opts.border_rule, opts.keep_flagged, opts.n_boot, opts.seed, settings, src)
    if bad is not None:
        summary["notes"] = [*summary.get("notes", []), mask_note(int(bad.sum()), bad.size)]
    # 7. the result
    return _result(run, table, labels, summary)


# ======================================================================== plotting
