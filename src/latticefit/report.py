"""The Fig. 4 lattice report: HRTEM + HAADF overview, matrix and dot regions, their FFTs, a comparison table.

:func:`build_lattice_report` chooses (or takes) a matrix region and a dot
region in an HRTEM image, measures the lattice of each with
:func:`latticefit.lattice.measure_lattice`, compares them with
:func:`latticefit.lattice.compare_regions`, optionally indexes the spots
against phases, and draws a multi-panel figure with
:func:`plot_lattice_report`:

- (a) the HRTEM overview with a scale bar and the analysed regions outlined;
- (b) the HAADF of the same area with the segmented dots outlined (when given);
- (c), (e) the enlarged matrix and dot regions with measured fringes drawn and labelled;
- (d), (f) their power spectra on calibrated reciprocal axes (1/nm), the refined
  spots circled and the angle between the basis spots marked;
- a table of each reflection in both regions, their difference with its
  uncertainty and whether it is significant.

Regions not given are chosen automatically: the dot from the HAADF
segmentation (HAADF pixel coordinates are mapped to HRTEM pixels through the
physical size, when both images cover the same field of view) or, without a
usable HAADF, from a local lattice/contrast anomaly map of the HRTEM itself;
the matrix as a square as far from every dot as possible.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from . import _plotstyle as ps
from .errors import AnalysisError, LatticefitWarning, RegionError
from .micrograph import Micrograph, as_micrograph
from .roi import Circle, Rect, as_roi

__all__ = [
    "LatticeReport",
    "RegionChoice",
    "FieldOfViewCheck",
    "check_fields_of_view",
    "haadf_to_hrtem_points",
    "anomaly_map",
    "choose_dot_from_particles",
    "choose_dot_from_anomaly",
    "choose_matrix_region",
    "fringe_phase",
    "fringe_segments",
    "hkl_label",
    "plain_text",
    "comparison_rows",
    "summary_lines",
    "build_lattice_report",
    "plot_lattice_report",
    "lattice_report",
]

#: relative field-of-view difference above which HAADF outlines are not mapped onto the HRTEM
FOV_RTOL = 0.03
#: real-space resolution (nm) of the HRTEM anomaly map used to find a dot without HAADF (dots are a few nm)
ANOMALY_RESOLUTION_NM = 0.8
#: window of the displayed power spectra (the measurement uses its own); Hann keeps the spots compact
FFT_DISPLAY_WINDOW = "hann"
#: largest side (px) of the automatic matrix square (the largest square clear of every dot, capped here)
MATRIX_MAX_SIDE_PX = 512
#: the automatic dot disk is this fraction of the segmented dot's radius (keeps the soft rim and the interface out)
DOT_RADIUS_FRACTION = 0.8
#: margin (nm) kept between the automatic matrix square and any dot
DOT_MARGIN_NM = 0.5


# =====================================================================  geometry
@dataclass
class FieldOfViewCheck:
    """Whether a HAADF and an HRTEM image cover the same area.

    Attributes
    ----------
    agree : bool
        Both fields of view (shape × pixel size) agree within ``rtol`` on each axis.
    hrtem_fov_nm, haadf_fov_nm : (float, float) or None
        (height, width) in nm; None for an uncalibrated image.
    rel_diff : (float, float) or None
        Relative difference along (y, x).
    scale_yx : (float, float) or None
        HRTEM pixels per HAADF pixel along (y, x) (only when ``agree``).
    message : str
        One line for the figure and stderr ('' when they agree).
    """

    agree: bool
    hrtem_fov_nm: tuple[float, float] | None
    haadf_fov_nm: tuple[float, float] | None
    rel_diff: tuple[float, float] | None
    scale_yx: tuple[float, float] | None
    message: str = ""

    def to_dict(self) -> dict:
        return {"agree": self.agree, "hrtem_fov_nm": self.hrtem_fov_nm, "haadf_fov_nm": self.haadf_fov_nm,
                "rel_diff": self.rel_diff, "scale_yx": self.scale_yx, "message": self.message}


def _fov_nm(mg: Micrograph):
    if mg.pixel_size_nm is None:
        return None
    return (mg.shape[0] * mg.pixel_size_nm[0], mg.shape[1] * mg.pixel_size_nm[1])


def check_fields_of_view(hrtem, haadf, *, rtol: float = FOV_RTOL) -> FieldOfViewCheck:
    """Check that an HRTEM and a HAADF image show the same area (same physical size).

    Parameters
    ----------
    hrtem, haadf : Micrograph
        The two images.
    rtol : float
        Largest relative difference of height and width accepted.

    Returns
    -------
    FieldOfViewCheck

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit import Micrograph
    >>> a = Micrograph(np.zeros((512, 512)), pixel_size_nm=(0.02, 0.02))
    >>> b = Micrograph(np.zeros((128, 128)), pixel_size_nm=(0.08, 0.08))
    >>> check_fields_of_view(a, b).scale_yx
    (4.0, 4.0)
    """
    fa, fb = _fov_nm(hrtem), _fov_nm(haadf)
    if fa is None or fb is None:
        which = "HRTEM" if fa is None else "HAADF"
        return FieldOfViewCheck(False, fa, fb, None, None,
                                f"{which} image has no pixel size: cannot check that the HAADF shows the same area; "
                                "dot outlines are not mapped onto the HRTEM")
    rel = (abs(fb[0] - fa[0]) / fa[0], abs(fb[1] - fa[1]) / fa[1])
    if max(rel) > rtol:
        msg = (f"HAADF field of view {fb[1]:.3g} x {fb[0]:.3g} nm differs from the HRTEM's {fa[1]:.3g} x {fa[0]:.3g} nm "
               f"by {100 * max(rel):.0f}% (> {100 * rtol:.0f}%): not the same area, dot outlines not mapped onto the HRTEM")
        return FieldOfViewCheck(False, fa, fb, rel, None, msg)
    scale = (hrtem.shape[0] / haadf.shape[0], hrtem.shape[1] / haadf.shape[1])
    return FieldOfViewCheck(True, fa, fb, rel, (float(scale[0]), float(scale[1])), "")


def haadf_to_hrtem_points(x_px, y_px, fov: FieldOfViewCheck):
    """Map HAADF pixel coordinates to HRTEM pixel coordinates (pixel centres, same field of view)."""
    if not fov.agree or fov.scale_yx is None:
        raise AnalysisError("the HAADF and HRTEM fields of view differ: HAADF positions cannot be mapped")
    sy, sx = fov.scale_yx
    x = (np.asarray(x_px, float) + 0.5) * sx - 0.5
    y = (np.asarray(y_px, float) + 0.5) * sy - 0.5
    return x, y


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
    measures = [m[pad:pad + H0, pad:pad + W0] for m in measures]
    H, W = H0, W0
    b = int(min(3 * smooth_px, H // 4, W // 4))
    inner = np.zeros((H, W), bool)
    inner[b:H - b, b:W - b] = True
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


def choose_matrix_region(shape, exclude: np.ndarray | None, *, side_px: int = MATRIX_MAX_SIDE_PX,
                         min_side_px: int = 48) -> Rect:
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


# =====================================================================  fringes
def fringe_phase(sub: np.ndarray, g_inv_nm, pixel_size_nm) -> float:
    """Phase φ (rad) of the fringes of reciprocal vector ``g`` in an image: maxima where g·r = n − φ/2π.

    ``r`` is measured in nm from the centre of pixel (0, 0) of ``sub``; ``g`` is (gx, gy) in 1/nm.
    """
    sub = np.asarray(sub, np.float64)
    gp = _pixel_matrix(pixel_size_nm).T @ np.asarray(g_inv_nm, float)  # cycles/px
    yy, xx = np.mgrid[: sub.shape[0], : sub.shape[1]]
    arg = 2 * np.pi * (gp[0] * xx + gp[1] * yy)
    c = np.sum((sub - sub.mean()) * np.exp(-1j * arg))
    return float(np.angle(c))


def fringe_segments(g_inv_nm, phase: float, pixel_size_nm, center_px, *, n_lines: int = 5,
                    half_length_px: float = 20.0):
    """End points (pixels) of ``n_lines`` fringe-maximum lines perpendicular to ``g`` around ``center_px``.

    Returns
    -------
    ndarray (n_lines, 2, 2)
        ``[[x0, y0], [x1, y1]]`` per line, in the pixel frame where ``phase`` was measured.
    """
    gx, gy = float(g_inv_nm[0]), float(g_inv_nm[1])
    A = _pixel_matrix(pixel_size_nm)
    px = math.sqrt(abs(np.linalg.det(A)))
    g = math.hypot(gx, gy)
    u = np.array([gx, gy]) / g  # unit vector along g (nm frame)
    c_nm = A @ np.asarray(center_px, float)
    t0 = gx * c_nm[0] + gy * c_nm[1]
    off = phase / (2 * np.pi)
    n0 = round(t0 + off)
    perp = np.array([-u[1], u[0]])
    segs = []
    for k in range(n_lines):
        n = n0 + k - (n_lines - 1) // 2
        foot = c_nm + u * ((n - off - t0) / g)
        for_nm = np.array([foot - perp * half_length_px * px, foot + perp * half_length_px * px])
        segs.append(np.linalg.solve(A, for_nm.T).T)
    return np.array(segs)


def _pixel_matrix(pixel_size_nm) -> np.ndarray:
    """A (py, px) pair or a 2x2 pixel-to-nm matrix (x, y order) -> the matrix."""
    a = np.asarray(pixel_size_nm, float)
    return a.reshape(2, 2) if a.size == 4 else np.diag([a[1], a[0]])


def hkl_label(hkl, *, mathtext: bool = True) -> str:
    """``(0 1 -1)`` as ``(01\u0305 1)``-style text: mathtext with overbars for negative indices.

    Examples
    --------
    >>> hkl_label((0, 1, -1), mathtext=False)
    '(01-1)'
    >>> hkl_label((0, 1, -1))
    '$(01\\\\bar{1})$'
    """
    if hkl is None:
        return ""
    if isinstance(hkl, str):
        parts = _parse_hkl_text(hkl)
        if parts is None:
            return hkl
        hkl = parts
    idx = [int(round(v)) for v in hkl]
    if not mathtext:
        return "(" + "".join(str(v) for v in idx) + ")"
    body = "".join(rf"\bar{{{-v}}}" if v < 0 else str(v) for v in idx)
    return f"$({body})$"


def _parse_hkl_text(text: str):
    t = text.strip().strip("()[]{}").replace(",", " ")
    if " " in t.strip():
        try:
            return [int(v) for v in t.split()]
        except ValueError:
            return None
    out, i = [], 0
    while i < len(t):
        if t[i] == "-" and i + 1 < len(t) and t[i + 1].isdigit():
            out.append(-int(t[i + 1]))
            i += 2
        elif t[i].isdigit():
            out.append(int(t[i]))
            i += 1
        else:
            return None
    return out if len(out) in (3, 4) else None


# =====================================================================  result adapters
# Thin accessors over the LatticeResult / comparison / indexing objects, so the drawing
# code below only sees plain numbers.
def _spot_table(lattice):
    """The spots DataFrame of a LatticeResult."""
    return lattice.spots


def _basis_rows(lattice) -> tuple[int, int] | None:
    """Row positions (in ``lattice.spots``) of the two basis spots, or None."""
    spots = _spot_table(lattice)
    if spots is None or len(spots) == 0:
        return None
    basis = getattr(lattice, "basis", None) or {}
    for k1, k2 in (("g1_index", "g2_index"), ("index_1", "index_2"), ("i", "j"), ("g1", "g2")):
        if k1 in basis and k2 in basis and not isinstance(basis[k1], (list, tuple, dict)):
            try:
                return int(basis[k1]), int(basis[k2])
            except (TypeError, ValueError):
                pass
    # fall back: the two strongest first-order spots not parallel
    order = spots["order"].to_numpy() if "order" in spots else np.ones(len(spots))
    snr = spots["snr"].to_numpy() if "snr" in spots else np.ones(len(spots))
    cand = [i for i in np.argsort(-snr) if order[i] == 1] or list(np.argsort(-snr))
    if len(cand) < 2:
        return (int(cand[0]), None) if cand else None
    az = spots["azimuth_deg"].to_numpy()
    i = int(cand[0])
    for j in cand[1:]:
        dif = abs(((az[j] - az[i]) + 90.0) % 180.0 - 90.0)
        if dif > 10.0:
            return i, int(j)
    return i, None


def _basis_angle(lattice, rows) -> tuple[float, float]:
    """Acute angle (deg) between the two drawn spots and its uncertainty.

    The fitted basis angle when the rows are the basis spots, else the angle
    table's entry for the pair, else computed from the two spots.
    """
    basis = getattr(lattice, "basis", None) or {}
    if rows is None or len(rows) < 2 or rows[1] is None:
        return np.nan, np.nan
    if "angle_deg" in basis and {basis.get("g1_index"), basis.get("g2_index")} == set(rows):
        return float(basis["angle_deg"]), float(basis.get("angle_err_deg", np.nan))
    angles = getattr(lattice, "angles", None)
    if angles is not None and len(angles):
        for r in angles.to_dict("records"):
            if {int(r["spot_i"]), int(r["spot_j"])} == set(rows):
                return float(r["angle_deg"]), float(r["angle_err_deg"])
    spots = _spot_table(lattice)
    a = spots.iloc[list(rows)]
    g = a[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    ang = math.degrees(math.acos(np.clip(abs(np.dot(g[0], g[1])) / np.linalg.norm(g[0]) / np.linalg.norm(g[1]), 0, 1)))
    err = math.hypot(*a["azimuth_err_deg"].to_numpy(float)) if "azimuth_err_deg" in a else np.nan
    return ang, err


# =====================================================================  analysis
@dataclass
class RegionResult:
    """One analysed region: where it is, its lattice, its power spectrum, its indexing."""

    choice: RegionChoice
    lattice: Any
    spectrum: Any
    indexing: Any = None
    hkl: dict = field(default_factory=dict)  # spot row -> (h, k, l)
    basis_rows: tuple | None = None  # rows of the two spots drawn (default: the lattice basis)

    @property
    def role(self) -> str:
        return self.choice.role

    def drawn_rows(self):
        """Rows (in ``lattice.spots``) of the two spots whose fringes, labels and angle are drawn."""
        return self.basis_rows if self.basis_rows is not None else _basis_rows(self.lattice)

    def display_sign(self, row: int) -> int:
        """+1/-1: which Friedel mate of spot ``row`` the figure labels (the drawn pair at an acute angle)."""
        return int(_display_signs(self.lattice.spots, self.drawn_rows())[row])

    def d_label(self, row: int, *, symbol_index: int | None = None) -> str:
        """``'d(01-1) = 4.195 ± 0.003 Å'`` (hkl when indexed, else d1/d2) for spot ``row``."""
        s = self.lattice.spots.iloc[row]
        val = ps.format_uncertain(float(s["d_angstrom"]), float(s.get("d_err_angstrom", np.nan)), "Å")
        hkl = self.hkl.get(row)
        if hkl is not None:
            sign = self.display_sign(row)
            return f"d{hkl_label(tuple(sign * v for v in hkl))} = {val}"
        name = f"$d_{symbol_index}$" if symbol_index is not None else "d"
        return f"{name} = {val}"


@dataclass
class LatticeReport:
    """Everything the Fig. 4 report shows, and the figure itself.

    Attributes
    ----------
    hrtem, haadf : Micrograph
        The images (``haadf`` may be None).
    regions : dict
        ``{'matrix': RegionResult, 'dot': RegionResult}``.
    comparison : object or None
        :func:`latticefit.lattice.compare_regions` result (``.table``, ``.to_dict()``).
    haadf_particles : ParticleResult or None
        The HAADF segmentation.
    fov : FieldOfViewCheck or None
    anomaly : ndarray or None
        The HRTEM anomaly map when the dot was chosen from it.
    notes : list of str
        Warnings shown on the figure and printed on stderr.
    figure : matplotlib Figure or None
        Filled by :func:`plot_lattice_report`.
    """

    hrtem: Micrograph
    haadf: Micrograph | None
    regions: dict
    comparison: Any = None
    haadf_particles: Any = None
    fov: FieldOfViewCheck | None = None
    anomaly: np.ndarray | None = None
    phases: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    figure: Any = None
    whole: Any = None  # LatticeResult of the whole HRTEM (reference spots, region size)
    calibration: Any = None  # the self-calibration on the matrix region (calibrate_on='matrix'), or None

    # ------------------------------------------------------------ outputs
    def reflections_table(self):
        """One row per reflection and region: d, its uncertainty, azimuth, hkl (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for role, reg in self.regions.items():
            sp = reg.lattice.spots
            for i in range(len(sp)):
                r = {"region": role}
                hkl = reg.hkl.get(i)
                r["hkl"] = hkl_label(hkl, mathtext=False) if hkl is not None else ""
                for c in sp.columns:
                    r[c] = sp.iloc[i][c]
                rows.append(r)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        out = {
            "hrtem": self.hrtem.summary(),
            "haadf": self.haadf.summary() if self.haadf is not None else None,
            "field_of_view": self.fov.to_dict() if self.fov is not None else None,
            "regions": {},
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "phases": [getattr(p, "name", str(p)) for p in self.phases],
            "whole_image_basis": getattr(self.whole, "basis", None),
            "notes": list(self.notes),
            "calibration": (self.calibration.to_dict() if self.calibration is not None
                            else self.hrtem.calibration_info),
        }
        for role, reg in self.regions.items():
            out["regions"][role] = {
                "choice": reg.choice.to_dict(),
                "lattice": reg.lattice.to_dict(),
                "hkl": {str(k): list(v) if not isinstance(v, str) else v for k, v in reg.hkl.items()},
                "indexing": reg.indexing.to_dict() if hasattr(reg.indexing, "to_dict") else None,
            }
        if self.haadf_particles is not None:
            out["haadf_particles"] = self.haadf_particles.summary if hasattr(self.haadf_particles, "summary") else None
        return out

    def comparison_table(self):
        """The figure's table as a DataFrame: every reflection measured in both regions (all rows)."""
        import pandas as pd

        cmp = self.comparison
        if cmp is None or len(cmp.table) == 0:
            return pd.DataFrame(columns=["reflection", "hkl"])
        t = cmp.table.copy()
        names = [row[0] for row in comparison_rows(self, mathtext=False)]
        t.insert(0, "reflection", names)
        mat = self.regions["matrix"]
        t.insert(1, "hkl", [hkl_label(tuple(mat.display_sign(int(i)) * v for v in mat.hkl[int(i)]), mathtext=False)
                            if int(i) in mat.hkl else "" for i in t["spot_a"]])
        t["delta_d_angstrom"] = t["d_b_angstrom"] - t["d_a_angstrom"]
        t["delta_d_err_angstrom"] = np.hypot(t["d_a_err_angstrom"], t["d_b_err_angstrom"])
        return t.rename(columns={"d_a_angstrom": "d_matrix_angstrom", "d_a_err_angstrom": "d_matrix_err_angstrom",
                                 "d_b_angstrom": "d_dot_angstrom", "d_b_err_angstrom": "d_dot_err_angstrom",
                                 "spot_a": "spot_matrix", "spot_b": "spot_dot"})

    def save(self, out) -> list[Path]:
        """Write the figure (``OUT.pdf|png|svg`` + a 300-dpi PNG), ``OUT.json``, ``OUT.csv`` (the comparison
        table: one row per reflection measured in both regions) and ``OUT_spots.csv`` (every spot of each region)."""
        from .serialize import atomic_write_text, write_json

        paths = ps.output_paths(out)
        spots_csv = paths["csv"].with_name(paths["csv"].stem + "_spots.csv")
        if self.figure is None:
            plot_lattice_report(self)
        written = ps.save_figure(self.figure, paths["figure"])
        write_json(self.to_dict(), paths["json"])
        atomic_write_text(paths["csv"], self.comparison_table().to_csv(index=False))
        atomic_write_text(spots_csv, self.reflections_table().to_csv(index=False))
        return written + [paths["json"], paths["csv"], spots_csv]


def _warn(notes: list, message: str) -> None:
    notes.append(message)
    warnings.warn(message, LatticefitWarning, stacklevel=3)


#: a region should hold at least this many periods of the largest lattice spacing
MIN_PERIODS_PER_REGION = 10


def _min_region_px(whole, pyx, shape) -> int:
    """Side (px) of a region holding MIN_PERIODS_PER_REGION periods of the strongest first-order spacing."""
    H, W = shape
    sp = getattr(whole, "spots", None)
    d_nm = None
    if sp is not None and len(sp):
        first = sp[sp["order"] == 1] if "order" in sp else sp
        first = first if len(first) else sp
        top = first.sort_values("snr", ascending=False).head(3) if "snr" in first else first.head(3)
        d_nm = float(top["d_angstrom"].max()) / 10.0
    side = MIN_PERIODS_PER_REGION * d_nm / min(pyx) if d_nm else min(H, W) / 4
    return int(np.clip(side, 64, max(64, min(H, W) / 2)))


def _shrunk(c: Circle) -> Circle:
    """The dot disk measured: DOT_RADIUS_FRACTION of the segmented radius (at least 16 px: a 32 px region)."""
    r = max(DOT_RADIUS_FRACTION * c.r, min(c.r, 16.0))
    return Circle(c.x, c.y, r)


def _fit_circle_inside(c: Circle, r: float, shape) -> Circle:
    """A circle of radius ``r`` (at most half the shorter side) near ``c``'s centre, wholly inside the image."""
    H, W = shape
    r = float(min(r, (min(H, W) - 2) / 2))
    x = float(np.clip(c.x, r, W - 1 - r))
    y = float(np.clip(c.y, r, H - 1 - r))
    return Circle(x, y, r)


def _particles_in_hrtem(particles, fov: FieldOfViewCheck):
    """Mapped particle centres and diameters in HRTEM pixels, plus edge flags."""
    t = particles.table
    x, y = haadf_to_hrtem_points(t["x_px"].to_numpy(float), t["y_px"].to_numpy(float), fov)
    # diameters: nm -> HRTEM px (the HRTEM pixel size along x)
    return x, y, t["diameter_nm"].to_numpy(float), (t["edge"].to_numpy(bool) if "edge" in t else None)


def build_lattice_report(hrtem, haadf=None, *, roi_matrix=None, roi_dot=None, phases=None, pixel_size=None,
                         d_range_angstrom=None, diameter_range_nm=None, free_scale=False, calibration=None,
                         calibrate_on=None, keep_unindexed=False) -> LatticeReport:
    """Choose the regions, measure and compare their lattices, index them: everything Fig. 4 shows.

    Parameters
    ----------
    hrtem : Micrograph, Signal2D or ndarray
        The calibrated HRTEM image.
    haadf : Micrograph, Signal2D or ndarray, optional
        HAADF-STEM of the same area; its segmented dots are outlined and used to
        place the dot region when ``roi_dot`` is not given.
    roi_matrix : Rect or (x, y, w, h), optional
        Matrix region in HRTEM pixels (default: a square far from every dot).
    roi_dot : Circle or (x, y, r), optional
        Dot region in HRTEM pixels (default: from the HAADF, else from the
        HRTEM's local lattice/contrast anomaly map).
    phases : list of str or Phase, optional
        Phases to index the spots against (:func:`latticefit.crystal.get_phase` names).
    pixel_size : float or str, optional
        Overrides the HRTEM calibration.
    d_range_angstrom : (float, float), optional
        Spacings considered by :func:`latticefit.lattice.measure_lattice`.
    diameter_range_nm : (float, float), optional
        Dot sizes kept by :func:`latticefit.particles.find_particles` on the HAADF.
    free_scale : bool
        Index with a free scale (``latticefit.indexing.index_lattice(..., free_scale=True)``), for an
        image whose calibration is off. Without it, a region that fixed-scale indexing cannot explain
        is retried with a free scale automatically, with a note giving the implied calibration factor.
    calibration : Calibration, dict or path to a calibration JSON, optional
        A lattice calibration applied to the HRTEM (see :mod:`latticefit.calibration`).
    calibrate_on : ``'matrix'`` or None
        Self-calibration: the matrix region, of the first of ``phases``, calibrates the HRTEM affinely
        (:func:`latticefit.calibration.calibrate` with ``affine=True``) before both regions are measured,
        so the dot is measured in corrected units, free of magnification and linear scan distortion.

    Returns
    -------
    LatticeReport
        Without a figure; call :func:`plot_lattice_report` (or use :func:`lattice_report`).

    Raises
    ------
    RegionError
        When a given region lies outside the HRTEM or is too small.
    CalibrationError
        When the HRTEM has no pixel size.
    """
    from .lattice import compare_regions, measure_lattice
    from .roi import extract
    from .spectrum import power_spectrum

    hr = as_micrograph(hrtem, pixel_size, calibration=calibration)
    pyx = hr.require_calibration()
    notes: list[str] = []
    if calibrate_on not in (None, "matrix"):
        raise AnalysisError(f"calibrate_on must be 'matrix' or None, got {calibrate_on!r}", hr.source)
    if calibrate_on and not phases:
        raise AnalysisError("calibrate_on='matrix' needs the matrix phase (phases=[...], CLI --phase)", hr.source)
    if calibrate_on and hr.affine_nm_per_px is not None:
        raise AnalysisError("give either a calibration or calibrate_on='matrix', not both", hr.source)
    ha = as_micrograph(haadf) if haadf is not None else None
    H, W = hr.shape

    roi_matrix = as_roi(roi_matrix)
    roi_dot = as_roi(roi_dot)
    for role, roi in (("matrix", roi_matrix), ("dot", roi_dot)):
        if roi is not None:
            try:
                extract(hr.data, roi)
            except RegionError as e:
                raise RegionError(f"--roi-{role}: {e.message}", hr.source) from None

    fov = None
    particles = None
    mapped = None
    if ha is not None:
        fov = check_fields_of_view(hr, ha)
        if not fov.agree:
            _warn(notes, fov.message)
        try:
            from .particles import find_particles

            particles = find_particles(ha, diameter_range_nm=diameter_range_nm)
        except Exception as e:  # noqa: BLE001 - the report goes on without outlines
            _warn(notes, f"HAADF dot segmentation failed ({' '.join(str(e).split())}); no outlines drawn")
        if particles is not None and fov.agree and len(particles.table):
            mapped = _particles_in_hrtem(particles, fov)

    # whole-image lattice: the reference spots of the anomaly map and the smallest useful region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticefitWarning)
        whole = measure_lattice(hr, d_range_angstrom=d_range_angstrom, systematic="none")  # reference spots only
    min_side = _min_region_px(whole, pyx, (H, W))

    # ------------------------------------------------------- dot region
    anomaly = None
    dot_full = None  # the whole dot (its segmented radius), kept clear of the matrix square
    if mapped is None and (roi_dot is None or roi_matrix is None):
        sp = whole.spots
        if sp is not None and len(sp):
            first = sp[sp["order"] == 1] if "order" in sp else sp
            first = first.sort_values("snr", ascending=False).head(3) if "snr" in first else first.head(3)
            g_px = first[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float) @ hr.pixel_matrix_nm  # A^T g, cycles/px
            smooth = max(4.0, ANOMALY_RESOLUTION_NM / pyx[1])
            anomaly = anomaly_map(hr.data, g_px, smooth_px=smooth)
    if roi_dot is not None:
        dot_choice = RegionChoice("dot", roi_dot, "given")
        dot_full = roi_dot
    else:
        dot_choice = None
        if mapped is not None:
            x, y, dnm, edge = mapped
            c = choose_dot_from_particles(x, y, dnm / pyx[1], (H, W), edge=edge)
            if c is not None:
                dot_full = c
                dot_choice = RegionChoice("dot", _shrunk(c), "haadf",
                                          f"largest HAADF dot inside the HRTEM, {DOT_RADIUS_FRACTION:g} R")
        if dot_choice is None:
            peak = 0.0
            c = None
            if anomaly is not None:
                c, peak = choose_dot_from_anomaly(anomaly)
            if c is not None:
                dot_full = c
                dot_choice = RegionChoice("dot", _shrunk(c), "anomaly",
                                          f"strongest HRTEM lattice/contrast anomaly (z = {peak:.1f}), "
                                          f"{DOT_RADIUS_FRACTION:g} R")
            else:
                if anomaly is not None:
                    c, _ = choose_dot_from_anomaly(anomaly, threshold=0.0)
                c = _fit_circle_inside(c if c is not None else Circle(W / 2, H / 2, 1.0), min_side / 2, (H, W))
                dot_choice = RegionChoice("dot", c, "fallback",
                                          f"no dot found (anomaly z = {peak:.1f} < 3.5): most deviating area")
                _warn(notes, f"{hr.name}: no dot found automatically (give --roi-dot); region B is the most "
                             "deviating area of the HRTEM")

    # ------------------------------------------------------- matrix region
    if roi_matrix is not None:
        mat_choice = RegionChoice("matrix", roi_matrix, "given")
    else:
        margin = DOT_MARGIN_NM / pyx[1]
        exclude = np.zeros((H, W), bool)
        yy, xx = np.ogrid[:H, :W]
        if mapped is not None:
            x, y, dnm, _ = mapped
            for xi, yi, di in zip(x, y, dnm / pyx[1]):
                exclude |= (xx - xi) ** 2 + (yy - yi) ** 2 <= (0.5 * di + margin) ** 2
        elif anomaly is not None:  # every candidate dot of the anomaly map, not only the chosen one
            blobs = anomaly_blobs(anomaly)
            if blobs.any():  # the map's edges are only known to its resolution
                exclude |= ndi.distance_transform_edt(~blobs) <= max(margin, ANOMALY_RESOLUTION_NM / pyx[1])
        full = dot_full if dot_full is not None else dot_choice.roi
        if isinstance(full, Circle):
            exclude |= (xx - full.x) ** 2 + (yy - full.y) ** 2 <= (full.r + margin) ** 2
        else:
            exclude |= full.mask((H, W))
        rect = choose_matrix_region((H, W), exclude, side_px=max(MATRIX_MAX_SIDE_PX, min_side),
                                    min_side_px=min(min_side, min(H, W)))
        mat_choice = RegionChoice("matrix", rect, "auto", "largest square clear of every dot")

    # ------------------------------------------------------- self-calibration on the matrix
    self_cal = None
    if calibrate_on == "matrix":
        from .calibration import calibrate

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            self_cal = calibrate(hr, mat_choice.roi, list(phases)[0], affine=True, tiles=False,
                                 d_range_angstrom=d_range_angstrom)
        hr = self_cal.apply(hr)
        _warn(notes, f"calibrated on the matrix region: {self_cal.describe()}")
    if hr.calibration_info:
        _warn(notes, f"lengths in calibrated nm ({hr.calibration_info.get('reference_phase')}, "
                     f"{hr.calibration_info.get('model')}); {hr.calibration_info.get('validity')}")

    # ------------------------------------------------------- measurements
    # compare_regions measures both regions; its results are the regions' lattices
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatticefitWarning)
        comparison = compare_regions(hr, mat_choice.roi, dot_choice.roi, d_range_angstrom=d_range_angstrom,
                                     labels=("matrix", "dot"), keep_unindexed=keep_unindexed)
    if dot_choice.method in ("fallback", "anomaly"):  # chosen because it deviates: look-elsewhere correction
        from ._lattice_systematic import apply_look_elsewhere

        fb = dot_choice.method == "fallback"
        _warn(notes, apply_look_elsewhere(comparison, (H, W), dot_choice.roi,
                                          why="it deviates most" if fb else "it is the strongest HRTEM anomaly",
                                          name="region B" if fb else "the dot region"))
    region_msgs = [str(m) for lat in (comparison.a, comparison.b) for m in (getattr(lat, "warnings", None) or [])]
    for w in caught:  # the per-region warnings are repeated below with the region's name
        if not any(str(w.message).endswith(m) for m in region_msgs):
            _warn(notes, str(w.message))
    regions = {}
    for ch, lat in ((mat_choice, comparison.a), (dot_choice, comparison.b)):
        name = "region B" if ch.method == "fallback" else ch.role
        for msg in getattr(lat, "warnings", []) or []:
            _warn(notes, f"{name}: {msg}")
        spec = power_spectrum(hr, roi=ch.roi, window=FFT_DISPLAY_WINDOW)
        regions[ch.role] = RegionResult(ch, lat, spec)

    # ------------------------------------------------------- indexing
    phase_objs = list(phases or [])
    if phase_objs:
        _index_regions(regions, phase_objs, notes, free_scale=free_scale)
        _align_dot_labels(regions, comparison)
    regions["dot"].basis_rows = _matched_basis_rows(regions, comparison)

    return LatticeReport(hrtem=hr, haadf=ha, regions=regions, comparison=comparison, haadf_particles=particles,
                         fov=fov, anomaly=anomaly, phases=phase_objs, notes=notes, whole=whole,
                         calibration=self_cal)


