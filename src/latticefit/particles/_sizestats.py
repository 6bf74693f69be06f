"""Size statistics of a particle population: pure functions over a diameter array.

:func:`size_summary` gathers everything a size-distribution figure or table
needs: N, mean, median, SD, relative standard deviation (RSD) with a seeded
bootstrap 95 % interval, the RSD corrected for measurement noise, Gaussian and
log-normal fits and a Freedman-Diaconis histogram. Each piece is also a
function of its own (:func:`rsd_bootstrap_ci`, :func:`corrected_rsd`,
:func:`fit_gaussian`, :func:`fit_lognormal`, :func:`fd_histogram`).

The corrected RSD removes the spread that the measurement itself adds: if every
diameter ``d_i`` carries a standard error ``e_i``, it is taken as
``d_i ~ N(mu, tau**2 + e_i**2)`` and the true SD ``tau`` is estimated by
restricted maximum likelihood (:func:`intrinsic_sd`)::

    RSD_corr = 100 tau / mean(d)

0 (with a note) when the measurement noise explains all the spread.

Examples
--------
>>> import numpy as np
>>> d = np.random.default_rng(0).normal(7.0, 0.5, 400)
>>> s = size_summary(d, np.full(400, 0.1))
>>> round(s["mean_nm"], 1), s["n"]
(7.0, 400)
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import LatticefitWarning, check_param

__all__ = [
    "size_summary",
    "weighted_mean_sd",
    "rsd_bootstrap_ci",
    "corrected_rsd",
    "corrected_rsd_sensitivity",
    "intrinsic_sd",
    "fit_gaussian",
    "fit_lognormal",
    "fd_histogram",
    "miles_lantuejoul_weights",
    "EMPTY_SUMMARY_KEYS",
]

EMPTY_SUMMARY_KEYS = (
    "mean_nm",
    "median_nm",
    "std_nm",
    "rsd_percent",
    "rsd_ci95_percent",
    "rsd_corrected_percent",
    "rsd_corrected_sensitivity_pp",
    "mean_err_nm",
    "mean_measurement_err_nm",
)

#: a note says how much the corrected RSD rests on the stated errors when +-10 % of them moves it this much
SENSITIVITY_NOTE_PP = 0.25


def _clean(d, err=None, weights=None):
    d = np.asarray(d, dtype=np.float64).ravel()
    ok = np.isfinite(d) & (d > 0)
    e = None if err is None else np.asarray(err, dtype=np.float64).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w is not None:
        ok &= np.isfinite(w) & (w > 0)
    d = d[ok]
    if e is not None:
        e = e[ok]
    if w is not None:
        w = w[ok]
    return d, e, w


def weighted_mean_sd(d, weights=None) -> tuple[float, float]:
    """Mean and (sample, ddof=1-equivalent) standard deviation, optionally weighted.

    With weights the SD uses the reliability-weights correction
    ``V1 / (V1**2 - V2)``, which reduces to ``ddof=1`` for equal weights.

    Examples
    --------
    >>> weighted_mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    d = np.asarray(d, dtype=np.float64)
    if d.size == 0:
        return math.nan, math.nan
    if weights is None:
        return float(d.mean()), float(d.std(ddof=1)) if d.size > 1 else math.nan
    w = np.asarray(weights, dtype=np.float64)
    v1 = w.sum()
    v2 = (w * w).sum()
    m = float((w * d).sum() / v1)
    if d.size < 2 or v1 * v1 - v2 <= 0:
        return m, math.nan
    var = float((w * (d - m) ** 2).sum() * v1 / (v1 * v1 - v2))
    return m, math.sqrt(var)


