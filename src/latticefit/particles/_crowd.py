"""Detection helpers for crowded particle fields (rafts, chains, aggregates, low sampling).

- noise: on a crowded field too few pixels lie far from every particle to measure the noise of a LoG scale,
  and what is measured holds particle signal, so the threshold rises until nothing is detected. For those
  scales :func:`white_log_noise` (white noise of the image's own pixel noise, :func:`pixel_noise`, Immerkaer's
  estimator, which ignores smooth structure) times :data:`WHITE_NOISE_CAP` caps the measured value;
- background: :func:`opening_background` (a grey opening) follows film edges and thicker matrix steps;
- splitting: :func:`spatial_maxima` (maxima of single LoG scales) on intensity tops (:func:`intensity_peaks`)
  tile blobs that hold a raft, chain or aggregate (:func:`split_crowds`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["WHITE_NOISE_CAP", "pixel_noise", "split_cluster_blobs", "white_log_noise"]

#: on scales without enough clean background the measured noise may exceed the white-noise prediction by this
#: factor (some correlated noise) before it is taken as contaminated by particle signal
WHITE_NOISE_CAP = 1.5


#: a kept blob is split into the smaller blobs it suppressed (radius >= this x its own, side by side)
SPLIT_MIN_RATIO = 0.05
#: ... when they cover at least this fraction of its area
SPLIT_MIN_COVER = 0.2
#: ... side by side: centre distance at least this times the sum of their radii
SPLIT_TILE = 0.7


def pixel_noise(coarse, f, *, stabilised=False) -> float:
    """Pixel-noise SD of the detection image ``coarse`` (blocks of ``f`` px).

    Immerkaer's estimate (median of the quieter half of 32-px tiles; smooth structure does not enter); after
    the variance-stabilising transform at least ``1 / f`` (unit noise per full-resolution pixel averaged over
    ``f x f`` blocks).
    """
    from ._noise import _immerkaer_tiles

    _m, v = _immerkaer_tiles(np.asarray(coarse, np.float32))
    if v.size:
        keep = v <= np.quantile(v, 0.5) if v.size > 8 else np.ones(v.size, bool)
        s = math.sqrt(max(float(np.median(v[keep])), 0.0))
    else:
        s = float(np.std(coarse))
    return max(s, 1.0 / f) if stabilised else s


def white_log_noise(s, sigmas):
    """SD of the scale-normalised LoG (``-sigma^2 LoG``) of white noise of SD ``s`` at each of ``sigmas`` (px).

    The filtered variance is ``s^2 / (2 pi sigma^2)`` (Parseval: ``(2 pi)^-2 int sigma^4 k^4 exp(-sigma^2 k^2)
    d^2k``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(0, 2.0, (256, 256)).astype(np.float32)
    >>> [round(float(v), 2) for v in white_log_noise(pixel_noise(img, 1), np.array([2.0, 4.0]))]
    [0.39, 0.19]
    """
    return float(s) / (np.asarray(sigmas, float) * math.sqrt(2 * math.pi))


#: a particle mask of :func:`opening_background` covering less than this fraction of the image is redone
#: with the pixels' own noise (the blocks' residual held particle structure)
MIN_MASK_FRACTION = 0.03


def opening_background(img, size_px, *, clip_sigma=2.0):
    """Background under bright particles smaller than ``size_px``: a grey opening, smoothed, bias-corrected.

    A slowly varying background smoothed with masked particles cannot follow a step (a film or carbon
    edge, a thicker matrix on one side): its bright side is masked as "particle". A grey opening (erosion
    then dilation, square of side 0.75 ``size_px``: a disk of diameter ``size_px`` holds no such square) removes every
    bright feature smaller than the square and keeps steps and ramps. It is done on blocks of
    ``size_px / 8`` px, smoothed by a sixth of the square and lifted by the median residual of the
    background blocks (the erosion takes minima of noisy values, so it sits low).

    Returns ``(background, particle_mask)`` on the grid of ``img``.

    Examples
    --------
    >>> yy, xx = np.mgrid[:200, :200]
    >>> img = 100.0 + 50.0 * (xx > 120) + 80.0 * ((xx - 60) ** 2 + (yy - 100) ** 2 < 15 ** 2)
    >>> bg, mask = opening_background(img.astype(np.float32), 40)
    >>> round(float(bg[100, 60])), round(float(bg[100, 180])), bool(mask[100, 60]), bool(mask[100, 180])
    (101, 150, True, False)
    """
    from scipy import ndimage as ndi

    from . import _kernels as K
    from ._background import _resample

    img = np.ascontiguousarray(img, dtype=np.float32)
    m = max(1, int(size_px // 8))
    m = min(m, max(1, min(img.shape) // 8))
    blocks = K.bin_image(img, m) if m > 1 else img
    side = max(3, math.ceil(0.75 * size_px / m) + 1)
    sm = ndi.gaussian_filter(blocks, 0.7)
    # opening with the outside ignored (reflect padding would mirror a dot in a corner into a blob too large
    # for the square, and leave it in the background)
    hi, lo = float(sm.max()) + 1.0, float(sm.min()) - 1.0
    opened = ndi.grey_dilation(
        ndi.grey_erosion(sm, size=(side, side), mode="constant", cval=hi), size=(side, side), mode="constant", cval=lo
    )
    opened = ndi.gaussian_filter(opened, max(side / 6.0, 1.0), mode="reflect")
    r = blocks - opened
    neg = r[r < np.median(r)]
    sd = float(np.std(r)) if neg.size < 10 else float(np.median(np.abs(neg - np.median(r))) / 0.6745)
    bias = 0.0
    for _ in range(3):
        bgpix = r - bias < clip_sigma * max(sd, 1e-12)
        if bgpix.sum() < 10:
            break
        bias = float(np.median(r[bgpix]))
        rb = r[bgpix] - bias
        sd = float(1.4826 * np.median(np.abs(rb))) or sd
    small = opened + bias
    bg = _resample(small, m, 1, img.shape) if m > 1 else small.astype(np.float32)
    sdf = sd * m  # noise of single pixels, about (block noise) * m
    mask = (img - bg) > clip_sigma * max(sdf, 1e-12)
    if mask.mean() < MIN_MASK_FRACTION:
        # a blank field puts ~2.3 % of its pixels above 2 sigma: a mask about that small or smaller says the
        # blocks' residual may hold particle structure (coarse blocks in a dense field: sd * m overstates the
        # noise and masks too few particles); the pixels' own noise (Immerkaer, :func:`pixel_noise`) is then
        # used when it is lower
        sdp = pixel_noise(img, 1)
        if 0 < sdp < sdf:
            mask = (img - bg) > clip_sigma * sdp
    return bg.astype(np.float32), mask


# ------------------------------------------------------------------------- crowd splitting
def spatial_maxima(stack, thresholds, border=0):
    """Local maxima of every scale ``stack[k]`` over its 3x3 neighbourhood above ``thresholds[k]`` (numba).

    Same tie rule as :func:`latticefit.particles._kernels.scale_space_maxima` (a plateau gives one point), but
    the neighbouring scales are not compared: a dot inside a raft is a maximum of its own scale even where
    the raft's larger scale outranks it. Rows ``(k, y, x, value)``; :func:`spatial_maxima_ref` is the reference.
    """
    from ._kernels import scale_space_maxima

    stack = np.ascontiguousarray(stack, dtype=np.float32)
    thr = np.ascontiguousarray(thresholds, dtype=np.float64)
    # one scale at a time: the 3x3x3 kernel on a single-scale stack is the 3x3 maximum with the same tie rule
    rows = [scale_space_maxima(stack[k : k + 1], thr[k : k + 1], int(border)) for k in range(len(stack))]
    for k, r in enumerate(rows):
        r[:, 0] = k
    return np.concatenate(rows) if rows else np.empty((0, 4))


def spatial_maxima_ref(stack, thresholds, border=0):
    """Numpy reference of :func:`spatial_maxima` (same rows, same order)."""
    stack = np.asarray(stack, dtype=np.float64)
    _ns, h, w = stack.shape
    padded = np.pad(stack, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=-np.inf)
    keep = stack > np.asarray(thresholds)[:, None, None]
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == dj == 0:
                continue
            nb = padded[:, 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
            before = di < 0 or (di == 0 and dj < 0)
            keep &= (nb < stack) if before else (nb <= stack)
    if border > 0:
        keep[:, :border, :] = False
        keep[:, h - border :, :] = False
        keep[:, :, :border] = False
        keep[:, :, w - border :] = False
    k, i, j = np.nonzero(keep)
    return np.column_stack([k, i, j, stack[k, i, j]]).astype(np.float64)


def intensity_peaks(coarse, sigma):
    """Boolean map of the local maxima (3x3) of ``coarse`` smoothed by ``sigma`` px: the tops of bright dots."""
    from scipy import ndimage as ndi

    s = ndi.gaussian_filter(np.asarray(coarse, np.float32), max(float(sigma), 0.5))
    return s >= ndi.maximum_filter(s, size=3, mode="nearest")


def near_top(tops, i, j, t):
    """True where a pixel of ``tops`` lies within Chebyshev distance ``t`` (per point) of ``(i, j)``.

    With ``t = 1`` this is ``maximum_filter(tops, size=3)[i, j]``; a summed-area table answers any ``t``.

    Examples
    --------
    >>> tops = np.zeros((8, 8), bool); tops[4, 4] = True
    >>> near_top(tops, np.array([3, 2, 2]), np.array([5, 5, 5]), np.array([1, 1, 2])).tolist()
    [True, False, True]
    """
    h, w = tops.shape
    sat = np.zeros((h + 1, w + 1), np.int32)
    np.cumsum(np.cumsum(tops, axis=0, dtype=np.int32), axis=1, out=sat[1:, 1:])
    i0, i1 = np.clip(i - t, 0, h), np.clip(i + t + 1, 0, h)
    j0, j1 = np.clip(j - t, 0, w), np.clip(j + t + 1, 0, w)
    return (sat[i1, j1] - sat[i0, j1] - sat[i1, j0] + sat[i0, j0]) > 0


def split_cluster_blobs(y, x, r, strength, keep, *, prune, overlap):
    """Replace a large blob by the smaller blobs it suppressed when they tile it like a touching group.

    At large scales the LoG of two touching spheres peaks between them and may outrank each sphere's
    own peak; the LoG of an aggregate of many dots peaks at its middle at a scale several times a dot's.
    A kept blob ``i`` is replaced when at least two of the detections it suppressed (radius
    ``SPLIT_MIN_RATIO``-0.75 ``r_i``, centre inside ``r_i``), pruned among themselves, lie side by side
    (centre distance >= ``SPLIT_TILE`` (r_a + r_b)) and together cover at least ``SPLIT_MIN_COVER`` of its
    area; ``prune(y, x, r, strength, overlap)`` is the detection's pruning. Repeated until nothing changes: a
    blob that replaced an aggregate may hold a group itself.
    """
    from scipy.spatial import cKDTree

    if keep.sum() == 0 or keep.all():
        return keep
    keep = keep.copy()
    changed = True
    while changed:
        changed = False
        rej = np.nonzero(~keep)[0]
        if not rej.size:
            break
        tree = cKDTree(np.column_stack([x[rej], y[rej]]))
        for i in np.nonzero(keep)[0][np.argsort(-r[keep])]:
            if not keep[i]:
                continue
            near = rej[tree.query_ball_point([x[i], y[i]], r[i])]
            near = near[(r[near] >= SPLIT_MIN_RATIO * r[i]) & (r[near] <= 0.75 * r[i]) & ~keep[near]]
            if len(near) < 2 or np.sum(r[near] ** 2) < SPLIT_MIN_COVER * r[i] ** 2:  # (pruning only removes)
                continue
            sub = near[prune(y[near], x[near], r[near], strength[near], overlap)]
            if len(sub) < 2 or np.sum(r[sub] ** 2) < SPLIT_MIN_COVER * r[i] ** 2:
                continue
            d = np.hypot(x[sub][:, None] - x[sub][None, :], y[sub][:, None] - y[sub][None, :])
            lim = SPLIT_TILE * (r[sub][:, None] + r[sub][None, :])
            np.fill_diagonal(d, np.inf)
            if np.all(d >= lim):
                keep[i] = False
                keep[sub] = True
                changed = True
    return keep


def split_crowds(y, x, r, strength, keep, cy, cx, cr, cs, *, prune, overlap, min_cover=0.35, min_strength=0.35):
    """Replace kept blobs by the smaller candidates that tile them (a raft, chain or aggregate seen as one).

    ``y, x, r, strength, keep``: the detections (scale-space maxima) and which are kept; ``cy, cx, cr, cs``:
    extra candidates (maxima of single scales that sit on an intensity top). A kept blob ``i`` is replaced
    when at least two candidates inside it (centre within ``r_i``, radius 0.2-0.75 ``r_i``, significance at
    least ``min_strength`` of its own: noise bumps on one dot's top are far weaker), pruned among
    themselves, lie side by side (centre distance >= 0.8 (r_a + r_b)) and cover ``min_cover`` of its area;
    the largest radius cap that gives such a tiling wins (every candidate's radius is tried as the cap, largest
    first: a fixed ladder of caps skipped the scale of a dot beside two border dots).

    Returns ``(keep, extra)``: the new ``keep`` of the detections and the indices of the candidates added.
    """
    from scipy.spatial import cKDTree

    keep = keep.copy()
    ny = len(y)
    ay = np.concatenate([y, cy])
    ax = np.concatenate([x, cx])
    ar = np.concatenate([r, cr])
    a_s = np.concatenate([strength, cs])
    used = np.zeros(len(ay), bool)
    used[:ny] = keep
    if not len(ay) or not keep.any():
        return keep, np.zeros(0, int)
    tree = cKDTree(np.column_stack([ax, ay]))
    added = []
    for i in np.nonzero(keep)[0][np.argsort(-r[keep])]:
        if not keep[i]:
            continue
        near = np.asarray(tree.query_ball_point([x[i], y[i]], r[i]), dtype=np.int64)
        near = near[(near != i) & ~used[near]]
        near = near[(ar[near] >= 0.2 * r[i]) & (ar[near] <= 0.75 * r[i]) & (a_s[near] >= min_strength * strength[i])]
        for cap in np.unique(ar[near])[::-1]:  # every candidate's radius, largest first
            cand = near[ar[near] <= cap]
            if len(cand) < 2:
                continue
            sub = cand[prune(ay[cand], ax[cand], ar[cand], a_s[cand], overlap)]
            if len(sub) < 2 or np.sum(ar[sub] ** 2) < min_cover * r[i] ** 2:
                continue
            d = np.hypot(ax[sub][:, None] - ax[sub][None, :], ay[sub][:, None] - ay[sub][None, :])
            np.fill_diagonal(d, np.inf)
            if np.all(d >= 0.8 * (ar[sub][:, None] + ar[sub][None, :])):
                keep[i] = False
                used[i] = False
                used[sub] = True
                for s in sub:
                    if s < ny:
                        keep[s] = True
                    else:
                        added.append(s - ny)
                break
    return keep, np.array(sorted(added), dtype=int)


def free_candidates(y, x, r, strength, cy, cx, cr, cs, *, prune, overlap, min_strength=0.35):
    """Indices of the candidates ``cy, cx, cr, cs`` no detection ``y, x, r`` covers, beside a like one, pruned.

    A dot pressed against a brighter neighbour (a touching pair of 5 px dots) often has no maximum in scale
    of its own: one scale up, the LoG already sums the neighbour. Its maximum at a single scale (significant,
    on an intensity top) is then the only trace of it. A candidate is free when its centre lies at least
    ``max(r_i, r_c) + overlap * min(r_i, r_c)`` from every detection ``i`` (the rule of ``prune``: two
    touching spheres both stay) and it touches a detection like it (:func:`_beside_a_like`); those are
    pruned by that rule among themselves, strongest first.

    Examples
    --------
    >>> from latticefit.particles._kernels import prune_blobs
    >>> y, x, r, strength = np.array([10.0]), np.array([10.0]), np.array([2.5]), np.array([8.0])
    >>> cy, cx = np.array([10.0, 10.0, 10.2]), np.array([11.0, 15.2, 15.0])
    >>> cr, cs = np.full(3, 2.5), np.array([9.0, 5.0, 4.0])
    >>> free_candidates(y, x, r, strength, cy, cx, cr, cs, prune=prune_blobs, overlap=0.4).tolist()
    [1]
    """
    if not len(cy):
        return np.zeros(0, int)
    free = ~covered(y, x, r, cy, cx, cr, overlap)
    idx = np.nonzero(free & _beside_a_like(y, x, r, strength, cy, cx, cr, cs, min_strength=min_strength))[0]
    kept = prune(cy[idx], cx[idx], cr[idx], cs[idx], overlap)
    return idx[kept]


def covered(y, x, r, cy, cx, cr, overlap):
    """True for the candidates ``cy, cx, cr`` whose centre lies closer than ``max(r_i, r_c) + overlap *
    min(r_i, r_c)`` to some detection ``y, x, r`` (the pruning rule of ``_kernels.prune_blobs``).

    Examples
    --------
    >>> covered(np.array([0.0]), np.array([0.0]), np.array([2.5]), np.zeros(2), np.array([1.0, 6.0]),
    ...         np.full(2, 2.5), 0.4).tolist()
    [True, False]
    """
    out = np.zeros(len(cy), bool)
    if not len(y) or not len(cy):
        return out
    ci, si, dist = _pairs(y, x, r, cy, cx, cr, float(np.max(r)) + float(np.max(cr)) * (1.0 + overlap))
    lim = np.maximum(r[si], cr[ci]) + overlap * np.minimum(r[si], cr[ci])
    out[ci[dist < lim]] = True
    return out


def _pairs(y, x, r, cy, cx, cr, reach):
    """(candidate, detection, distance) of every pair closer than ``reach`` (arrays)."""
    from scipy.spatial import cKDTree

    m = cKDTree(np.column_stack([cx, cy])).sparse_distance_matrix(
        cKDTree(np.column_stack([x, y])), reach, output_type="ndarray"
    )
    return m["i"].astype(np.int64), m["j"].astype(np.int64), m["v"]


def _beside_a_like(y, x, r, strength, cy, cx, cr, cs, *, reach=1.6, size=2.0, min_strength=0.35):
    """True for candidates touching a detection of similar size and strength (the neighbour that hid them).

    Touching: centre distance at most ``reach`` (r_i + r_c) (LoG radii are rough); similar: radii within a
    factor ``size`` and at least ``min_strength`` of the neighbour's significance (as in :func:`split_crowds`).
    A lone candidate in empty space is not a hidden dot: a real one has a maximum in scale of its own.
    """
    out = np.zeros(len(cy), bool)
    if not len(y) or not len(cy):
        return out
    ci, si, dist = _pairs(y, x, r, cy, cx, cr, reach * (float(np.max(r)) + float(np.max(cr))))
    like = (dist <= reach * (r[si] + cr[ci])) & (cr[ci] <= size * r[si]) & (r[si] <= size * cr[ci])
    like &= cs[ci] >= min_strength * strength[si]
    out[ci[like]] = True
    return out
