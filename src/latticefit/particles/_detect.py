"""Detection: scale-normalised LoG maxima above a noise threshold, nested blobs split, seeds segmented."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import AnalysisError
from ..micrograph import constant_value
from . import _crowd as _particle_crowd
from . import _kernels as K
from ._background import BACKGROUND_METHOD, _background_grid
from ._invalid import binned_mask, far_from_mask, subgrid_mask
from ._noise import NoiseModel
from ._pyramid import scan_octaves

#: LoG sigma that maximises the scale-normalised response of a projected sphere, in units of R
#: (measured with the profile table; a flat disk would give 1/sqrt(2))
LOG_SIGMA_PER_RADIUS = 0.6


#: outline level: fraction of the local peak height above the background
OUTLINE_FRACTION = 0.2


#: a detection is dropped when its centre is closer than max(r) + PRUNE_OVERLAP * min(r) to a stronger one
PRUNE_OVERLAP = 0.4


#: flagged detections fainter than this fraction of the accepted particles' median contrast are dropped
FAINT_FRACTION = 0.25


#: split kept blobs that smaller single-scale maxima tile (:func:`latticefit._particle_crowd.split_crowds`)
CROWD_SPLIT = True


def default_diameter_range_nm(shape, pixel_size_nm: float) -> tuple[float, float]:
    """Default search range: from max(3 px, 1 nm) to a quarter of the shorter image side."""
    lo = max(3.0 * pixel_size_nm, 1.0)
    hi = min(shape) / 4.0 * pixel_size_nm
    if lo >= hi:
        # a field this small holds no particle of >= 1 nm and 3 px; below 1 nm a HAADF "particle" is
        # an atomic column, which is lattice work, not particle sizing
        raise AnalysisError(
            f"field of view {min(shape) * pixel_size_nm:.3g} nm is too small for the default diameter range "
            f"({lo:.3g} nm to a quarter of the field): atomic columns are not particles; give diameter_range_nm "
            "(CLI --diameter-range) to size features anyway"
        )
    return (lo, max(hi, lo * 1.5))


#: autocorrelation of the LoG kernel at lag 2u*sigma along one axis (u = distance to the border / sigma)
_BORDER_U = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


_BORDER_C = np.array([1.0, 0.824, 0.414, 0.019, 0.0])


def _border_corr(u):
    return np.interp(u, _BORDER_U, _BORDER_C, right=0.0)


#: density of local (scale, y, x) maxima of the scale-normalised LoG of white noise, per pixel and per
#: 1/sigma^2 summed over scales spaced by 1.2: E[# maxima above k sd] = C * area * sum(1/sigma^2) * k * phi(k)
#: (the Euler-characteristic form of a smooth Gaussian field; C measured on white-noise images)
MAXIMA_DENSITY = 0.056


def _threshold_factor(n_eff: float, false_alarms: float) -> float:
    """K such that ``n_eff * k * phi(k)`` equals the expected number of false alarms.

    ``log k + log phi(k)`` falls monotonically for k >= 1, so bisection on [1, 40] finds the root
    (to 1e-12; scipy.optimize is not imported on the command path for this).
    """
    target = max(false_alarms, 1e-12) / max(n_eff, 1.0)
    # log(k) + log phi(k) - log(target), phi the standard normal density
    fun = lambda k: math.log(k) - 0.5 * k * k - 0.5 * math.log(2 * math.pi) - math.log(target)  # noqa: E731
    if fun(1.0) <= 0:
        return 1.0
    lo, hi = 1.0, 40.0
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fun(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _half_mpx_step(size: int) -> int:
    """Stride of a regular subgrid of about 0.5 Mpx: its percentiles stand for the image's at a fraction of the sort."""
    return max(1, int(math.sqrt(size / 5e5)))


