"""What the noise sigma of a strain map does not cover: the image's own variation, and a changed fringe.

A GPA sigma map propagates the white noise of the image. Two things move a map beyond it without any
strain in the specimen, and both are measured here from the image itself:

1. **The image's systematic variation** (scan distortion and drift of a STEM frame, thickness and tilt
   changes, residual lens distortion). On the real SrTiO3 STEM files of ``../shared/realdata`` 13-48 % of
   the pixels of a homogeneous crystal lay beyond 2 noise sigmas. :func:`pixel_floor` is the spread of
   each map over the reference region beyond the noise, ``sqrt(max(<v^2> - <sigma^2>, 0))``: a per-map
   floor added in quadrature to the sigma maps (``StrainMap.sigma_total``). :func:`null_scatter` is the
   same question asked of a region contrast: the dot's core-minus-ring pattern is moved to every place in
   the matrix where it fits, and the root-mean-square of the contrasts found there, less their noise, is
   the systematic part of the dot's contrast (the empirical null of the test).
2. **A changed fringe** (:func:`amplitude_ratios`). A projected inclusion changes the amplitude *and* the
   phase of the fringe (its structure factor, thickness, defocus), and GPA reads a phase change as a
   displacement. On abTEM multislice images of a PbS dot in MAPbBr3 the {200}/{220} fringe amplitude in
   the dot is 0.2-0.6 of the matrix's and the dilatation reads -2 to +19 % where the truth is +0.05 and
   +1 %. When the median amplitude inside differs from outside by more than ``AMPLITUDE_CHANGE`` the
   contrast is flagged as not a strain measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ._kernels import masked_mean_squares

__all__ = [
    "AMPLITUDE_CHANGE",
    "MIN_NULL_PLACEMENTS",
    "NullScatter",
    "amplitude_ratios",
    "floor_from_moments",
    "null_scatter",
    "pixel_floor",
]

#: a region's median fringe amplitude outside [1 / (1 + c), 1 + c] of the other region's is "changed"
#: (the reference ring of a homogeneous multislice matrix varies by 5-10 % per pixel, a PbS dot changes it
#: by 40-80 %)
AMPLITUDE_CHANGE = 0.25
#: fewer placements of a contrast pattern in the matrix than this: the pixel floor stands in for the null
MIN_NULL_PLACEMENTS = 8
#: a core placement may reach this little outside the allowed pixels (its mean is over the allowed ones)
CORE_MIN_FRACTION = 0.9


def pixel_floor(values, sigma, mask) -> float:
    """Spread of a map over ``mask`` beyond its noise: ``sqrt(max(mean(v^2) - mean(sigma^2), 0))``.

    The mean of ``v`` over the reference region is zero by construction (g is refined there), so the mean
    square is the variance about the reference lattice. A region that holds real strain raises the floor:
    the estimate errs on the side of larger error bars.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = rng.normal(0, 0.01, 10000) + rng.normal(0, 0.02, 10000)   # noise 0.01, "distortion" 0.02
    >>> round(pixel_floor(v, np.full(10000, 0.01), np.ones(10000, bool)), 3)
    0.02
    """
    v, s, m = (np.atleast_2d(a) for a in (values, sigma, np.asarray(mask, bool)))  # a pixel list: one row
    mv, ms, n = masked_mean_squares(v, s, m)
    return floor_from_moments(mv, ms) if n else float("nan")


def floor_from_moments(mean_square: float, mean_sigma_squared: float) -> float:
    """:func:`pixel_floor` from its two moments: ``sqrt(max(<v^2> - <sigma^2>, 0))`` (nan stays nan)."""
    d = float(mean_square) - float(mean_sigma_squared)
    return float(math.sqrt(max(d, 0.0))) if math.isfinite(d) else float("nan")


def amplitude_ratios(result, inside, outside) -> tuple[float, float]:
    """Median fringe amplitude of g1 and g2 inside over outside (valid pixels only)."""
    a = np.asarray(inside, bool) & result.valid
    b = np.asarray(outside, bool) & result.valid
    if not a.any() or not b.any():
        return float("nan"), float("nan")
    out = []
    for amp in (result.amplitude_g1, result.amplitude_g2):
        den = float(np.median(amp[b]))
        out.append(float(np.median(amp[a])) / den if den > 0 else float("nan"))
    return out[0], out[1]


def amplitude_changed(ratios) -> bool:
    """True when either ratio lies outside ``[1 / (1 + AMPLITUDE_CHANGE), 1 + AMPLITUDE_CHANGE]``."""
    lim = math.log1p(AMPLITUDE_CHANGE)
    return any(np.isfinite(r) and r > 0 and abs(math.log(r)) > lim for r in ratios)


@dataclass(frozen=True)
class NullScatter:
    """The contrast of the same pattern at other places in the matrix.

    ``rms`` is the root-mean-square contrast over ``n_placements`` placements (noise included),
    ``se_systematic`` the part beyond the noise, ``method`` ``"placements"`` (the core and its ring moved
    together), ``"core placements"`` (the pattern does not fit often enough: the core alone is moved, on a
    grid of a quarter of its diameter, within the ring too and with at least 90 % of it on allowed pixels,
    and compared with the ring's mean; long-range gradients then count in full) or
    ``"pixel floor"`` (not even the core fits often enough: the map's :func:`pixel_floor` stands in, an
    upper estimate since a region mean averages part of it away).
    """

    se_systematic: float
    n_placements: int
    rms: float
    method: str


def _box(mask):
    """The region cropped to its bounding box, and the box's top-left corner."""
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    return mask[y0 : ys.max() + 1, x0 : xs.max() + 1], (int(y0), int(x0))


def _window_sums(arr, kernel):
    """``S[y, x] = sum over kernel pixels (i, j) of arr[y + i, x + j]`` for every wholly-inside corner (FFT)."""
    import scipy.fft as sfft

    (ny, nx), (ky, kx) = arr.shape, kernel.shape
    shape = (sfft.next_fast_len(ny + ky, True), sfft.next_fast_len(nx + kx, True))
    f = sfft.rfft2(arr, shape) * np.conj(sfft.rfft2(kernel.astype(np.float64), shape))
    return sfft.irfft2(f, shape)[: ny - ky + 1, : nx - kx + 1]


def _corner_stats(values, allowed, kernel, step: int):
    """Allowed fraction and mean over the allowed pixels of ``kernel`` moved to every grid corner.

    Corners are the top-left of the kernel's box on a grid of ``step`` px (arrays indexed by corner / step);
    returns the fraction, the means and the step used.
    A large kernel is evaluated on every ``f``-th pixel (``f`` about a twelfth of its size; ``step`` is
    rounded to a multiple of it): the mean of a smooth map over thousands of pixels does not need all of them.
    """
    f = max(1, min(step, min(kernel.shape) // 12))
    step = max(f, step - step % f)
    k = kernel[::f, ::f]
    n = float(k.sum())
    a = allowed[::f, ::f]
    cover = _window_sums(a.astype(np.float64), k)[:: step // f, :: step // f] / n
    sums = _window_sums(np.where(a, values[::f, ::f], 0.0).astype(np.float64), k)[:: step // f, :: step // f]
    return cover, sums / np.maximum(cover * n, 0.5), step


def _noise_se(result, name, kernels, corner) -> float:
    """White-noise SE of the contrast of the pattern (one region or two, as box kernels) at ``corner``."""
    y, x = int(corner[0]), int(corner[1])
    se = []
    for k in kernels:
        m = np.zeros(result.shape, bool)
        m[y : y + k.shape[0], x : x + k.shape[1]] = k
        se.append(result.region_mean(name, m)[1])
    return float(math.hypot(*se)) if len(se) > 1 else float(se[0])


def null_scatter(result, name: str, inside, outside, *, exclude=None) -> NullScatter:
    """Systematic part of a region contrast from the same pattern placed elsewhere in the matrix.

    Parameters
    ----------
    result : StrainMap
    name : str
        The map (``"dilatation"``, ``"exx"``, ...).
    inside, outside : bool arrays
        The pattern (a dot core and its matrix ring).
    exclude : bool array, optional
        Pixels no placement may touch (every dot). Default: what the ring encloses (the dot and the gap).

    Notes
    -----
    Placements lie on a grid whose step is the core's diameter; their rings overlap, so the number of
    independent contrasts is smaller than ``n_placements``. The noise part subtracted is the white-noise SE
    of the contrast at the middle placement (:meth:`StrainMap.region_mean`).
    """
    inside = np.asarray(inside, bool)
    outside = np.asarray(outside, bool)
    if exclude is None:
        exclude = ndi.binary_fill_holes(inside | outside) & ~outside
    allowed = result.valid & ~np.asarray(exclude, bool)
    values = getattr(result, name)
    floor = _map_floor(result, name)
    if not inside.any() or not outside.any():
        return NullScatter(floor, 0, float("nan"), "pixel floor")
    step = max(2, int(round(2.0 * math.sqrt(inside.sum() / math.pi))))
    # the whole pattern: core and ring moved together, both wholly on allowed pixels
    both, (y0, x0) = _box(inside | outside)
    box = (slice(y0, y0 + both.shape[0]), slice(x0, x0 + both.shape[1]))
    k_in, k_out = inside[box], outside[box]
    cov_in, m_in, step = _corner_stats(values, allowed, k_in, step)
    cov_out, m_out, _ = _corner_stats(values, allowed, k_out, step)
    ok = (cov_in > 1 - 1e-9) & (cov_out > 1 - 1e-9)
    if ok.sum() >= MIN_NULL_PLACEMENTS:
        corners = np.argwhere(ok) * step
        noise = _noise_se(result, name, (k_in, k_out), corners[len(corners) // 2])
        return _scatter(m_in[ok] - m_out[ok], noise, "placements")
    # the whole pattern does not fit often enough: the core alone, against the ring's own mean
    k_core = _box(inside)[0]
    cov, m_core, step_core = _corner_stats(values, allowed, k_core, max(2, step // 4))
    ok = cov >= CORE_MIN_FRACTION
    if ok.sum() >= MIN_NULL_PLACEMENTS:
        corners = np.argwhere(ok) * step_core
        ring_mean = float(values[outside & result.valid].mean())
        noise = _noise_se(result, name, (k_core,), corners[len(corners) // 2])
        return _scatter(m_core[ok] - ring_mean, noise, "core placements")
    return NullScatter(floor, int(ok.sum()), float("nan"), "pixel floor")


def _map_floor(result, name: str) -> float:
    """The map's pixel floor: the one ``strain_map`` stored (``systematic_sd``), or computed for a result without it."""
    if name in result.systematic_sd:
        return float(result.systematic_sd[name])
    return pixel_floor(getattr(result, name), getattr(result, f"sigma_{name}"), result.reference_mask & result.valid)


def _scatter(d, noise: float, method: str) -> NullScatter:
    """The rms of the placed contrasts and its part beyond their noise."""
    d = np.asarray(d, dtype=np.float64)
    rms = float(np.sqrt(np.mean(d**2)))
    return NullScatter(math.sqrt(max(rms**2 - noise**2, 0.0)), len(d), rms, method)
