"""Look-elsewhere correction: a region chosen *because* it deviates is tested against the most deviating of
all the candidate regions of its size (Šidák), not as if it had been chosen blind.
"""

from __future__ import annotations

import math

import numpy as np


def n_independent_regions(field_shape, roi) -> int:
    """How many non-overlapping regions the size of ``roi``'s box fit in the field (at least 1).

    Examples
    --------
    >>> from latticefit.roi import Circle
    >>> n_independent_regions((1024, 1024), Circle(500, 500, 64))  # boxes of 129 px
    49
    """
    H, W = field_shape
    y0, y1, x0, x1 = roi.bounds(field_shape)
    h, w = max(1, y1 - y0), max(1, x1 - x0)
    return max(1, (H // h) * (W // w))


def sidak_z_threshold(z_threshold: float, n_trials: int) -> float:
    """Two-sided |z| threshold with the family-wise false-alarm rate of ``z_threshold`` over ``n_trials`` looks.

    Šidák: ``p_local = 1 - (1 - p_global)^(1/n)``, ``p_global = 2 sf(z_threshold)``.

    Examples
    --------
    >>> round(sidak_z_threshold(3.0, 1), 3), round(sidak_z_threshold(3.0, 64), 2)
    (3.0, 4.09)
    """
    from scipy import special  # not scipy.stats: its import costs about a second of every command

    p_global = 2.0 * special.ndtr(-z_threshold)  # = 2 scipy.stats.norm.sf(z)
    p_local = -math.expm1(math.log1p(-p_global) / max(1, int(n_trials)))
    return float(-special.ndtri(p_local / 2.0))  # = scipy.stats.norm.isf(p / 2)


def apply_look_elsewhere(comparison, field_shape, roi, *, why: str = "it deviates most", name: str = "region B") -> str:
    """Re-test a comparison whose region b was chosen *because* it deviates (in place); returns a note.

    The region was the most deviating of ``n`` independent candidate regions
    (non-overlapping regions of its size in the field), so its |z| is the largest
    of ``n`` looks: the threshold is raised by Šidák's correction to keep the
    family-wise false-alarm rate of the blind threshold. ``table['significant']``,
    ``summary['significant']`` and ``comparison.z_threshold`` are replaced; the
    blind threshold stays in ``summary['z_threshold_blind']``.
    """
    n = n_independent_regions(field_shape, roi)
    z0 = float(comparison.z_threshold)
    z1 = round(sidak_z_threshold(z0, n), 2)
    t = comparison.table
    if len(t):
        t["significant"] = np.abs(t["z"].to_numpy(float)) > z1
    s = comparison.summary
    s["z_threshold_blind"] = z0
    s["look_elsewhere"] = {"method": "sidak", "n_candidate_regions": int(n), "z_threshold": z1}
    if s.get("z") is not None:
        s["significant"] = bool(abs(s["z"]) > z1)
    comparison.z_threshold = z1
    note = (
        f"{name} was chosen because {why}: its differences are tested with a look-elsewhere (Šidák) "
        f"correction over {n} independent candidate regions of its size, |z| > {z1:.2f} instead of "
        f"|z| > {z0:g} (the same family-wise false-alarm rate)"
    )
    comparison.warnings.append(note)
    return note