#: fixed-scale indexing that explains fewer than this fraction of a region's spots is retried with a free scale
MIN_INDEXED_FRACTION = 0.5


def _n_matched(res) -> int:
    spots = getattr(res, "spots", None)
    if spots is None or getattr(res, "best", None) is None or "status" not in spots:
        return 0
    return int(spots["status"].isin(["allowed", "extinct"]).sum())


def _index_regions(regions: dict, phases: list, notes: list, *, free_scale: bool = False) -> None:
    """Index each region's spots; fills ``RegionResult.indexing`` and ``.hkl``; extinction warnings go to notes.

    With ``free_scale=False``, a region whose fixed-scale indexing explains fewer than
    :data:`MIN_INDEXED_FRACTION` of its spots (a miscalibrated image) is indexed again with a free scale;
    the free-scale solution is kept when it explains more spots, and the note states the implied
    calibration factor. Either way a poorly indexed region is named in the notes.
    """
    from . import indexing

    names = ", ".join(getattr(p, "name", str(p)) for p in phases)
    for key, reg in regions.items():
        role = "region B" if reg.choice.method == "fallback" else key
        n = len(reg.lattice.spots) if getattr(reg.lattice, "spots", None) is not None else 0
        try:
            res = indexing.index_lattice(reg.lattice, phases, free_scale=free_scale)
        except Exception as e:  # noqa: BLE001 - the figure is still useful without hkl
            _warn(notes, f"{role}: indexing failed ({' '.join(str(e).split())})")
            continue
        m = _n_matched(res)
        if n and m < MIN_INDEXED_FRACTION * n:
            if free_scale:
                _warn(notes, f"{role}: indexing against {names} with a free scale matched {m}/{n} spots: "
                             "another phase or zone?")
            else:
                try:
                    free = indexing.index_lattice(reg.lattice, phases, free_scale=True)
                except Exception:  # noqa: BLE001
                    free = None
                mf = _n_matched(free) if free is not None else 0
                if free is not None and mf > m and mf >= MIN_INDEXED_FRACTION * n:
                    k, ke = free.scale_factor, free.scale_factor_err
                    _warn(notes, f"{role}: indexing against {names} matched {m}/{n} spots at the file "
                                 f"calibration, {mf}/{n} with a free scale: implied calibration factor "
                                 f"k = {ps.format_uncertain(k, ke)} (true/file pixel size); d shown uncorrected")
                    res = free
                else:
                    _warn(notes, f"{role}: indexing against {names} matched {m}/{n} spots: calibration off? "
                                 "try --free-scale")
        elif free_scale and res.best is not None:
            _warn(notes, f"{role}: free-scale indexing against {names}: calibration factor "
                         f"k = {ps.format_uncertain(res.scale_factor, res.scale_factor_err)} (true/file pixel size)")
        reg.indexing = res
        reg.hkl = _hkl_by_row(res)
        for w in _extinction_warnings(res):
            _warn(notes, f"{role}: {w}")