def _stabilise(coarse, noise: NoiseModel | None):
    """Variance-stabilising transform for ``variance = offset + gain * I`` (generalised Anscombe).

    Bright particles in counting data are noisier than the background; after
    ``T(I) = 2 / gain * sqrt(offset + gain * I)`` the noise is the same
    everywhere, so one noise level per LoG scale holds over the whole image.
    """
    if noise is None or not (noise.gain > 0):
        return coarse
    a = noise.offset  # may be negative (dark level): the variance a + g I is positive over the image
    g = noise.gain
    step = _half_mpx_step(coarse.size)
    lo, hi = (float(v) for v in np.percentile(coarse[::step, ::step], [1, 99.5]))
    # only worth it when the variance changes appreciably over the image
    if (a + g * max(hi, 0.0)) < 1.5 * (a + g * max(lo, 0.0)):
        return coarse
    return (2.0 / g) * np.sqrt(np.maximum(a + g * coarse, 0.0)).astype(np.float32)


def _stabilised_grid(img, f, noise_model):
    """The detection grid (``img`` binned by ``f``; ``img`` itself for f = 1) and its stabilised version."""
    raw = K.bin_image(np.ascontiguousarray(img, dtype=np.float32), f) if f > 1 else np.asarray(img, np.float32)
    return raw, _stabilise(raw, noise_model)


def _subtract_background(stab, bgc, img):
    """``stab - bgc``, in place unless ``stab`` is the caller's image (bounded memory, issue #17)."""
    if stab is img:
        return stab - bgc
    stab -= bgc
    return stab


