"""Size-statistics extras: bootstrap CIs of every statistic, goodness of fit, and the RSD precision advisor.

- :func:`bootstrap_cis`: percentile bootstrap 95 % intervals of the mean, median, SD and RSD (seeded);
- :func:`goodness_of_fit`: Kolmogorov-Smirnov statistic and p-value of the normal and log-normal ML fits
  (parameters estimated from the same data, so the p-value is conservative: a Lilliefors-type test would
  reject more often);
- :func:`rsd_precision_advice`: how many particles give a 95 % CI of +-X percentage points on the RSD.
  For a normal population the standard error of the coefficient of variation ``c`` is
  ``c sqrt((1 + 2 c^2) / (2 N))`` (McKay's approximation), so ``N = (1.96 c / X)^2 (1 + 2 c^2) / 2``.

Examples
--------
>>> rsd_precision_advice(8.0, 36, targets_pp=(1.0,))["targets"][0]["n_needed"]
125
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bootstrap_cis", "goodness_of_fit", "rsd_precision_advice", "rsd_standard_error"]


def bootstrap_cis(d, *, weights=None, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals ``{'mean_ci95_nm', 'median_ci95_nm', 'std_ci95_nm'}`` (lists [lo, hi]).

    Same resamples as :func:`latticefit.sizestats.rsd_bootstrap_ci` (same seed); weighted statistics when
    ``weights`` are given (Miles-Lantuéjoul).

    Examples
    --------
    >>> d = np.random.default_rng(1).normal(4.0, 0.3, 300)
    >>> lo, hi = bootstrap_cis(d)["mean_ci95_nm"]
    >>> bool(lo < d.mean() < hi) and hi - lo < 0.1
    True
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    nan2 = [math.nan, math.nan]
    if n < 3:
        return {"mean_ci95_nm": nan2, "median_ci95_nm": nan2, "std_ci95_nm": nan2}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    samp = d[idx]
    if weights is None:
        m = samp.mean(axis=1)
        s = samp.std(axis=1, ddof=1)
        med = np.median(samp, axis=1)
    else:
        w = np.asarray(weights, dtype=np.float64)[idx]
        v1 = w.sum(axis=1)
        v2 = (w * w).sum(axis=1)
        m = (w * samp).sum(axis=1) / v1
        s = np.sqrt((w * (samp - m[:, None]) ** 2).sum(axis=1) * v1 / np.maximum(v1 * v1 - v2, 1e-300))
        order = np.argsort(samp, axis=1)
        ss = np.take_along_axis(samp, order, 1)
        cw = np.cumsum(np.take_along_axis(w, order, 1), axis=1)
        pos = np.argmax(cw >= 0.5 * cw[:, -1:], axis=1)
        med = ss[np.arange(n_boot), pos]
    a = (1.0 - level) / 2.0

    def q(v):
        lo, hi = np.quantile(v, [a, 1.0 - a])
        return [float(lo), float(hi)]

    return {"mean_ci95_nm": q(m), "median_ci95_nm": q(med), "std_ci95_nm": q(s)}


def goodness_of_fit(d, gaussian: dict | None, lognormal: dict | None) -> dict:
    """KS statistic and p-value of the fitted normal and log-normal distributions.

    Returns ``{'normal': {'ks', 'p'}, 'lognormal': {'ks', 'p'}, 'preferred': name}`` (``preferred``: the
    smaller KS statistic); NaN with fewer than 5 values.

    Examples
    --------
    >>> d = np.random.default_rng(0).lognormal(np.log(5.0), 0.4, 500)
    >>> from latticefit.sizestats import fit_gaussian, fit_lognormal
    >>> goodness_of_fit(d, fit_gaussian(d), fit_lognormal(d))["preferred"]
    'lognormal'
    """
    from .._stats import ks_one_sample, lognormal_cdf, normal_cdf

    d = np.asarray(d, dtype=np.float64)
    nan = {"ks": math.nan, "p": math.nan}
    out = {
        "normal": dict(nan),
        "lognormal": dict(nan),
        "preferred": None,
        "test": "Kolmogorov-Smirnov against the ML fit (parameters from the same data: p is conservative)",
    }
    if d.size < 5:
        return out
    if gaussian and np.isfinite(gaussian.get("sigma_nm", np.nan)) and gaussian["sigma_nm"] > 0:
        r = ks_one_sample(d, lambda x: normal_cdf(x, gaussian["mu_nm"], gaussian["sigma_nm"]))
        out["normal"] = {"ks": float(r.statistic), "p": float(r.pvalue)}
    if lognormal and np.isfinite(lognormal.get("sigma_log", np.nan)) and lognormal["sigma_log"] > 0:
        r = ks_one_sample(d, lambda x: lognormal_cdf(x, lognormal["sigma_log"], lognormal["median_nm"]))
        out["lognormal"] = {"ks": float(r.statistic), "p": float(r.pvalue)}
    ks_n, ks_l = out["normal"]["ks"], out["lognormal"]["ks"]
    if np.isfinite(ks_n) or np.isfinite(ks_l):
        out["preferred"] = "normal" if not np.isfinite(ks_l) or (np.isfinite(ks_n) and ks_n <= ks_l) else "lognormal"
    return out


def rsd_standard_error(rsd_percent: float, n: int) -> float:
    """Standard error (percentage points) of the RSD of ``n`` values from a normal population."""
    c = rsd_percent / 100.0
    if n < 2 or not np.isfinite(c):
        return math.nan
    return 100.0 * c * math.sqrt((1.0 + 2.0 * c * c) / (2.0 * n))


def rsd_precision_advice(rsd_percent: float, n: int, *, targets_pp=(1.0, 0.5)) -> dict:
    """Particles needed for a 95 % CI of +-X pp on the RSD, for each X in ``targets_pp``.

    Returns ``{'rsd_se_pp', 'rsd_ci95_halfwidth_pp', 'targets': [{'halfwidth_pp', 'n_needed', 'n_more'}]}``.
    """
    c = rsd_percent / 100.0 if rsd_percent is not None else math.nan
    se = rsd_standard_error(rsd_percent, n) if rsd_percent is not None else math.nan
    out = {"rsd_se_pp": se, "rsd_ci95_halfwidth_pp": 1.96 * se if np.isfinite(se) else math.nan, "targets": []}
    if not np.isfinite(c) or c <= 0:
        return out
    for x in targets_pp:
        need = math.ceil((1.96 * 100.0 * c / x) ** 2 * (1.0 + 2.0 * c * c) / 2.0)
        out["targets"].append({"halfwidth_pp": float(x), "n_needed": need, "n_more": max(0, need - int(n))})
    return out
