"""Second fits: failed fits retried alone, crowded groups polished, members a hidden neighbour grew refitted.

Each takes the fits of :func:`latticefit.particles._steps.fit_and_merge` (or of the hidden-dot round) and fits
some particles again with the others masked (:func:`latticefit.particles._groupfit._fit_masking_the_rest`):

- :func:`retried`: failed fits, one by one, started at their detections (rafts of 5 px dots);
- :func:`polished`: groups of good fits whose windows were built on radii 25 % off, or with another group's
  particle at their edge, started at their fitted spheres;
- :func:`regrown`: members the joint fit with a hidden neighbour grew and fitted worse, started at their
  first fits.

A new fit replaces the old one only where it passes its checks (and the rule's own conditions).
"""

from __future__ import annotations

import numpy as np

from . import _crowd as C
from ._checks import one_material
from ._groupfit import _fit_masking_the_rest
from ._hidden import HIDDEN_MIN_HEIGHT

__all__ = ["POLISH_MIN_RADIUS_PX", "REGROWN_CHI2_FACTOR", "REGROWN_FACTOR", "polished", "regrown", "retried"]


def retried(img, fit, seeds, noise, bad):
    """Failed fits fitted again one by one, each started at its detection with the good fits' spheres masked.

    In a raft of 5 px dots with sub-pixel gaps (the independent generator's, 20 counts/px) a tenth of the
    joint fits failed: a group of touching dots does not converge, or a member runs off its detection, and
    a dot plain to the eye had no fit (F1 0.972-0.980). Alone, with its good neighbours' spheres masked as
    any other group's, most of them fit. Only for a population of one material, where "a dot" has a height:
    a new fit is kept when it passes its checks, is at least ``HIDDEN_MIN_HEIGHT`` as high as the median good
    fit and its centre lies outside every good fit's disc (not a second fit of a fitted dot). Returns the
    fits and the number kept (``settings['n_retried']``).
    """
    ok = np.asarray(fit.ok, bool) & np.isfinite(fit.r)
    failed = np.flatnonzero(~ok)
    if not failed.size or not one_material(fit.h[ok], 2.0 * fit.r[ok]):
        return fit, 0
    x, y, r = _fitted_or_detected(fit, seeds, ok)
    new, _sol, _loose = _fit_masking_the_rest(img, x, y, r, [np.array([i]) for i in failed], noise, fit.sigma_px, bad)
    use = np.zeros(len(x), bool)
    nf = failed[np.asarray(new.ok, bool)[failed] & (new.h[failed] >= HIDDEN_MIN_HEIGHT * float(np.median(fit.h[ok])))]
    use[nf] = ~C.covered(fit.y[ok], fit.x[ok], fit.r[ok], new.y[nf], new.x[nf], new.r[nf], 0.0)
    return fit.where(use, new), int(use.sum())


def _fitted_or_detected(fit, seeds, ok):
    """Centres and radii: the fitted spheres where ``ok``, the detections elsewhere."""
    return tuple(np.where(ok, getattr(fit, k), seeds[k]) for k in ("x", "y", "r"))


#: groups of fitted radii all at least this (px) are fitted again by :func:`polished`
POLISH_MIN_RADIUS_PX = 8.0


def polished(img, fit, seeds, noise, bad):
    """The fits of some groups again, started at their fitted spheres and masking the others' fitted spheres.

    The first fits' windows and neighbour masks are built on the detections' LoG radii. A dot fitted alone
    beside a dot 0.1-0.3 nm away in another group (a raft, or a dot cut by the border) saw the rest of that
    dot's blurred edge as background: on fields of an independent generator (``bench_particles_independent.py``)
    such dots came out up to 1.1 % small with chi2_red 5-8, and SD(z) was 1.2-1.3 over the raft dots. Refitted
    are the groups of good fits of at least ``POLISH_MIN_RADIUS_PX`` (on 5 px dots the refit only re-drew
    noise-level decisions) whose window was built on a radius 25 % off, or with another group's particle
    within 4 sigma + 3 px of a member's edge. Their new fits replace the old ones where all pass their checks.
    Returns the fits and the number replaced (``settings['n_polished']``).
    """
    ok = np.asarray(fit.ok, bool) & (fit.r >= POLISH_MIN_RADIUS_PX)
    group = fit.group
    n_g = int(group.max()) + 1 if len(group) else 0
    x, y, r = _fitted_or_detected(fit, seeds, ok)
    wanted = _crowded_or_resized(x, y, r, seeds["r"], group, 4.0 * fit.sigma_px + 3.0)
    sel = np.flatnonzero(
        (np.bincount(group, weights=~ok, minlength=n_g) == 0) & (np.bincount(group, weights=wanted, minlength=n_g) > 0)
    )
    if not sel.size:
        return fit, 0
    members = [np.flatnonzero(group == g) for g in sel]
    new, _sol, _loose = _fit_masking_the_rest(img, x, y, r, members, noise, fit.sigma_px, bad)
    good = np.array([np.asarray(new.ok, bool)[m].all() for m in members])
    use = np.isin(group, sel[good])
    return fit.where(use, new), int(use.sum())


