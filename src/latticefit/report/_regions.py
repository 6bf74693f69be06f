"""Part of :mod:`_lattice_report` (see its docstring): regions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import RegionError
from ..roi import Circle, Rect
from ._fov import MATRIX_MAX_SIDE_PX


# =====================================================================  region choice
@dataclass
class RegionChoice:
    """A region and how it was chosen (drawn on panel (a) and written to the JSON)."""

    role: str  # "matrix" or "dot"
    roi: Any  # Rect or Circle in HRTEM pixels
    method: str  # "given", "haadf", "anomaly", "fallback"
    note: str = ""

    def to_dict(self) -> dict:
        return {"role": self.role, "roi": self.roi.to_dict(), "method": self.method, "note": self.note}


def choose_dot_from_particles(x_px, y_px, diameter_px, shape, *, edge=None, min_radius_px: float = 16.0):
    """Pick the dot to analyse among mapped HAADF particles: the largest one whose disk lies inside the image.

    Parameters
    ----------
    x_px, y_px, diameter_px : array_like
        Particle centres and diameters in HRTEM pixels.
    shape : (int, int)
        HRTEM image shape.
    edge : array_like of bool, optional
        Particles touching the HAADF border (never chosen).
    min_radius_px : float
        Smallest circle radius returned (a measurement needs >= 32 px).

    Returns
    -------
    Circle or None
        None when no particle fits inside the image.
    """
    x = np.asarray(x_px, float)
    y = np.asarray(y_px, float)
    r = np.maximum(np.asarray(diameter_px, float) / 2.0, min_radius_px)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(r)
    if edge is not None:
        ok &= ~np.asarray(edge, bool)
    H, W = shape
    ok &= (x - r >= 0) & (y - r >= 0) & (x + r <= W - 1) & (y + r <= H - 1)
    if not np.any(ok):
        return None
    idx = np.flatnonzero(ok)
    # largest; ties broken by closeness to the centre
    dist = np.hypot(x[idx] - W / 2, y[idx] - H / 2)
    best = idx[np.lexsort((dist, -r[idx]))[0]]
    return Circle(float(x[best]), float(y[best]), float(r[best]))


def anomaly_map(image: np.ndarray, g_px: np.ndarray, *, smooth_px: float) -> np.ndarray:
    """Robust z-score map of local lattice and contrast anomalies of a lattice image.

    The image is Bragg-filtered around each reciprocal vector ``g`` (cycles
    per pixel, (gx, gy)) with a Gaussian mask whose real-space resolution is
    ``smooth_px``, as in geometric phase analysis. Three local measures are
    formed: the mean intensity (low-pass at the same resolution), the total
    Bragg-fringe amplitude ``sqrt(sum_g |A_g|^2)`` (contrast of the lattice)
    and the largest relative deviation of the local fringe frequency from
    ``g`` (a local lattice-parameter or rotation change). Each is turned into
    a robust z-score (median / MAD over the image without a border of three
    resolution lengths, set to 0); the map is the largest |z|.

    Parameters
    ----------
    image : ndarray
        2-D lattice image.
    g_px : ndarray (n, 2)
        Reciprocal vectors (gx, gy) in cycles per pixel (x right, y down).
    smooth_px : float
        Real-space resolution (Gaussian sigma, pixels) of the measures; about
        half the radius of the features sought.

    Returns
    -------
    ndarray
        Non-negative anomaly score, same shape as ``image``.
    """
    img0 = np.asarray(image, np.float64)
    H0, W0 = img0.shape
    from scipy import fft as sfft

    pad = int(min(3 * smooth_px, H0 - 1, W0 - 1))
    # mirror padding keeps the periodic FFT from wrapping one edge onto the other
    Hp, Wp = sfft.next_fast_len(H0 + 2 * pad), sfft.next_fast_len(W0 + 2 * pad)
    img = np.pad(img0 - img0.mean(), ((pad, Hp - H0 - pad), (pad, Wp - W0 - pad)), mode="reflect")
    H, W = img.shape
    F = sfft.fft2(img)
    ky = np.fft.fftfreq(H)[:, None]  # cycles/px
    kx = np.fft.fftfreq(W)[None, :]
    sig_k = 1.0 / (2 * np.pi * max(float(smooth_px), 1.0))  # Fourier-space sigma of a real-space Gaussian
    lowpass = np.exp(-(kx**2 + ky**2) / (2 * sig_k**2))

    def smooth(a):
        return sfft.ifft2(sfft.fft2(a) * lowpass).real

    measures = [sfft.ifft2(F * lowpass).real]
    power = np.zeros_like(img)
    freq_dev = np.zeros_like(img)
    for gx, gy in np.asarray(g_px, float).reshape(-1, 2):
        g = math.hypot(gx, gy)
        if g <= 0:
            continue
        mask = np.exp(-((kx - gx) ** 2 + (ky - gy) ** 2) / (2 * sig_k**2))
        c = sfft.ifft2(F * mask)
        cx_ = sfft.ifft2(F * mask * (2j * np.pi * kx))  # d/dx of the complex fringe field
        cy_ = sfft.ifft2(F * mask * (2j * np.pi * ky))
        a2 = np.abs(c) ** 2
        power += a2
        # local frequency = Im(conj(c) grad c) / (2 pi |c|^2) in cycles/px, averaged with weight |c|^2
        # (the weight keeps phase singularities of weak-fringe areas from dominating)
        w = np.maximum(smooth(a2), 1e-30)
        fx = smooth(np.imag(np.conj(c) * cx_) / (2 * np.pi)) / w
        fy = smooth(np.imag(np.conj(c) * cy_) / (2 * np.pi)) / w
        dev = np.hypot(fx - gx, fy - gy) / g
        freq_dev = np.maximum(freq_dev, dev)
    if np.any(power > 0):
        measures.append(np.sqrt(power))
        measures.append(freq_dev)
    measures = [m[pad : pad + H0, pad : pad + W0] for m in measures]
    H, W = H0, W0
    b = int(min(3 * smooth_px, H // 4, W // 4))
    inner = np.zeros((H, W), bool)
    inner[b : H - b, b : W - b] = True
    score = np.zeros((H, W))  # max |z| over the measures
    for m in measures:
        med = np.median(m[inner])
        mad = 1.4826 * np.median(np.abs(m[inner] - med))
        if not np.isfinite(mad) or mad <= 0:
            continue
        score = np.maximum(score, np.abs(m - med) / mad)
    score[~inner] = 0.0
    return score


def choose_dot_from_anomaly(score: np.ndarray, *, threshold: float = 3.5, min_radius_px: float = 16.0):
    """The strongest anomaly blob of :func:`anomaly_map` as a circle, or None when none passes ``threshold``.

    Returns
    -------
    (Circle or None, float)
        The region and the peak score.
    """
    H, W = score.shape
    peak = float(score.max()) if score.size else 0.0
    if not np.isfinite(peak) or peak < threshold:
        return None, peak
    # among the blobs above half the peak, the one with the largest integrated score (a dot is an extended
    # anomaly; a noise spike or a filter edge is small)
    lab, n = ndi.label(score >= 0.5 * peak)
    sums = ndi.sum(score, lab, index=np.arange(1, n + 1))
    best = int(np.argmax(sums)) + 1
    blob = lab == best
    peak = float(score[blob].max())
    if peak < threshold:
        return None, peak
    ys, xs = np.nonzero(blob)
    w = score[ys, xs]
    if not np.isfinite(w).all() or w.sum() <= 0:  # a flat map (blank image): the blob's plain centroid
        w = None
    cx, cy = float(np.average(xs, weights=w)), float(np.average(ys, weights=w))
    r = max(math.sqrt(blob.sum() / math.pi), min_radius_px)
    r = min(r, cx, cy, W - 1 - cx, H - 1 - cy)
    if r < min_radius_px:
        return None, peak
    return Circle(cx, cy, r), peak


def choose_matrix_region(
    shape, exclude: np.ndarray | None, *, side_px: int = MATRIX_MAX_SIDE_PX, min_side_px: int = 48
) -> Rect:
    """The largest square (up to ``side_px``) inside the image that contains no excluded pixel (the dots).

    Among the positions that hold a square of that side, the one farthest from the dots and from the
    border is taken. When not even a ``min_side_px`` square fits, the ``min_side_px`` square centred
    where the most room is (it then touches a dot).

    Parameters
    ----------
    shape : (int, int)
        Image shape.
    exclude : ndarray of bool or None
        Pixels to stay away from (dots, with a margin); None: the centre square.
    side_px : int
        Largest side wanted (default :data:`MATRIX_MAX_SIDE_PX`).
    min_side_px : int
        Smallest side returned.

    Raises
    ------
    RegionError
        When the image is smaller than ``min_side_px``.

    Examples
    --------
    >>> ex = np.zeros((400, 400), bool); ex[150:250, 150:250] = True
    >>> r = choose_matrix_region((400, 400), ex, side_px=512)
    >>> r.w >= 149 and not ex[r.y:r.y + r.h, r.x:r.x + r.w].any()
    True
    """
    H, W = shape
    if min(H, W) < min_side_px:
        raise RegionError(f"image {W}x{H} px is too small for a {min_side_px} px matrix region")
    if exclude is None or not np.any(exclude):
        side = int(min(side_px, H, W))
        return Rect((W - side) // 2, (H - side) // 2, side, side)
    exclude = np.asarray(exclude, bool)
    # chessboard distance to the nearest excluded pixel: a square of half-extent m (side 2m + 1) centred on a
    # pixel is clear when m < cheb; it is inside the image when m <= border
    cheb = ndi.distance_transform_cdt(~exclude, metric="chessboard").astype(float)
    yy, xx = np.mgrid[:H, :W]
    border = np.minimum(np.minimum(yy, H - 1 - yy), np.minimum(xx, W - 1 - xx)).astype(float)
    m_max = np.where(exclude, -1.0, np.minimum(cheb - 1.0, border))
    side = int(min(side_px, 2 * m_max.max() + 1))
    if side < min_side_px:  # nowhere clear: the most room, at the smallest size
        side = int(min_side_px)
        iy, ix = np.unravel_index(int(np.argmax(m_max)), m_max.shape)
    else:
        m_need = math.ceil((side - 1) / 2)
        # preference among the positions that hold the square: far from the dots and from the border
        dist = ndi.distance_transform_edt(~exclude)
        pref = np.where(m_max >= m_need, np.minimum(dist, 2.0 * border), -1.0)
        iy, ix = np.unravel_index(int(np.argmax(pref)), pref.shape)
    x = int(min(max(ix - (side - 1) // 2, 0), W - side))
    y = int(min(max(iy - (side - 1) // 2, 0), H - side))
    return Rect(x, y, side, side)


def anomaly_blobs(score: np.ndarray, *, threshold: float = 3.5) -> np.ndarray:
    """Pixels of every blob of an :func:`anomaly_map` whose peak passes ``threshold``.

    A blob is a connected region above half the threshold (so it reaches the dot's soft rim, where the
    score falls off). These are all the candidate dots, not only the chosen one; the matrix region
    avoids them.
    """
    score = np.asarray(score, float)
    out = np.zeros(score.shape, bool)
    if not score.size or not np.isfinite(score).any():
        return out
    lab, n = ndi.label(score >= 0.5 * threshold)
    if n == 0:
        return out
    peaks = ndi.maximum(score, lab, index=np.arange(1, n + 1))
    keep = np.flatnonzero(np.asarray(peaks) >= threshold) + 1
    return np.isin(lab, keep)
