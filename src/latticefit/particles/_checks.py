"""Quality checks of the per-particle model fits, and who goes into the statistics.

:func:`check_fits` gives every particle of a :func:`latticefit.particles.find_particles` table a
``status`` (``ok``, ``edge``, ``cluster``, ``rejected``), a ``reject_reason`` and ``in_statistics``:

- ``edge``: cut by the image border (left out unless the border rule is ``include``);
- ``cluster``: the segment looks like several particles the splitting could not separate (``cluster_unsplit``),
  or the fit is too large and too low for one particle of a one-material population (several touching dots
  fitted as one sphere: :func:`_one_fit_for_several`);
- ``rejected``, with the first reason that applies:

  * ``no_convergence``: the fit did not converge, or gave no finite size or error;
  * ``leaves_segment``: the fitted diameter and the equivalent circular diameter (ECD) of the particle's own
    segment disagree by more than the band ``FIT_ECD_BAND`` (the sphere of a projected sphere's 20 %-of-peak
    outline is 0.98 of its diameter; the band leaves room for blur, pixelation and a watershed cut). A faint
    dot's outline lies higher than 20 % of its peak (3 sigma of the noise): its fit/ECD is multiplied by
    ``ecd_level_factor`` (the fitted sphere's ECD at that level over its ECD at 20 %) unless its fitted height
    is below ``FAINT_FRACTION`` of the population's (a bump of the background, :func:`level_factor`);
  * ``chi2``: ``chi2_red`` is above ``CHI2_FACTOR`` times the image's median ``chi2_red`` of the fitted
    particles (and above 2). At the signal of a real HAADF view every particle misfits a perfect sphere
    somewhat (the chi2 weights each pixel by the noise model's variance at the fitted model); a fit much
    worse than the others of the same image says that the model does not hold there;
  * ``misfit``: the same question asked without the signal (:func:`_misfits_the_sphere`): the RMS misfit over
    the particle's disc beyond the noise, as a fraction of its fitted height (``misfit_fraction``), is above
    ``MISFIT_FACTOR`` times the image's median and above ``MISFIT_FLOOR``, and significant (``chi2_red_disc``
    above ``MISFIT_CHI2``). The chi2 of a bright sphere grows with its signal, so on a view of particles of
    very different brightness the chi2 rule cannot see a dim rod or oval fitted as a sphere.

:func:`shoulders` finds the rejected fits whose disc lies mostly inside accepted ones (a bright rim of a
large particle detected at a small scale); :func:`latticefit.particles.find_particles` drops them as no
particles and checks the rest again.

The statistical 1-sigma errors (``diameter_err_nm``, ``x_err_px``, ``y_err_px``) are multiplied by
``sqrt(chi2_red)`` when it is above 1 and the fit was weighted by a noise model (``errors_scaled=False``): an
imperfect model leaves residuals larger than the noise, and the covariance of a weighted fit does not know it.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"diameter_nm": [5.0, 5.1, 9.0, 5.0], "ecd_nm": [5.0, 5.0, 4.0, 5.2],
...                   "diameter_err_nm": [0.1] * 4, "x_err_px": [0.1] * 4, "y_err_px": [0.1] * 4,
...                   "chi2_red": [1.0, 1.1, 1.0, 40.0], "fit_ok": [True] * 4, "edge": [False] * 4,
...                   "cluster_unsplit": [False] * 4})
>>> list(check_fits(t).reject_reason)
['', '', 'leaves_segment', 'chi2']
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BORDER_RULES",
    "CHI2_FACTOR",
    "FIT_ECD_BAND",
    "STATUSES",
    "check_fits",
    "chi2_error_scale",
    "count_line_parts",
    "level_factor",
    "one_material",
    "shoulders",
]

#: accepted range of (model-fit diameter) / (mask ECD)
FIT_ECD_BAND = (0.7, 1.45)
#: a fit is rejected when chi2_red > CHI2_FACTOR * median chi2_red of the image
CHI2_FACTOR = 5.0
#: a fit misfits its particle when its misfit_fraction is above MISFIT_FACTOR x the image's median, above
#: MISFIT_FLOOR, and its chi2_red over its disc above MISFIT_CHI2 (the median taken over at least
#: MISFIT_MIN_POPULATION fits)
MISFIT_FACTOR = 3.0
MISFIT_FLOOR = 0.15
MISFIT_CHI2 = 3.0
MISFIT_MIN_POPULATION = 5
#: a fit larger than GROUP_SIZE_FACTOR x the median diameter with a height per diameter below
#: GROUP_HEIGHT_FACTOR x the median is several particles fitted as one (``cluster_unsplit``)
GROUP_SIZE_FACTOR = 1.25
GROUP_HEIGHT_FACTOR = 0.6
#: largest robust SD of ln(height / diameter) of the population for which the height check applies
GROUP_HEIGHT_SPREAD = 0.25
#: fewest particles that define "the population" for the height checks
MIN_POPULATION = 10
#: values of the ``status`` column
STATUSES = ("ok", "edge", "cluster", "rejected")
#: counting rules for particles cut by the image border
BORDER_RULES = ("exclude", "miles-lantuejoul", "include")


def check_fits(
    table,
    *,
    border_rule: str = "exclude",
    keep_flagged: bool = False,
    errors_scaled: bool = False,
    fit_ecd_band=FIT_ECD_BAND,
    chi2_factor: float = CHI2_FACTOR,
):
    """Add ``status``, ``reject_reason``, ``in_statistics`` and ``error_scale`` to a particle table (a copy).

    Parameters
    ----------
    table : pandas.DataFrame
        Needs ``diameter_nm``, ``ecd_nm``, ``diameter_err_nm``, ``chi2_red``, ``fit_ok``, ``edge``,
        ``cluster_unsplit`` (``x_err_px``, ``y_err_px`` are scaled too when present).
    border_rule : {'exclude', 'miles-lantuejoul', 'include'}
        ``include`` lets edge particles that pass the checks into the statistics.
    keep_flagged : bool
        Put ``cluster`` and ``rejected`` particles with a finite diameter into the statistics too.
    errors_scaled : bool
        The errors already hold the residual variance (unweighted fit): do not scale them again.
    """
    t = table.copy()
    n = len(t)
    d = t["diameter_nm"].to_numpy(float)
    ecd = t["ecd_nm"].to_numpy(float)
    c2 = t["chi2_red"].to_numpy(float)
    ok = t["fit_ok"].to_numpy(bool) & np.isfinite(d) & np.isfinite(t["diameter_err_nm"].to_numpy(float))
    edge = t["edge"].to_numpy(bool)
    unsplit = t["cluster_unsplit"].to_numpy(bool)
    good_c2 = ok & ~edge & np.isfinite(c2)
    med = float(np.median(c2[good_c2])) if good_c2.any() else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = d / ecd
        if "ecd_level_factor" in t:  # a faint dot is judged at its own outline level
            ratio = ratio * level_factor(t, ok & ~edge, fit_ecd_band)
        leaves = ok & ~(np.isfinite(ratio) & (ratio >= fit_ecd_band[0]) & (ratio <= fit_ecd_band[1]))
        if "hidden" in t:  # found in the fit residual: its segment is the shoulder of its neighbour's
            leaves &= ~t["hidden"].to_numpy(bool)
        threshold = max(chi2_factor * med, 2.0) if np.isfinite(med) else np.nan  # nan: no chi2 rejection
        bad_c2 = ok & (c2 > threshold) & ~_fits_its_own_disc(t, threshold)
    misfit = _misfits_the_sphere(t, ok, ok & ~edge & ~leaves & ~bad_c2)
    unsplit = unsplit | _one_fit_for_several(t, d, ok & ~edge & ~unsplit & ~leaves & ~bad_c2 & ~misfit)
    t["cluster_unsplit"] = unsplit
    reason = np.full(n, "", dtype=object)
    reason[misfit] = "misfit"
    reason[bad_c2] = "chi2"
    reason[leaves] = "leaves_segment"
    reason[~ok] = "no_convergence"
    status = np.full(n, "ok", dtype=object)
    status[reason != ""] = "rejected"
    status[unsplit] = "cluster"
    reason[unsplit & (reason == "")] = "cluster_unsplit"
    if border_rule != "include":
        status[edge] = "edge"
    in_stats = status == "ok"
    if keep_flagged:
        in_stats |= np.isin(status, ["cluster", "rejected"]) & ok
    scale = np.ones(n)
    if not errors_scaled:
        scale = chi2_error_scale(c2)
        for col in ("diameter_err_nm", "x_err_px", "y_err_px"):
            if col in t:
                t[col] = t[col].to_numpy(float) * scale
    t["status"] = status.astype(str)
    t["reject_reason"] = reason.astype(str)
    t["in_statistics"] = in_stats.astype(bool)
    t["error_scale"] = scale
    return t


def chi2_error_scale(chi2_red):
    """``sqrt(chi2_red)`` where it is above 1, else 1 (NaN: 1): the factor on a weighted fit's errors.

    Examples
    --------
    >>> chi2_error_scale(np.array([4.0, 0.5, np.nan])).tolist()
    [2.0, 1.0, 1.0]
    """
    c2 = np.asarray(chi2_red, float)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(np.isfinite(c2) & (c2 > 1.0), c2, 1.0))


def one_material(h, d, min_n: int = MIN_POPULATION) -> bool:
    """True when fitted heights ``h`` and diameters ``d`` look like one material: the robust SD of
    ``ln(h / d)`` is at most ``GROUP_HEIGHT_SPREAD`` (and there are ``min_n`` usable fits).

    Examples
    --------
    >>> d = np.linspace(3.0, 5.0, 20)
    >>> one_material(25.0 * d, d), one_material(25.0 * d * np.tile([0.3, 3.0], 10), d)
    (True, False)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        hd = np.asarray(h, float) / np.asarray(d, float)
    hd = hd[np.isfinite(hd) & (hd > 0)]
    if hd.size < min_n:
        return False
    ln_hd = np.log(hd)
    return bool(1.4826 * np.median(np.abs(ln_hd - np.median(ln_hd))) <= GROUP_HEIGHT_SPREAD)