def rsd_bootstrap_ci(d, *, weights=None, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of the RSD (%) of ``d`` (seeded, reproducible).

    Returns
    -------
    (lo, hi) : tuple of float
        NaN when fewer than 3 values.

    Examples
    --------
    >>> d = np.random.default_rng(1).normal(4.0, 0.3, 300)
    >>> lo, hi = rsd_bootstrap_ci(d)
    >>> lo < 7.5 < hi
    True
    """
    n_boot = check_param("n_boot", n_boot, lo=1, integer=True)
    seed = check_param("seed", seed, lo=0, integer=True)
    level = check_param("level", level, lo=0, hi=1, lo_open=True, hi_open=True)
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if n < 3:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    samp = d[idx]
    if weights is None:
        m = samp.mean(axis=1)
        s = samp.std(axis=1, ddof=1)
    else:
        w = np.asarray(weights, dtype=np.float64)[idx]
        v1 = w.sum(axis=1)
        v2 = (w * w).sum(axis=1)
        m = (w * samp).sum(axis=1) / v1
        s = np.sqrt((w * (samp - m[:, None]) ** 2).sum(axis=1) * v1 / np.maximum(v1 * v1 - v2, 1e-300))
    rsd = 100.0 * s / m
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(rsd, [a, 1.0 - a])
    return (float(lo), float(hi))


def _reml_nll(tau2: float, d, e2, c) -> float:
    """Negative restricted log-likelihood of ``d_i ~ N(mu, tau2 + e2_i)`` (case weights ``c``), mu profiled out."""
    v = tau2 + e2
    w = c / v
    mu = np.sum(w * d) / np.sum(w)
    return 0.5 * float(np.sum(c * np.log(v) + w * (d - mu) ** 2) + np.log(np.sum(w)))


#: Fisher-scoring iterations of :func:`intrinsic_sd` at most, and their relative tolerance on tau²
REML_ITERATIONS = 200
REML_TOL = 1e-10


def intrinsic_sd(d, err, weights=None) -> float:
    """SD of the true sizes behind diameters ``d`` measured with 1-sigma errors ``err`` (REML).

    Each measured diameter is taken as ``d_i ~ N(mu, tau**2 + err_i**2)``, the random-effects model of a
    meta-analysis, and ``tau**2 >= 0`` is its restricted maximum-likelihood estimate, found by Fisher
    scoring (Viechtbauer 2005, J. Educ. Behav. Stat. 30, 261; the ``metafor`` REML iteration): with
    ``w_i = 1 / (tau**2 + err_i**2)`` and ``S = sum(w)``, the step is ``U / I``,
    ``U = sum(w**2 (d - mu)**2) - S + sum(w**2) / S``,
    ``I = sum(w**2) - 2 sum(w**3) / S + (sum(w**2) / S)**2``, clipped at 0. A step that raises the
    restricted likelihood's negative is halved. The precise measurements weigh most, so a tail of poorly
    determined diameters, whose linearised errors are the least exact, cannot swamp the estimate the way it
    does in the moment formula ``var(d) - mean(err**2)``. ``weights`` are case weights (e.g.
    Miles-Lantuéjoul), normalised to sum to the number of values. (Not ``scipy.optimize``: the command path
    does not import it.)

    Returns 0.0 when the errors explain all the spread, NaN with fewer than 2 values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> err = rng.uniform(0.1, 0.6, 3000)
    >>> d = rng.normal(7.0, 0.35, 3000) + rng.normal(0.0, err)
    >>> round(intrinsic_sd(d, err), 2)
    0.35
    """
    d = np.asarray(d, dtype=np.float64)
    e2 = np.asarray(err, dtype=np.float64) ** 2
    if d.size < 2:
        return math.nan
    c = np.ones_like(d) if weights is None else np.asarray(weights, dtype=np.float64)
    c = c * (d.size / c.sum())
    tau2 = max(float(np.var(d)) - float(np.mean(e2)), 0.01 * float(np.var(d)))
    nll = _reml_nll(tau2, d, e2, c)
    for _ in range(REML_ITERATIONS):
        v = tau2 + e2
        w, w2 = c / v, c * (1.0 / v) ** 2
        S, sw2 = float(w.sum()), float(w2.sum())
        mu = float(np.sum(w * d)) / S
        U = float(np.sum(w2 * (d - mu) ** 2)) - S + sw2 / S
        info = sw2 - 2.0 * float(np.sum(w2 / v)) / S + (sw2 / S) ** 2
        step = U / info if info > 0 else 0.0
        for _half in range(30):
            new = max(tau2 + step, 0.0)
            new_nll = _reml_nll(new, d, e2, c)
            if new_nll <= nll + 1e-12 * abs(nll):
                break
            step *= 0.5
        else:
            break
        done = abs(new - tau2) <= REML_TOL * max(tau2, 1e-300) or new == tau2
        tau2, nll = new, new_nll
        if done or tau2 == 0.0 and step <= 0:
            break
    return math.sqrt(tau2)


def corrected_rsd(rsd_percent: float, d, err, weights=None) -> tuple[float, str | None]:
    """RSD (%) of the true sizes: :func:`intrinsic_sd` over the mean diameter.

    Returns
    -------
    (rsd_corrected_percent, note)
        ``note`` is None, or says why the value was clipped at 0 / not computed.

    Examples
    --------
    >>> corrected_rsd(3.0, [5.0, 5.1, 4.9], [0.5, 0.5, 0.5])[0]  # the errors explain all the spread
    0.0
    """
    if err is None or np.size(d) == 0 or not np.isfinite(rsd_percent):
        return math.nan, "no per-particle errors" if err is None else None
    d, e, w, mean = _with_errors(d, err, weights)
    if not d.size:
        return math.nan, "no finite per-particle errors"
    val = 100.0 * intrinsic_sd(d, e, w) / mean
    if val == 0.0:
        return 0.0, (
            f"measurement noise ({100.0 * math.sqrt(np.mean(e**2)) / mean:.2f}% per particle) explains "
            f"all of the observed RSD ({rsd_percent:.2f}%): corrected RSD clipped at 0"
        )
    return val, None


def _with_errors(d, err, weights=None):
    """The particles with a finite positive error and diameter: ``(d, err, weights, weighted mean of d)``."""
    d, e = np.asarray(d, dtype=np.float64), np.asarray(err, dtype=np.float64)
    ok = np.isfinite(e) & (e > 0) & (d > 0)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[ok]
    return d[ok], e[ok], w, (weighted_mean_sd(d[ok], w)[0] if ok.any() else math.nan)


def corrected_rsd_sensitivity(d, err, weights=None, factor: float = 0.1) -> float:
    """Change (pp) of the corrected RSD when the stated errors are ``factor`` smaller or larger: half the range.

    The correction removes the measurement noise the per-particle errors state. Where that noise is as
    large as the spread of the true sizes (5 px dots at 20 counts/px: 7 % per dot against a spread of 8 %),
    a small miscalibration of the errors moves the corrected RSD by much more than its bootstrap interval
    says: on the crowded benchmark's 5 px fields the Fisher errors were ~10 % optimistic (SD(z) 1.10 on
    average, on isolated dots as well) and the corrected RSD came out +0.48 pp high on average, until the
    parametric bootstrap of the fits scaled them (:mod:`latticefit.particles._bootstrap_errors`; -0.04 pp,
    with a spread of -0.70 to +0.42 pp between fields). This is that systematic part, per ``factor`` of the
    errors' calibration.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal(10.0, 0.8, 400) + rng.normal(0.0, 0.7, 400)  # spread 8 %, noise 7 %
    >>> round(corrected_rsd_sensitivity(d, np.full(400, 0.7)), 1)
    0.6
    >>> round(corrected_rsd_sensitivity(d, np.full(400, 0.1)), 2)  # noise 1 %: the errors hardly matter
    0.01
    """
    d, e, w, mean = _with_errors(d, err, weights)
    if not d.size:
        return math.nan
    lo, hi = (intrinsic_sd(d, e * (1.0 + s), w) for s in (-factor, factor))
    return 50.0 * (lo - hi) / mean


def fit_gaussian(d) -> dict:
    """Maximum-likelihood normal fit: ``{'mu_nm', 'sigma_nm'}``.

    The mean and the SD with divisor ``n`` (as ``scipy.stats.norm.fit``).

    Examples
    --------
    >>> fit_gaussian([4.0, 5.0, 6.0])
    {'mu_nm': 5.0, 'sigma_nm': 0.816496580927726}
    """
    d = np.asarray(d, dtype=np.float64)
    if d.size < 2:
        return {"mu_nm": math.nan, "sigma_nm": math.nan}
    return {"mu_nm": float(np.mean(d)), "sigma_nm": float(np.std(d))}


def fit_lognormal(d) -> dict:
    """Maximum-likelihood log-normal fit with zero location.

    Returns ``{'median_nm', 'sigma_log', 'mean_nm', 'mode_nm'}`` where
    ``sigma_log`` is the SD (divisor ``n``) of ``ln d`` and ``median_nm`` is
    ``exp(mean ln d)``: the closed-form ML estimates (``scipy.stats.lognorm.fit(d, floc=0)``
    gives the same shape and scale).

    Examples
    --------
    >>> r = fit_lognormal([4.0, 5.0, 6.25])
    >>> round(r["median_nm"], 6), round(r["sigma_log"], 6)
    (5.0, 0.182196)
    """
    d = np.asarray(d, dtype=np.float64)
    if d.size < 2 or np.any(d <= 0):
        return {"median_nm": math.nan, "sigma_log": math.nan, "mean_nm": math.nan, "mode_nm": math.nan}
    ln = np.log(d)
    scale, shape = math.exp(float(np.mean(ln))), float(np.std(ln))
    return {
        "median_nm": float(scale),
        "sigma_log": float(shape),
        "mean_nm": float(scale * math.exp(shape**2 / 2)),
        "mode_nm": float(scale * math.exp(-(shape**2))),
    }


def fd_histogram(d, *, weights=None) -> dict:
    """Freedman-Diaconis histogram: ``{'bin_edges_nm': [...], 'counts': [...], 'bin_width_nm': w}``.

    ``counts`` are weighted sums when ``weights`` are given (Miles-Lantuéjoul).

    Examples
    --------
    >>> h = fd_histogram(np.arange(100.0))
    >>> sum(h["counts"])
    100.0
    """
    d = np.asarray(d, dtype=np.float64)
    if d.size == 0:
        return {"bin_edges_nm": [], "counts": [], "bin_width_nm": math.nan}
    edges = np.histogram_bin_edges(d, bins="fd")
    if edges.size < 2 or not np.all(np.isfinite(edges)):
        edges = np.array([d.min() - 0.5, d.max() + 0.5])
    counts, edges = np.histogram(d, bins=edges, weights=weights)
    return {
        "bin_edges_nm": edges.tolist(),
        "counts": counts.astype(float).tolist(),
        "bin_width_nm": float(edges[1] - edges[0]),
    }


def miles_lantuejoul_weights(bbox_h_px, bbox_w_px, image_shape) -> np.ndarray:
    """Miles-Lantuéjoul edge-correction weights ``H*W / ((H - h)(W - w))``.

    A particle of bounding box ``h x w`` is wholly inside an ``H x W`` field with
    probability ``(H - h)(W - w) / (H W)``; weighting the non-edge particles by
    the inverse removes the bias against large particles that excluding the
    edge-cut ones introduces. NaN when the particle is as large as the field.
    """
    H, W = image_shape
    h = np.asarray(bbox_h_px, dtype=np.float64)
    w = np.asarray(bbox_w_px, dtype=np.float64)
    den = (H - h) * (W - w)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, H * W / den, np.nan)
    return out


def size_summary(
    d, err=None, *, weights=None, n_excluded: int = 0, n_boot: int = 2000, seed: int = 0, warn: bool = True
) -> dict:
    """All size statistics of one population of diameters (nm).

    Parameters
    ----------
    d : array_like
        Diameters in nm (non-finite and non-positive values are ignored).
    err : array_like, optional
        Their 1-sigma errors (nm), for the measurement-noise-corrected RSD.
    weights : array_like, optional
        Per-particle weights (e.g. Miles-Lantuéjoul edge correction).
    n_excluded : int
        Particles left out by the caller (edge particles), reported as ``n_edge``.
    n_boot, seed : int
        Bootstrap resamples and seed of the RSD interval.

    Returns
    -------
    dict
        ``n``, ``n_edge``, ``mean_nm``, ``median_nm``, ``std_nm``,
        ``rsd_percent``, ``rsd_ci95_percent`` [lo, hi],
        ``rsd_corrected_percent``, ``rsd_corrected_sensitivity_pp`` (its change for +-10 % in the stated
        errors, :func:`corrected_rsd_sensitivity`), ``mean_err_nm`` (standard error of the mean),
        ``mean_measurement_err_nm``, ``gaussian``, ``lognormal``, ``histogram``,
        ``notes``, bootstrap 95 % CIs ``mean_ci95_nm`` / ``median_ci95_nm`` / ``std_ci95_nm``,
        ``goodness_of_fit`` (KS of both fits) and ``rsd_precision`` (particles needed for +-1 / +-0.5 pp
        on the RSD, :func:`latticefit.particles._size_precision.rsd_precision_advice`). With no particles every statistic is None/NaN and a
        :class:`~latticefit.errors.LatticefitWarning` is issued.

    Examples
    --------
    >>> s = size_summary([4.0, 4.2, 3.8, 4.1, 3.9])
    >>> s["n"], round(s["mean_nm"], 2), round(s["rsd_percent"], 2)
    (5, 4.0, 3.95)
    """
    n_boot = check_param("n_boot", n_boot, lo=1, integer=True)
    seed = check_param("seed", seed, lo=0, integer=True)
    n_excluded = check_param("n_excluded", n_excluded, lo=0, integer=True)
    d, e, w = _clean(d, err, weights)
    n = int(d.size)
    notes: list[str] = []
    out = {"n": n, "n_edge": int(n_excluded), "weighted": w is not None}
    if n == 0:
        if warn:
            warnings.warn("no particles to summarise: statistics are empty", LatticefitWarning, stacklevel=2)
        out.update({k: None for k in EMPTY_SUMMARY_KEYS})
        out["rsd_ci95_percent"] = [None, None]
        out.update(
            {
                "gaussian": None,
                "lognormal": None,
                "histogram": fd_histogram(d),
                "notes": ["no particles"],
                "mean_ci95_nm": [None, None],
                "median_ci95_nm": [None, None],
                "std_ci95_nm": [None, None],
                "goodness_of_fit": None,
                "rsd_precision": None,
            }
        )
        return out
    mean, sd = weighted_mean_sd(d, w)
    if w is None:
        median = float(np.median(d))
    else:
        order = np.argsort(d)
        cw = np.cumsum(w[order])
        median = float(d[order][np.searchsorted(cw, 0.5 * cw[-1])])
    rsd = 100.0 * sd / mean if np.isfinite(sd) else math.nan
    ci = rsd_bootstrap_ci(d, weights=w, n_boot=n_boot, seed=seed)
    rc, note = corrected_rsd(rsd, d, e, w) if e is not None else (math.nan, "no per-particle errors")
    if note and e is not None:
        notes.append(note)
    rms_err = float(np.sqrt(np.mean(e[np.isfinite(e)] ** 2))) if e is not None and np.isfinite(e).any() else math.nan
    sens = corrected_rsd_sensitivity(d, e, w) if e is not None else math.nan
    if np.isfinite(sens) and sens > SENSITIVITY_NOTE_PP:
        notes.append(
            f"measurement noise {100.0 * rms_err / mean:.2g}% per particle "
            f"against an RSD of {rsd:.2g}%: the corrected RSD moves by ±{sens:.2g} pp for ±10 % in the stated "
            "errors (systematic; not in its CI)"
        )
    if n < 3:
        notes.append(f"only {n} particle(s): SD/RSD unreliable")
    out.update(
        {
            "mean_nm": mean,
            "median_nm": median,
            "std_nm": sd,
            "rsd_percent": rsd,
            "rsd_ci95_percent": list(ci),
            "rsd_corrected_percent": rc,
            "rsd_corrected_sensitivity_pp": sens,
            "mean_err_nm": sd / math.sqrt(n) if n > 1 else math.nan,
            "mean_measurement_err_nm": rms_err,
            "gaussian": fit_gaussian(d),
            "lognormal": fit_lognormal(d),
            "histogram": fd_histogram(d, weights=w),
            "notes": notes,
        }
    )
    # bootstrap CIs of mean / median / SD (same resamples as the RSD's), KS goodness of fit, RSD advisor
    from ._size_precision import bootstrap_cis, goodness_of_fit, rsd_precision_advice

    out.update(bootstrap_cis(d, weights=w, n_boot=n_boot, seed=seed))
    out["goodness_of_fit"] = goodness_of_fit(d, out["gaussian"], out["lognormal"])
    out["rsd_precision"] = rsd_precision_advice(rc if np.isfinite(rc) else rsd, n)
    return out
