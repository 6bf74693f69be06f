"""A region cannot show finer lattice spacings than the whole image it is cut from.

A small region's spectrum is noisy: its own information limit (``lattice._plausibility``) is often
not measurable, and periodic scan noise far beyond any lens's resolution then passes as "spots"
(seen on a real HAADF scan: SNR 8-25 at 0.31-0.60 Å in every 128 px square, where the whole image's
finest lattice reflection is 0.83 Å). The whole image's information limit bounds every region's:
spots of a region beyond ``LIMIT_MARGIN`` x that limit are refused as noise, whatever the region's
own indexing says. The limit is measured once per image (a default measurement of the whole field)
and kept with it.
"""

from __future__ import annotations

import warnings
import weakref

import numpy as np

from ..errors import LatticefitError
from . import _plausibility as lp

_LIMITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _key(mg) -> tuple:
    return (id(mg.data), mg.data.shape, mg.pixel_size_nm)


def remember(mg, limit_angstrom) -> None:
    """Keep the whole image's limit found by a default whole-field measurement (saves measuring it again)."""
    _LIMITS[mg] = (_key(mg), limit_angstrom)


def whole_image_limit(mg, measure) -> float | None:
    """The whole image's information limit (Å), from ``measure(mg)`` once per image; None when it has none."""
    hit = _LIMITS.get(mg)
    if hit is not None and hit[0] == _key(mg):
        return hit[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = measure(mg, systematic="none")
            limit = res.info.get("information_limit_angstrom")
        except LatticefitError:
            limit = None
    remember(mg, limit)
    return limit


def refuse_beyond(c, whole_limit, free, notes: list, own_limit_angstrom=None) -> np.ndarray:
    """Which of the ``free`` spots of ``c`` (``lattice._steps.Candidates``) lie beyond the whole image's limit.

    ``whole_limit`` is a callable returning the whole image's limit (Å, or None); it is called (a whole-field
    measurement, the first time per image) only when a free spot could be refused: finer than the region's
    own limit ``own_limit_angstrom`` (the limit used is the finer of the two: a region may resolve a high
    order of its lattice that the whole field's detection missed). Refused spots go to ``c.rejected`` with
    their reason, and one note says how many. Only spots that no lattice of the region indexes are tested.
    """
    free = np.asarray(free, bool)
    none = np.zeros(len(c.G), bool)
    if whole_limit is None or not free.any():
        return none
    d = 10.0 / np.linalg.norm(np.asarray(c.G, float), axis=1)
    cap = np.inf if own_limit_angstrom is None else float(own_limit_angstrom)
    if not (free & (d * lp.LIMIT_MARGIN < cap)).any():
        return none  # no free spot finer than the region's own limit: nothing the whole image could refuse
    limit = whole_limit()
    if limit is None:
        return none
    limit = min(limit, cap)
    far = lp.beyond_limit(c.G, free, 10.0 / limit, "the whole image's")
    bad = np.array([r is not None for r in far])
    if bad.any():
        c.rejected.append(lp.rejected_table(c.G, c.snr, far))
        notes.append(
            f"{int(bad.sum())} spot(s) of the region on no lattice and beyond the whole image's information "
            f"limit ({limit:.3g} Å) refused as noise (see rejected_spots)"
        )
    return bad
