"""The LoG scale space on a pyramid: each octave of scales on the coarsest grid that still samples it.

A LoG plane of scale sigma carries almost nothing above the spatial frequency 1 / sigma: its transfer
function ``s^2 k^2 exp(-s^2 k^2 / 2)`` is 1e-4 of its peak at the Nyquist frequency of a grid with
``OCTAVE_SAMPLES_PER_SIGMA`` = 3 samples per sigma. The scales of a wide diameter range (the default
range searches 1 nm to a quarter of the field: 24 scales at 2048², sigma 3-150 px) are therefore grouped
by the power of two ``d`` with ``sigma / d >= 3``, and each group is computed on the image binned by
``d``, padded only for its own largest scale (mirrored at the image border), and scanned with
:func:`scan_scale_space`. A group also computes the scale just below and just above it on its grid, so the 3x3x3 maximum test and the sub-scale
offset of its first and last scale see both neighbours, as in one stack. The maxima and their sub-pixel
offsets are mapped back to the input grid; the plane values are those of the full-resolution response at
the sampled points, so the noise thresholds and significances keep their meaning.

When every scale has sigma < 6 px (all of them in the first octave) this is :func:`scan_scale_space` of
:func:`log_planes` of the image, row for row.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._scalespace import log_planes, scan_scale_space

__all__ = ["OCTAVE_SAMPLES_PER_SIGMA", "octave_factors", "scan_octaves"]

#: grid samples per LoG sigma an octave keeps (the bin factor of a scale is the largest power of two below
#: sigma / this)
OCTAVE_SAMPLES_PER_SIGMA = 3.0


def octave_factors(sigmas, samples: float = OCTAVE_SAMPLES_PER_SIGMA) -> np.ndarray:
    """Bin factor of each scale: the largest power of two ``d`` with ``sigma / d >= samples`` (1 below).

    Examples
    --------
    >>> octave_factors([2.0, 3.0, 5.9, 6.0, 13.0, 150.0]).tolist()
    [1, 1, 1, 2, 4, 32]
    """
    s = np.asarray(sigmas, dtype=float)
    return (2 ** np.floor(np.log2(np.maximum(s / samples, 1.0)))).astype(np.int64)


def _binned(img, d: int):
    """``img`` binned by ``d`` (padded to a multiple of ``d`` first, so no border row is lost)."""
    if d == 1:
        return img
    h, w = img.shape
    pad = ((0, -h % d), (0, -w % d))
    return K.bin_image(np.pad(img, pad, mode="symmetric") if any(p for _, p in pad) else img, d)


def _to_grid(i, o, d: int, n: int):
    """Pixel and offset on the input grid of pixel ``i`` + offset ``o`` of the grid binned by ``d``."""
    if d == 1:
        return i, o
    y = (i + o + 0.5) * d - 0.5
    ig = np.clip(np.rint(y), 0, n - 1)
    return ig, y - ig


def scan_octaves(img, sigmas, threshold_of, *, single_scale: bool = False, samples: float = OCTAVE_SAMPLES_PER_SIGMA):
    """Scale-space maxima of the LoG of ``img`` at ``sigmas``, each octave on its own binned grid.

    Parameters
    ----------
    img : 2-D float array
        The (background-subtracted) image.
    sigmas : 1-D array
        Increasing LoG scales (px of ``img``).
    threshold_of : callable ``(k, plane, d) -> float``
        Threshold of scale ``k`` whose response is ``plane``, sampled on the grid binned by ``d`` (pixel
        ``(i, j)`` of ``plane`` is the block of input rows ``i d .. i d + d - 1``); called once per scale, in
        order.
    single_scale : bool
        Also return the maxima of each scale over its own 3x3 neighbourhood.
    samples : float
        Grid samples per sigma an octave keeps (:func:`octave_factors`).

    Returns
    -------
    cand : ndarray (n, 4)
        Rows ``(k, i, j, value)``: scale index and pixel on the input grid.
    offsets : (oy, ox, ok)
        Sub-pixel offsets (input px) and sub-scale offsets.
    single : ndarray (m, 5) or None
        The single-scale maxima ``(k, i, j, value, d)``, ``d`` the bin factor they were found on.

    Examples
    --------
    >>> yy, xx = np.mgrid[:256, :256]
    >>> img = np.exp(-((yy - 100.0) ** 2 + (xx - 141.0) ** 2) / (2 * 12.0**2)).astype(np.float32)
    >>> cand, (oy, ox, ok), _ = scan_octaves(img, np.geomspace(3, 30, 14), lambda k, p, d: 0.1)
    >>> best = np.argmax(cand[:, 3])
    >>> round(cand[best, 1] + oy[best]), round(cand[best, 2] + ox[best])
    (100, 141)
    """
    sigmas = np.asarray(sigmas, dtype=float)
    d_of = octave_factors(sigmas, samples)
    h, w = np.shape(img)
    rows, offs, singles = [], [], []
    for d in np.unique(d_of):
        d = int(d)
        own = np.nonzero(d_of == d)[0]
        lo, hi = max(int(own[0]) - 1, 0), min(int(own[-1]) + 1, len(sigmas) - 1)

        def thr(k_loc, plane, lo=lo, own=own, d=d):
            k = lo + k_loc  # the neighbour scales of another octave find nothing here (threshold inf)
            return threshold_of(k, plane, d) if own[0] <= k <= own[-1] else np.inf

        # (the mirror of a binned grid's padding lies at the image border, as full-resolution reflection)
        planes = log_planes(_binned(img, d), sigmas[lo : hi + 1] / d, mode="reflect" if d == 1 else "symmetric")
        cand, (oy, ox, ok), single = scan_scale_space(
            planes, hi - lo + 1, thr, single_scale=single_scale, single_offsets=d > 1
        )
        i, oy = _to_grid(cand[:, 1], oy, d, h)
        j, ox = _to_grid(cand[:, 2], ox, d, w)
        rows.append(np.column_stack([cand[:, 0] + lo, i, j, cand[:, 3]]))
        offs.append((oy, ox, ok))
        if single_scale:
            # (the input-grid pixel of a single-scale maximum found at d > 1 comes from its sub-pixel position)
            si = _to_grid(single[:, 1], single[:, 4], d, h)[0] if d > 1 else single[:, 1]
            sj = _to_grid(single[:, 2], single[:, 5], d, w)[0] if d > 1 else single[:, 2]
            singles.append(np.column_stack([single[:, 0] + lo, si, sj, single[:, 3], np.full(len(single), d)]))
    cand = np.concatenate(rows)
    offsets = tuple(np.concatenate([o[m] for o in offs]) for m in range(3))
    return cand, offsets, (np.concatenate(singles) if single_scale else None)
