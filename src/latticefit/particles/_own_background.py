"""Segments measured against each fit's own background: a dot on a film the image's background misses.

The detection's background (:mod:`latticefit.particles._background`) follows steps wider than the
largest particle searched. A film strip narrower than that (a thicker matrix or carbon on one side of a
small field of large dots) stays in the background-subtracted image, and the watershed segment of a dot
on it floods the film: its ECD exceeds the fit's diameter and the check rejects a good fit
(``leaves_segment``), or the flood reaches the border and the dot counts as cut by it. The model fit
has its own background surface, which does follow the film under the dot.

:func:`cut_to_own_background` re-draws such a segment at the fit's own outline level (``outline_fraction``
of its height above its own fitted background) when

* the sphere describes the object (``misfit_fraction`` at most ``MAX_MISFIT``: a film dot's fit leaves
  0.03-0.05 of its height; the fragments of a faint rod on the Velox view, whose segments a cut at their
  own background would make round, 0.28-0.30),
* the segment is larger than the fit (ECD above ``FLOOD_FACTOR`` times its diameter), and the fit's own
  background stands at least ``RAISED_FRACTION`` of its height above the image's background on average
  over the pixels of the segment outside the fitted disc (the flood is what the fit calls background),
* and the cut segment's ECD then agrees with the fit (the check's band); otherwise the segment stays.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._background import background_at
from ._fit_kernels import N_BACKGROUND, background_surface_ref
from ._region_kernels import label_areas

#: largest misfit fraction of a fit whose segment is re-drawn at its own background
MAX_MISFIT = 0.1
#: a segment floods when its ECD exceeds the fit's diameter by this factor
FLOOD_FACTOR = 1.15
#: the fit's own background over the flooded pixels stands this fraction of its height above the image's
RAISED_FRACTION = 0.1


def fitted_background(fit, k: int, xx, yy):
    """Particle ``k``'s fitted background surface at full-resolution px ``(xx, yy)`` (held at its value on
    the edge of the fit window outside it).

    Examples
    --------
    >>> from latticefit.particles._fit import _Fit
    >>> f = _Fit(*(np.zeros(1) for _ in range(11)), 1.0, np.zeros(1))
    >>> f.bg_surface = np.array([[100.0, 2.0, 0, 0, 0, 0, 4.5, 4.5, 10, 20, 2]])  # 10 fit px of 2 px
    >>> fitted_background(f, 0, np.array([19.5, 20.5, 100.0]), np.array([29.5, 29.5, 29.5])).tolist()
    [100.0, 101.0, 109.0]
    """
    c = fit.bg_surface[k]
    p, xc, yc, x0, y0, b = c[:N_BACKGROUND], *c[N_BACKGROUND:]
    u = np.clip((np.asarray(xx, float) + 0.5 - x0) / b - 0.5, 0.0, 2 * xc)
    v = np.clip((np.asarray(yy, float) + 0.5 - y0) / b - 0.5, 0.0, 2 * yc)
    return background_surface_ref(u, v, p, xc, yc)


def flooding(labels, fit, seeds) -> np.ndarray:
    """Detections whose segment is larger than their good fit by ``FLOOD_FACTOR`` and whose fit describes
    them (``MAX_MISFIT``); hidden dots keep the segments :func:`partition_by_model` drew.
    """
    n = len(fit.x)
    area = label_areas(labels, n).astype(float)
    hidden = seeds.get("hidden_id", np.full(n, -1)) >= 0
    with np.errstate(invalid="ignore"):
        return (
            fit.ok
            & ~hidden
            & (fit.h > 0)
            & (fit.misfit <= MAX_MISFIT)
            & (2 * np.sqrt(area / math.pi) > FLOOD_FACTOR * 2 * fit.r)
        )


def cut_to_own_background(labels, img, fit, seeds, det, smooth_px, outline_fraction, band) -> int:
    """Re-draw the segments that flood a background the fit has under it, at the fit's own outline level.

    Parameters
    ----------
    labels : int array
        The seeded watershed; label ``k + 1`` is detection ``k``'s segment (changed in place).
    img : 2-D array
        The image the fits were made on.
    fit : latticefit.particles._fit._Fit
        The fits (``bg_surface``: each one's fitted background; ``misfit``).
    seeds : dict
        The detections (``hidden_id``).
    det : dict
        The detection's coarse ``background`` grid and its block size ``f``.
    smooth_px : float
        The segmentation's smoothing sigma (full px).
    outline_fraction : float
        The outline level as a fraction of the fit's height.
    band : (float, float)
        The check's fit diameter / ECD band.

    Returns
    -------
    int
        The number of segments re-drawn.
    """
    H, W = labels.shape
    n_cut = 0
    cand = np.flatnonzero(flooding(labels, fit, seeds))
    boxes = ndi.find_objects(labels, max_label=len(fit.x)) if cand.size else []
    for k in cand:
        sl = boxes[k]
        if sl is None:
            continue
        pad = int(math.ceil(3 * smooth_px)) + 2
        y0, y1 = max(0, sl[0].start - pad), min(H, sl[0].stop + pad)
        x0, x1 = max(0, sl[1].start - pad), min(W, sl[1].stop + pad)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        own = labels[y0:y1, x0:x1] == k + 1
        bg_own = fitted_background(fit, k, xx, yy)
        outside = own & (np.hypot(xx - fit.x[k], yy - fit.y[k]) > 1.1 * fit.r[k] + 2 * fit.sigma_px)
        if not outside.any():
            continue
        raised = float(np.mean(bg_own[outside] - background_at(det["background"], det["f"], yy[outside], xx[outside])))
        if raised < RAISED_FRACTION * fit.h[k]:
            continue
        sm = ndi.gaussian_filter(img[y0:y1, x0:x1].astype(np.float64), max(1.0, smooth_px))
        comp, _ = ndi.label(own & (sm - bg_own >= outline_fraction * fit.h[k]))
        cy, cx = int(round(fit.y[k])) - y0, int(round(fit.x[k])) - x0
        if not (0 <= cy < comp.shape[0] and 0 <= cx < comp.shape[1]) or comp[cy, cx] == 0:
            continue
        keep = comp == comp[cy, cx]
        if not band[0] <= 2 * fit.r[k] / (2 * math.sqrt(keep.sum() / math.pi)) <= band[1]:
            continue
        labels[y0:y1, x0:x1][own & ~keep] = 0
        n_cut += 1
    return n_cut
