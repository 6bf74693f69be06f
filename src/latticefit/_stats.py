"""The few distribution functions latticefit needs, without importing ``scipy.stats``.

``import scipy.stats`` costs about a second on a small machine, more than the analysis a command
runs; ``latticefit particles`` and ``report`` need only a normal and a log-normal density, a
chi-square tail and a one-sample Kolmogorov-Smirnov test. They are written here on top of
``scipy.special`` (which imports in milliseconds) and tested against ``scipy.stats`` in
``tests/test_stats.py``.

The two-sided KS tail ``kolmogorov_sf`` follows Simard & L'Ecuyer (2011), "Computing the
two-sided Kolmogorov-Smirnov distribution", J. Stat. Softw. 39(11), as ``scipy.stats.kstwo``
does: the exact Ruben-Gambino branches, the Durbin matrix in the form of Marsaglia, Tsang & Wang
(2003) where its matrix is small, ``2 * smirnov`` for large deviations and the Pelz-Good
asymptotic series otherwise (the Pomeranz recursion that scipy uses for ``n <= 140`` is replaced
by the Durbin matrix, exact too and small there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

_SQRT2PI = math.sqrt(2.0 * math.pi)


def normal_pdf(x, mu: float, sigma: float):
    """Density of N(mu, sigma**2) at ``x``.

    Examples
    --------
    >>> round(float(normal_pdf(0.0, 0.0, 1.0)), 6)
    0.398942
    """
    z = (np.asarray(x, dtype=np.float64) - mu) / sigma
    return np.exp(-0.5 * z * z) / (sigma * _SQRT2PI)


def normal_cdf(x, mu: float, sigma: float):
    """Distribution function of N(mu, sigma**2) at ``x``.

    Examples
    --------
    >>> round(float(normal_cdf(1.96, 0.0, 1.0)), 4)
    0.975
    """
    return special.ndtr((np.asarray(x, dtype=np.float64) - mu) / sigma)


def lognormal_pdf(x, sigma_log: float, median: float):
    """Density of a log-normal with ``ln x ~ N(ln median, sigma_log**2)`` (zero for ``x <= 0``).

    Examples
    --------
    >>> round(float(lognormal_pdf(1.0, 1.0, 1.0)), 6)
    0.398942
    """
    x = np.asarray(x, dtype=np.float64)
    pos = x > 0
    xs = np.where(pos, x, 1.0)
    z = np.log(xs / median) / sigma_log
    return np.where(pos, np.exp(-0.5 * z * z) / (xs * sigma_log * _SQRT2PI), 0.0)


def lognormal_cdf(x, sigma_log: float, median: float):
    """Distribution function of the log-normal of :func:`lognormal_pdf`.

    Examples
    --------
    >>> float(lognormal_cdf(2.0, 0.5, 2.0))
    0.5
    """
    x = np.asarray(x, dtype=np.float64)
    pos = x > 0
    z = np.log(np.where(pos, x, 1.0) / median) / sigma_log
    return np.where(pos, special.ndtr(z), 0.0)


def chi2_sf(chi2: float, dof: int) -> float:
    """Upper tail P(X >= chi2) of a chi-square with ``dof`` degrees of freedom.

    Examples
    --------
    >>> round(chi2_sf(3.841459, 1), 4)
    0.05
    """
    return float(special.chdtrc(dof, chi2))


@dataclass(frozen=True)
class KSResult:
    """One-sample Kolmogorov-Smirnov test: the statistic D and its two-sided p-value."""

    statistic: float
    pvalue: float


def ks_one_sample(x, cdf) -> KSResult:
    """Two-sided one-sample KS test of ``x`` against the distribution function ``cdf``.

    The same statistic and exact p-value as ``scipy.stats.kstest(x, cdf)``.

    Examples
    --------
    >>> x = np.array([-1.2, -0.4, 0.1, 0.3, 0.9, 1.7])
    >>> r = ks_one_sample(x, lambda v: normal_cdf(v, 0.0, 1.0))
    >>> round(r.statistic, 4), round(r.pvalue, 3)
    (0.2065, 0.917)
    """
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    f = np.asarray(cdf(x), dtype=np.float64)
    i = np.arange(1, n + 1)
    d = float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))
    return KSResult(statistic=d, pvalue=kolmogorov_sf(n, d))


def kolmogorov_sf(n: int, d: float) -> float:
    """P(D_n >= d) for the two-sided KS statistic of ``n`` values (Simard & L'Ecuyer 2011).

    Examples
    --------
    >>> round(kolmogorov_sf(10, 0.3), 5)
    0.27054
    >>> round(kolmogorov_sf(1000, 0.05), 5)
    0.01301
    """
    if not n >= 1 or not math.isfinite(d):
        return math.nan
    if d >= 1.0:
        return 0.0
    t = n * d
    if t <= 0.5:
        return 1.0
    if t <= 1.0:  # Ruben-Gambino: P(D_n < d) = n! (2d - 1/n)^n
        log_cdf = math.lgamma(n + 1) + n * math.log(2.0 * t - 1.0) - n * math.log(n)
        return float(min(max(1.0 - math.exp(log_cdf), 0.0), 1.0))
    if t >= n - 1:  # Ruben-Gambino
        return float(2.0 * (1.0 - d) ** n)
    nd2 = t * d
    if d >= 0.5 or (n <= 140 and nd2 > 4.0) or (n > 140 and nd2 >= 2.2):
        return float(min(2.0 * special.smirnov(n, d), 1.0))  # exact for d >= 0.5, Miller otherwise
    if n <= 140 or (n <= 100000 and n * d**1.5 <= 1.4):
        cdf = _durbin_cdf(n, d)
    else:
        cdf = _pelz_good_cdf(n, d)
    return float(min(max(1.0 - cdf, 0.0), 1.0))


_E128 = 2.0**128


def _durbin_cdf(n: int, d: float) -> float:
    """P(D_n < d) from the Durbin matrix H^n (Marsaglia, Tsang & Wang 2003), scaled against overflow."""
    k = math.ceil(n * d)
    h = k - n * d
    m = 2 * k - 1
    j = np.arange(1, m + 1)
    inv_fact = np.exp(-special.gammaln(j + 1))  # 1/j!
    v = (1.0 - h**j) * inv_fact
    v[-1] = (1.0 - 2.0 * h**m + max(2.0 * h - 1.0, 0.0) ** m) * inv_fact[-1]
    w = np.concatenate(([1.0], inv_fact[:-1]))  # 1/(i-j+1)! on and below the super-diagonal
    H = np.zeros((m, m))
    for i in range(1, m):
        H[i - 1 :, i] = w[: m - i + 1]
    H[:, 0] = v
    H[-1, :] = v[::-1]
    p, e = _matrix_power_entry(H, n, k - 1)
    # multiply by n!/n^n, in logs
    log_p = math.log(p) + e * math.log(2.0) + math.lgamma(n + 1) - n * math.log(n) if p > 0 else -math.inf
    return math.exp(log_p) if log_p > -745 else 0.0


def _matrix_power_entry(H, n: int, k: int):
    """Entry (k, k) of H^n as ``(mantissa, binary exponent)`` by repeated squaring."""
    out = np.eye(H.shape[0])
    e_out, e_h = 0, 0
    while n > 0:
        if n % 2:
            out = out @ H
            e_out += e_h
            s = abs(out[k, k])
            if s > _E128:
                out /= _E128
                e_out += 128
        H = H @ H
        e_h *= 2
        if abs(H[k, k]) > _E128:
            H /= _E128
            e_h += 128
        n //= 2
    return float(out[k, k]), e_out


def _pelz_good_cdf(n: int, x: float) -> float:
    """Pelz-Good (1976) asymptotic P(D_n <= x), accurate for large ``n`` (as scipy.stats.kstwo)."""
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    qlog = -(math.pi**2) / 8 / z2
    if qlog < -708:
        return 0.0
    q = math.exp(qlog)
    pi2, pi4, pi6 = math.pi**2, math.pi**4, math.pi**6
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16
    k3d = pi6 * (5 - 30 * z2) / 64
    k3c = pi4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8
    K = np.zeros(4)
    maxk = int(math.ceil(16 * z / math.pi))
    for k in range(maxk, 0, -1):  # Horner scheme over odd m = 2k - 1
        m = 2 * k - 1
        m2, m4, m6 = m**2, m**4, m**6
        coeffs = np.array([1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6])
        K = K * q ** (8 * k) + coeffs
    K *= q * _SQRT2PI
    K /= np.array([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q = math.exp(-pi2 / 2 / z2)
    ks = np.arange(maxk, 0, -1, dtype=np.float64)
    qk = q ** (ks**2)
    K[2] += np.sum(ks**2 * qk) * pi2 * _SQRT2PI / (-36 * z3)
    s3 = math.sqrt(3.0) * z
    K[3] += np.sum((s3 + math.pi * ks) * (s3 - math.pi * ks) * ks**2 * qk) * pi2 * _SQRT2PI / (216 * z6)
    K /= np.power(float(n), np.arange(4) / 2.0)
    return float(K.sum())