@dataclass
class _DetectionGrid:
    """The grid :func:`_detect` works on and the background pixels of its noise estimate.

    ``f`` is the block factor, ``shape`` the grid's (height, width), ``sigmas`` the LoG scales (grid
    px); ``stabilised`` tells whether the grid image went through :func:`_stabilise`. ``dsub`` is the
    distance (grid px) of every ``step``-th grid pixel to the particle mask, ``dbad`` the same to the
    invalid (NaN) pixels (None without any), ``bad_c`` the invalid mask on the grid (None without any).
    """

    f: int
    shape: tuple[int, int]
    sigmas: np.ndarray
    stabilised: bool
    step: int
    dsub: np.ndarray
    bad_c: np.ndarray | None
    dbad: np.ndarray | None

    def subgrid(self, plane, d: int = 1):
        """A response ``plane`` computed on the grid binned by ``d``, at the ``step`` subgrid of :meth:`clean`."""
        if d == 1:
            return plane[:: self.step, :: self.step]
        rows = np.minimum(np.arange(0, self.shape[0], self.step) // d, plane.shape[0] - 1)
        cols = np.minimum(np.arange(0, self.shape[1], self.step) // d, plane.shape[1] - 1)
        return plane[np.ix_(rows, cols)]

    def clean(self, k):
        """Background pixels of scale ``k`` (``step`` subgrid): farther than 3 sigma_k from particles and invalid pixels."""
        sel = self.dsub > 3.0 * self.sigmas[k]
        return sel if self.dbad is None else sel & (self.dbad > 3.0 * self.sigmas[k])


@dataclass
class _Blobs:
    """Detections on the detection grid.

    Centre ``y``, ``x`` and radius ``r`` (full-image px), ``strength`` (significance), grid cell ``i``,
    ``j`` and scale index ``k``.
    """

    y: np.ndarray
    x: np.ndarray
    r: np.ndarray
    strength: np.ndarray
    i: np.ndarray
    j: np.ndarray
    k: np.ndarray

    def select(self, sel) -> _Blobs:
        """The detections ``sel`` (boolean mask or indices)."""
        return _Blobs(self.y[sel], self.x[sel], self.r[sel], self.strength[sel], self.i[sel], self.j[sel], self.k[sel])


def _grid_and_scales(dlo_px, dhi_px):
    """Block factor ``f`` of the detection grid and the LoG scales (grid px), about 1.2 apart, for the diameter range."""
    sig_lo = LOG_SIGMA_PER_RADIUS * dlo_px / 2.0
    sig_hi = LOG_SIGMA_PER_RADIUS * dhi_px / 2.0
    f = max(1, int(sig_lo // 1.6))
    n_s = max(2, int(math.ceil(math.log(sig_hi / sig_lo) / math.log(1.2))) + 1)
    return f, np.geomspace(sig_lo, sig_hi, n_s) / f


def _grid_background(stab, f, dlo_px, bg_scale_px):
    """Background of the (stabilised) grid image and its mask of particle pixels."""
    if BACKGROUND_METHOD == "opening":  # follows steps (film edge, thicker matrix) and ramps, see _particle_crowd
        return _particle_crowd.opening_background(stab, max(0.5 * bg_scale_px, 1.2 * dlo_px) / f)
    return _background_grid(stab, bg_scale_px / f)


def _detection_grid(stab, f, sigmas, stabilised, pmask, invalid) -> _DetectionGrid:
    """The grid record: distances of a subgrid to the particle mask (dilated per scale) and to invalid pixels."""
    hc, wc = stab.shape
    # noise of each scale's response: MAD over background pixels (particles masked and dilated)
    # background pixels of scale k: farther than 3 sigma_k from any masked (particle) pixel
    step = max(1, int(math.sqrt(hc * wc / 60000.0)))
    # the particle mask on that subgrid by blocks (subgrid_mask), not by striding: striding missed the rims of
    # 5 px dots, which then counted as background; on a 512² grid (step 2) the fine scales' noise came out
    # 10-100 % high (F1 0.930 on a 512² field of 5 px dots at 20 counts/px, 0.985 by blocks)
    psub = subgrid_mask(pmask, step)
    dsub = ndi.distance_transform_edt(~psub) * step if psub.any() else np.full(psub.shape, np.inf)
    bad_c = None if invalid is None else binned_mask(invalid, f)
    # masked (NaN) pixels: no noise samples within 3 sigma of them, no detections on them
    dbad = None if bad_c is None else far_from_mask(subgrid_mask(bad_c, step), step)
    return _DetectionGrid(f, (hc, wc), sigmas, stabilised, step, dsub, bad_c, dbad)


def _crowd_pixel_noise(grid: _DetectionGrid, stab):
    """The image's own pixel noise when some scale has too few (< 500) clean pixels (crowded field), else None.

    Those scales cap their noise by it (:meth:`_ScaleThresholds.__call__`).
    """
    if any(int(grid.clean(k).sum()) < 500 for k in range(len(grid.sigmas))):
        return _particle_crowd.pixel_noise(stab, grid.f, stabilised=grid.stabilised)
    return None


def _grid_threshold_factor(grid: _DetectionGrid, false_alarms):
    """Threshold in noise units for ``false_alarms`` expected noise maxima over the valid grid and all scales."""
    hc, wc = grid.shape
    valid_frac = 1.0 if grid.bad_c is None else 1.0 - float(grid.bad_c.mean())
    n_eff = MAXIMA_DENSITY * hc * wc * valid_frac * float(np.sum(1.0 / grid.sigmas**2))
    return _threshold_factor(n_eff, false_alarms)


class _ScaleThresholds:
    """``threshold_of(k, plane)`` of :func:`latticefit.particles._scalespace.scan_scale_space`: ``kthr`` times the noise.

    The noise of scale ``k`` is measured on its clean background pixels as it is reached and kept in
    ``noise_raw`` (measured) and ``noise`` (after the crowded-field cap).
    """

    def __init__(self, grid: _DetectionGrid, kthr, pixel_noise):
        self.grid = grid
        self.kthr = kthr
        self.pixel_noise = pixel_noise
        self.noise_raw = np.empty(len(grid.sigmas))
        self.noise = np.empty(len(grid.sigmas))

    def __call__(self, k, plane, d=1):
        """Threshold of scale ``k`` whose LoG response is ``plane`` (on the grid binned by ``d``)."""
        grid, noise_raw, sigmas = self.grid, self.noise_raw, self.grid.sigmas
        sel = grid.clean(k)
        crowded = False
        if sel.sum() < 500 and k > 0:
            # too few clean pixels at this scale (crowded field): white-noise scaling of the previous
            # scale, whose normalised LoG response falls as 1/sigma
            noise_raw[k] = noise_raw[k - 1] * sigmas[k - 1] / sigmas[k]
            crowded = True
        else:
            if sel.sum() < 500:
                sel = grid.dsub >= np.quantile(grid.dsub, 0.5)
                if grid.dbad is not None:
                    sel &= grid.dbad > 0
                crowded = True
            noise_raw[k] = _robust_rms(grid.subgrid(plane, d)[sel])
        self.noise[k] = noise_raw[k]
        if crowded:
            # crowded fields leave no clean background: the noise of those scales then holds particle
            # signal. Cap it at WHITE_NOISE_CAP times the response of white noise of the image's own pixel
            # noise (_particle_crowd)
            cap = _particle_crowd.white_log_noise(self.pixel_noise, sigmas[k : k + 1])[0]
            self.noise[k] = min(noise_raw[k], cap * _particle_crowd.WHITE_NOISE_CAP)
        return self.kthr * self.noise[k]


def _robust_rms(values):
    """RMS about the median of the values within 5 MAD-sigma (the MAD-sigma itself when 10 or fewer)."""
    v = values.astype(np.float64)
    v = v - np.median(v)
    mad = 1.4826 * np.median(np.abs(v)) + 1e-30
    # RMS of the values within 5 MAD-sigma: keeps the noise's own tails, drops stray particle signal
    vv = v[np.abs(v) < 5.0 * mad]
    return float(np.sqrt(np.mean(vv * vv))) if vv.size > 10 else mad


def _residual_and_background(img, grid: _DetectionGrid, bgc, noise_model):
    """The background-subtracted grid image again and the background in intensity units."""
    # the residual again (cheaper than holding it through the scan)
    coarse = _subtract_background(_stabilised_grid(img, grid.f, noise_model)[1], bgc, img)
    if grid.stabilised:  # inverse of the stabilising transform
        g, a0 = noise_model.gain, noise_model.offset
        return coarse, ((g * bgc / 2.0) ** 2 - a0) / g
    return coarse, bgc


def _significant(strength, i, j, sk, grid: _DetectionGrid, kthr):
    """Detections at grid cells ``(i, j)`` of scale sigma ``sk`` above the threshold, off invalid pixels.

    Reflect padding folds the noise near the border: its variance rises by (1 + c(d / sigma)) per axis.
    """
    hc, wc = grid.shape
    fy = 1.0 + _border_corr((np.minimum(i, hc - 1 - i) + 0.5) / sk)
    fx = 1.0 + _border_corr((np.minimum(j, wc - 1 - j) + 0.5) / sk)
    good = strength >= kthr * np.sqrt(fy * fx)
    if grid.bad_c is not None:
        good &= ~grid.bad_c[i.astype(int), j.astype(int)]
    return good


def _scale_space_blobs(cand, offsets, grid: _DetectionGrid, noise, kthr) -> _Blobs:
    """The significant scale-space maxima ``cand`` (rows k, i, j, value) with their sub-pixel ``offsets``."""
    oy, ox, ok = offsets
    f, sigmas = grid.f, grid.sigmas
    n_s = len(sigmas)
    k, i, j, v = cand.T
    kk = np.clip(k + ok, 0, n_s - 1)
    sig_c = np.exp(np.interp(kk, np.arange(n_s), np.log(sigmas)))
    y = (i + oy + 0.5) * f - 0.5
    x = (j + ox + 0.5) * f - 0.5
    r = sig_c * f / LOG_SIGMA_PER_RADIUS
    strength = v / noise[k.astype(int)]
    good = _significant(strength, i, j, sigmas[k.astype(int)], grid, kthr)
    return _Blobs(y, x, r, strength, i, j, k).select(good)


def _single_scale_blobs(c2, tops, grid: _DetectionGrid, noise, kthr) -> _Blobs:
    """The significant single-scale maxima ``c2`` (rows k, i, j, value, bin factor) on an intensity top (``tops``).

    On top: an intensity top within one grid pixel (3x3), or a quarter of the bin factor of a scale found on
    a coarser grid (:mod:`latticefit.particles._pyramid`), whose pixel comes from a sub-pixel position.
    """
    f, sigmas = grid.f, grid.sigmas
    k2, i2, j2, v2, d2 = c2.T
    i2, j2, k2i = i2.astype(int), j2.astype(int), k2.astype(int)
    on_top = _particle_crowd.near_top(tops, i2, j2, np.maximum(1, np.ceil(d2 / 4.0)).astype(int))
    s2 = v2 / noise[k2i]
    c_keep = on_top & _significant(s2, i2, j2, sigmas[k2i], grid, kthr)
    i2, j2, k2i, s2 = i2[c_keep], j2[c_keep], k2i[c_keep], s2[c_keep]
    y2, x2 = (i2 + 0.5) * f - 0.5, (j2 + 0.5) * f - 0.5
    r2 = sigmas[k2i] * f / LOG_SIGMA_PER_RADIUS
    return _Blobs(y2, x2, r2, s2, i2, j2, k2i)


def _seeds(*parts):
    """The seed dict of :func:`_detect` (x, y, r, strength, ci, cj, ck) of ``(blobs, selection)`` parts in order."""
    cat = lambda get: np.concatenate([get(b)[sel] for b, sel in parts])  # noqa: E731
    return dict(
        x=cat(lambda b: b.x),
        y=cat(lambda b: b.y),
        r=cat(lambda b: b.r),
        strength=cat(lambda b: b.strength),
        ci=cat(lambda b: b.i.astype(int)),
        cj=cat(lambda b: b.j.astype(int)),
        ck=cat(lambda b: b.k.astype(int)),
    )


def _detect(img, dlo_px, dhi_px, bg_scale_px, false_alarms, noise_model=None, invalid=None):
    """Background + multi-scale LoG detection.

    Returns seeds (x, y, r in full px, significance) or None, and the
    detection-grid data (block factor ``f``, background-subtracted ``coarse``
    image, ``background``, ``sigmas`` ...).
    """
    f, sigmas = _grid_and_scales(dlo_px, dhi_px)
    coarse_raw, stab = _stabilised_grid(img, f, noise_model)
    bgc, pmask = _grid_background(stab, f, dlo_px, bg_scale_px)
    grid = _detection_grid(stab, f, sigmas, stab is not coarse_raw, pmask, invalid)
    # scales with too few clean pixels (crowded field) cap their noise by the image's own pixel noise
    pixel_noise = _crowd_pixel_noise(grid, stab)
    kthr = _grid_threshold_factor(grid, false_alarms)
    threshold_of = _ScaleThresholds(grid, kthr, pixel_noise)
    if (
        constant_value(img, invalid) is not None
    ):  # a blank image has no LoG response at any scale: no scale space to scan
        cand, offsets, c2 = (), None, ()
        threshold_of.noise[:] = 0.0
    else:
        # the scale space one plane at a time (three held), each octave of scales on its own binned grid
        resid = _subtract_background(stab, bgc, img)
        cand, offsets, c2 = scan_octaves(resid, sigmas, threshold_of, single_scale=CROWD_SPLIT)
        del resid
    del stab
    grid_raw = coarse_raw if f > 1 else None  # the image binned to the grid (linear units)
    del coarse_raw
    coarse, bgc_lin = _residual_and_background(img, grid, bgc, noise_model)
    del bgc
    noise = threshold_of.noise
    if len(cand) == 0:
        return None, dict(f=f, coarse=coarse, background=bgc_lin, sigmas=sigmas, noise=noise, k=kthr)
    blobs = _scale_space_blobs(cand, offsets, grid, noise, kthr)
    keep = K.prune_blobs(blobs.y, blobs.x, blobs.r, blobs.strength, PRUNE_OVERLAP)
    keep = _particle_crowd.split_cluster_blobs(
        blobs.y, blobs.x, blobs.r, blobs.strength, keep, prune=K.prune_blobs, overlap=PRUNE_OVERLAP
    )
    seeds = _seeds((blobs, keep))
    if CROWD_SPLIT:
        # crowds: maxima of single scales on an intensity top may tile a kept blob (rafts, chains, aggregates)
        tops = _particle_crowd.intensity_peaks(coarse, sigmas[0])
        if len(c2):
            single = _single_scale_blobs(c2, tops, grid, noise, kthr)
            keep, extra = _particle_crowd.split_crowds(
                blobs.y,
                blobs.x,
                blobs.r,
                blobs.strength,
                keep,
                single.y,
                single.x,
                single.r,
                single.strength,
                prune=K.prune_blobs,
                overlap=PRUNE_OVERLAP,
            )
            # a dot pressed against a brighter neighbour may have a maximum at single scales only
            extra = np.union1d(extra, _free_single(_seeds((blobs, keep), (single, extra)), single, extra))
            seeds = _seeds((blobs, keep), (single, extra))
    return seeds, dict(
        f=f,
        coarse=coarse,
        background=bgc_lin,
        sigmas=sigmas,
        noise=noise,
        k=kthr,
        pixel_noise=pixel_noise,
        grid_raw=grid_raw,
    )


def _free_single(seeds, single: _Blobs, extra):
    """Indices of the single-scale blobs not in ``extra`` that no seed covers, beside a seed like them.

    ``seeds``: the seed dict of the kept blobs and ``extra`` (:func:`_particle_crowd.free_candidates`).
    """
    rest = np.setdiff1d(np.arange(len(single.y)), extra)
    free = _particle_crowd.free_candidates(
        seeds["y"],
        seeds["x"],
        seeds["r"],
        seeds["strength"],
        single.y[rest],
        single.x[rest],
        single.r[rest],
        single.strength[rest],
        prune=K.prune_blobs,
        overlap=PRUNE_OVERLAP,
    )
    return rest[free]


def _segment(coarse, seeds, sigmas, f, shape, pixel_noise=None):
    """Seeded watershed on the smoothed coarse image.

    Returns the full-resolution label image, the noise of the smoothed image, each seed's outline level as
    a fraction of its smoothed peak (``OUTLINE_FRACTION``, or higher where 3 sigma of the noise is) and the
    smoothing sigma in full px.
    """
    s_seg = max(0.7, 0.5 * float(sigmas[0]))
    S = ndi.gaussian_filter(coarse, s_seg)
    st = _half_mpx_step(S.size)
    sub = S[::st, ::st]
    neg = -sub[sub < 0]
    nS = float(np.median(neg) / 0.6745) if neg.size > 20 else float(np.std(S))
    if pixel_noise is not None:  # crowded field: the negative side holds particle edges, cap by white noise
        nS = min(nS, _particle_crowd.WHITE_NOISE_CAP * pixel_noise / (2.0 * math.sqrt(math.pi) * s_seg))
    n = len(seeds["x"])
    hc, wc = coarse.shape
    ci = np.clip(np.rint((seeds["y"] + 0.5) / f - 0.5).astype(int), 0, hc - 1)
    cj = np.clip(np.rint((seeds["x"] + 0.5) / f - 0.5).astype(int), 0, wc - 1)
    peak = np.maximum(S[ci, cj], 0.0)
    fg = S > 3.0 * nS
    fg[ci, cj] = True
    np.negative(S, out=S)  # watershed floods -S; S is restored below (one image less than a copy)
    lab = _watershed_components(S, fg, ci, cj)
    np.negative(S, out=S)
    del fg
    level = np.concatenate([[np.inf], np.maximum(3.0 * nS, OUTLINE_FRACTION * peak)])
    for r0 in range(0, hc, 512):  # row blocks: the per-pixel level of the own label is a small block
        blk = lab[r0 : r0 + 512]
        blk[S[r0 : r0 + 512] < level[blk]] = 0
    lab[ci, cj] = np.arange(1, n + 1, dtype=np.int32)
    # keep only the part of each label connected to its seed
    lab = _seed_connected(lab, ci, cj)
    if f > 1:
        lab = np.repeat(np.repeat(lab, f, axis=0), f, axis=1)
    H, W = shape
    if lab.shape != (H, W):
        lab = np.pad(lab, ((0, max(0, H - lab.shape[0])), (0, max(0, W - lab.shape[1]))), mode="edge")[:H, :W]
    with np.errstate(divide="ignore", invalid="ignore"):  # the outline's level over the seed's peak
        outline = np.clip(np.maximum(3.0 * nS / peak.astype(np.float64), OUTLINE_FRACTION), None, 1.0)
    return lab.astype(np.int32, copy=False), nS, np.where(np.isfinite(outline), outline, 1.0), s_seg * f


def _watershed_components(image, mask, ci, cj):
    """``watershed(image, markers at (ci, cj) numbered 1..n, mask=mask)``, one connected part of the mask at a time.

    Flooding never crosses from one 4-connected part of the mask to another, and within a part the order of
    the flood (value, then age) is the same as in the whole image, so the labels are those of one watershed
    of the image (seeds of exactly equal value, which skimage orders arbitrarily, aside); the temporaries
    are those of the largest part instead of several images (issue #17). A part with one seed is that
    seed's label whole (a flood from one marker fills its 4-connected mask): no watershed is run for it.
    """
    from skimage.segmentation import watershed

    comp, _n = ndi.label(mask)
    lab = np.zeros(mask.shape, np.int32)
    owner = comp[ci, cj]
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(_n + 2))
    for c, sl in enumerate(ndi.find_objects(comp), start=1):
        seeds = order[starts[c] : starts[c + 1]]
        if sl is None or seeds.size == 0:
            continue
        part = comp[sl] == c
        if seeds.size == 1:
            lab[sl][part] = seeds[0] + 1
            continue
        mk = np.zeros(part.shape, np.int32)
        mk[ci[seeds] - sl[0].start, cj[seeds] - sl[1].start] = seeds.astype(np.int32) + 1
        out = watershed(image[sl], mk, mask=part)
        lab[sl][part] = out[part]
    return lab


def _seed_connected(lab, ci, cj):
    """Drop the pixels of each label that are not 4-connected to the label's own seed pixel."""
    comp, ncomp = ndi.label(lab > 0)
    seed_keys = np.unique(lab[ci, cj].astype(np.int64) * (ncomp + 1) + comp[ci, cj])
    idx = np.flatnonzero(lab)  # labelled pixels only: the int64 keys of a few particles, not of the image
    key = lab.ravel()[idx].astype(np.int64) * (ncomp + 1) + comp.ravel()[idx]
    del comp
    out = np.zeros_like(lab)
    keep = idx[np.isin(key, seed_keys)]
    out.ravel()[keep] = lab.ravel()[keep]
    return out


def _nested(x, y, r, strength, overlap=None):
    """True for detections whose centre lies within ``r_i + overlap * r_j`` of a stronger detection ``i``."""
    from scipy.spatial import cKDTree

    overlap = PRUNE_OVERLAP if overlap is None else overlap
    n = len(x)
    out = np.zeros(n, bool)
    good = np.isfinite(x) & np.isfinite(y) & np.isfinite(r)
    if good.sum() < 2:
        return out
    tree = cKDTree(np.column_stack([np.where(good, x, -1e9), np.where(good, y, -1e9)]))
    pairs = tree.query_pairs(float(np.nanmax(r)) * (1 + overlap) + 1.0, output_type="ndarray")
    # only pairs close enough for either to be nested in the other can mark one (one giant detection
    # makes the query radius large: the loop below then sees a few of millions of pairs)
    i_, j_ = pairs[:, 0], pairs[:, 1]
    ri, rj = r[i_], r[j_]
    dist = np.hypot(x[i_] - x[j_], y[i_] - y[j_])
    reach = np.maximum(ri, rj) + np.maximum(overlap * ri, overlap * rj)  # >= r[strong] + overlap * r[weak]
    pairs = pairs[good[i_] & good[j_] & (dist <= reach * (1 + 1e-9) + 1e-9)]
    for i, j in sorted(map(tuple, pairs), key=lambda p: -max(strength[p[0]], strength[p[1]])):
        if not (good[i] and good[j]) or out[i] or out[j]:
            continue
        strong, weak = (i, j) if strength[i] >= strength[j] else (j, i)
        if math.hypot(x[i] - x[j], y[i] - y[j]) < r[strong] + overlap * r[weak]:
            out[weak] = True
    return out
