"""The statistics of the systematic error budget: tile deformations -> a random field of the local lattice.

:mod:`latticefit.lattice._systematic` measures the local deformation ``D_t`` of
the lattice in tiles of the analysed region's size; this module turns the
tiles into the model that the errors use (numbers only, no image).

Method
------
Let ``theta_t`` (``p`` = 4 components of ``vec(D)``, 2 for a single plane
family) be the deformation of tile ``t`` at centre ``r_t`` (px), with
statistical (Fisher) covariance ``C_t``, for ``n`` tiles.

1. Outliers: tiles farther than ``CLIP_SIGMA`` robust sigmas (MAD, floored by
   the median statistical sigma) from the median are left out (a second grain,
   vacuum, a failed fit), when there are at least ``MIN_TILES_TO_CLIP`` tiles.
2. Is there any excess? ``chi2 = sum_t (theta_t - theta_w)^T C_t^-1 (theta_t - theta_w)``
   (``theta_w`` the weighted mean) on ``p (n - 1)`` degrees of freedom. If
   ``P(chi2) >= P_SIGNIFICANT`` the tiles agree within their statistical
   errors and the systematic term is 0 (a clean image keeps its Fisher errors).
3. Field model: ``theta(r) = a + B (r - r_mean) + eps(r)``: a linear trend
   across the field (slow-scan drift, a magnification or rotation that creeps
   along the scan) plus a spatially uncorrelated part ``eps`` (jitter,
   fly-back, local bending) of covariance ``Sigma``. ``B`` is fitted by
   ordinary least squares on the tiles (equal weights: once the excess is
   significant the systematic part dominates the scatter). The trend is kept
   only when it is significant: Wilks' ``Lambda = det(E) / det(E + H)`` (``E``
   the residual, ``H`` the trend's sums of squares and products) with
   Bartlett's ``-(nu - (p - q + 1) / 2) ln Lambda ~ chi2(p q)``, ``nu = n - 1 - q``,
   ``P < P_SIGNIFICANT``, and at least ``p + 2 + q`` tiles; ``q`` = 2 slopes (x
   and y), 1 when the tiles form a single row or column. Otherwise ``B = 0``.
4. Random part: ``Sigma = S - mean_t(C_t)`` (``S`` the residual covariance on
   ``nu`` degrees of freedom: ``n - 1 - q`` with a trend, ``n - 1`` without),
   projected on the positive semi-definite cone, then multiplied by the
   small-sample factor ``kappa = nu / (nu - 2)`` (``nu >= 3``; 3 below). With
   ``S`` estimated from few tiles a difference divided by its estimated error
   is Student-t distributed with ``nu`` degrees of freedom, not normal; its
   variance is ``nu / (nu - 2)``: ``kappa`` makes the z-scores' variance 1
   instead of letting the error bars be too small by that factor (1.33 for 9
   tiles, 1.67 for 6). The correlations of ``Sigma`` are shrunk towards 0 by
   Schäfer & Strimmer's optimal intensity (*Stat. Appl. Genet. Mol. Biol.* 4,
   32 (2005)), computed from the tiles' residuals: from a handful of tiles a
   4 x 4 covariance is nearly singular, and a generalised least-squares mean
   over reflections would put its weight on directions the tiles only seem
   not to vary in (with 3 tiles the sample covariance has rank 2).
5. Predictions. Two regions at ``r_a`` and ``r_b`` differ systematically by
   ``B (r_b - r_a) + eps_b - eps_a``:
   ``Cov_pair(dr) = (B dr)(B dr)^T + V_B(dr) + 2 kappa Sigma``, with
   ``V_B(dr)`` the estimation variance of ``B dr`` (``S`` times the OLS
   leverage of ``dr``): near regions share the trend, far ones do not. One
   region differs from the field's mean lattice by
   ``Cov_field = kappa Sigma + B Cov(r_t) B^T`` (the trend averaged over the
   tiles' positions), which is what a single region's ``d_err_sys`` states.
6. Per reflection, what the affine model does not explain: a reflection whose
   own tile-to-tile scatter is significantly (``P < P_SIGNIFICANT``) larger
   than its statistical variance plus the model's prediction gets the
   difference (after its own small-sample factor) as an extra, uncorrelated
   variance.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> pos = np.array([(x, y) for y in range(0, 1000, 200) for x in range(0, 1000, 200)], float) + 100
>>> th = 1e-5 * (pos[:, 1:2] - 500) * np.array([0.0, 0.0, 0.0, 1.0]) + 1e-4 * rng.normal(size=(25, 4))
>>> f = fit_field(th, np.tile(1e-10 * np.eye(4), (25, 1, 1)), pos)
>>> f.significant, f.has_trend, f.nu
(True, True, 22)
>>> round(float(f.B_per_px[3, 1]) * 1e5, 1)  # d(Dyy)/dy per px, x 1e5
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: the tiles' scatter counts as systematic only when chi2 has p below this
P_SIGNIFICANT = 0.01
#: tiles farther than this many robust sigmas from the median deformation are left out
CLIP_SIGMA = 5.0
#: rows: the orthonormal basis of vec(D) = (Dxx, Dxy, Dyx, Dyy) in which the random part's correlations are
#: shrunk: the two normal strains, the shear strain (Dxy + Dyx) / sqrt 2 and the rotation (Dyx - Dxy) / sqrt 2
#: (a lattice rotation changes no spacing; shrinking Dxy and Dyx apart would turn rotation into shear)
STRAIN_ROTATION_BASIS = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0]]
) / np.array([[1.0], [1.0], [math.sqrt(2.0)], [math.sqrt(2.0)]])
#: fewest tiles for that clipping (the MAD of fewer is too uncertain). The clipping is what keeps a dot or a
#: second grain that fills several tiles out of its own error budget; its price, on a scan whose distortion
#: is concentrated in part of the frame, is that the most distorted tiles of a small field can be left out
MIN_TILES_TO_CLIP = 7


@dataclass
class FieldFit:
    """The fitted field model of the tile deformations (see the module docstring); ``p`` components.

    Attributes
    ----------
    keep : ndarray of bool
        Tiles used (not outliers).
    chi2, dof, p_value : float, int, float
        Test of one common deformation against the statistical errors.
    significant : bool
    has_trend : bool
    p_trend : float
        Wilks/Bartlett p-value of the trend (nan when not tested).
    nu : int
        Degrees of freedom of the residual covariance.
    kappa : float
        Small-sample factor applied to ``Sigma``.
    Sigma : ndarray (p, p)
        Random (uncorrelated) part, kappa included; 0 when not significant.
    B_per_px : ndarray (p, 2)
        Trend ``d theta / d(x, y)`` per px (0 without a trend).
    S_resid : ndarray (p, p)
        Residual sample covariance (statistical + systematic).
    lev_inv : ndarray (2, 2)
        ``(X^T X)^-1`` of the trend's slope columns (px^-2): ``V_B(dr) = S (dr^T lev_inv dr)``.
    cov_pos : ndarray (2, 2)
        Covariance of the tiles' centres (px^2).
    sample : ndarray (p, p)
        Sample covariance of the tiles (about their mean, trend included).
    shrinkage : float
        Shrinkage intensity of ``Sigma``'s correlations towards 0 (Schäfer-Strimmer).
    """

    keep: np.ndarray
    chi2: float = float("nan")
    dof: int = 0
    p_value: float = float("nan")
    significant: bool = False
    has_trend: bool = False
    p_trend: float = float("nan")
    nu: int = 0
    kappa: float = 1.0
    Sigma: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    B_per_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    S_resid: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    lev_inv: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    cov_pos: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    sample: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    shrinkage: float = 0.0

    def field_cov(self) -> np.ndarray:
        """Covariance of one region's deformation about the field's mean (``Cov_field``)."""
        return self.Sigma + self.B_per_px @ self.cov_pos @ self.B_per_px.T

    def pair_cov(self, dr) -> np.ndarray:
        """Covariance of the difference of two regions' deformations ``dr = r_b - r_a`` px apart."""
        dr = np.asarray(dr, float)
        Bd = self.B_per_px @ dr
        lev = float(dr @ self.lev_inv @ dr) if self.has_trend else 0.0
        return np.outer(Bd, Bd) + lev * self.S_resid + 2.0 * self.Sigma