def _crowded_or_resized(x, y, r, r_seed, group, reach):
    """Particles with another group's particle within ``reach`` of their edge, or fitted 25 % off their LoG radius."""
    from scipy.spatial import cKDTree

    out = np.abs(r - r_seed) > 0.25 * r_seed
    if len(x) > 1:
        pairs = cKDTree(np.column_stack([x, y])).query_pairs(float(2 * r.max() + reach), output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        near = (np.hypot(x[i] - x[j], y[i] - y[j]) - r[i] - r[j] < reach) & (group[i] != group[j])
        out[i[near]] = True
        out[j[near]] = True
    return out


#: a member whose radius the joint fit with a hidden neighbour made this much larger (and 3 SE) ...
REGROWN_FACTOR = 1.25
#: ... and whose own disc it describes this much worse (chi2_red over the disc) is fitted again alone
REGROWN_CHI2_FACTOR = 3.0


def regrown(img, before, fit, seeds, noise, bad):
    """Members that the joint fit with a hidden neighbour grew and fitted worse, fitted again alone.

    Mostly a member grows in that refit because its first fit was too small (its hidden neighbour masked
    by a detection radius): on the crowded benchmark's 5-8 px dots 1.1-2.9 px -> within 0.3 px of the true
    radius, its own disc fitted as well or better (chi2_red over the disc 0.6-1.8 times the first fit's).
    On the real JEOL file a dim dot pressed on a 14 nm one, with the hidden lobe between them, went from
    5.0 to 9.0 nm and its disc's chi2_red from 153 to 872: the sum of spheres does not describe the contact,
    and the fit traded the neck's light between its spheres. A member that grew by ``REGROWN_FACTOR`` and
    3 SE and whose disc chi2 rose by ``REGROWN_CHI2_FACTOR`` is fitted again alone, started at its first
    fit, with the other fitted spheres masked (:func:`retried`): its own top decides. The new fit replaces
    the grown one when it passes its checks, is no larger and describes its disc better.
    ``seeds['first_row']``: each particle's index in ``before`` (-1: a hidden dot). Returns the fits and
    the number replaced.
    """
    row = seeds["first_row"]
    was = row >= 0
    b = np.maximum(row, 0)
    rb, chi_b = np.where(was, before.r[b], np.nan), np.where(was, before.chi2_disc[b], np.nan)
    with np.errstate(invalid="ignore"):
        grew = was & fit.ok & (fit.r > REGROWN_FACTOR * rb) & (fit.r - rb > 3.0 * fit.r_err)
        grew &= fit.chi2_disc > REGROWN_CHI2_FACTOR * chi_b
    idx = np.flatnonzero(grew)
    if not idx.size:
        return fit, 0
    ok = np.asarray(fit.ok, bool) & np.isfinite(fit.r)
    x, y, r = _fitted_or_detected(fit, seeds, ok)
    x[idx], y[idx], r[idx] = before.x[row[idx]], before.y[row[idx]], rb[idx]
    new, _sol, _loose = _fit_masking_the_rest(img, x, y, r, [np.array([i]) for i in idx], noise, fit.sigma_px, bad)
    use = np.zeros(len(x), bool)
    use[idx] = np.asarray(new.ok, bool)[idx] & (new.r[idx] <= fit.r[idx]) & (new.chi2_disc[idx] < fit.chi2_disc[idx])
    return fit.where(use, new), int(use.sum())