def _hkl_by_row(index_result) -> dict:
    """``{spot row: (h, k, l)}`` of the spots the best solution explains (allowed or extinct)."""
    spots = getattr(index_result, "spots", None)
    if spots is None or getattr(index_result, "best", None) is None:
        return {}
    out = {}
    for i, r in enumerate(spots.to_dict("records")):
        if r.get("status") in ("allowed", "extinct"):
            out[i] = (int(r["h"]), int(r["k"]), int(r["l"]))
    return out


def _extinction_warnings(index_result) -> list[str]:
    """One line per candidate phase that can only explain some spots with extinct reflections.

    E.g. ``'3 spots (d = 4.199, 4.194, 4.196 Å) need reflections extinct in PbS (Fm-3m: F-centring ...)'``.
    """
    spots = getattr(index_result, "spots", None)
    if spots is None:
        return []
    by_phase: dict[str, list] = {}
    reasons: dict[str, set] = {}
    for r in spots.to_dict("records"):
        for k, name in enumerate(r.get("extinct_in") or []):
            by_phase.setdefault(name, []).append(float(r["d_angstrom"]))
            why = (r.get("extinction_reasons") or [""] * (k + 1))[k] if k < len(r.get("extinction_reasons") or []) else ""
            if why:
                reasons.setdefault(name, set()).add(why.split(": ", 1)[-1])
    out = []
    for name, ds in by_phase.items():
        ds_txt = ", ".join(f"{d:.3f}" for d in sorted(set(round(d, 3) for d in ds), reverse=True))
        why = "; ".join(sorted(reasons.get(name, ())))
        n = len(ds)
        out.append(f"{n} spot{'s' if n > 1 else ''} (d = {ds_txt} Å) need{'' if n > 1 else 's'} reflections "
                   f"extinct in {name}" + (f" ({why})" if why else ""))
    return out


