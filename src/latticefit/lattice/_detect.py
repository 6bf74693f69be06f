"""Spot detection on a half-plane power spectrum: radial background, significance, local maxima.

The statistic is the power summed over a sliding 2 x 2 cell of (possibly
binned) spectrum bins divided by the mean background power at that |g|, the
background being the median over a ring of constant |g| converted to a mean
for Gamma-distributed (summed exponential) noise power. The threshold is set
from that Gamma law so that pure noise gives a spot in about ``p_false`` of
images. DC, the Nyquist border and spacings outside the d-range are excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special  # not scipy.stats: its import costs about a second of every command

from ._kernels import local_maxima_nb, ring_median_nb

DETECT_SIZE = 1024  # spectra larger than this (per axis) are binned for detection
NYQUIST_FRACTION = 0.47  # |fx|, |fy| < this many cycles/px
MIN_RADIUS_BINS = 4.0


@dataclass
class Candidates:
    """Spot candidates: full-resolution peak bins (ky, kx), kx >= 0, and their significance."""

    ky: np.ndarray  # integer frequency index (may be negative), full resolution
    kx: np.ndarray
    ratio: np.ndarray  # cell power / background mean
    threshold: float
    n_cells: int
    bin_factor: int


def _gamma_mean_over_median(k: float) -> float:
    return k / special.gammaincinv(k, 0.5)  # = scipy.stats.gamma.median(k)


def detect_candidates(
    P: np.ndarray, shape, pixel_size_nm, *, d_range_nm=None, p_false: float = 1e-3, max_candidates: int = 64
) -> Candidates:
    """Local maxima of the power ``P`` (rfft2 layout, rows in fft order) that stand above the radial background.

    Parameters
    ----------
    P : ndarray (M, N // 2 + 1)
        Half-plane power spectrum of an M x N region.
    shape : (int, int)
        (M, N).
    pixel_size_nm : (float, float)
        (py, px), for the d-range.
    d_range_nm : (float, float) or None
        Keep spacings d_min <= d <= d_max (nm).
    p_false : float
        Wanted probability of a false candidate in a pure-noise image.
    max_candidates : int
        Most candidates returned (the most significant).
    """
    M, N = shape
    b = max(1, int(math.ceil(max(M, N) / DETECT_SIZE)))
    Ps, ky_first = _binned_rows(P, M, b)
    C = _cell_sums(Ps)
    cells = _cell_grid(ky_first, C.shape, shape, pixel_size_nm, b, d_range_nm)
    k = 4.0 * b * b  # exponential bins per cell
    bg, ring = _background(C, cells, k, shape, pixel_size_nm, b)
    ratio, thr, n_cells = _significance(C, bg, ring, cells.valid, k, p_false)
    iy, ix = local_maxima_nb(ratio, cells.valid, thr, 1)
    val = ratio[iy, ix]
    order = np.argsort(-val)[:max_candidates]
    iy, ix, val = iy[order], ix[order], val[order]
    kys, kxs = _peak_bins(P, iy, ix, ky_first, b, M)
    if len(kys):
        # background mean per full-res bin at each candidate, for the ridge test
        bg_bin = bg[ring[iy, ix]] / k
        ridge = np.array([_on_ridge(P, int(y), int(x), float(bb)) for y, x, bb in zip(kys, kxs, bg_bin)])
        keep = ~ridge
        kys, kxs, val = kys[keep], kxs[keep], val[keep]
    return Candidates(ky=kys, kx=kxs, ratio=val, threshold=float(thr), n_cells=n_cells, bin_factor=b)


def _binned_rows(P: np.ndarray, M: int, b: int):
    """``P`` binned b x b, rows sorted by signed ky; returns (binned power, signed ky of each row's first bin).

    Binning is in fft row order (blocks of b rows hold contiguous ky); the rows are sorted afterwards.
    """
    Mb, Wb = M // b, P.shape[1] // b
    if b > 1:
        Pb = P[: Mb * b, : Wb * b].reshape(Mb, b, Wb, b).sum(axis=(1, 3), dtype=np.float32)
    else:
        Pb = P
    k0 = np.arange(Mb) * b
    ky_first = np.where(k0 < (M + 1) // 2, k0, k0 - M)  # signed ky of each block's first row
    order = np.argsort(ky_first, kind="stable")
    return Pb[order], ky_first[order]


def _cell_sums(Ps: np.ndarray) -> np.ndarray:
    """Sliding 2 x 2 cell sums (anchored top-left)."""
    C = Ps[:-1, :-1] + Ps[1:, :-1]
    C += Ps[:-1, 1:]
    C += Ps[1:, 1:]
    return C


@dataclass
class _CellGrid:
    """The cells' |g| (1/nm) and whether each is searched (off DC, inside Nyquist and the d-range)."""

    g_nm: np.ndarray
    valid: np.ndarray


def _cell_grid(ky_first, cell_shape, shape, pixel_size_nm, b: int, d_range_nm) -> _CellGrid:
    """|g| at each cell centre (full-res (ky, kx)) and the searched cells.

    A cell straddling the Nyquist wrap in ky is not a cell; the disc around DC (in bins) and the
    d-range are excluded as |g| limits per cell.
    """
    M, N = shape
    py, px = pixel_size_nm
    _, Wc = cell_shape
    contiguous = (ky_first[1:] - ky_first[:-1]) == b
    ky_c = (ky_first[:-1] + b - 0.5).astype(np.float32)
    kx_c = (np.arange(Wc) * b + b - 0.5).astype(np.float32)
    fy = ky_c / M
    fx = kx_c / N
    gy2 = (fy / py) ** 2
    gx2 = (fx / px) ** 2
    g_nm = np.sqrt(gy2[:, None] + gx2[None, :])
    row_ok = contiguous & (np.abs(fy) < NYQUIST_FRACTION)
    col_ok = np.abs(fx) < NYQUIST_FRACTION
    r_min = max(MIN_RADIUS_BINS, 2.0 * b)
    valid = (ky_c[:, None] ** 2 + (kx_c[None, :] * (M / N)) ** 2) >= r_min**2
    valid &= row_ok[:, None]
    valid &= col_ok[None, :]
    if d_range_nm is not None:
        dmin, dmax = d_range_nm
        if dmin:
            valid &= g_nm <= 1.0 / dmin
        if dmax and np.isfinite(dmax):
            valid &= g_nm >= 1.0 / dmax
    return _CellGrid(g_nm=g_nm, valid=valid)


def _background(C, cells: _CellGrid, k: float, shape, pixel_size_nm, b: int):
    """Mean background cell power per ring of |g| (one binned bin wide); returns (bg per ring, ring per cell).

    The ring median of the searched cells, averaged over +-2 rings (the background varies slowly
    with |g|), converted to a mean for the Gamma law of k exponential bins.
    """
    M, N = shape
    py, px = pixel_size_nm
    dg = b / min(M * py, N * px)  # ring width in 1/nm: one (binned) bin
    ring = (cells.g_nm / np.float32(dg)).astype(np.int64)
    n_rings = int(ring.max()) + 1
    ring_used = np.where(cells.valid, ring, -1)
    med = ring_median_nb(C, ring_used, n_rings, 256)
    ok = np.isfinite(med)
    sm = np.convolve(np.where(ok, med, 0.0), np.ones(5), "same") / np.maximum(np.convolve(ok, np.ones(5), "same"), 1)
    med = np.where(ok, sm, np.nan)
    bg = (med * _gamma_mean_over_median(k)).astype(np.float32)
    return bg, ring


def _significance(C, bg, ring, valid, k: float, p_false: float):
    """Cell power over background (0 off the searched cells), the threshold and the number of cells.

    The per-cell false-alarm rate makes the image's false-alarm rate ``p_false``; a cell holds k bins
    of mean 1/k each, and sliding 2 x 2 cells overlap (a quarter of them are independent).
    """
    bgc = bg[ring]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = C / bgc
    ratio[~(valid & (bgc > 0))] = 0.0
    n_cells = int(np.count_nonzero(valid))
    n_indep = max(n_cells / 4.0, 1.0)  # sliding 2x2 cells overlap
    thr = special.gammainccinv(k, p_false / n_indep) * (1.0 / k)  # = stats.gamma.isf(q, k, scale=1 / k)
    return ratio, thr, n_cells


def _peak_bins(P, iy, ix, ky_first, b: int, M: int):
    """Full-resolution peak bin inside each cell (+- one bin margin), rows by ky modulo M."""
    kys, kxs = [], []
    for cy, cx in zip(iy, ix):
        ky_lo = int(ky_first[cy]) - 1
        kx_lo = cx * b - 1
        rows = np.arange(ky_lo, ky_lo + 2 * b + 2)
        c_lo = max(kx_lo, 0)
        c_hi = min(kx_lo + 2 * b + 2, P.shape[1])
        blk = P[rows % M, c_lo:c_hi]
        j = int(np.argmax(blk))
        jy, jx = divmod(j, blk.shape[1])
        kys.append(int(rows[jy]))
        kxs.append(c_lo + jx)
    return np.asarray(kys, np.int64), np.asarray(kxs, np.int64)


def _on_ridge(P: np.ndarray, ky: int, kx: int, bg: float, dist: int = 3) -> bool:
    """True when the peak at (ky, kx) of the half-plane power ``P`` is a bump on a streak, not a compact spot.

    A streak (e.g. from scan-line jitter) leaves bins at Chebyshev distance
    ``dist`` on opposite sides of the peak with more than half its excess power;
    a spot (a tone) does not.
    """
    M, W = P.shape
    peak = float(P[ky % M, kx]) - bg
    if peak <= 0:
        return False
    hot = []
    for dy in range(-dist, dist + 1):
        for dx in range(-dist, dist + 1):
            if max(abs(dy), abs(dx)) != dist:
                continue
            y, x = ky + dy, kx + dx
            if x < 0:  # Friedel mate
                y, x = -y, -x
            if x >= W:
                continue
            if float(P[y % M, x]) - bg > 0.5 * peak:
                hot.append((dy, dx))
    for i in range(len(hot)):
        for j in range(i + 1, len(hot)):
            if hot[i][0] * hot[j][0] + hot[i][1] * hot[j][1] < 0:
                return True
    return False
