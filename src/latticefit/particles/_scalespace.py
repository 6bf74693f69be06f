"""The LoG scale space of particle detection, one scale at a time (bounded memory, issue #17).

The detection looks for maxima of the scale-normalised LoG over (scale, y, x). Holding the whole stack
takes one image per scale (27 for the default diameter range: 7 GB at 8192²). Here the responses are
produced one plane at a time (:func:`log_planes`) and scanned with a window of three planes
(:func:`scan_scale_space`), which gives the same maxima, sub-pixel offsets and single-scale maxima as the
full stack (:func:`scan_stack_ref` is that reference; the tests compare them).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _kernels as K

__all__ = [
    "log_planes",
    "scan_scale_space",
    "log_stack_ref",
    "scan_stack_ref",
    "subpixel_ref",
    "half_maxima",
    "half_maxima_ref",
    "next_check",
    "next_check_ref",
]

#: rows of the frequency plane multiplied per step (bounds the temporaries of the transfer function)
_ROWS = 256
#: columns of the half plane inverse-transformed along y per step
_COLS = 256


def log_planes(img, sigmas, *, workers: int | None = None, mode: str = "reflect"):
    """Yield the scale-normalised ``-sigma^2 LoG`` response of ``img`` at each sigma (float32 planes).

    Same values as one FFT of the reflect-padded image times ``s^2 k^2 exp(-s^2 k^2 / 2)`` per scale; the
    inverse transform is done in column and row blocks that keep only the unpadded rows and columns, so the
    temporaries are the spectrum and one cropped half-spectrum (about 4 images at 8192²) instead of one
    image per scale. ``mode`` is the :func:`numpy.pad` mode of the padding (a binned image is padded
    ``"symmetric"``: its mirror then lies at the border of the full-resolution image, as ``"reflect"`` does there).

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32); img[32, 32] = 1.0
    >>> planes = list(log_planes(img, np.array([2.0, 3.0])))
    >>> [tuple(int(v) for v in np.unravel_index(np.argmax(p), p.shape)) for p in planes]
    [(32, 32), (32, 32)]
    """
    from scipy import fft as sfft

    from .._fft_kernels import fft_workers

    workers = fft_workers() if workers is None else workers  # 1 per batch worker, the cores otherwise
    img = np.asarray(img, dtype=np.float32)
    h, w = img.shape
    pad = int(min(max(h, w), math.ceil(3 * float(np.max(sigmas)))))
    pad_y, pad_x = min(pad, h - 1), min(pad, w - 1)
    big = np.pad(img, ((pad_y, pad_y), (pad_x, pad_x)), mode=mode)
    del img  # the caller may have dropped its reference: the image is not needed past its spectrum
    H = sfft.next_fast_len(big.shape[0], real=True)
    W = sfft.next_fast_len(big.shape[1], real=True)
    F = sfft.rfft2(big, s=(H, W), workers=workers)
    del big
    ky = np.fft.fftfreq(H) * 2 * np.pi
    kx2 = (np.fft.rfftfreq(W) * 2 * np.pi) ** 2
    half = np.empty((h, F.shape[1]), F.dtype)  # the inverse along y, unpadded rows only
    buf = np.empty((H, _COLS), F.dtype)  # one column block, reused
    for s in sigmas:
        plane = np.empty((h, w), np.float32)
        ss = float(s) * float(s)
        for c0 in range(0, F.shape[1], _COLS):
            c1 = min(c0 + _COLS, F.shape[1])
            blk = buf[:, : c1 - c0] if c1 - c0 == _COLS else np.empty((H, c1 - c0), F.dtype)
            for r0 in range(0, H, _ROWS):
                r1 = min(r0 + _ROWS, H)
                k2 = (ky[r0:r1, None] * ky[r0:r1, None] + kx2[None, c0:c1]).astype(np.float32)
                np.multiply(F[r0:r1, c0:c1], ss * k2 * np.exp(-0.5 * ss * k2), out=blk[r0:r1])
            half[:, c0:c1] = sfft.ifft(blk, axis=0, workers=workers, overwrite_x=True)[pad_y : pad_y + h]
        for r0 in range(0, h, _ROWS):
            r1 = min(r0 + _ROWS, h)
            plane[r0:r1] = sfft.irfft(half[r0:r1], n=W, axis=1, workers=workers)[:, pad_x : pad_x + w]
        yield plane
        del plane


def _offset(vm, v0, vp):
    den = vm - 2 * v0 + vp
    with np.errstate(divide="ignore", invalid="ignore"):
        o = np.where(den < 0, 0.5 * (vm - vp) / den, 0.0)
    return np.clip(o, -0.5, 0.5)


def _subpixel_plane(cur, i, j):
    """Parabolic sub-pixel offsets (y, x) of maxima ``(i, j)`` of one plane."""
    h, w = cur.shape
    v0 = cur[i, j]
    im, ip = np.clip(i - 1, 0, h - 1), np.clip(i + 1, 0, h - 1)
    jm, jp = np.clip(j - 1, 0, w - 1), np.clip(j + 1, 0, w - 1)
    oy = np.where((i > 0) & (i < h - 1), _offset(cur[im, j], v0, cur[ip, j]), 0.0)
    ox = np.where((j > 0) & (j < w - 1), _offset(cur[i, jm], v0, cur[i, jp]), 0.0)
    return oy, ox


@njit(cache=True)
def half_maxima(prev, cur, has_prev, thr):
    """Points of plane ``cur`` above ``thr`` that pass the first half of the 3x3x3 maximum test.

    Rows ``(y, x, value)`` in raster order of the points strictly greater than every pixel of the 3x3
    neighbourhood in ``prev`` (the scale before: all of it comes earlier in raster order) and, in ``cur``,
    strictly greater than the earlier neighbours and ``>=`` the later ones (``has_prev`` False for the first
    scale). :func:`next_check` completes the test with the next scale; together they give the rows of
    :func:`latticefit.particles._kernels.scale_space_maxima` for this scale. ``half_maxima_ref`` is the
    numpy reference.
    """
    h, w = cur.shape
    out = np.empty((4096, 3))
    n = 0
    for i in range(h):
        for j in range(w):
            v = cur[i, j]
            if v <= thr:
                continue
            if not K.plane_below(cur, i, j, v, True, False):
                continue
            if has_prev and not K.plane_below(prev, i, j, v, True, True):
                continue
            out = K.grow_rows(out, n)
            out[n, 0] = i
            out[n, 1] = j
            out[n, 2] = v
            n += 1
    return out[:n].copy()


@njit(cache=True)
def next_check(nxt, ii_, jj_, vv):
    """True where no pixel of the 3x3 neighbourhood of ``(ii_, jj_)`` in the next scale exceeds ``vv``."""
    ok = np.ones(ii_.size, np.bool_)
    for m in range(ii_.size):  # (a NaN neighbour never disqualifies, as in the full-stack kernel)
        ok[m] = K.plane_below(nxt, int(ii_[m]), int(jj_[m]), vv[m], False, False)
    return ok


def half_maxima_ref(prev, cur, has_prev, thr):
    """Numpy reference of :func:`half_maxima`."""
    h, w = cur.shape
    pc = np.pad(cur.astype(np.float64), 1, constant_values=-np.inf)
    keep = cur > thr
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == dj == 0:
                continue
            nb = pc[1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
            keep &= (nb < cur) if (di < 0 or (di == 0 and dj < 0)) else (nb <= cur)
    if has_prev:
        pp = np.pad(prev.astype(np.float64), 1, constant_values=-np.inf)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                keep &= pp[1 + di : 1 + di + h, 1 + dj : 1 + dj + w] < cur
    i, j = np.nonzero(keep)
    return np.column_stack([i, j, cur[i, j]]).astype(np.float64)


def next_check_ref(nxt, i, j, v):
    """Numpy reference of :func:`next_check`."""
    mx = np.pad(nxt.astype(np.float64), 1, constant_values=-np.inf)
    best = np.full(len(i), -np.inf)
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            best = np.maximum(best, mx[np.asarray(i, int) + di, np.asarray(j, int) + dj])
    return ~(best > v)


def scan_scale_space(planes, n_scales: int, threshold_of, *, single_scale: bool = False, single_offsets: bool = False):
    """Scale-space maxima of a stream of LoG planes, holding two planes.

    When plane ``k`` arrives, the candidates of scale ``k - 1`` (found against planes ``k - 2`` and
    ``k - 1``) are checked against it, and the candidates of scale ``k`` are found against plane ``k - 1``,
    which is then dropped: only the newest plane and a short list of points are kept.

    Parameters
    ----------
    planes : iterable of 2-D float32 arrays
        The responses in scale order (:func:`log_planes`).
    n_scales : int
        Number of planes.
    threshold_of : callable ``(k, plane) -> float``
        Threshold of scale ``k``, called once per plane in order (the caller measures the noise there).
    single_scale : bool
        Also return the maxima of each plane over its own 3x3 neighbourhood
        (:func:`latticefit.particles._crowd.spatial_maxima`).
    single_offsets : bool
        Append their parabolic sub-pixel offsets ``(oy, ox)`` as two more columns.

    Returns
    -------
    cand : ndarray (n, 4)
        Rows ``(k, y, x, value)``, as :func:`latticefit.particles._kernels.scale_space_maxima` of the stack.
    offsets : (oy, ox, ok)
        Their parabolic sub-pixel and sub-scale offsets.
    single : ndarray (m, 4) or None
        The single-scale maxima (``single_scale``).

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32); img[20, 30] = 1.0
    >>> sig = np.array([1.5, 2.0, 2.5])
    >>> cand, _, _ = scan_scale_space(log_planes(img, sig), 3, lambda k, p: 0.0)
    >>> [int(v) for v in cand[np.argmax(cand[:, 3]), :3]]
    [0, 20, 30]
    """
    rows, offs, single = [], [], []
    prev = None
    pending = None  # candidates of the previous scale: (k, rows (y, x, v), oy, ox, value in the scale before)

    def finish(p, nxt):
        c, r, oy, ox, vm = p
        i, j, v = r[:, 0].astype(np.int64), r[:, 1].astype(np.int64), r[:, 2]
        keep = next_check(nxt, i, j, v) if nxt is not None else np.ones(len(r), bool)
        if 0 < c < n_scales - 1:
            ok = _offset(vm[keep], v[keep].astype(np.float32), nxt[i[keep], j[keep]])
        else:
            ok = np.zeros(int(keep.sum()))
        rows.append(np.column_stack([np.full(int(keep.sum()), float(c)), r[keep]]))
        offs.append((oy[keep], ox[keep], ok))

    for k, plane in enumerate(planes):
        cur = np.ascontiguousarray(plane, dtype=np.float32)
        del plane
        thr = float(threshold_of(k, cur))
        if single_scale:
            r = K.scale_space_maxima(cur[None], np.array([thr]), 0)
            r[:, 0] = k
            if single_offsets:
                r = np.column_stack([r, *_subpixel_plane(cur, r[:, 1].astype(np.int64), r[:, 2].astype(np.int64))])
            single.append(r)
        if pending is not None:
            finish(pending, cur)
        r = half_maxima(cur if prev is None else prev, cur, prev is not None, thr)
        i, j = r[:, 0].astype(np.int64), r[:, 1].astype(np.int64)
        oy, ox = _subpixel_plane(cur, i, j)
        vm = prev[i, j] if prev is not None else np.zeros(len(r), np.float32)
        pending = (k, r, oy, ox, vm)
        prev = cur  # the plane before is dropped here
        del cur
    if pending is not None:
        finish(pending, None)
    cand = np.concatenate(rows) if rows else np.empty((0, 4))
    o = tuple(np.concatenate([x[m] for x in offs]) if offs else np.empty(0) for m in range(3))
    return (
        cand,
        o,
        (np.concatenate(single) if single else np.empty((0, 6 if single_offsets else 4))) if single_scale else None,
    )


def log_stack_ref(img, sigmas):
    """The whole stack of :func:`log_planes` by one full-size inverse FFT per scale (reference)."""
    h, w = img.shape
    pad = int(min(max(h, w), math.ceil(3 * sigmas.max())))
    pad_y = min(pad, h - 1)
    pad_x = min(pad, w - 1)
    from scipy import fft as sfft

    big = np.pad(img, ((pad_y, pad_y), (pad_x, pad_x)), mode="reflect")
    del img  # the caller may have dropped its reference: the image is not needed past its spectrum
    H = sfft.next_fast_len(big.shape[0], real=True)
    W = sfft.next_fast_len(big.shape[1], real=True)
    F = sfft.rfft2(big, s=(H, W), workers=-1)
    ky = np.fft.fftfreq(H)[:, None] * 2 * np.pi
    kx = np.fft.rfftfreq(W)[None, :] * 2 * np.pi
    k2 = (ky * ky + kx * kx).astype(np.float32)
    out = np.empty((len(sigmas), h, w), dtype=np.float32)
    for i, s in enumerate(sigmas):
        # -s^2 * Laplacian of G_s  <->  s^2 k^2 exp(-s^2 k^2 / 2)
        tf = (s * s) * k2 * np.exp(-0.5 * s * s * k2)
        r = sfft.irfft2(F * tf, s=(H, W), workers=-1)
        out[i] = r[pad_y : pad_y + h, pad_x : pad_x + w]
    return out


def subpixel_ref(L, k, i, j):
    """Parabolic sub-pixel / sub-scale offsets of maxima of a whole LoG stack (reference)."""
    ns, h, w = L.shape
    i, j, k = i.astype(int), j.astype(int), k.astype(int)
    v0 = L[k, i, j]
    im, ip = np.clip(i - 1, 0, h - 1), np.clip(i + 1, 0, h - 1)
    jm, jp = np.clip(j - 1, 0, w - 1), np.clip(j + 1, 0, w - 1)
    km, kp = np.clip(k - 1, 0, ns - 1), np.clip(k + 1, 0, ns - 1)
    oy = np.where((i > 0) & (i < h - 1), _offset(L[k, im, j], v0, L[k, ip, j]), 0.0)
    ox = np.where((j > 0) & (j < w - 1), _offset(L[k, i, jm], v0, L[k, i, jp]), 0.0)
    ok = np.where((k > 0) & (k < ns - 1), _offset(L[km, i, j], v0, L[kp, i, j]), 0.0)
    return oy, ox, ok


def scan_stack_ref(L, thresholds, *, single_scale: bool = False):
    """:func:`scan_scale_space` on a whole stack ``L`` (the reference it is tested against)."""
    from ._crowd import spatial_maxima

    cand = K.scale_space_maxima(np.ascontiguousarray(L, np.float32), np.asarray(thresholds, float), 0)
    k, i, j = cand[:, 0], cand[:, 1], cand[:, 2]
    single = spatial_maxima(L, thresholds, 0) if single_scale else None
    return cand, subpixel_ref(L, k, i, j), single