def _align_dot_labels(regions: dict, comparison) -> None:
    """Give the dot's spots the (hkl) of the matched matrix spots (sign-aligned to each g).

    The two regions are indexed independently, so equivalent but different labels
    ((1-10) vs (-101)) could name one reflection; the matrix labels win when the dot's
    label belongs to the same {hkl} family.
    """
    mat, dot = regions.get("matrix"), regions.get("dot")
    if mat is None or dot is None or comparison is None or len(comparison.table) == 0:
        return
    sa, sb = mat.lattice.spots, dot.lattice.spots
    for r in comparison.table.to_dict("records"):
        i, j = int(r["spot_a"]), int(r["spot_b"])
        ha, hb = mat.hkl.get(i), dot.hkl.get(j)
        if ha is None:
            continue
        if hb is not None and sorted(map(abs, ha)) != sorted(map(abs, hb)):
            continue  # a different family: keep the dot's own label
        ga = np.array([sa["gx_inv_nm"].iat[i], sa["gy_inv_nm"].iat[i]])
        gb = np.array([sb["gx_inv_nm"].iat[j], sb["gy_inv_nm"].iat[j]])
        sign = 1 if np.linalg.norm(ga - gb) <= np.linalg.norm(ga + gb) else -1
        dot.hkl[j] = tuple(sign * int(v) for v in ha)