def _unit(g: np.ndarray):
    gn = np.linalg.norm(g, axis=1)
    u = g / np.where(gn > 0, gn, 1.0)[:, None]
    return u, np.column_stack([-u[:, 1], u[:, 0]])


def _c_vec(g):
    u, _ = _unit(g)
    return np.einsum("ni,nj->nij", u, u).reshape(-1, 4)


def _a_vec(g):
    u, n = _unit(g)
    return np.einsum("ni,nj->nij", n, u).reshape(-1, 4)


def small_sample_factor(nu: int) -> float:
    """``nu / (nu - 2)``: the variance of Student's t with ``nu`` degrees of freedom (``nu < 3`` -> 3).

    Examples
    --------
    >>> small_sample_factor(8), small_sample_factor(2)
    (1.3333333333333333, 3.0)
    """
    return float(nu / (nu - 2.0)) if nu >= 3 else 3.0


def psd(A: np.ndarray) -> np.ndarray:
    """Nearest positive semi-definite matrix (eigenvalues clipped at 0) of the symmetric part of ``A``."""
    ev, V = np.linalg.eigh(0.5 * (A + A.T))
    return (V * np.clip(ev, 0, None)) @ V.T


def inliers(th: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """Tiles within ``CLIP_SIGMA`` robust sigmas (MAD, floored by the median statistical sigma) of the median."""
    med = np.median(th, axis=0)
    mad = 1.4826 * np.median(np.abs(th - med), axis=0)
    stat = np.sqrt(np.median(np.einsum("nii->ni", cv), axis=0))
    scale = np.maximum(mad, stat)
    return np.all(np.abs(th - med) <= CLIP_SIGMA * scale, axis=1)


def _trend_test(th: np.ndarray, X: np.ndarray):
    """OLS of ``th`` on ``X`` = (1, slopes...): (coefficients, residuals, Bartlett p-value of the slopes)."""
    from scipy import special  # not scipy.stats: its import costs about a second of every command

    n, p = th.shape
    q = X.shape[1] - 1
    coef, *_ = np.linalg.lstsq(X, th, rcond=None)
    R = th - X @ coef
    R0 = th - th.mean(0)
    E = R.T @ R
    H = R0.T @ R0 - E
    nu = n - X.shape[1]
    sign_e, logdet_e = np.linalg.slogdet(E)
    sign_t, logdet_t = np.linalg.slogdet(E + H)
    if sign_e <= 0 or sign_t <= 0:
        return coef, R, float("nan")
    stat = -(nu - 0.5 * (p - q + 1)) * (logdet_e - logdet_t)
    return coef, R, float(special.chdtrc(p * q, max(stat, 0.0)))  # = scipy.stats.chi2.sf


def _fit_trend(out: FieldFit, th: np.ndarray, pos: np.ndarray) -> None:
    """Fit and test the linear trend along the axes over which the tiles spread (both, or one for a single
    row or column of tiles); keep it in ``out`` when significant.
    """
    n, p = th.shape
    rel = pos - pos.mean(0)
    axes = [k for k in range(2) if np.ptp(pos[:, k]) > 1.0]
    q = len(axes)
    if q == 0 or n < p + 2 + q:
        return
    X = np.column_stack([np.ones(n), rel[:, axes]])
    coef, R, p_trend = _trend_test(th, X)
    out.p_trend = p_trend
    if not (np.isfinite(p_trend) and p_trend < P_SIGNIFICANT):
        return
    out.has_trend = True
    out.nu = n - 1 - q
    out.S_resid = R.T @ R / out.nu
    out.B_per_px = np.zeros((p, 2))
    out.B_per_px[:, axes] = coef[1:].T
    lev = np.zeros((2, 2))
    lev[np.ix_(axes, axes)] = np.linalg.inv(X.T @ X)[1:, 1:]
    out.lev_inv = lev


def fit_field(th: np.ndarray, cv: np.ndarray, pos: np.ndarray, *, trend: bool = True) -> FieldFit:
    """Fit the field model to tile deformations ``th`` (n, p), covariances ``cv`` (n, p, p), centres ``pos``.

    See the module docstring for the method; ``trend=False`` fits the constant model only.
    """
    from scipy import special  # not scipy.stats: its import costs about a second of every command

    keep = inliers(th, cv) if len(th) >= MIN_TILES_TO_CLIP else np.ones(len(th), bool)
    th, cv, pos = th[keep], cv[keep], np.asarray(pos, float)[keep]
    n, p = th.shape
    out = FieldFit(keep=keep, Sigma=np.zeros((p, p)), B_per_px=np.zeros((p, 2)), S_resid=np.zeros((p, p)))
    if n < 3:
        return out
    icv = np.linalg.inv(cv)
    mean = np.linalg.solve(icv.sum(0), np.einsum("nij,nj->i", icv, th))
    r = th - mean
    out.chi2 = float(np.einsum("ni,nij,nj->", r, icv, r))
    out.dof = p * (n - 1)
    out.p_value = float(special.chdtrc(out.dof, out.chi2))  # = scipy.stats.chi2.sf
    out.sample = np.cov(th.T, ddof=1).reshape(p, p)
    out.cov_pos = np.cov(pos.T, ddof=1).reshape(2, 2) if n > 1 else np.zeros((2, 2))
    out.S_resid, out.nu = out.sample, n - 1
    if out.p_value >= P_SIGNIFICANT:
        return out
    out.significant = True
    if trend:
        _fit_trend(out, th, pos)
    out.kappa = small_sample_factor(out.nu)
    Q = STRAIN_ROTATION_BASIS if p == 4 else np.eye(p)  # shrink in the basis of strains and rotation
    out.shrinkage = correlation_shrinkage(_residuals(th, pos, out) @ Q.T)
    raw = Q @ psd(out.S_resid - cv.mean(0)) @ Q.T
    out.Sigma = out.kappa * (Q.T @ ((1.0 - out.shrinkage) * raw + out.shrinkage * np.diag(np.diag(raw))) @ Q)
    return out


def _residuals(th: np.ndarray, pos: np.ndarray, fit: FieldFit) -> np.ndarray:
    """The tiles' deviations from the field model's mean (and trend, when kept)."""
    r = th - th.mean(0)
    if fit.has_trend:
        r = r - (pos - pos.mean(0)) @ fit.B_per_px.T
    return r


def correlation_shrinkage(x: np.ndarray) -> float:
    """Schäfer & Strimmer's (2005) optimal shrinkage intensity of the sample correlations of ``x`` (n, p)
    towards 0 (target: the diagonal covariance): ``sum Var(r_ij) / sum r_ij^2`` over i != j, in [0, 1].

    With few tiles the sample correlations are mostly noise: a difference combined over reflections
    (a generalised least-squares mean) would otherwise be weighted along directions the tiles only
    seem not to vary in.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=(200, 1))
    >>> correlation_shrinkage(np.hstack([z, z + 0.1 * rng.normal(size=(200, 1))])) < 0.05  # real correlation
    True
    >>> correlation_shrinkage(rng.normal(size=(4, 3))) > 0.3  # 4 samples: mostly noise
    True
    """
    n, p = x.shape
    if p < 2:
        return 0.0
    if n < 3:
        return 1.0
    sd = x.std(0, ddof=1)
    if np.any(sd <= 0):
        return 1.0
    w = (x - x.mean(0)) / sd
    wk = np.einsum("ki,kj->kij", w, w)
    r = wk.sum(0) / (n - 1)
    var_r = n / (n - 1) ** 3 * ((wk - wk.mean(0)) ** 2).sum(0)
    off = ~np.eye(p, dtype=bool)
    den = float((r[off] ** 2).sum())
    if den <= 0:
        return 1.0
    return float(np.clip(var_r[off].sum() / den, 0.0, 1.0))


def excess_per_reflection(x: np.ndarray, v: np.ndarray, model_var: np.ndarray, min_n: int = 5) -> np.ndarray:
    """Per column of ``x`` (tiles x reflections): its tile-to-tile variance beyond its statistical variances
    ``v`` (times its own small-sample factor) and beyond ``model_var``, when the column's chi2 against the
    two, ``sum_t (x_t - mean)^2 / (v_t + model_var)``, is significant (p < ``P_SIGNIFICANT``); else 0.

    The test is against the model, not the statistical errors alone: where the affine model explains the
    scatter, every reflection's chi2 against its statistical errors is significant, and the sampling noise
    of its variance would be added as an extra wherever it happens to exceed the model.

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [-1.0], [2.0], [-2.0], [0.5]]) * 1e-2
    >>> bool(excess_per_reflection(x, np.full((6, 1), 1e-8), np.zeros(1))[0] > 1e-4)
    True
    """
    from scipy import special  # not scipy.stats: its import costs about a second of every command

    out = np.zeros(x.shape[1])
    for i in range(x.shape[1]):
        m = np.isfinite(x[:, i]) & np.isfinite(v[:, i]) & (v[:, i] > 0)
        if m.sum() < min_n:
            continue
        xi, vi = x[m, i], v[m, i]
        w = 1.0 / (vi + float(model_var[i]))
        mean = float((w * xi).sum() / w.sum())
        chi2 = float((w * (xi - mean) ** 2).sum())
        if special.chdtrc(m.sum() - 1, chi2) >= P_SIGNIFICANT:  # = scipy.stats.chi2.sf
            continue
        emp = small_sample_factor(int(m.sum()) - 1) * max(0.0, float(np.var(xi, ddof=1) - vi.mean()))
        out[i] = max(0.0, emp - float(model_var[i]))
    return out


def kappa_note(fit: FieldFit) -> str | None:
    """A note when the estimate rests on few tiles (``kappa`` >= 1.5)."""
    if not fit.significant or fit.kappa < 1.5:
        return None
    return (
        f"the image's systematic variation rests on {fit.nu} degrees of freedom (few tiles): its variance is "
        f"multiplied by {fit.kappa:.2f} (Student-t small-sample factor nu/(nu-2)); {math.sqrt(2 / max(fit.nu, 1)):.0%} "
        "relative uncertainty on that variance remains"
    )
