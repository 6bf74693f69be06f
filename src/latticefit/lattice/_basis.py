"""Reciprocal-lattice basis of a spot set: search, indexing and weighted least-squares fit.

Vectors are (gx, gy) in 1/nm; each spot has a 2x2 covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special  # not scipy.stats: its import costs about a second of every command


@dataclass
class BasisFit:
    b1: np.ndarray  # (gx, gy) 1/nm
    b2: np.ndarray
    cov: np.ndarray  # 4x4 covariance of (b1x, b1y, b2x, b2y)
    hk: np.ndarray  # (n, 2) integer indices of every spot (0, 0 for unindexed)
    indexed: np.ndarray  # (n,) bool
    chi2: float
    dof: int
    scaled: bool  # covariance scaled by chi2/dof (Birge ratio)
    notes: list = field(default_factory=list)


def _index(G: np.ndarray, B: np.ndarray, tol: np.ndarray):
    """Integer (h, k) of each row of G in the basis columns of B, with a residual test."""
    hkf = np.linalg.solve(B, G.T).T
    hk = np.rint(hkf)
    res = np.linalg.norm(G - hk @ B.T, axis=1)
    ok = (res <= tol) & (np.abs(hk).sum(1) > 0)
    return hk.astype(int), ok


#: largest |h|, |k| of an indexed spot in a candidate basis (higher "orders" are chance coincidences)
MAX_INDEX = 12


def find_basis(
    G: np.ndarray, snr: np.ndarray, tol: np.ndarray, *, max_index: int = MAX_INDEX, max_spots: int = 120, exclude=None
):
    """The finest lattice, spanned by two of the spots, that indexes the most significant signal.

    Every pair of spots (the ``max_spots`` strongest) that is not (almost)
    collinear spans a candidate net; each candidate indexes every spot that lies
    within ``tol`` of a node with ``|h|, |k| <= max_index``. The candidate that
    indexes the largest summed SNR wins; among candidates indexing the same
    signal the finest (smallest cell area) wins, then the lowest orders. A
    coarser sub-lattice of harmonics (e.g. the {220} net of a [111] perovskite)
    indexes a subset of the spots of the primitive net, so it never wins over it.

    Parameters
    ----------
    G : ndarray (n, 2)
        Spot vectors (gx, gy), 1/nm.
    snr : ndarray (n,)
        Their signal-to-noise ratios (the weights of the score).
    tol : ndarray (n,)
        Indexing tolerance of each spot, 1/nm.
    max_index, max_spots : int
        Largest index of an indexed spot; most spots tried as basis vectors.
    exclude : bool array, optional
        Spots that neither span nor score a candidate (suspects, e.g. streak-like
        maxima); they are indexed by the winning net all the same.

    Returns
    -------
    (i, j, sign_j, hk, indexed) or None
        Rows of the two basis spots (the basis is ``G[i]``, ``sign_j * G[j]``,
        at an acute angle), integer indices of every spot and the indexed mask;
        None when no two spots span the plane.

    Examples
    --------
    >>> a, b = np.array([1.0, 0.0]), np.array([0.5, 3 ** 0.5 / 2])  # hexagonal net
    >>> G = np.array([2 * a, 2 * b, 2 * (b - a), a + b, a, b])  # harmonics strongest
    >>> snr = np.array([200.0, 200, 200, 130, 30, 30])
    >>> i, j, s, hk, ok = find_basis(G, snr, np.full(6, 0.01))
    >>> sorted((int(i), int(j))), int(ok.sum())
    ([4, 5], 6)
    """
    G = np.asarray(G, float)
    snr = np.asarray(snr, float)
    n = len(G)
    if n < 2:
        return None
    w = snr if exclude is None else np.where(np.asarray(exclude, bool), 0.0, snr)
    cand = np.nonzero(w > 0)[0] if exclude is not None else np.arange(n)
    top = cand[np.argsort(-w[cand], kind="stable")][:max_spots]
    ii, jj = np.triu_indices(len(top), 1)
    I, J = top[ii], top[jj]
    gi, gj = G[I], G[J]
    cross = gi[:, 0] * gj[:, 1] - gi[:, 1] * gj[:, 0]
    norm = np.linalg.norm(gi, axis=1) * np.linalg.norm(gj, axis=1)
    good = np.abs(cross) >= 0.1 * norm  # not (almost) collinear
    if not good.any():
        return None
    I, J, gi, gj, cross = I[good], J[good], gi[good], gj[good], cross[good]
    sign = np.where(np.einsum("pi,pi->p", gi, gj) >= 0, 1.0, -1.0)  # acute basis angle
    gj = gj * sign[:, None]
    cross = cross * sign
    # inverse of B = [gi gj] (columns): hk = B^-1 g for every pair and spot
    inv = np.empty((len(I), 2, 2))
    inv[:, 0, 0], inv[:, 0, 1] = gj[:, 1] / cross, -gj[:, 0] / cross
    inv[:, 1, 0], inv[:, 1, 1] = -gi[:, 1] / cross, gi[:, 0] / cross
    hkf = np.einsum("pab,nb->pna", inv, G)
    hk = np.rint(hkf)
    rec = hk[..., :1] * gi[:, None, :] + hk[..., 1:] * gj[:, None, :]
    res = np.linalg.norm(G[None] - rec, axis=2)
    ok = (res <= tol[None]) & (np.abs(hk).sum(2) > 0) & (np.abs(hk).max(2) <= max_index)
    score = ok @ w
    order_cost = (np.abs(hk).sum(2) * ok).sum(1)
    area = np.abs(cross)
    # most signal (to 1e-9 relative), then the finest net, then the lowest orders, then the strongest pair
    rounded = np.round(score / max(float(score.max()), 1e-300), 9)
    pair_snr = snr[I] + snr[J]
    best = np.lexsort((-pair_snr, order_cost, np.round(area / area.max(), 6), -rounded))[0]
    return int(I[best]), int(J[best]), float(sign[best]), hk[best].astype(int), ok[best]


def reduce_basis(b1: np.ndarray, b2: np.ndarray):
    """Lagrange-Gauss reduction: the two shortest vectors of the net spanned by b1, b2, at an acute angle.

    Returns (r1, r2, T) with ``[r1 r2] = [b1 b2] @ T`` (T integer, unimodular), ``|r1| <= |r2|``.
    """
    u, v = np.asarray(b1, float), np.asarray(b2, float)
    Tu, Tv = np.array([1, 0]), np.array([0, 1])

    def step(x: float) -> int:  # rounding with a dead zone: a hexagonal net (|x| = 0.5) is already reduced
        return int(np.trunc(x + 0.4 * np.sign(x)))

    short, long_ = (u, v) if u @ u <= v @ v else (v, u)
    if step((short @ long_) / (short @ short)) == 0:  # already reduced: keep the observed pair and its order
        return u, v, np.eye(2, dtype=int)
    if u @ u > v @ v:
        u, v, Tu, Tv = v, u, Tv, Tu
    for _ in range(100):
        m = step((u @ v) / (u @ u))
        if m == 0:
            break
        v, Tv = v - m * u, Tv - m * Tu
        if v @ v < u @ u:
            u, v, Tu, Tv = v, u, Tv, Tu
        else:
            break
    if u @ v < 0:  # acute basis angle
        v, Tv = -v, -Tv
    return u, v, np.column_stack([Tu, Tv]).astype(int)


def drop_duplicate_indices(hk: np.ndarray, ok: np.ndarray, snr: np.ndarray) -> np.ndarray:
    """Indexed spots that repeat the indices of a stronger spot (``hk`` or ``-hk``): one reflection split in two.

    Returns a bool mask of the spots to un-index (the weaker copies).
    """
    seen: set = set()
    dup = np.zeros(len(hk), bool)
    for r in np.argsort(-np.asarray(snr), kind="stable"):
        if not ok[r]:
            continue
        h, k = int(hk[r][0]), int(hk[r][1])
        key = (h, k) if (h > 0 or (h == 0 and k > 0)) else (-h, -k)
        if key in seen:
            dup[r] = True
        else:
            seen.add(key)
    return dup


def fit_basis(G: np.ndarray, covs: np.ndarray, hk: np.ndarray, use: np.ndarray) -> BasisFit:
    """Weighted least-squares fit of b1, b2 to ``G[use] = h b1 + k b2`` with the spots' covariances."""
    AtWA = np.zeros((4, 4))
    AtWg = np.zeros(4)
    rows = np.nonzero(use)[0]
    for r in rows:
        h, k = hk[r]
        A = np.array([[h, 0, k, 0], [0, h, 0, k]], float)
        W = np.linalg.inv(covs[r])
        AtWA += A.T @ W @ A
        AtWg += A.T @ W @ G[r]
    cov = np.linalg.inv(AtWA)
    beta = cov @ AtWg
    chi2 = 0.0
    for r in rows:
        h, k = hk[r]
        res = G[r] - (h * beta[:2] + k * beta[2:])
        chi2 += float(res @ np.linalg.solve(covs[r], res))
    dof = 2 * len(rows) - 4
    scaled = False
    notes = []
    if dof > 0 and special.chdtrc(dof, chi2) < 1e-3:
        cov = cov * (chi2 / dof)
        scaled = True
        notes.append(
            f"the spots deviate from a perfect lattice (chi2/dof = {chi2 / dof:.1f}): "
            "basis errors scaled by it (distortion, drift or a second phase?)"
        )
    return BasisFit(
        b1=beta[:2], b2=beta[2:], cov=cov, hk=hk, indexed=use, chi2=chi2, dof=dof, scaled=scaled, notes=notes
    )


def basis_numbers(fit: BasisFit) -> dict:
    """d-spacings (Å) of b1, b2 and the angle between them (deg), with 1-sigma errors."""
    beta = np.concatenate([fit.b1, fit.b2])

    def f(b):
        b1, b2 = b[:2], b[2:]
        n1, n2 = np.linalg.norm(b1), np.linalg.norm(b2)
        ang = math.degrees(math.atan2(abs(b1[0] * b2[1] - b1[1] * b2[0]), float(b1 @ b2)))
        return np.array([10.0 / n1, 10.0 / n2, ang])

    v = f(beta)
    J = np.zeros((3, 4))
    for p in range(4):
        h = 1e-7 * max(np.linalg.norm(beta), 1e-12)
        e = np.zeros(4)
        e[p] = h
        J[:, p] = (f(beta + e) - f(beta - e)) / (2 * h)
    C = J @ fit.cov @ J.T
    err = np.sqrt(np.clip(np.diag(C), 0, None))
    return {
        "d_angstrom": [float(v[0]), float(v[1])],
        "d_err_angstrom": [float(err[0]), float(err[1])],
        "angle_deg": float(v[2]),
        "angle_err_deg": float(err[2]),
    }