def _matched_basis_rows(regions: dict, comparison):
    """Rows of the dot's spots matched to the matrix basis spots (so both panels label the same reflections)."""
    mat = regions.get("matrix")
    if mat is None or comparison is None or len(comparison.table) == 0:
        return None
    rows_a = _basis_rows(mat.lattice)
    if rows_a is None:
        return None
    match = {int(r["spot_a"]): int(r["spot_b"]) for r in comparison.table.to_dict("records")}
    rows_b = tuple(match.get(r) if r is not None else None for r in rows_a)
    return rows_b if rows_b[0] is not None and rows_b[1] is not None else None


# =====================================================================  drawing
_ROLE_TITLE = {"matrix": "matrix", "dot": "dot"}


def _region_title(reg: RegionResult) -> str:
    if reg.role == "dot" and reg.choice.method == "fallback":
        return "region B"
    return _ROLE_TITLE.get(reg.role, reg.role)


def _draw_roi(ax, roi, color, label=None, *, offset=(0.0, 0.0), lw=1.2):
    from matplotlib.patches import Circle as CirclePatch
    from matplotlib.patches import Rectangle

    ox, oy = offset
    if isinstance(roi, Rect):
        patch = Rectangle((roi.x - 0.5 - ox, roi.y - 0.5 - oy), roi.w, roi.h, fill=False, ec=color, lw=lw)
        x0, y0, y1 = roi.x - ox, roi.y - oy, roi.y + roi.h - oy
    elif isinstance(roi, Circle):
        patch = CirclePatch((roi.x - ox, roi.y - oy), roi.r, fill=False, ec=color, lw=lw)
        x0, y0, y1 = roi.x - roi.r - ox, roi.y - roi.r - oy, roi.y + roi.r - oy
    else:
        b = roi.bounds(roi.mask_array.shape)
        patch = Rectangle((b[2] - 0.5 - ox, b[0] - 0.5 - oy), b[3] - b[2], b[1] - b[0], fill=False, ec=color,
                          lw=lw, ls="--")
        x0, y0, y1 = b[2] - ox, b[0] - oy, b[1] - oy
    ax.add_patch(patch)
    if label:
        H = abs(ax.get_ylim()[0] - ax.get_ylim()[1])
        # above the region, or below it when it touches the top of the image
        above = y0 > 0.06 * H
        ax.text(x0, y0 - 0.01 * H if above else y1 + 0.01 * H, label, color=color, fontsize=6.5,
                fontweight="bold", ha="left", va="bottom" if above else "top", bbox=_dark_box(), zorder=21)
    return patch


