"""The systematic part of the difference of two regions of one image (``compare_regions``).

Each region's :class:`~latticefit.lattice._systematic.SystematicModel` states the field's random
(uncorrelated) part and, when significant, its linear trend across the field; the difference of two regions
depends on their separation through the trend (see ``lattice._sysfield`` for the method).
"""

from __future__ import annotations

import numpy as np

from ._sysfield import _c_vec

__all__ = ["pair_rel_d_cov"]


def _centre_px(res):
    """(x, y) px centre of a LatticeResult's region, from its ``roi`` dict (None: unknown, e.g. the whole image)."""
    r = getattr(res, "roi", None)
    if not r:
        return None
    if r.get("type") == "rect":
        return np.array([r["x"] + r["w"] / 2.0, r["y"] + r["h"] / 2.0])
    if r.get("type") == "circle":
        return np.array([r["x"], r["y"]], float)
    if r.get("type") == "mask" and "bbox" in r:
        x, y, w, h = r["bbox"]
        return np.array([x + w / 2.0, y + h / 2.0])
    return None


def pair_rel_d_cov(res_a, rows_a, res_b, rows_b) -> np.ndarray:
    """Systematic covariance (n, n) of ``d_b / d_a - 1`` of matched reflections (rows of each region's spots).

    Each region contributes its spatially uncorrelated part; the trend across the field
    (``SystematicModel.trend_B_per_px``) contributes ``(B dr)(B dr)^T`` plus its estimation variance at the
    regions' separation ``dr`` (the mean of the two models' trend terms, when both have one), so two near
    regions share their drift and two far ones do not. Without a trend, or when a region's position is
    unknown, this is each region's covariance about the field mean, summed. Each reflection's own extra
    (non-affine) variance is added on the diagonal for both regions.

    Examples
    --------
    >>> import pandas as pd
    >>> from types import SimpleNamespace
    >>> sp = pd.DataFrame({"gx_inv_nm": [2.5, 0.0], "gy_inv_nm": [0.0, 2.5]})
    >>> B = np.zeros((4, 2)); B[3, 1] = 1e-5  # Dyy creeps along y: 1e-5 per px
    >>> from latticefit.lattice._systematic import SystematicModel
    >>> m = SystematicModel(method="tiles", trend_B_per_px=B)
    >>> a = SimpleNamespace(spots=sp, systematic=m, roi={"type": "rect", "x": 0, "y": 0, "w": 100, "h": 100})
    >>> b = SimpleNamespace(spots=sp, systematic=m, roi={"type": "rect", "x": 0, "y": 500, "w": 100, "h": 100})
    >>> np.sqrt(np.diag(pair_rel_d_cov(a, [0, 1], b, [0, 1]))).round(4).tolist()  # only d along y drifts
    [0.0, 0.005]
    """
    rows_a, rows_b = np.asarray(rows_a, int), np.asarray(rows_b, int)
    n = len(rows_a)
    models = [getattr(res, "systematic", None) for res in (res_a, res_b)]
    gs = [
        res.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)[rows].reshape(-1, 2)
        for res, rows in ((res_a, rows_a), (res_b, rows_b))
    ]
    cov = np.zeros((n, n))
    if n == 0:
        return cov
    ca, cb = _centre_px(res_a), _centre_px(res_b)
    trends = [m for m in models if m is not None and m.has_trend]
    use_trend = bool(trends) and ca is not None and cb is not None
    for m, g in zip(models, gs):
        if m is None:
            continue
        c = _c_vec(g)
        random = m.cov_D_random if (use_trend and m.has_trend) else m.cov_D
        cov += c @ random @ c.T + np.diag(m._extra(g, m.extra_rel_d_var))
    if use_trend:
        c = _c_vec(gs[0])
        T = np.mean([m.pair_cov_D(cb - ca) - 2.0 * m.cov_D_random for m in trends], axis=0)
        cov += c @ T @ c.T
    return cov
