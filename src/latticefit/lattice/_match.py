"""Spot matching: which reflection of one measurement is which reflection of another.

One greedy rule serves region comparison (``compare_regions``) and the error-budget tiles
(``_systematic``): each reference vector, in its order, takes the nearest still unused vector of the
other set, either sign (a reflection and its Friedel mate are one measurement), within a tolerance
relative to ``|g_ref|``.
"""

from __future__ import annotations

import numpy as np


def match_greedy(g_ref, g, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of ``g`` rows to ``g_ref`` rows, sign-aligned.

    Parameters
    ----------
    g_ref, g : (n, 2), (m, 2) array_like
        Reciprocal vectors (any common unit).
    tolerance : float
        Largest accepted ``|s g_j - g_ref_i| / |g_ref_i|``, ``s = ±1``.

    Returns
    -------
    index : (n,) int ndarray
        Row of ``g`` matched to each ``g_ref`` row, or -1.
    sign : (n,) float ndarray
        ``s`` such that ``s * g[index]`` is close to ``g_ref`` (1 where unmatched).

    Examples
    --------
    >>> idx, sign = match_greedy([[2.0, 0.0], [0.0, 2.0]], [[0.0, -2.01], [5.0, 5.0], [2.0, 0.02]], 0.05)
    >>> idx.tolist(), sign.tolist()
    ([2, 0], [1.0, -1.0])
    """
    g_ref = np.asarray(g_ref, dtype=np.float64).reshape(-1, 2)
    g = np.asarray(g, dtype=np.float64).reshape(-1, 2)
    index = np.full(len(g_ref), -1)
    sign = np.ones(len(g_ref))
    if len(g_ref) == 0 or len(g) == 0:
        return index, sign
    norm_ref = np.linalg.norm(g_ref, axis=1)[:, None]
    d_plus = np.linalg.norm(g[None] - g_ref[:, None], axis=2) / norm_ref
    d_minus = np.linalg.norm(-g[None] - g_ref[:, None], axis=2) / norm_ref
    dist = np.minimum(d_plus, d_minus)  # a tie between the signs goes to +1, as below
    free = np.ones(len(g), bool)
    for i in range(len(g_ref)):
        row = np.where(free, dist[i], np.inf)
        j = int(np.argmin(row))  # the first of equal distances
        if row[j] <= tolerance:
            index[i], sign[i] = j, (1.0 if d_plus[i, j] <= d_minus[i, j] else -1.0)
            free[j] = False
    return index, sign


def match_nearest(g, g_ref, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``g``, the nearest row of ``g_ref`` (either sign) within ``tolerance``, or -1.

    Not one-to-one: several ``g`` may take the same reference (used to assign spots to a known net).

    Examples
    --------
    >>> idx, ok = match_nearest([[2.0, 0.01], [0.0, -2.0], [3.0, 3.0]], [[2.0, 0.0], [0.0, 2.0]], 0.05)
    >>> idx.tolist(), ok.tolist()
    ([0, 1, -1], [True, True, False])
    """
    g = np.atleast_2d(np.asarray(g, dtype=np.float64))
    g_ref = np.asarray(g_ref, dtype=np.float64).reshape(-1, 2)
    dp = np.linalg.norm(g[:, None, :] - g_ref[None], axis=2)
    dm = np.linalg.norm(g[:, None, :] + g_ref[None], axis=2)
    rel = np.minimum(dp, dm) / np.linalg.norm(g_ref, axis=1)[None]
    j = np.argmin(rel, axis=1)
    ok = rel[np.arange(len(g)), j] <= tolerance
    return np.where(ok, j, -1), ok