def _dark_box(pad: float = 0.15) -> dict:
    """Semi-transparent dark box behind a label on an image (keeps the text real text in PDF/SVG,
    which a path-effect outline would turn into paths)."""
    return dict(boxstyle=f"square,pad={pad}", fc="black", alpha=0.6, lw=0)


def _draw_overview(ax, report: LatticeReport, colors):
    hr = report.hrtem
    ps.show_image(ax, hr.data, pixel_size_nm=hr.pixel_size_nm[1])
    for role, reg in report.regions.items():
        _draw_roi(ax, reg.choice.roi, colors[role], _region_title(reg))
    ps.panel_label(ax, "a", title=_mode_title(hr))


def _mode_title(mg: Micrograph) -> str:
    """Panel title from the acquisition mode: 'HAADF', 'STEM', 'HRTEM' (TEM, or no mode: the HRTEM input) or 'image'."""
    mode = str(mg.mode or "").upper()
    if not mode:  # no mode in the metadata: the detector name often is the title (e.g. 'HAADF', 'ADF')
        title = str(mg.title or "").upper().replace("-", " ").replace("_", " ").split()
        mode = next((w for w in title if w in ("HAADF", "ADF", "STEM")), "")
    if "HAADF" in mode or "ADF" in mode:
        return "HAADF"
    if "STEM" in mode:
        return "STEM"
    if mode in ("", "TEM", "HRTEM", "CTEM"):
        return "HRTEM"
    return "image"


def _draw_haadf(ax, report: LatticeReport, colors):
    ha = report.haadf
    if ha is None:
        ax.set_axis_off()
        if report.anomaly is not None:
            ax.set_axis_on()
            im = ax.imshow(report.anomaly, cmap="cividis", vmin=0, origin="upper")
            ax.set_xticks([])
            ax.set_yticks([])
            for role, reg in report.regions.items():
                _draw_roi(ax, reg.choice.roi, colors[role])
            ps.add_scalebar(ax, report.hrtem.pixel_size_nm[1])
            cb = ax.figure.colorbar(im, ax=ax, fraction=0.04, pad=0.01)
            cb.set_label("anomaly |z|", fontsize=6)
            cb.ax.tick_params(labelsize=5.5)
            ps.panel_label(ax, "b", title="no HAADF: HRTEM anomaly map")
        else:
            ax.text(0.5, 0.5, "(b) no HAADF given", transform=ax.transAxes, ha="center", va="center")
        return
    parts = report.haadf_particles
    if parts is not None:
        from .particles import plot_overlay

        plot_overlay(parts, ha, ax, circles=True, centres=False, scalebar=True, legend=False, linewidth=0.7)
    else:
        ps.show_image(ax, ha.data, pixel_size_nm=ha.pixel_size_nm[1] if ha.pixel_size_nm else None)
    if report.fov is not None and report.fov.agree:
        sy, sx = report.fov.scale_yx
        for role, reg in report.regions.items():
            roi = reg.choice.roi
            if isinstance(roi, Circle):
                mapped = Circle((roi.x + 0.5) / sx - 0.5, (roi.y + 0.5) / sy - 0.5, roi.r / sx)
            elif isinstance(roi, Rect):
                mapped = Rect(int(round(roi.x / sx)), int(round(roi.y / sy)), max(1, int(round(roi.w / sx))),
                              max(1, int(round(roi.h / sy))))
            else:
                continue
            _draw_roi(ax, mapped, colors[role], lw=0.9)
    elif report.fov is not None:
        ps.note_box(ax, "different field of view from the HRTEM:\nnot the same area, regions not mapped", loc="center")
    n = len(parts.table) if parts is not None else 0
    ps.panel_label(ax, "b", title=f"HAADF ({n} dots)" if parts is not None else "HAADF")


def _region_image(hr: Micrograph, roi):
    from .roi import extract

    sub, weight, (y0, x0) = extract(hr.data, roi, min_size=1)
    return sub, (x0, y0)