def _one_fit_for_several(t, d, pop):
    """Fits too large and too low for one particle of the population: several touching dots fitted as one.

    The fitted peak height of a projected sphere grows with its diameter (a chord through one material), so
    ``H / D`` is one number for the population. A touching pair or row fitted as one sphere gets a diameter
    ``GROUP_SIZE_FACTOR`` above the median and a height per diameter below ``GROUP_HEIGHT_FACTOR`` of the
    median (5 px dots at 20 counts/px: 0.28-0.47 for such fits, 0.75-1.25 for single dots). Only for a
    population of one material: the robust SD of ``ln(H / D)`` at most ``GROUP_HEIGHT_SPREAD`` (0.13-0.18 on
    the benchmark fields, 0.06 and 0.13 on the real JEOL and EMI files, 1.26 on the mixed FEI field).
    """
    h = t["peak_height"].to_numpy(float) if "peak_height" in t else np.full(len(t), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        hd = h / d
    pop = pop & np.isfinite(hd) & (hd > 0)
    if not one_material(h[pop], d[pop]):  # (also: too few fits for a population)
        return np.zeros(len(t), bool)  # not one material (or not spheres): the height says nothing
    with np.errstate(invalid="ignore"):
        return (d > GROUP_SIZE_FACTOR * np.median(d[pop])) & (hd < GROUP_HEIGHT_FACTOR * np.median(hd[pop]))


def _misfits_the_sphere(t, ok, ref):
    """Fits ``ok`` whose sphere does not describe their particle, judged against the fits ``ref`` of the image.

    ``misfit_fraction`` above ``MISFIT_FACTOR`` times the median of ``ref`` and above ``MISFIT_FLOOR``, with
    ``chi2_red_disc`` above ``MISFIT_CHI2`` (a misfit beyond the noise, not the noise of a faint 5 px dot: those
    reach 0.33 on benchmark fields at 20 counts/px with chi2_red_disc <= 2.6). On the real Velox view the
    median is 0.062: the lower half of an elongated particle (0.23) and an oval one (0.27) are rejected, the
    next fits are at 0.12. The largest over the median of the real JEOL and EMI fields is 2.2 and 1.7; on the
    crowded benchmark fields the median is 0-0.04 and no fit passes both conditions.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"misfit_fraction": [0.06, 0.05, 0.07, 0.06, 0.12, 0.25, 0.25],
    ...                   "chi2_red_disc": [50.0, 40.0, 60.0, 30.0, 35.0, 8.0, 1.5]})
    >>> _misfits_the_sphere(t, np.ones(7, bool), np.ones(7, bool)).tolist()
    [False, False, False, False, False, True, False]
    """
    if "misfit_fraction" not in t or "chi2_red_disc" not in t:
        return np.zeros(len(t), bool)
    mf = t["misfit_fraction"].to_numpy(float)
    c2d = t["chi2_red_disc"].to_numpy(float)
    ref = ref & np.isfinite(mf)
    if ref.sum() < MISFIT_MIN_POPULATION:
        return np.zeros(len(t), bool)
    limit = max(MISFIT_FLOOR, MISFIT_FACTOR * float(np.median(mf[ref])))
    with np.errstate(invalid="ignore"):
        return ok & (mf > limit) & (c2d > MISFIT_CHI2)


#: a fit's misfit is its background's when its disc's chi2 is at most this many times the chi2 of its
#: group's pixels outside every disc
BACKGROUND_CHI2_RATIO = 2.0


def _fits_its_own_disc(t, threshold):
    """Particles whose own disc fits: ``chi2_red_disc`` within the chi2 rule's ``threshold``, or no worse
    than ``BACKGROUND_CHI2_RATIO`` times the background's (``chi2_red_background``).

    A group's chi2 also counts what the model does not describe around its particles (a film edge, a
    thickness step, the flank of a dot outside the frame): an exact fit beside such structure was rejected
    for it (chi2_red 6.7 against a median of 1.05 on a crowded benchmark field; 2.2 on its own disc). A step
    of the film under a dot misfits its disc too, but no more than the pixels around it: exact fits of 8.0
    and 8.4 nm dots had 6.6 and 23.5 on their discs, 6.6 and 19.9 around them, and were rejected. A sphere
    that does not describe its particle misfits on its disc far more than around it, so the rule rejects a
    fit only when its group's chi2 and its disc's exceed the threshold and its disc's exceeds the
    background's.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"chi2_red_disc": [2.0, 7.0, 7.0, 7.0], "chi2_red_background": [1.0, 1.2, 6.6, np.nan]})
    >>> _fits_its_own_disc(t, 5.0).tolist()
    [True, False, True, False]
    """
    if "chi2_red_disc" not in t:
        return np.zeros(len(t), bool)
    c2d = t["chi2_red_disc"].to_numpy(float)
    c2b = t["chi2_red_background"].to_numpy(float) if "chi2_red_background" in t else np.full(len(t), np.nan)
    with np.errstate(invalid="ignore"):
        return np.isfinite(c2d) & ((c2d <= threshold) | (c2d <= BACKGROUND_CHI2_RATIO * c2b))


def level_factor(t, ok, band=FIT_ECD_BAND):
    """``ecd_level_factor`` where it applies: fits at least ``FAINT_FRACTION`` as high as the population's.

    A faint dot's outline lies higher up its profile (3 noise sigma above 20 % of its peak), so its ECD is
    smaller and fit/ECD larger for that reason alone. A bump of the background (a film edge, a ramp) is
    cut that high too, but its fitted height is a fraction of the dots' (0.14-0.15 of the median against
    0.5-1.2 for faint dots on the benchmark fields): it keeps the plain band.
    """
    from ._detect import FAINT_FRACTION

    h = t["peak_height"].to_numpy(float) if "peak_height" in t else np.full(len(t), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = t["diameter_nm"].to_numpy(float) / t["ecd_nm"].to_numpy(float)
    pop = ok & np.isfinite(ratio) & (ratio >= band[0]) & (ratio <= band[1]) & np.isfinite(h)
    if pop.sum() < 3:
        return np.ones(len(t))
    tall = np.isfinite(h) & (h >= FAINT_FRACTION * float(np.median(h[pop])))
    return np.where(tall, t["ecd_level_factor"].to_numpy(float), 1.0)


def count_line_parts(table) -> dict:
    """Exact partition of the detections: ``n_detected = n_in_statistics + n_edge + n_rejected + n_cluster``.

    ``n_edge``, ``n_rejected`` and ``n_cluster`` count the particles of that status left out of the statistics;
    ``n_flagged_kept`` the cluster/rejected ones kept (``keep_flagged``); ``reasons`` the rejected ones per reason.
    """
    st = table["status"].to_numpy(str) if len(table) else np.zeros(0, str)
    ins = table["in_statistics"].to_numpy(bool) if len(table) else np.zeros(0, bool)
    rr = table["reject_reason"].to_numpy(str) if len(table) else np.zeros(0, str)
    out = {
        "n_detected": len(st),
        "n_in_statistics": int(ins.sum()),
        "n_edge": int(np.sum(~ins & (st == "edge"))),
        "n_rejected": int(np.sum(~ins & (st == "rejected"))),
        "n_cluster": int(np.sum(~ins & (st == "cluster"))),
        "n_flagged_kept": int(np.sum(ins & np.isin(st, ["cluster", "rejected"]))),
        "n_edge_included": int(np.sum(ins & table["edge"].to_numpy(bool))) if len(st) else 0,
    }
    rej = ~ins & (st == "rejected")
    out["reasons"] = {str(k): int(np.sum(rej & (rr == k))) for k in np.unique(rr[rej])}
    assert out["n_detected"] == out["n_in_statistics"] + out["n_edge"] + out["n_rejected"] + out["n_cluster"]
    return out


#: a rejected fit whose disc lies at least this much inside accepted fits' discs is a shoulder of them
SHOULDER_COVERED = 0.8


def shoulders(checked, pix: float):
    """Rejected fits whose disc lies mostly (``SHOULDER_COVERED``) inside the discs of accepted ones.

    A bright rim or facet of a large particle can be detected at a small scale with a higher LoG
    significance than the particle's own detection, so the nesting rule, which drops the weaker of two
    nested detections, keeps it: on the real Velox view a 47 nm fit 11 px from the centre of a 165 nm
    particle (0.9 of its disc inside the particle's) was rejected and drawn as a cross on that particle. It
    is no particle of its own.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"x_px": [0.0, 11.0, 40.0], "y_px": [0.0, 0.0, 0.0], "diameter_nm": [30.0, 9.0, 9.0],
    ...                   "status": ["ok", "rejected", "rejected"]})
    >>> shoulders(t, 1.0).tolist()
    [False, True, False]
    """
    from ._hidden import covered_fractions

    status = checked["status"].to_numpy(str)
    x, y = checked["x_px"].to_numpy(float), checked["y_px"].to_numpy(float)
    r = checked["diameter_nm"].to_numpy(float) / (2.0 * pix)
    fitted = np.isfinite(r)
    cand = (status == "rejected") & fitted
    return cand & (covered_fractions(x, y, r, cand, (status == "ok") & fitted) >= SHOULDER_COVERED)