def _draw_region(ax, report: LatticeReport, reg: RegionResult, letter: str, colors):
    hr = report.hrtem
    sub, (x0, y0) = _region_image(hr, reg.choice.roi)
    ps.show_image(ax, sub, pixel_size_nm=hr.pixel_size_nm[1], scalebar_location="upper right")
    for sp in ax.spines.values():
        sp.set_edgecolor(colors[reg.role])
        sp.set_linewidth(1.5)
    if isinstance(reg.choice.roi, Circle):
        _draw_roi(ax, reg.choice.roi, colors[reg.role], offset=(x0, y0), lw=0.8)
    rows = reg.drawn_rows()
    labels = []
    if rows is not None:
        spots = reg.lattice.spots
        h, w = sub.shape
        centers = [(0.3 * w, 0.34 * h), (0.7 * w, 0.56 * h)]  # clear of the labels at the bottom
        for k, row in enumerate(rows):
            if row is None:
                continue
            g = spots.iloc[row][["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
            phase = fringe_phase(sub, g, hr.pixel_matrix_nm)
            segs = fringe_segments(g, phase, hr.pixel_matrix_nm, centers[k], n_lines=5,
                                   half_length_px=0.13 * min(h, w))
            col = colors[f"g{k + 1}"]
            for s in segs:
                ax.plot(s[:, 0], s[:, 1], color=col, lw=0.9, solid_capstyle="butt")
            labels.append((reg.d_label(row, symbol_index=k + 1), col))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    for i, (text, col) in enumerate(labels):
        ax.text(0.02, 0.02 + 0.1 * (len(labels) - 1 - i), text, transform=ax.transAxes, ha="left", va="bottom",
                color=col, fontsize=6.2, fontweight="bold", bbox=_dark_box(), zorder=25,
                gid=f"d_label_{reg.role}_{i + 1}")
    ps.panel_label(ax, letter, title=_region_title(reg))
    return labels


def _draw_fft(ax, report: LatticeReport, reg: RegionResult, letter: str, colors):
    from matplotlib.patches import Arc
    from matplotlib.patches import Circle as CirclePatch

    spec = reg.spectrum
    logp = np.asarray(spec.log_power, float)
    spots = reg.lattice.spots
    g_all = np.hypot(spots["gx_inv_nm"].to_numpy(float), spots["gy_inv_nm"].to_numpy(float)) if len(spots) else np.array([])
    rows = reg.drawn_rows()
    basis_g = [g_all[r] for r in (rows or ()) if r is not None]
    gmax = 1.6 * (max(basis_g) if basis_g else (g_all.max() if g_all.size else 5.0))
    ext = spec.extent_inv_nm
    gx, gy = np.asarray(spec.gx_inv_nm), np.asarray(spec.gy_inv_nm)
    sel_y = np.abs(gy) <= gmax
    sel_x = np.abs(gx) <= gmax
    crop = logp[np.ix_(sel_y, sel_x)] if sel_y.any() and sel_x.any() else logp
    lo, hi = np.percentile(crop, [50, 99.8])
    ax.imshow(logp, cmap="magma", vmin=lo, vmax=hi, extent=ext, origin="upper", interpolation="antialiased")
    ax.set_xlim(-gmax, gmax)
    ax.set_ylim(gmax, -gmax)  # y down, as in the image
    ax.set_xlabel(r"$g_x$ (1/nm)", labelpad=1)
    ax.set_ylabel(r"$g_y$ (1/nm)", labelpad=1)
    ax.tick_params(direction="out", pad=1)
    step = _nice_step(gmax)
    ticks = np.arange(-np.floor(gmax / step) * step, gmax + 1e-9, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    rad = 0.07 * gmax
    sign = _display_signs(spots, rows)
    for i in range(len(spots)):
        gxi, gyi = sign[i] * spots["gx_inv_nm"].iat[i], sign[i] * spots["gy_inv_nm"].iat[i]
        if np.hypot(gxi, gyi) > gmax:
            continue
        is_basis = rows is not None and i in rows
        col = colors[f"g{rows.index(i) + 1}"] if is_basis else colors["spot"]
        for sgn in (1, -1):  # the Friedel mate dotted
            ax.add_patch(CirclePatch((sgn * gxi, sgn * gyi), rad, fill=False, ec=col, lw=0.9 if is_basis else 0.6,
                                     ls="-" if sgn == 1 else ":"))
        hkl = reg.hkl.get(i)
        row_a = _matrix_row(report, reg.role, i)
        if is_basis or hkl is not None or row_a is not None:
            if hkl is not None:
                lab = hkl_label(tuple(sign[i] * v for v in hkl))
            elif is_basis:
                lab = f"$g_{rows.index(i) + 1}$"
            else:  # the table's row label of this reflection
                lab = f"#{row_a}"
            u = np.array([gxi, gyi]) / np.hypot(gxi, gyi)
            # beside the spot, but kept inside the panel (a label at the edge would be cut)
            tx = float(np.clip(gxi + u[0] * 2.3 * rad, -0.82 * gmax, 0.82 * gmax))
            ty = float(np.clip(gyi + u[1] * 2.3 * rad, -0.85 * gmax, 0.7 * gmax))  # clear of the angle text
            ax.text(tx, ty, lab, color=col, fontsize=6, ha="center",
                    va="center", bbox=_dark_box(0.1), zorder=25)
    ang, ang_err = _basis_angle(reg.lattice, rows)
    if rows is not None and rows[1] is not None and np.isfinite(ang):
        g1 = sign[rows[0]] * spots[["gx_inv_nm", "gy_inv_nm"]].iloc[rows[0]].to_numpy(float)
        g2 = sign[rows[1]] * spots[["gx_inv_nm", "gy_inv_nm"]].iloc[rows[1]].to_numpy(float)
        t1 = math.degrees(math.atan2(g1[1], g1[0]))
        d = (math.degrees(math.atan2(g2[1], g2[0])) - t1 + 180) % 360 - 180
        a0, a1 = (t1, t1 + d) if d > 0 else (t1 + d, t1)
        r_arc = 0.45 * min(basis_g)
        ax.add_patch(Arc((0, 0), 2 * r_arc, 2 * r_arc, theta1=a0, theta2=a1, color=colors["angle"], lw=1.0))
        text = ps.format_uncertain(ang, ang_err, "°")
        ax.text(0.5, 0.02, f"∠ = {text}", transform=ax.transAxes, color=colors["angle"], fontsize=6.2,
                ha="center", va="bottom", fontweight="bold", bbox=_dark_box(), zorder=26,
                gid=f"angle_label_{reg.role}")
    ps.panel_label(ax, letter, title=f"FFT {_region_title(reg)}")
    return ang, ang_err


def _display_signs(spots, rows) -> np.ndarray:
    """+1/-1 per spot: which Friedel mate is drawn solid and labelled (the second drawn spot at an acute
    angle to the first, so that the arc shows the angle that is reported)."""
    sign = np.ones(len(spots), int)
    if rows is not None and len(rows) == 2 and rows[0] is not None and rows[1] is not None:
        g = spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        if float(np.dot(g[rows[0]], g[rows[1]])) < 0:
            sign[rows[1]] = -1
    return sign


def _nice_step(gmax: float) -> float:
    raw = gmax / 2.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _reflection_name(report: LatticeReport, row_a: int, row_b: int, k: int) -> str:
    """(hkl) when indexed; else g1/g2 for the spots drawn in the panels, '#i' (row of the matrix spots, as in the FFTs)."""
    for role, row in (("matrix", row_a), ("dot", row_b)):
        reg = report.regions[role]
        hkl = reg.hkl.get(row)
        if hkl is not None:
            return hkl_label(tuple(reg.display_sign(row) * v for v in hkl))
    drawn = report.regions["matrix"].drawn_rows() or ()
    if row_a in drawn:
        return f"$g_{{{list(drawn).index(row_a) + 1}}}$"
    return f"#{row_a}"


def _matrix_row(report: LatticeReport, role: str, row: int):
    """The matrix spot row of a region's spot when it is in the comparison table (else None)."""
    comp = report.comparison
    if comp is None or len(comp.table) == 0:
        return None
    key = "spot_a" if role == "matrix" else "spot_b"
    hit = comp.table[comp.table[key] == row]
    return int(hit["spot_a"].iat[0]) if len(hit) else None


def comparison_rows(report: LatticeReport, *, mathtext: bool = True) -> list[list[str]]:
    """Rows of the figure's table, one per reflection measured in both regions.

    Columns: reflection ((hkl) when indexed), d in the matrix, d in the dot
    (each ± its standard uncertainty, Å), Δd = d_dot − d_matrix (Å), Δd/d (%),
    and "yes (z = 4.1)" / "no (z = 0.8)" for significance at the
    comparison's z threshold.
    """
    cmp = report.comparison
    if cmp is None or cmp.table is None or len(cmp.table) == 0:
        return []
    rows = []
    for k, r in enumerate(cmp.table.to_dict("records")):
        name = _reflection_name(report, int(r["spot_a"]), int(r["spot_b"]), k)
        if not mathtext:
            name = plain_text(name)
        dd = r["d_b_angstrom"] - r["d_a_angstrom"]
        dd_err = math.hypot(r["d_a_err_angstrom"], r["d_b_err_angstrom"])
        sig = "yes" if r["significant"] else "no"
        rows.append([
            name,
            ps.format_uncertain(r["d_a_angstrom"], r["d_a_err_angstrom"]),
            ps.format_uncertain(r["d_b_angstrom"], r["d_b_err_angstrom"]),
            ps.format_uncertain(dd, dd_err),
            ps.format_uncertain(100 * r["rel_diff"], 100 * r["rel_diff_err"], "%"),
            f"{sig} (z = {r['z']:.1f})",
        ])
    return rows


#: reflections shown in the figure's table (strongest first; all of them are in OUT.json / OUT.csv)
MAX_TABLE_ROWS = 10
#: below this width (mm) the figure uses the two-column layout of a single journal column
COMPACT_WIDTH_MM = 130.0


def _note_lines(report: LatticeReport, width_mm: float = ps.DOUBLE_COLUMN_MM) -> list[str]:
    import textwrap

    wrap = max(40, int(0.82 * width_mm))  # characters per line at 6 pt
    lines = []
    for n in report.notes:
        lines.extend(textwrap.wrap(f"⚠ {n}", wrap, subsequent_indent="   "))
    return lines


def _draw_table(ax, report: LatticeReport, *, compact: bool = False):
    ax.set_axis_off()
    rows = comparison_rows(report)
    thr = getattr(report.comparison, "z_threshold", 3.0)
    header = ["reflection", "d matrix (Å)", f"d {_region_title(report.regions['dot'])} (Å)",
              "Δd (Å)", "Δd/d", f"significant (|z| > {thr:g})?"]
    if not rows:
        ax.text(0.0, 0.5, "no reflection measured in both regions", transform=ax.transAxes, fontsize=6.5)
        return None
    n_more = len(rows) - MAX_TABLE_ROWS
    if n_more > 0:
        rows = rows[:MAX_TABLE_ROWS] + [[f"+{n_more} more (in the .csv/.json)", "", "", "", "", ""]]
    keep = [0, 1, 2, 4, 5] if compact else list(range(6))  # one column: no Δd in Å (Δd/d says it)
    if compact:
        header[5] = f"|z| > {thr:g}?"
    shown = [[r[i] for i in keep] for r in rows]
    tab = ax.table(cellText=shown, colLabels=[header[i] for i in keep], bbox=[0.0, 0.0, 1.0, 1.0],
                   cellLoc="center", edges="horizontal")
    tab.auto_set_font_size(False)
    tab.set_fontsize(5.6 if compact else 6.3)
    for (r, c), cell in tab.get_celld().items():
        cell.set_linewidth(0.4)
        if r == 0:
            cell.set_text_props(fontweight="bold")
        elif rows[r - 1][0].startswith("+"):
            cell.set_text_props(ha="left", fontstyle="italic")
            cell.set_linewidth(0)
        elif rows[r - 1][5].startswith("yes"):
            cell.set_text_props(color=ps.COLORS["warning"], fontweight="bold")
    return tab


def _draw_notes(ax, report: LatticeReport, width_mm: float):
    ax.set_axis_off()
    lines = _note_lines(report, width_mm)
    if lines:
        ax.text(0.0, 1.0, "\n".join(lines), transform=ax.transAxes, fontsize=6, color=ps.COLORS["warning"],
                va="top", ha="left", gid="notes")


def plot_lattice_report(report: LatticeReport, *, width_mm: float = ps.DOUBLE_COLUMN_MM):
    """Draw the Fig. 4 figure of ``report`` (stored in ``report.figure`` and returned).

    Parameters
    ----------
    report : LatticeReport
        From :func:`build_lattice_report`.
    width_mm : float
        Figure width: 180 mm (a double journal column) puts (a, b) side by side over
        (c, d, e, f); below 130 mm (e.g. 85 mm, one column) the panels go two per row,
        (a b / c d / e f), and the table drops the Δd (Å) column.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    colors = dict(ps.COLORS)
    H, W = report.hrtem.shape
    aspect = H / W
    compact = width_mm < COMPACT_WIDTH_MM
    n_rows = min(max(len(comparison_rows(report)), 1), MAX_TABLE_ROWS + 1) + 1
    n_notes = len(_note_lines(report, width_mm))
    with ps.figure_style():
        w_in = ps.mm_to_inch(width_mm)
        colorbar_in = 0.45 if (report.haadf is None and report.anomaly is not None) else 0.0
        top_h = (w_in / 2 - 0.1 - colorbar_in) * aspect
        tab_h = (0.12 if compact else 0.135) * n_rows
        note_h = 0.11 * n_notes + 0.02
        if compact:
            mid_h = w_in / 2 * 0.98
            heights = [top_h, mid_h, mid_h, tab_h, note_h]
            fig = plt.figure(figsize=(w_in, sum(heights) + 0.35), layout="constrained")
            gs = fig.add_gridspec(5, 2, height_ratios=heights)
            axes = [fig.add_subplot(gs[r, c]) for r, c in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1))]
            ax_t, ax_n = fig.add_subplot(gs[3, :]), fig.add_subplot(gs[4, :])
        else:
            mid_h = w_in / 4 * 1.02
            heights = [top_h, mid_h, tab_h, note_h]
            fig = plt.figure(figsize=(w_in, sum(heights) + 0.3), layout="constrained")
            gs = fig.add_gridspec(4, 4, height_ratios=heights)
            axes = [fig.add_subplot(gs[0, 0:2]), fig.add_subplot(gs[0, 2:4])]
            axes += [fig.add_subplot(gs[1, c]) for c in range(4)]
            ax_t, ax_n = fig.add_subplot(gs[2, :]), fig.add_subplot(gs[3, :])
        ax_a, ax_b, ax_c, ax_d, ax_e, ax_f = axes
        _draw_overview(ax_a, report, colors)
        _draw_haadf(ax_b, report, colors)
        _draw_region(ax_c, report, report.regions["matrix"], "c", colors)
        _draw_fft(ax_d, report, report.regions["matrix"], "d", colors)
        _draw_region(ax_e, report, report.regions["dot"], "e", colors)
        _draw_fft(ax_f, report, report.regions["dot"], "f", colors)
        _draw_table(ax_t, report, compact=compact)
        _draw_notes(ax_n, report, width_mm)
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.03, hspace=0.02)
    report.figure = fig
    return fig


def lattice_report(hrtem, haadf=None, **kwargs) -> LatticeReport:
    """:func:`build_lattice_report` followed by :func:`plot_lattice_report`.

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, truth = synth.perovskite_111(shape=(256, 256), seed=0)  # doctest: +SKIP
    >>> rep = lattice_report(mg)  # doctest: +SKIP
    >>> rep.save("fig4.pdf")  # doctest: +SKIP
    """
    width_mm = kwargs.pop("width_mm", ps.DOUBLE_COLUMN_MM)
    rep = build_lattice_report(hrtem, haadf, **kwargs)
    plot_lattice_report(rep, width_mm=width_mm)
    return rep


def plain_text(label: str) -> str:
    r"""A figure label without mathtext: ``'d$(01\bar{1})$'`` -> ``'d(01-1)'``, ``'$d_1$'`` -> ``'d1'``.

    Examples
    --------
    >>> plain_text(r"d$(01\bar{1})$ = 4.195 ± 0.003 Å")
    'd(01-1) = 4.195 ± 0.003 Å'
    >>> plain_text(r"$g_{2}$")
    'g2'
    """
    import re

    t = re.sub(r"\\bar\{(\d+)\}", r"-\1", label)
    t = re.sub(r"_\{([^}]*)\}", r"\1", t)
    t = re.sub(r"_(\w)", r"\1", t)
    return t.replace("$", "")


def summary_lines(report: LatticeReport) -> list[str]:
    """A few lines for the terminal: each region's basis spacings and angle, and the comparison."""
    lines = []
    for role, reg in report.regions.items():
        rows = reg.drawn_rows()
        parts = []
        for k, r in enumerate(rows or ()):
            if r is not None:
                parts.append(plain_text(reg.d_label(r, symbol_index=k + 1)))
        ang, err = _basis_angle(reg.lattice, rows)
        if np.isfinite(ang):
            parts.append("angle " + ps.format_uncertain(ang, err, "°"))
        how = reg.choice.method + (f": {reg.choice.note}" if reg.choice.note else "")
        lines.append(f"{_region_title(reg)} {reg.choice.roi.describe()} ({how}): " + "; ".join(parts))
        for lat in getattr(reg.lattice, "lattices", [])[1:]:  # further lattices (a dot, twin, moire)
            lines.append(f"  {_region_title(reg)} further {lat.describe()}")
    rows = comparison_rows(report, mathtext=False)
    if rows:
        lines.append(f"reflection | d matrix (Å) | d {_region_title(report.regions['dot'])} (Å) | Δd (Å) | Δd/d | "
                     f"significant (|z| > {report.comparison.z_threshold:g})")
    for row in rows:
        lines.append("  " + " | ".join(row))
    summ = getattr(report.comparison, "summary", None) or {}
    if summ.get("mean_rel_diff") is not None:
        lines.append("mean Δd/d (first order) = " + ps.format_uncertain(100 * summ["mean_rel_diff"],
                     100 * summ["mean_rel_diff_err"], "%") + f" (z = {summ['z']:.1f}, "
                     + ("significant" if summ["significant"] else "not significant") + ")")
    return lines
