"""HAADF-STEM nanoparticle detection, segmentation and model-fit sizing.

:func:`find_particles` runs the whole analysis on one image:

1. **background**: a slowly varying matrix/thickness background, estimated by
   masked normalised Gaussian smoothing with the particles iteratively masked
   (so it works on a textured perovskite matrix as well as on flat carbon);
2. **detection**: a multi-scale Laplacian of Gaussian over the requested
   diameter range (``diameter_range_nm``), computed by FFT on a block-averaged
   image, local maxima in (scale, y, x) and overlap pruning in numba; the
   threshold of each scale is ``k`` times the noise of that scale's response,
   measured on the background pixels of the image itself, with ``k`` set by the
   expected number of false detections per image (``false_alarms``);
3. **segmentation**: seeded watershed (:func:`skimage.segmentation.watershed`)
   so touching pairs and small clusters split; particles cut by the image
   border are flagged (``edge``) and left out of the statistics (or weighted
   by Miles-Lantuéjoul); regions that look like unsplit clusters are flagged;
4. **measurements**: centre, equivalent circular diameter, Feret max/min,
   ellipse axes and orientation, circularity, integrated intensity
   (:func:`skimage.measure.regionprops_table`) and the **model-fit diameter**:
   a least-squares fit of projected spheres (thickness ``2 sqrt(R^2 - r^2)``)
   blurred by the probe over a local quadratic background, touching neighbours
   fitted jointly, with the 1-sigma error from the Fisher information;
5. **statistics** (:func:`latticefit.sizestats.size_summary`).

Why a model fit: a sphere's Z-contrast profile is ``sqrt(1 - r^2/R^2)``, so a
half-maximum contour sits at 0.87 R and thresholded diameters come out 8-15 %
small, by an amount that moves with the threshold. The fit measures R itself.

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.haadf_dots((512, 512), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=12,
...                              n_touching_pairs=1, seed=1)
>>> res = find_particles(mg, diameter_range_nm=(3, 12))
>>> len(res.table) == len(truth.particles)
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import AnalysisError, LatticefitWarning, check_param
from ..micrograph import Micrograph, as_micrograph
from . import _crowd as _particle_crowd
from . import _kernels as K
from ._checks import BORDER_RULES, check_fits, count_line_parts
from ._checks import CHI2_FACTOR as _CHI2_FACTOR
from ._checks import FIT_ECD_BAND as _FIT_ECD_BAND
from ._invalid import binned_mask, cut_by_mask, far_from_mask, inpaint, mask_note
from ._scalespace import log_planes, scan_scale_space
from ._sizestats import miles_lantuejoul_weights, size_summary

__all__ = [
    "ParticleResult",
    "find_particles",
    "estimate_background",
    "estimate_noise_model",
    "NoiseModel",
    "default_diameter_range_nm",
    "plot_overlay",
    "summary_lines",
    "count_line",
    "region_measures",
    "TABLE_COLUMNS",
    "JSON_PARTICLE_KEYS",
]

#: version of the ``ParticleResult.to_dict`` JSON (``latticefit particles --json``)
PARTICLES_SCHEMA_VERSION = 1
#: columns of :attr:`ParticleResult.table` (in order)
TABLE_COLUMNS = (
    "label",
    "x_px",
    "y_px",
    "diameter_nm",
    "diameter_err_nm",
    "x_err_px",
    "y_err_px",
    "ecd_nm",
    "feret_max_nm",
    "feret_min_nm",
    "major_axis_nm",
    "minor_axis_nm",
    "orientation_deg",
    "circularity",
    "solidity",
    "area_nm2",
    "integrated_intensity",
    "peak_height",
    "log_radius_nm",
    "edge",
    "cluster_unsplit",
    "fit_ok",
    "fit_group",
    "chi2_red",
    "ml_weight",
    "aspect_ratio",
    "status",
    "reject_reason",
    "in_statistics",
    "error_scale",
)
#: keys of each particle in the JSON contract
JSON_PARTICLE_KEYS = (
    "x_px",
    "y_px",
    "diameter_nm",
    "diameter_err_nm",
    "ecd_nm",
    "feret_max_nm",
    "feret_min_nm",
    "edge",
)

#: LoG sigma that maximises the scale-normalised response of a projected sphere, in units of R
#: (measured with the profile table; a flat disk would give 1/sqrt(2))
LOG_SIGMA_PER_RADIUS = 0.6
#: outline level: fraction of the local peak height above the background
OUTLINE_FRACTION = 0.2
#: a detection is dropped when its centre is closer than max(r) + PRUNE_OVERLAP * min(r) to a stronger one
PRUNE_OVERLAP = 0.4
#: background of the detection: 'opening' (grey opening, follows steps) or 'smooth' (masked smoothing)
BACKGROUND_METHOD = "opening"
#: flagged detections fainter than this fraction of the accepted particles' median contrast are dropped
FAINT_FRACTION = 0.25
#: split kept blobs that smaller single-scale maxima tile (:func:`latticefit._particle_crowd.split_crowds`)
CROWD_SPLIT = True
#: patches are block-averaged so that the smallest radius of a group spans at least this many fit pixels
FIT_RADIUS_PX = 7


# ============================================================================ result
@dataclass(eq=False)
class ParticleResult:
    """The particles found in one image.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per particle (columns :data:`TABLE_COLUMNS`); lengths in nm,
        positions in pixels of the input image (x right, y down, pixel centres
        at integers). ``diameter_nm`` is the model-fit diameter.
    summary : dict
        :func:`latticefit.sizestats.size_summary` of the non-edge particles
        with a fit (``n``, ``n_edge``, ``mean_nm``, ``rsd_percent`` ...) plus
        the analysis settings (``diameter_range_nm``, ``probe_sigma_nm``, ``noise``).
    labels : ndarray of int32
        Label image (0 = background, ``table.label`` otherwise) for overlays.
    pixel_size_nm : (float, float)
        Pixel size (y, x) in nm.
    source : str or None
        File the image came from.
    background : ndarray
        The estimated background (float32, full resolution; computed on first access).
    """

    table: Any
    summary: dict
    labels: np.ndarray
    pixel_size_nm: tuple[float, float]
    source: str | None = None
    background_grid: tuple | None = None  # (background on blocks of f px, f)
    settings: dict = field(default_factory=dict)

    @property
    def background(self) -> np.ndarray | None:
        """Estimated background at full resolution (interpolated from the detection grid)."""
        if self.background_grid is None:
            return None
        bg, f = self.background_grid
        return _resample(bg, f, 1, self.labels.shape)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def diameters_nm(self) -> np.ndarray:
        """Model-fit diameters of the particles used in the statistics."""
        t = self.table
        return t["diameter_nm"].to_numpy(float)[t["in_statistics"].to_numpy(bool)]

    def to_dict(self) -> dict:
        """The JSON contract: ``schema_version``, ``file``, ``pixel_size_nm``, ``particles`` (list of dicts), ``summary``."""
        rows = self.table.to_dict(orient="records")
        return {
            "schema_version": PARTICLES_SCHEMA_VERSION,
            "file": self.source,
            "pixel_size_nm": [float(v) for v in self.pixel_size_nm],
            "n_particles": len(rows),
            "particles": rows,
            "summary": self.summary,
            "settings": self.settings,
        }

    def to_csv(self, path) -> None:
        """Write :attr:`table` as CSV (one row per particle)."""
        from ..serialize import atomic_write_text

        atomic_write_text(path, self.table.to_csv(index=False))

    def __repr__(self) -> str:
        s = self.summary
        if s.get("n"):
            return (
                f"ParticleResult({len(self.table)} particles, n={s['n']} in stats, "
                f"mean {s['mean_nm']:.3g} nm, RSD {s['rsd_percent']:.3g}%)"
            )
        return f"ParticleResult({len(self.table)} particles)"


# ============================================================================ noise
@dataclass
class NoiseModel:
    """Pixel noise of an image: ``variance = offset + gain * intensity``.

    ``counts`` is True when the pixel values are integer multiples of a
    quantum (``gain`` = quantum) with Poisson-like variance; the fit then
    weights pixels by the model's own variance. Otherwise the per-group
    residual variance is used.
    """

    sigma: float
    counts: bool
    gain: float
    offset: float
    quantum: float | None

    def to_dict(self) -> dict:
        return {
            "sigma": self.sigma,
            "counts": self.counts,
            "gain": self.gain,
            "offset": self.offset,
            "quantum": self.quantum,
        }


def _immerkaer_tiles(img: np.ndarray, tile: int = 32, max_tiles: int = 400, invalid=None):
    """Per-tile (mean, noise variance) with Immerkaer's Laplacian-difference estimator (tiles with an
    ``invalid`` pixel left out).
    """
    h, w = img.shape
    ny, nx = max(1, h // tile), max(1, w // tile)
    ys = np.linspace(0, h - min(tile, h), ny).astype(int)
    xs = np.linspace(0, w - min(tile, w), nx).astype(int)
    step = max(1, int(math.ceil(math.sqrt(ny * nx / max_tiles))))
    means, vars_ = [], []
    for y in ys[::step]:
        for x in xs[::step]:
            t = img[y : y + tile, x : x + tile].astype(np.float64)
            if t.shape[0] < 3 or t.shape[1] < 3:
                continue
            if invalid is not None and invalid[y : y + tile, x : x + tile].any():
                continue
            lap = (
                t[:-2, :-2]
                + t[:-2, 2:]
                + t[2:, :-2]
                + t[2:, 2:]
                - 2 * (t[1:-1, :-2] + t[1:-1, 2:] + t[:-2, 1:-1] + t[2:, 1:-1])
                + 4 * t[1:-1, 1:-1]
            )
            # Immerkaer 1996: var = mean(lap^2) / 36 for white noise
            vars_.append(float(np.mean(lap * lap)) / 36.0)
            means.append(float(t.mean()))
    return np.array(means), np.array(vars_)


def _quantum(img: np.ndarray, invalid=None) -> float | None:
    """The step of which every pixel value is an integer multiple, or None (``invalid`` pixels ignored)."""
    sample = img.ravel()[:: max(1, img.size // 200000)].astype(np.float64)
    if invalid is not None:
        sample = sample[~invalid.ravel()[:: max(1, img.size // 200000)]]
    if sample.size < 3:
        return None
    if sample.min() < 0:
        return None
    u = np.unique(sample)
    if u.size < 3:
        return None
    d = np.diff(u)
    q = float(d.min())
    if q <= 0:
        return None
    k = u / q
    if np.max(np.abs(k - np.rint(k))) > 1e-3 * max(1.0, 1.0):
        return None
    return q


def estimate_noise_model(image, invalid=None) -> NoiseModel:
    """Pixel-noise model of an image, estimated from the data.

    The variance of each 32x32 tile (Immerkaer's estimator, which ignores smooth
    structure) is regressed on the tile mean. When the pixel values are integer
    multiples of a quantum ``q`` and the variance is ``q * mean`` to within a
    factor 1.6 (quietest half of the tiles), the image is taken as (scaled)
    Poisson counts. Otherwise ``variance = offset + gain * I`` is fitted to the
    lower third of the tiles of each intensity bin (structure only inflates the
    estimator); ``offset`` may be negative (a detector dark level:
    ``gain * (I - I_dark)``) as long as the variance stays positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> nm = estimate_noise_model(rng.poisson(50.0, (256, 256)).astype(np.uint16))
    >>> nm.counts, round(nm.gain, 1)
    (True, 1.0)
    """
    img = np.asarray(image.data if isinstance(image, Micrograph) else image)
    if invalid is None and isinstance(image, Micrograph):
        invalid = image.invalid_mask
    m, v = _immerkaer_tiles(img, invalid=invalid)
    if m.size == 0:
        sd = float(np.std(img if invalid is None else img[~invalid]))
        return NoiseModel(sigma=sd, counts=False, gain=0.0, offset=sd * sd, quantum=None)
    # structure inflates the estimator: keep the quieter tiles
    keep = v <= np.quantile(v, 0.5) if m.size > 8 else np.ones(m.size, bool)
    sigma = float(math.sqrt(max(np.median(v[keep]), 0.0)))
    q = _quantum(img, invalid)
    counts = False
    gain = 0.0
    offset = sigma * sigma
    if q is not None and np.all(m > 0):
        ratio = float(np.median(v[keep] / m[keep]))
        if 0.6 * q <= ratio <= 1.6 * q:
            counts = True
            gain, offset = q, 0.0
    if not counts and m.size > 8 and np.ptp(m) > 0:
        # variance against intensity: in each intensity bin the lower third of the tiles (structure only
        # ever inflates the estimator); selecting the quietest tiles overall would drop the bright ones,
        # whose noise is larger by nature. Detectors add a dark level, so ``offset`` may be negative
        # (variance = gain * (I - I_dark)); it only has to leave a positive variance over the image.
        nb = int(min(12, max(3, m.size // 12)))
        edges = np.unique(np.quantile(m, np.linspace(0, 1, nb + 1)))
        which = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, len(edges) - 2)
        bm, bv, bn = [], [], []
        for b in range(len(edges) - 1):
            sel = which == b
            if sel.sum() >= 4:
                vb = v[sel]
                low = vb <= np.quantile(vb, 1.0 / 3.0)
                bm.append(float(np.median(m[sel][low])))
                bv.append(float(np.median(vb[low])))
                bn.append(float(sel.sum()))
        if len(bm) >= 3 and np.ptp(bm) > 0:
            bm, bv, bn = np.array(bm), np.array(bv), np.array(bn)
            A = np.column_stack([np.ones(len(bm)), bm]) * np.sqrt(bn)[:, None]
            coef, *_ = np.linalg.lstsq(A, bv * np.sqrt(bn), rcond=None)
            if coef[1] > 0 and coef[0] + coef[1] * float(bm.min()) > 0.1 * sigma * sigma:
                offset, gain = float(coef[0]), float(coef[1])
    return NoiseModel(sigma=sigma, counts=counts, gain=gain, offset=offset, quantum=q)


# ======================================================================= background
def _interp_index(n_dst, n_src, f_src, f_dst):
    c = ((np.arange(n_dst) + 0.5) * f_dst) / f_src - 0.5
    c = np.clip(c, 0, n_src - 1)
    if n_src == 1:
        z = np.zeros(n_dst, int)
        return z, z, np.zeros(n_dst, np.float32)
    i0 = np.minimum(c.astype(int), n_src - 2)
    return i0, i0 + 1, (c - i0).astype(np.float32)


def _resample(a, f_src, f_dst, shape_dst):
    """Bilinear resampling between block grids: ``a`` on blocks of ``f_src`` px to blocks of ``f_dst`` px."""
    a = np.asarray(a, dtype=np.float32)
    y0, y1, ty = _interp_index(shape_dst[0], a.shape[0], f_src, f_dst)
    x0, x1, tx = _interp_index(shape_dst[1], a.shape[1], f_src, f_dst)
    rows = a[y0] * (1 - ty)[:, None] + a[y1] * ty[:, None]
    return rows[:, x0] * (1 - tx) + rows[:, x1] * tx


def _local_plane_smooth(wi, wb, sig):
    """Gaussian-weighted local linear regression (normalised convolution of order 1).

    ``wi`` holds weight * value and ``wb`` the weights on a grid; at every grid
    point a plane is fitted to the neighbourhood with Gaussian weights of std
    ``sig`` and evaluated there. Unlike plain normalised smoothing this follows
    a gradient up to the image border.
    """
    wi = wi.astype(np.float64)
    wb = wb.astype(np.float64)
    h, w = wb.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    yy -= h / 2.0
    xx -= w / 2.0

    def G(a):
        return ndi.gaussian_filter(a, sig, mode="constant", cval=0.0)

    s0, sx, sy = G(wb), G(wb * xx), G(wb * yy)
    sxx, sxy, syy = G(wb * xx * xx), G(wb * xx * yy), G(wb * yy * yy)
    t0, tx, ty = G(wi), G(wi * xx), G(wi * yy)
    # solve [[s0 sx sy] [sx sxx sxy] [sy sxy syy]] [a bx by] = [t0 tx ty] per point, evaluate a + bx x + by y
    A = np.stack([np.stack([s0, sx, sy], -1), np.stack([sx, sxx, sxy], -1), np.stack([sy, sxy, syy], -1)], -2)
    b = np.stack([t0, tx, ty], -1)
    A = A + np.eye(3) * (1e-9 * (s0[..., None, None] + 1e-12))
    try:
        coef = np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return t0 / np.maximum(s0, 1e-12)
    out = coef[..., 0] + coef[..., 1] * xx + coef[..., 2] * yy
    flat = t0 / np.maximum(s0, 1e-12)
    bad = ~np.isfinite(out) | (s0 < 1e-3 * s0.max())
    out[bad] = flat[bad]
    return out.astype(np.float32)


def _background_grid(img, scale_px, *, n_iter=4, clip_sigma=2.0):
    """Background of ``img`` (its own grid) with bright particles masked iteratively.

    Returns ``(background, particle_mask)`` on the grid of ``img``.
    """
    img = np.ascontiguousarray(img, dtype=np.float32)
    m = max(1, int(scale_px // 4))
    m = min(m, max(1, min(img.shape) // 4))
    sig = max(scale_px / m, 1.0)
    w = np.ones_like(img)
    mask = np.zeros(img.shape, bool)
    bg = None
    for it in range(n_iter + 1):
        wi = K.bin_image(img * w, m) if m > 1 else img * w  # block sums / m^2 of masked data
        wb = K.bin_image(w, m) if m > 1 else w  # fraction of unmasked pixels per block
        small = _local_plane_smooth(wi, wb, sig)
        bg = _resample(small, m, 1, img.shape) if m > 1 else small
        if it == n_iter:
            break
        r = img - bg
        neg = -r[(r < 0) & (w > 0)]
        noise = float(np.median(neg) / 0.6745) if neg.size > 10 else float(np.std(r))
        new_mask = r > clip_sigma * max(noise, 1e-12)
        if new_mask.mean() > 0.95:
            break
        mask = new_mask
        w = (~mask).astype(np.float32)
    return bg.astype(np.float32), mask


def estimate_background(image, scale_px: float, *, n_iter: int = 4, clip_sigma: float = 2.0, return_mask: bool = False):
    """Slowly varying background under bright particles (particles masked iteratively).

    Masked pixels are left out of a normalised Gaussian smoothing of std
    ``scale_px`` (done on blocks of ~``scale_px / 4`` px and interpolated
    back), and every pixel more than
    ``clip_sigma`` noise SDs above the current background is masked before the next
    round; the noise SD comes from the negative residuals only (particles are
    bright), so dense fields do not inflate it.

    Parameters
    ----------
    image : ndarray
        2-D image.
    scale_px : float
        Smoothing length in pixels: larger than the particles.
    return_mask : bool
        Also return the boolean particle mask (True = particle) at full resolution.

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = 100 + 0.2 * xx + 50.0 * ((xx - 64) ** 2 + (yy - 64) ** 2 < 100)
    >>> bg = estimate_background(img, 30)
    >>> bool(abs(bg[64, 64] - (100 + 0.2 * 64)) < 3)
    True
    """
    img = np.asarray(image, dtype=np.float32)
    bg, mask = _background_grid(img, scale_px, n_iter=n_iter, clip_sigma=clip_sigma)
    return (bg, mask) if return_mask else bg


# ======================================================================== detection
def _add_calibration_error(table, mg):
    """Add the relative error of the calibrated pixel length sqrt|det A| to every diameter error."""
    from .._calibration_affine import propagate

    v, var = propagate(
        lambda a: [math.sqrt(abs(np.linalg.det(a.reshape(2, 2))))], mg.affine_nm_per_px.ravel(), mg.affine_cov
    )
    rel = math.sqrt(abs(var[0, 0])) / v[0]
    table = table.copy()
    table["diameter_err_measurement_nm"] = table["diameter_err_nm"]
    table["diameter_err_nm"] = np.hypot(table["diameter_err_nm"], rel * table["diameter_nm"])
    return table


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
    """K such that ``n_eff * k * phi(k)`` equals the expected number of false alarms."""
    from scipy.optimize import brentq

    target = max(false_alarms, 1e-12) / max(n_eff, 1.0)
    # log(k) + log phi(k), phi the standard normal density (closed form: scipy.stats costs ~1 s to import)
    fun = lambda k: math.log(k) - 0.5 * k * k - 0.5 * math.log(2 * math.pi) - math.log(target)  # noqa: E731
    if fun(1.0) <= 0:
        return 1.0
    return float(brentq(fun, 1.0, 40.0))


# ============================================================================ main
def _parse_range(diameter_range_nm, source):
    from ..units import parse_length_nm

    if isinstance(diameter_range_nm, str):
        txt = diameter_range_nm.strip()
        unit = ""
        for u in ("nm", "A", "Å", "pm", "um", "µm"):
            if txt.endswith(u):
                unit, txt = u, txt[: -len(u)]
                break
        parts = [p for p in txt.replace(":", "-").replace(",", "-").split("-") if p.strip()]
        if len(parts) != 2:
            raise AnalysisError(
                f"diameter range {diameter_range_nm!r}: expected LO-HI with a unit, e.g. 2-15nm", source
            )
        vals = [parse_length_nm(p.strip() + unit) for p in parts]
    else:
        try:
            vals = [parse_length_nm(v) for v in diameter_range_nm]
        except TypeError:
            raise AnalysisError(f"diameter range must be (lo, hi) in nm, got {diameter_range_nm!r}", source) from None
        if len(vals) != 2:
            raise AnalysisError(f"diameter range must be (lo, hi) in nm, got {diameter_range_nm!r}", source)
    lo, hi = vals
    if not lo < hi:
        raise AnalysisError(
            f"diameter range {diameter_range_nm!r}: the lower bound must be below the upper one", source
        )
    return float(lo), float(hi)


def _union_groups(x, y, r, link, max_size=8):
    """Connected components of the 'touching' graph (centre distance < link * (r_i + r_j) + 2 px), capped."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(x)
    if n == 0:
        return np.zeros(0, int)
    tree = cKDTree(np.column_stack([x, y]))
    pairs = tree.query_pairs(float(2 * link * r.max() + 2.0), output_type="ndarray")
    if len(pairs):
        d = np.hypot(x[pairs[:, 0]] - x[pairs[:, 1]], y[pairs[:, 0]] - y[pairs[:, 1]])
        pairs = pairs[d < link * (r[pairs[:, 0]] + r[pairs[:, 1]]) + 2.0]
    g = (
        coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        if len(pairs)
        else coo_matrix((n, n))
    )
    ncomp, lab = connected_components(g, directed=False)
    # split components larger than max_size into spatial chunks
    out = lab.copy()
    nxt = ncomp
    counts = np.bincount(lab)
    for c in np.nonzero(counts > max_size)[0]:
        idx = np.nonzero(lab == c)[0]
        order = idx[np.lexsort((x[idx], y[idx]))]
        for start in range(max_size, len(order), max_size):
            out[order[start : start + max_size]] = nxt
            nxt += 1
    _, out = np.unique(out, return_inverse=True)
    return out


@dataclass
class _Fit:
    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    h: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    r_err: np.ndarray
    ok: np.ndarray
    group: np.ndarray
    chi2_red: np.ndarray
    bg: np.ndarray
    sigma_px: float
    h_err: np.ndarray


def _prepare_groups(img, x, y, r, group, members, fit_sigma_px, b_of_group, margin_extra, invalid=None):
    """Cut the binned patch of each group; returns the flat arrays the numba fit takes."""
    H, W = img.shape
    xs_l, ys_l, data_l, w_l = [], [], [], []
    pix_off = [0]
    par_l = []
    par_off = [0]
    npart = []
    xc_l, yc_l = [], []
    origin = []
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([x, y])) if len(x) else None
    rmax_all = float(r.max()) if len(r) else 0.0
    for g, idx in enumerate(members):
        b = int(b_of_group[g])
        rg = r[idx]
        margin = 0.4 * rg.max() + 3.0 * fit_sigma_px + 2.0 * b + margin_extra
        x0 = int(math.floor(max(0.0, (x[idx] - rg).min() - margin)))
        x1 = int(math.ceil(min(W, (x[idx] + rg).max() + margin + 1)))
        y0 = int(math.floor(max(0.0, (y[idx] - rg).min() - margin)))
        y1 = int(math.ceil(min(H, (y[idx] + rg).max() + margin + 1)))
        nx = max(1, (x1 - x0) // b)
        ny = max(1, (y1 - y0) // b)
        patch = img[y0 : y0 + ny * b, x0 : x0 + nx * b].astype(np.float64)
        if b > 1:
            patch = patch.reshape(ny, b, nx, b).mean(axis=(1, 3))
        # fit coordinates: fit-pixel index (u, v); full px = x0 + (u + 0.5) b - 0.5
        vv, uu = np.mgrid[:ny, :nx]
        fx = x0 + (np.arange(nx) + 0.5) * b - 0.5  # row vector of x (full px)
        fy = (y0 + (np.arange(ny) + 0.5) * b - 0.5)[:, None]
        wts = np.ones((ny, nx))
        if invalid is not None:  # NaN/inf pixels of the file carry no weight (a block with one is left out)
            nb = invalid[y0 : y0 + ny * b, x0 : x0 + nx * b]
            wts[(nb.reshape(ny, b, nx, b).any(axis=(1, 3)) if b > 1 else nb)] = 0.0
        # mask the particles of other groups that reach into the patch
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        rad = 0.5 * math.hypot(x1 - x0, y1 - y0) + rmax_all
        near = np.asarray(tree.query_ball_point([cx, cy], rad), dtype=np.int64)
        near = near[group[near] != g]
        if near.size:
            reach = r[near] + 2.0 * fit_sigma_px + 1.5 * b
            ddx = np.maximum(np.maximum(x0 - x[near], x[near] - x1), 0.0)
            ddy = np.maximum(np.maximum(y0 - y[near], y[near] - y1), 0.0)
            for k, rk in zip(near[np.hypot(ddx, ddy) < reach], reach[np.hypot(ddx, ddy) < reach]):
                wts[(fx - x[k]) ** 2 + (fy - y[k]) ** 2 < rk * rk] = 0.0
        inside = np.zeros((ny, nx), bool)
        for k in idx:
            inside |= (fx - x[k]) ** 2 + (fy - y[k]) ** 2 < (1.3 * r[k] + 2 * fit_sigma_px) ** 2
        ring = patch[(~inside) & (wts > 0)]
        b0 = float(np.median(ring)) if ring.size >= 5 else float(np.percentile(patch, 10))
        p = [b0] + [0.0] * (K.N_BACKGROUND - 1)
        for k in idx:
            u = (x[k] - x0 + 0.5) / b - 0.5
            v = (y[k] - y0 + 0.5) / b - 0.5
            iu = int(np.clip(round(u), 0, nx - 1))
            iv = int(np.clip(round(v), 0, ny - 1))
            hk = max(float(patch[iv, iu] - b0), 1e-6 * max(abs(b0), 1.0))
            p += [u, v, r[k] / b, hk]
        xs_l.append(uu.ravel().astype(np.float64))
        ys_l.append(vv.ravel().astype(np.float64))
        data_l.append(patch.ravel())
        w_l.append(wts.ravel())
        pix_off.append(pix_off[-1] + patch.size)
        par_l.append(np.array(p))
        par_off.append(par_off[-1] + len(p))
        npart.append(len(idx))
        xc_l.append(0.5 * (nx - 1))
        yc_l.append(0.5 * (ny - 1))
        origin.append((x0, y0, b))
    return dict(
        xs=np.concatenate(xs_l),
        ys=np.concatenate(ys_l),
        data=np.concatenate(data_l),
        wts=np.concatenate(w_l),
        pix_off=np.array(pix_off, np.int64),
        params=np.concatenate(par_l),
        par_off=np.array(par_off, np.int64),
        npart=np.array(npart, np.int64),
        xc=np.array(xc_l),
        yc=np.array(yc_l),
        origin=origin,
    )


def _insert_sigma(prep, sigma_fit):
    """Parameter layout with a per-group sigma after the background terms (for the fit_sigma pass)."""
    params, offs = [], [0]
    for g in range(len(prep["npart"])):
        p = prep["params"][prep["par_off"][g] : prep["par_off"][g + 1]]
        nb = K.N_BACKGROUND
        params.append(np.concatenate([p[:nb], [sigma_fit[g]], p[nb:]]))
        offs.append(offs[-1] + len(params[-1]))
    return np.concatenate(params), np.array(offs, np.int64)


def _run_fit(prep, fit_sigma, s2, params, par_off, wts, max_iter=100):
    t = K.profile_table()
    return K.fit_groups(
        prep["xs"],
        prep["ys"],
        prep["data"],
        wts,
        prep["pix_off"],
        params,
        par_off,
        prep["npart"],
        prep["xc"],
        prep["yc"],
        fit_sigma,
        s2,
        t.packed,
        t.params,
        max_iter,
        0.3,
        1e4,
    )


def _fit_particles(img, x, y, r, strength, noise: NoiseModel, probe_sigma_px, link=1.15, invalid=None):
    """Joint model fits of all particles; returns a :class:`_Fit` (full-resolution px units)."""
    n = len(x)
    group = _union_groups(x, y, r, link)
    ng = int(group.max()) + 1
    members = [np.nonzero(group == g)[0] for g in range(ng)]
    H, W = img.shape
    sigma_guess = probe_sigma_px if probe_sigma_px is not None else max(0.5, 0.05 * float(np.median(r)))
    b_of_group = np.array([max(1, int(r[m].min() // FIT_RADIUS_PX)) for m in members])
    prep = _prepare_groups(img, x, y, r, group, members, sigma_guess, b_of_group, 0.0, invalid)
    bsz = np.array([o[2] for o in prep["origin"]], float)
    base_w = prep["wts"]

    # --- probe sigma: fitted on the brightest isolated particles, then fixed
    if probe_sigma_px is None:
        iso = [
            g
            for g, m in enumerate(members)
            if len(m) == 1
            and x[m[0]] - r[m[0]] > 2
            and y[m[0]] - r[m[0]] > 2
            and x[m[0]] + r[m[0]] < W - 3
            and y[m[0]] + r[m[0]] < H - 3
        ]
        iso = sorted(iso, key=lambda g: -strength[members[g][0]])[:24]
        sig_est = []
        if iso:
            sub = _subset(prep, iso)
            p_s, off_s = _insert_sigma(sub, sigma_guess / bsz[iso])
            out, _F, _msq, _c2, _it, conv = _run_fit(sub, True, np.zeros(len(iso)), p_s, off_s, sub["wts"])
            for j, g in enumerate(iso):
                sg = abs(out[off_s[j] + K.N_BACKGROUND]) * bsz[g]
                if conv[j] and np.isfinite(sg):
                    sig_est.append(sg)
        probe_sigma_px = float(np.median(sig_est)) if sig_est else sigma_guess
        probe_sigma_px = float(np.clip(probe_sigma_px, 0.0, 0.4 * float(np.median(r))))
    s2 = (probe_sigma_px / bsz) ** 2 + 1.0 / 12.0

    # --- all groups, sigma fixed. Counts: weights 1/variance of the model (from the starting values, then
    # refreshed once at the solution, where the Fisher matrix is taken); otherwise unweighted
    if noise.counts:
        t = K.profile_table()
        bb = np.repeat(bsz, np.diff(prep["pix_off"]))

        def _weights(par):
            model = K.eval_groups(
                prep["xs"],
                prep["ys"],
                prep["pix_off"],
                par,
                prep["par_off"],
                prep["npart"],
                prep["xc"],
                prep["yc"],
                False,
                s2,
                t.packed,
                t.params,
            )
            var = (noise.gain * np.maximum(model, noise.gain) + noise.offset) / (bb * bb)
            return np.where(base_w > 0, 1.0 / var, 0.0)

        out, F, msq, chi2, nit, conv = _run_fit(
            prep, False, s2, prep["params"], prep["par_off"], _weights(prep["params"])
        )
        # Fisher matrix and chi2 at the solution with the variance of the fitted model (no further steps:
        # max_iter=0 only evaluates the normal equations)
        out, F, msq, chi2, _nit, _conv = _run_fit(prep, False, s2, out, prep["par_off"], _weights(out), max_iter=0)
    else:
        out, F, msq, chi2, nit, conv = _run_fit(prep, False, s2, prep["params"], prep["par_off"], base_w)
    # --- unpack
    fx = np.full(n, np.nan)
    fy, fr, fh, ex, ey, er, eh = (np.full(n, np.nan) for _ in range(7))
    ok = np.zeros(n, bool)
    chi2_red = np.full(n, np.nan)
    bg_level = np.full(n, np.nan)
    npix = np.array([int((base_w[prep["pix_off"][g] : prep["pix_off"][g + 1]] > 0).sum()) for g in range(ng)])
    for g, idx in enumerate(members):
        c, d = prep["par_off"][g], prep["par_off"][g + 1]
        m = d - c
        p = out[c:d]
        Fm = F[msq[g] : msq[g + 1]].reshape(m, m)
        dof = max(npix[g] - m, 1)
        try:
            cov = np.linalg.inv(Fm)
        except np.linalg.LinAlgError:
            cov = np.full((m, m), np.nan)
        if noise.counts:
            red = chi2[g] / dof
        else:
            red = chi2[g] / dof
            cov = cov * red  # residual variance estimate
            exp_var = (noise.offset + noise.gain * max(p[0], 0.0)) / bsz[g] ** 2
            red = red / exp_var if exp_var > 0 else np.nan
        x0, y0, b = prep["origin"][g]
        for j, k in enumerate(idx):
            o = K.N_BACKGROUND + 4 * j
            u, v, R, Hh = p[o : o + 4]
            fx[k] = x0 + (u + 0.5) * b - 0.5
            fy[k] = y0 + (v + 0.5) * b - 0.5
            fr[k] = R * b
            fh[k] = Hh
            dg = np.diag(cov)[o : o + 4]
            with np.errstate(invalid="ignore"):
                ex[k], ey[k], er[k] = np.sqrt(dg[:3]) * b
                eh[k] = np.sqrt(dg[3])
            chi2_red[k] = red
            bg_level[k] = p[0]
            # a fit that wandered off its seed or changed its size wildly did not find this particle
            moved = math.hypot(fx[k] - x[k], fy[k] - y[k]) > 0.6 * r[k] + 2.0
            ok[k] = bool(
                conv[g]
                and np.isfinite(er[k])
                and Hh > 0
                and 0.31 * b < fr[k]
                and er[k] < 0.5 * fr[k]
                and np.all(np.isfinite(dg))
                and np.all(dg >= 0)
                and not moved
                and 0.4 * r[k] < fr[k] < 2.5 * r[k]
            )
    return _Fit(fx, fy, fr, fh, ex, ey, er, ok, group, chi2_red, bg_level, float(probe_sigma_px), eh)


def _subset(prep, groups):
    xs, ys, data, wts, po, pa, po2 = [], [], [], [], [0], [], [0]
    for g in groups:
        a, b = prep["pix_off"][g], prep["pix_off"][g + 1]
        c, d = prep["par_off"][g], prep["par_off"][g + 1]
        xs.append(prep["xs"][a:b])
        ys.append(prep["ys"][a:b])
        data.append(prep["data"][a:b])
        wts.append(prep["wts"][a:b])
        po.append(po[-1] + b - a)
        pa.append(prep["params"][c:d])
        po2.append(po2[-1] + d - c)
    return dict(
        xs=np.concatenate(xs),
        ys=np.concatenate(ys),
        data=np.concatenate(data),
        wts=np.concatenate(wts),
        pix_off=np.array(po, np.int64),
        params=np.concatenate(pa),
        par_off=np.array(po2, np.int64),
        npart=prep["npart"][groups],
        xc=prep["xc"][groups],
        yc=prep["yc"][groups],
    )


# ====================================================================== detection
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
    lo = float(np.percentile(coarse, 1))
    # only worth it when the variance changes appreciably over the image
    hi = float(np.percentile(coarse, 99.5))
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


def _detect(img, dlo_px, dhi_px, bg_scale_px, false_alarms, noise_model=None, invalid=None):
    """Background + multi-scale LoG detection.

    Returns seeds (x, y, r in full px, significance) or None, and the
    detection-grid data (block factor ``f``, background-subtracted ``coarse``
    image, ``background``, ``sigmas`` ...).
    """
    sig_lo = LOG_SIGMA_PER_RADIUS * dlo_px / 2.0
    sig_hi = LOG_SIGMA_PER_RADIUS * dhi_px / 2.0
    f = max(1, int(sig_lo // 1.6))
    coarse_raw, stab = _stabilised_grid(img, f, noise_model)
    hc, wc = stab.shape
    stabilised = stab is not coarse_raw
    if BACKGROUND_METHOD == "opening":  # follows steps (film edge, thicker matrix) and ramps, see _particle_crowd
        bgc, pmask = _particle_crowd.opening_background(stab, max(0.5 * bg_scale_px, 1.2 * dlo_px) / f)
    else:
        bgc, pmask = _background_grid(stab, bg_scale_px / f)
    n_s = max(2, int(math.ceil(math.log(sig_hi / sig_lo) / math.log(1.2))) + 1)
    sigmas = np.geomspace(sig_lo, sig_hi, n_s) / f
    # noise of each scale's response: MAD over background pixels (particles masked and dilated)
    # background pixels of scale k: farther than 3 sigma_k from any masked (particle) pixel
    step = max(1, int(math.sqrt(hc * wc / 60000.0)))
    psub = pmask[::step, ::step]
    dsub = ndi.distance_transform_edt(~psub) * step if psub.any() else np.full(psub.shape, np.inf)
    bad_c = None if invalid is None else binned_mask(invalid, f)
    # masked (NaN) pixels: no noise samples within 3 sigma of them, no detections on them
    dbad = None if bad_c is None else far_from_mask(bad_c[::step, ::step], step)

    def clean(k):  # background pixels of scale k
        sel = dsub > 3.0 * sigmas[k]
        return sel if dbad is None else sel & (dbad > 3.0 * sigmas[k])

    # scales with too few clean pixels (crowded field) cap their noise by the image's own pixel noise
    crowd = {"pixel_noise": None}
    if any(int(clean(k).sum()) < 500 for k in range(n_s)):
        crowd["pixel_noise"] = _particle_crowd.pixel_noise(stab, f, stabilised=stabilised)
    planes = log_planes(_subtract_background(stab, bgc, img), sigmas)
    del stab, coarse_raw  # the generator holds the residual until its spectrum is taken
    noise_raw = np.empty(n_s)
    noise = np.empty(n_s)
    valid_frac = 1.0 if bad_c is None else 1.0 - float(bad_c.mean())
    n_eff = MAXIMA_DENSITY * hc * wc * valid_frac * float(np.sum(1.0 / sigmas**2))
    kthr = _threshold_factor(n_eff, false_alarms)

    def threshold_of(k, plane):
        sel = clean(k)
        crowded = False
        if sel.sum() < 500 and k > 0:
            # too few clean pixels at this scale (crowded field): white-noise scaling of the previous
            # scale, whose normalised LoG response falls as 1/sigma
            noise_raw[k] = noise_raw[k - 1] * sigmas[k - 1] / sigmas[k]
            crowded = True
        else:
            if sel.sum() < 500:
                sel = dsub >= np.quantile(dsub, 0.5)
                if dbad is not None:
                    sel &= dbad > 0
                crowded = True
            v = plane[::step, ::step][sel].astype(np.float64)
            v = v - np.median(v)
            mad = 1.4826 * np.median(np.abs(v)) + 1e-30
            # RMS of the values within 5 MAD-sigma: keeps the noise's own tails, drops stray particle signal
            vv = v[np.abs(v) < 5.0 * mad]
            noise_raw[k] = float(np.sqrt(np.mean(vv * vv))) if vv.size > 10 else mad
        noise[k] = noise_raw[k]
        if crowded:
            # crowded fields leave no clean background: the noise of those scales then holds particle
            # signal. Cap it at WHITE_NOISE_CAP times the response of white noise of the image's own pixel
            # noise (_particle_crowd)
            cap = _particle_crowd.white_log_noise(crowd["pixel_noise"], sigmas[k : k + 1])[0]
            noise[k] = min(noise_raw[k], cap * _particle_crowd.WHITE_NOISE_CAP)
        return kthr * noise[k]

    # the scale space one plane at a time (three held): the memory of a few images, not one per scale
    cand, (oy, ox, ok), c2 = scan_scale_space(planes, n_s, threshold_of, single_scale=CROWD_SPLIT)
    del planes
    # the residual again (cheaper than holding it through the scan), the background in intensity units
    coarse = _subtract_background(_stabilised_grid(img, f, noise_model)[1], bgc, img)
    if stabilised:  # inverse of the stabilising transform
        g, a0 = noise_model.gain, noise_model.offset
        bgc_lin = ((g * bgc / 2.0) ** 2 - a0) / g
    else:
        bgc_lin = bgc
    del bgc
    pixel_noise = crowd["pixel_noise"]
    if len(cand) == 0:
        return None, dict(f=f, coarse=coarse, background=bgc_lin, sigmas=sigmas, noise=noise, k=kthr)
    k, i, j, v = cand.T
    kk = np.clip(k + ok, 0, n_s - 1)
    sig_c = np.exp(np.interp(kk, np.arange(n_s), np.log(sigmas)))
    y = (i + oy + 0.5) * f - 0.5
    x = (j + ox + 0.5) * f - 0.5
    r = sig_c * f / LOG_SIGMA_PER_RADIUS
    strength = v / noise[k.astype(int)]
    # reflect padding folds the noise near the border: its variance rises by (1 + c(d / sigma)) per axis
    sk = sigmas[k.astype(int)]
    fy = 1.0 + _border_corr((np.minimum(i, hc - 1 - i) + 0.5) / sk)
    fx = 1.0 + _border_corr((np.minimum(j, wc - 1 - j) + 0.5) / sk)
    good = strength >= kthr * np.sqrt(fy * fx)
    if bad_c is not None:
        good &= ~bad_c[i.astype(int), j.astype(int)]
    y, x, r, strength, i, j, k = y[good], x[good], r[good], strength[good], i[good], j[good], k[good]
    keep = K.prune_blobs(y, x, r, strength, PRUNE_OVERLAP)
    keep = _split_cluster_blobs(y, x, r, strength, keep)
    seeds = dict(
        x=x[keep],
        y=y[keep],
        r=r[keep],
        strength=strength[keep],
        ci=i[keep].astype(int),
        cj=j[keep].astype(int),
        ck=k[keep].astype(int),
    )
    if CROWD_SPLIT:
        # crowds: maxima of single scales on an intensity top may tile a kept blob (rafts, chains, aggregates)
        tops = _particle_crowd.intensity_peaks(coarse, sigmas[0])
        if len(c2):
            k2, i2, j2, v2 = c2.T
            i2, j2, k2i = i2.astype(int), j2.astype(int), k2.astype(int)
            on_top = ndi.maximum_filter(tops, size=3)[i2, j2]
            s2 = v2 / noise[k2i]
            c_keep = on_top & (
                s2
                >= kthr
                * np.sqrt(
                    (1.0 + _border_corr((np.minimum(i2, hc - 1 - i2) + 0.5) / sigmas[k2i]))
                    * (1.0 + _border_corr((np.minimum(j2, wc - 1 - j2) + 0.5) / sigmas[k2i]))
                )
            )
            if bad_c is not None:
                c_keep &= ~bad_c[i2, j2]
            i2, j2, k2i, s2 = i2[c_keep], j2[c_keep], k2i[c_keep], s2[c_keep]
            y2, x2 = (i2 + 0.5) * f - 0.5, (j2 + 0.5) * f - 0.5
            r2 = sigmas[k2i] * f / LOG_SIGMA_PER_RADIUS
            keep, extra = _particle_crowd.split_crowds(
                y, x, r, strength, keep, y2, x2, r2, s2, prune=K.prune_blobs, overlap=PRUNE_OVERLAP
            )
            seeds = {
                "x": np.concatenate([x[keep], x2[extra]]),
                "y": np.concatenate([y[keep], y2[extra]]),
                "r": np.concatenate([r[keep], r2[extra]]),
                "strength": np.concatenate([strength[keep], s2[extra]]),
                "ci": np.concatenate([i[keep].astype(int), i2[extra]]),
                "cj": np.concatenate([j[keep].astype(int), j2[extra]]),
                "ck": np.concatenate([k[keep].astype(int), k2i[extra]]),
            }
    return seeds, dict(
        f=f, coarse=coarse, background=bgc_lin, sigmas=sigmas, noise=noise, k=kthr, pixel_noise=pixel_noise
    )


def _split_cluster_blobs(y, x, r, strength, keep):
    """Replace a large blob by the smaller blobs it suppressed when they tile it like a touching group.

    At large scales the LoG of two touching spheres peaks between them and may outrank each sphere's
    own peak. A kept blob ``i`` is replaced when at least two of the detections it suppressed (radius
    0.35-0.75 ``r_i``, centre inside ``r_i``), pruned among themselves, lie side by side (centre distance
    >= 0.8 (r_a + r_b)) and together cover at least 35 % of its area.
    """
    from scipy.spatial import cKDTree

    if keep.sum() == 0 or keep.all():
        return keep
    keep = keep.copy()
    rej = np.nonzero(~keep)[0]
    tree = cKDTree(np.column_stack([x[rej], y[rej]]))
    for i in np.nonzero(keep)[0][np.argsort(-r[keep])]:
        if not keep[i]:
            continue
        near = rej[tree.query_ball_point([x[i], y[i]], r[i])]
        near = near[(r[near] >= 0.35 * r[i]) & (r[near] <= 0.75 * r[i]) & ~keep[near]]
        if len(near) < 2:
            continue
        sub = near[K.prune_blobs(y[near], x[near], r[near], strength[near], PRUNE_OVERLAP)]
        if len(sub) < 2 or np.sum(r[sub] ** 2) < 0.35 * r[i] ** 2:
            continue
        d = np.hypot(x[sub][:, None] - x[sub][None, :], y[sub][:, None] - y[sub][None, :])
        lim = 0.8 * (r[sub][:, None] + r[sub][None, :])
        np.fill_diagonal(d, np.inf)
        if np.all(d >= lim):
            keep[i] = False
            keep[sub] = True
    return keep


def _segment(coarse, seeds, sigmas, f, shape, pixel_noise=None):
    """Seeded watershed on the smoothed coarse image; returns the full-resolution label image."""
    s_seg = max(0.7, 0.5 * float(sigmas[0]))
    S = ndi.gaussian_filter(coarse, s_seg)
    neg = -S[S < 0]
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
    return lab.astype(np.int32, copy=False), nS


def _watershed_components(image, mask, ci, cj):
    """``watershed(image, markers at (ci, cj) numbered 1..n, mask=mask)``, one connected part of the mask at a time.

    Flooding never crosses from one 4-connected part of the mask to another, and within a part the order of
    the flood (value, then age) is the same as in the whole image, so the labels are those of one watershed
    of the image (seeds of exactly equal value, which skimage orders arbitrarily, aside); the temporaries
    are those of the largest part instead of several images (issue #17).
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


# =================================================================== measurements
def _hull_calipers(pts):
    """Feret max, Feret min and area of the convex hull of points (x, y)."""
    from scipy.spatial import ConvexHull

    try:
        hull = ConvexHull(pts)
    except Exception:
        ext = np.ptp(pts, axis=0)
        return float(ext.max()), float(ext.min()), float(ext[0] * ext[1])
    v = pts[hull.vertices]
    d = v[:, None, :] - v[None, :, :]
    fmax = float(np.sqrt((d**2).sum(-1)).max())
    e = np.roll(v, -1, axis=0) - v
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    nrm = np.column_stack([-e[:, 1], e[:, 0]])
    fmin = float(np.ptp(v @ nrm.T, axis=0).min())
    return fmax, fmin, float(hull.volume)


def region_measures(mask: np.ndarray) -> dict:
    """Shape measurements of one binary region (pixel units).

    ``area`` (pixel count), ``centroid`` (y, x), ``axis_major_length`` /
    ``axis_minor_length`` / ``orientation`` (as :func:`skimage.measure.regionprops`:
    4 sqrt of the inertia-tensor eigenvalues, angle of the major axis from the
    row axis), ``feret_max`` / ``feret_min`` and ``solidity`` from the convex hull
    of the pixel squares (ImageJ's convention), and ``perimeter``: the boundary
    crack length times pi/4 (unbiased for randomly oriented smooth outlines).

    Examples
    --------
    >>> yy, xx = np.mgrid[:41, :41]
    >>> m = (yy - 20) ** 2 + (xx - 20) ** 2 <= 15 ** 2
    >>> r = region_measures(m)
    >>> round(r["feret_max"]), round(4 * np.pi * r["area"] / r["perimeter"] ** 2, 1)
    (31, 0.9)
    """
    ys, xs = np.nonzero(mask)
    n = ys.size
    out = dict(
        area=float(n),
        centroid=(np.nan, np.nan),
        axis_major_length=np.nan,
        axis_minor_length=np.nan,
        orientation=np.nan,
        feret_max=np.nan,
        feret_min=np.nan,
        solidity=np.nan,
        perimeter=np.nan,
    )
    if n == 0:
        return out
    cy, cx = ys.mean(), xs.mean()
    dy, dx = ys - cy, xs - cx
    # central second moments (as skimage's inertia tensor, without a pixel-size term)
    a = (dy * dy).mean()
    c = (dx * dx).mean()
    b = (dy * dx).mean()
    Txx, Tyy, Txy = c, a, -b
    t = 0.5 * (Txx + Tyy)
    dlt = math.sqrt(max(0.25 * (Txx - Tyy) ** 2 + Txy**2, 0.0))
    l1, l2 = t + dlt, max(t - dlt, 0.0)
    out["centroid"] = (float(cy), float(cx))
    out["axis_major_length"] = 4.0 * math.sqrt(l1)
    out["axis_minor_length"] = 4.0 * math.sqrt(l2)
    # orientation (skimage): angle between the row axis and the major axis, in (-pi/2, pi/2]
    ang = 0.5 * math.atan2(-2.0 * b, c - a) + math.pi / 2.0
    if ang > math.pi / 2.0:
        ang -= math.pi
    out["orientation"] = ang
    m = np.pad(mask, 1)
    cracks = int(np.count_nonzero(m[1:, :] != m[:-1, :]) + np.count_nonzero(m[:, 1:] != m[:, :-1]))
    out["perimeter"] = cracks * math.pi / 4.0
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    by, bx = np.nonzero(mask & ~inner)
    pts = np.concatenate([np.column_stack([bx + ox, by + oy]) for ox in (-0.5, 0.5) for oy in (-0.5, 0.5)])
    fmax, fmin, harea = _hull_calipers(pts.astype(np.float64))
    out["feret_max"], out["feret_min"] = fmax, fmin
    out["solidity"] = float(n / harea) if harea > 0 else np.nan
    return out


_MEASURE_COLUMNS = (
    "area",
    "centroid-0",
    "centroid-1",
    "axis_major_length",
    "axis_minor_length",
    "orientation",
    "perimeter",
    "solidity",
    "feret_max",
    "feret_min",
    "intensity_mean",
    "bbox-0",
    "bbox-1",
    "bbox-2",
    "bbox-3",
)


def _measure_regions(labels, img, n):
    """Measurements of labels 1..n (numba kernel; :func:`_measure_regions_ref` is the numpy reference)."""
    import pandas as pd

    arr = K.region_measures_all(
        np.ascontiguousarray(labels, dtype=np.int32), np.ascontiguousarray(img, dtype=np.float32), int(n)
    )
    df = pd.DataFrame(arr, columns=list(_MEASURE_COLUMNS))
    df.insert(0, "label", np.arange(1, n + 1))
    return df


def _measure_regions_ref(labels, img, n):
    """:func:`region_measures` of labels 1..n plus the mean intensity (rows of missing labels are NaN)."""
    import pandas as pd

    objs = ndi.find_objects(labels, max_label=n)
    cols = {k: np.full(n, np.nan) for k in _MEASURE_COLUMNS}
    for k, sl in enumerate(objs):
        if sl is None:
            continue
        mask = labels[sl] == (k + 1)
        r = region_measures(mask)
        y0, x0 = sl[0].start, sl[1].start
        cols["area"][k] = r["area"]
        cols["centroid-0"][k] = r["centroid"][0] + y0
        cols["centroid-1"][k] = r["centroid"][1] + x0
        for key in (
            "axis_major_length",
            "axis_minor_length",
            "orientation",
            "perimeter",
            "solidity",
            "feret_max",
            "feret_min",
        ):
            cols[key][k] = r[key]
        cols["intensity_mean"][k] = float(img[sl][mask].mean())
        cols["bbox-0"][k], cols["bbox-1"][k] = y0, x0
        cols["bbox-2"][k], cols["bbox-3"][k] = sl[0].stop, sl[1].stop
    df = pd.DataFrame(cols)
    df.insert(0, "label", np.arange(1, n + 1))
    return df


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


def _empty_table():
    import pandas as pd

    cols = {c: pd.Series(dtype=float) for c in TABLE_COLUMNS}
    for c in ("label", "fit_group"):
        cols[c] = pd.Series(dtype=np.int64)
    for c in ("edge", "cluster_unsplit", "fit_ok", "in_statistics"):
        cols[c] = pd.Series(dtype=bool)
    for c in ("status", "reject_reason"):
        cols[c] = pd.Series(dtype=str)
    return pd.DataFrame(cols)


def find_particles(
    image,
    *,
    roi=None,
    diameter_range_nm=None,
    pixel_size=None,
    false_alarms: float = 0.05,
    probe_sigma_nm: float | None = None,
    edge_correction: str = "exclude",
    background_scale_nm: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    source: str | None = None,
    border_rule: str | None = None,
    keep_flagged: bool = False,
) -> ParticleResult:
    """Detect, segment and size bright nanoparticles in a HAADF-STEM image.

    Parameters
    ----------
    image : Micrograph, hyperspy Signal2D or 2-D array
        The image (any numeric dtype: uint16 counts and float give the same result).
    roi : Rect, Circle, Mask, hyperspy RectangularROI/CircleROI/PolygonROI, tuple or dict, optional
        Analyse only this region (a hyperspy ROI in the image's calibrated units): particles whose centre
        lies in it are kept, those its border cuts are ``edge``; positions stay in full-image pixels.
    diameter_range_nm : (float, float) or str, optional
        Smallest and largest particle diameter searched, in nm (``(2, 15)`` or
        ``'2-15nm'``). Default: :func:`default_diameter_range_nm`, from
        max(3 px, 1 nm) to a quarter of the shorter image side. The smallest
        diameter must be at least 3 px.
    pixel_size : float, str or (float, float), optional
        Pixel size (nm for a bare number), overriding the image's calibration.
    false_alarms : float
        Expected number of noise peaks per image accepted as particles; sets the
        detection threshold in units of the measured noise of each LoG scale
        (about 4.5-5 sigma for a typical image).
    probe_sigma_nm : float, optional
        Standard deviation of the Gaussian probe. Default: fitted on the
        brightest isolated particles (median), then fixed for all fits.
    edge_correction : {'exclude', 'miles-lantuejoul', 'include'}
        Former name of ``border_rule`` (used when ``border_rule`` is None).
    border_rule : {'exclude', 'miles-lantuejoul', 'include'}, optional
        Counting rule for particles cut by the image border (Bresch et al. 2022 compare them):
        ``'exclude'`` leaves them out (biased against large particles), ``'miles-lantuejoul'`` leaves
        them out and weights the others by the inverse of their probability to lie wholly inside the
        field (unbiased), ``'include'`` keeps those whose fit passes the checks (their fit uses the
        visible part only).
    keep_flagged : bool
        Keep ``cluster`` and ``rejected`` particles (see :mod:`latticefit._particle_checks`) in the
        statistics; by default they are listed (``status``, ``reject_reason``) but left out.
    background_scale_nm : float, optional
        Smoothing length of the background (default twice the largest diameter).
    n_boot, seed : int
        Bootstrap resamples and seed of the RSD interval.
    source : str, optional
        File name for messages (default: the Micrograph's source).

    Returns
    -------
    ParticleResult
        ``.table`` (one row per particle), ``.summary``, ``.labels``.

    Raises
    ------
    AnalysisError
        When the diameter range cannot be resolved at this pixel size (< 3 px)
        or does not fit in the image.
    CalibrationError
        When the image has no pixel size and none is given.

    Notes
    -----
    An image without particles gives an empty table and ``summary['n'] == 0``
    with a :class:`~latticefit.errors.LatticefitWarning`.

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, truth = synth.haadf_dots((512, 512), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=12,
    ...                              n_touching_pairs=1, seed=1)
    >>> res = find_particles(mg, diameter_range_nm=(3, 12))
    >>> abs(res.summary["mean_nm"] - 7.0) < 0.5
    True
    """
    if roi is not None:  # the region's box, particles kept by centre (hyperspy ROIs too): _roi.py
        kw = {k: v for k, v in locals().items() if k != "roi"}
        from ._roi import find_particles_in_roi

        return find_particles_in_roi(find_particles, roi=roi, **kw)
    import pandas as pd

    mg = as_micrograph(image, pixel_size, source=source)
    src = source or mg.source
    py, px = mg.require_calibration()
    pix = math.sqrt(mg.pixel_area_nm2)  # = sqrt(py px); with an affine calibration sqrt|det A| (shear included)
    if abs(py - px) > 0.01 * pix:
        warnings.warn(
            f"{src or 'image'}: non-square pixels ({py:.4g} x {px:.4g} nm); sizes use their geometric mean",
            LatticefitWarning,
            stacklevel=2,
        )
    probe_sigma_nm = check_param("probe_sigma_nm", probe_sigma_nm, lo=0, lo_open=True, optional=True, source=src)
    false_alarms = check_param("false_alarms", false_alarms, lo=0, lo_open=True, source=src)
    background_scale_nm = check_param(
        "background_scale_nm", background_scale_nm, lo=0, lo_open=True, optional=True, source=src
    )
    n_boot = check_param("n_boot", n_boot, lo=1, integer=True, source=src)
    seed = check_param("seed", seed, lo=0, integer=True, source=src)
    img = mg.data
    H, W = img.shape
    if diameter_range_nm is None:
        try:
            dlo, dhi = default_diameter_range_nm((H, W), pix)
        except AnalysisError as e:
            raise e.with_source(src) from None
        range_note = "default: max(3 px, 1 nm) to a quarter of the shorter side"
    else:
        dlo, dhi = _parse_range(diameter_range_nm, src)
        range_note = "given"
    dlo_px, dhi_px = dlo / pix, dhi / pix
    if dlo_px < 3.0 - 1e-9:
        raise AnalysisError(
            f"diameter range {dlo:.3g}-{dhi:.3g} nm cannot be resolved at {pix:.4g} nm/px: the smallest diameter "
            f"is {dlo_px:.2f} px, below the 3 px minimum (use a lower bound >= {3 * pix:.3g} nm)",
            src,
        )
    if dlo_px > min(H, W) / 2:
        raise AnalysisError(
            f"diameter range {dlo:.3g}-{dhi:.3g} nm: the smallest diameter ({dlo_px:.0f} px) is "
            f"more than half the image ({H}x{W} px)",
            src,
        )
    dhi_px = max(min(dhi_px, min(H, W) / 2.0), dlo_px * 1.2)
    border_rule = edge_correction if border_rule is None else border_rule
    if border_rule not in BORDER_RULES:
        raise AnalysisError(f"border_rule must be one of {', '.join(BORDER_RULES)}, got {border_rule!r}", src)
    edge_correction = border_rule

    bg_scale_px = (background_scale_nm / pix) if background_scale_nm else max(2.0 * dhi_px, 16.0)
    bad = mg.invalid_mask  # NaN/inf pixels of the file: masked throughout (_invalid.py)
    if bad is not None:
        img = inpaint(img, bad, bg_scale_px)
    noise = estimate_noise_model(img, invalid=bad)
    seeds, det = _detect(img, dlo_px, dhi_px, bg_scale_px, false_alarms, noise, invalid=bad)
    bg_small, fb = det["background"], det["f"]
    settings = {
        "diameter_range_nm": [dlo, dhi],
        "diameter_range": range_note,
        "false_alarms": false_alarms,
        "threshold_sigma": det["k"],
        "log_sigmas_px": (det["sigmas"] * det["f"]).tolist(),
        "detection_binning": det["f"],
        "background_scale_px": bg_scale_px,
        "noise": noise.to_dict(),
        "edge_correction": edge_correction,
        "border_rule": border_rule,
        "keep_flagged": bool(keep_flagged),
        "outline_fraction": OUTLINE_FRACTION,
        "invalid_fraction": 0.0 if bad is None else float(bad.mean()),
    }

    def _result(table, labels, summary):
        summary = dict(summary)
        summary["diameter_range_nm"] = [dlo, dhi]
        summary["pixel_size_nm"] = [py, px]
        if mg.affine_cov is not None and len(table):
            table = _add_calibration_error(table, mg)
            summary["calibration"] = dict(mg.calibration_info or {})
        return ParticleResult(
            table=table,
            summary=summary,
            labels=labels,
            pixel_size_nm=(py, px),
            source=src,
            background_grid=(det["background"], det["f"]),
            settings=settings,
        )

    if seeds is None or len(seeds["x"]) == 0:
        warnings.warn(
            f"{src or 'image'}: no particles found between {dlo:.3g} and {dhi:.3g} nm", LatticefitWarning, stacklevel=2
        )
        summary = size_summary([], warn=False)
        summary["probe_sigma_nm"] = None
        return _result(_empty_table(), np.zeros((H, W), np.int32), summary)

    probe_px = None if probe_sigma_nm is None else probe_sigma_nm / pix
    n_merged = 0
    for _round in range(3):
        fit = _fit_particles(img, seeds["x"], seeds["y"], seeds["r"], seeds["strength"], noise, probe_px, invalid=bad)
        # a detection whose fitted centre lies inside a larger fitted particle is part of it (a neck or
        # shoulder of a non-spherical particle): drop it and fit again
        inside = _nested(fit.x, fit.y, np.where(fit.ok, fit.r, seeds["r"]), seeds["strength"])
        if not inside.any() or _round == 2:
            break
        n_merged += int(inside.sum())
        seeds = {k: v[~inside] for k, v in seeds.items()}
    settings["n_merged"] = n_merged
    labels, _ = _segment(det["coarse"], seeds, det["sigmas"], det["f"], (H, W), det.get("pixel_noise"))
    if bad is not None:
        labels[bad] = 0
    n = len(seeds["x"])
    settings["probe_sigma_nm"] = fit.sigma_px * pix
    settings["probe_sigma"] = "given" if probe_sigma_nm is not None else "fitted (median of isolated particles)"

    # -------- measurements on the label image
    reg = _measure_regions(labels, img, n)
    area = reg["area"].to_numpy(float)
    # background at each seed from the coarse background grid
    bi = np.clip(((seeds["y"] + 0.5) / fb - 0.5).round().astype(int), 0, bg_small.shape[0] - 1)
    bj = np.clip(((seeds["x"] + 0.5) / fb - 0.5).round().astype(int), 0, bg_small.shape[1] - 1)
    bg_at = bg_small[bi, bj].astype(float)
    integ = (reg["intensity_mean"].to_numpy(float) - bg_at) * area
    perim = reg["perimeter"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        circ = np.clip(4 * np.pi * area / perim**2, 0, 1)
    ok = fit.ok
    # centre: the fit, or (failed fit) the centroid of the segmented region, or the detection
    cx_reg, cy_reg = reg["centroid-1"].to_numpy(float), reg["centroid-0"].to_numpy(float)
    xr = np.where(ok, fit.x, np.where(np.isfinite(cx_reg), cx_reg, seeds["x"]))
    yr = np.where(ok, fit.y, np.where(np.isfinite(cy_reg), cy_reg, seeds["y"]))
    rr = np.where(ok, fit.r, np.nan)
    bb0, bb1 = reg["bbox-0"].to_numpy(float), reg["bbox-1"].to_numpy(float)
    bb2, bb3 = reg["bbox-2"].to_numpy(float), reg["bbox-3"].to_numpy(float)
    touches = (bb0 <= 0) | (bb1 <= 0) | (bb2 >= H) | (bb3 >= W)
    touches = np.where(np.isnan(bb0), False, touches)
    rad_e = np.where(np.isfinite(rr), rr, seeds["r"])
    cut = (xr - rad_e < -0.5) | (yr - rad_e < -0.5) | (xr + rad_e > W - 0.5) | (yr + rad_e > H - 0.5)
    # labels on a coarse detection grid (f > 1) are blocky by up to f px: a region touching the border is
    # then evidence of a cut only when there is no fitted disk to decide (the disk crossing the border is)
    edge = (touches if fb == 1 else touches & ~ok) | cut
    if bad is not None:  # cut by the masked (NaN) pixels, as by the border
        edge |= cut_by_mask(bad, xr, yr, rad_e)
    minor = reg["axis_minor_length"].to_numpy(float)
    major = reg["axis_major_length"].to_numpy(float)
    solidity = reg["solidity"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        unsplit = ((solidity < 0.85) | (minor / major < 0.6)) & (area > 0.5 * np.pi * rad_e**2)
    unsplit = np.where(np.isnan(solidity), False, unsplit) & ~edge
    ml = miles_lantuejoul_weights(bb2 - bb0, bb3 - bb1, (H, W))
    ml = np.where(edge, np.nan, ml)
    table = pd.DataFrame(
        {
            "label": np.arange(1, n + 1, dtype=np.int64),
            "x_px": xr,
            "y_px": yr,
            "diameter_nm": 2 * rr * pix,
            "diameter_err_nm": np.where(ok, 2 * fit.r_err * pix, np.nan),
            "x_err_px": np.where(ok, fit.x_err, np.nan),
            "y_err_px": np.where(ok, fit.y_err, np.nan),
            "ecd_nm": np.sqrt(4 * area / np.pi) * pix,
            "feret_max_nm": reg["feret_max"].to_numpy(float) * pix,
            "feret_min_nm": reg["feret_min"].to_numpy(float) * pix,
            "major_axis_nm": major * pix,
            "minor_axis_nm": minor * pix,
            # skimage: angle between the row axis and the major axis; report from +x, counter-clockwise on screen
            "orientation_deg": np.degrees(reg["orientation"].to_numpy(float)) - 90.0,
            "circularity": circ,
            "solidity": solidity,
            "area_nm2": area * pix * pix,
            "integrated_intensity": integ,
            "peak_height": np.where(ok, fit.h, np.nan),
            "log_radius_nm": seeds["r"] * pix,
            "edge": edge.astype(bool),
            "cluster_unsplit": unsplit.astype(bool),
            "fit_ok": ok.astype(bool),
            "fit_group": fit.group.astype(np.int64),
            "chi2_red": fit.chi2_red,
            "ml_weight": ml,
        }
    )
    table["orientation_deg"] = ((table["orientation_deg"] + 90.0) % 180.0) - 90.0
    # drop detections whose fitted size is far outside the searched range (noise at the range ends)
    # and those the model fit finds no significant particle in (height < 3 sigma), or that the
    # segmentation finds no region for (nothing above 20 % of the local peak / 3 noise sigma)
    d_fit = table["diameter_nm"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        insignificant = ~(fit.h > 3.0 * fit.h_err)
    # a particle cut by the border whose sphere fit failed (a large part of it is outside, or its seed is the
    # mirror-merged blob of reflect padding) is still a particle when the segmentation finds a region of at
    # least the smallest diameter above 3 noise sigma: keep it (edge, fit_ok False) so the overlay shows it
    # (and compact: solidity >= 0.8, as a convex particle cut by a straight border; not a noisy web)
    insignificant &= ~(edge & ~ok & (table["ecd_nm"].to_numpy(float) >= dlo) & (solidity >= 0.8))
    no_region = ~(table["ecd_nm"].to_numpy(float) >= 0.5 * dlo)  # no region, or only the seed pixels
    # a fitted "particle" with hardly a segment (ECD below half its fit and below the smallest diameter) is a
    # bump of the background or noise, not a particle a person would outline
    no_region |= (
        ok
        & (table["ecd_nm"].to_numpy(float) < 0.5 * np.minimum(d_fit, 2 * dlo))
        & (table["ecd_nm"].to_numpy(float) < dlo)
    )
    small_failed = ~ok & ~(table["ecd_nm"].to_numpy(float) >= dlo)  # failed fit on a fragment
    out_of_range = (ok & ((d_fit < dlo / 1.25) | (d_fit > dhi * 1.25))) | insignificant | no_region | small_failed
    # faint structure: a detection the checks would flag (cluster / failed fit) whose mean contrast over its
    # segment is below FAINT_FRACTION of the median of the accepted particles is background structure (a film
    # edge, a thickness step, a stain), not a dot of the population: dropped, counted in settings
    pre = check_fits(table.assign(edge=table["edge"] | out_of_range), border_rule=border_rule)
    contrast = table["integrated_intensity"].to_numpy(float) / np.maximum(area, 1.0)
    accepted = (pre["status"].to_numpy(str) == "ok") & ~out_of_range
    faint = np.zeros(n, bool)
    if accepted.sum() >= 3:
        # unsplit clusters and failed fits only: a real but non-spherical particle (chi2 or leaves_segment)
        # of another brightness than the majority stays, rejected and shown
        flagged = (
            (pre["status"].to_numpy(str) == "cluster") | (pre["reject_reason"].to_numpy(str) == "no_convergence")
        ) & ~out_of_range
        faint = flagged & (contrast < FAINT_FRACTION * float(np.median(contrast[accepted])))
    settings["n_faint_dropped"] = int(faint.sum())
    out_of_range |= faint
    if out_of_range.any():
        keep_lab = np.concatenate([[0], table["label"].to_numpy()[~out_of_range]])
        lut = np.zeros(n + 1, np.int32)
        lut[keep_lab] = np.arange(len(keep_lab), dtype=np.int32)
        labels = lut[labels]
        table = table[~out_of_range].reset_index(drop=True)
        table["label"] = np.arange(1, len(table) + 1, dtype=np.int64)
    settings["n_dropped"] = int(out_of_range.sum())  # out of range or not significant in the fit: not particles
    with np.errstate(invalid="ignore", divide="ignore"):
        table["aspect_ratio"] = table["feret_max_nm"] / table["feret_min_nm"]
    # checked fits: status / reject_reason / in_statistics, errors scaled by sqrt(chi2_red) (weighted fits)
    table = check_fits(table, border_rule=border_rule, keep_flagged=keep_flagged, errors_scaled=not noise.counts)
    parts = count_line_parts(table)
    use = table["in_statistics"].to_numpy(bool)
    weights = table["ml_weight"].to_numpy(float)[use] if border_rule == "miles-lantuejoul" else None
    summary = size_summary(
        table["diameter_nm"].to_numpy(float)[use],
        table["diameter_err_nm"].to_numpy(float)[use],
        weights=weights,
        n_excluded=parts["n_edge"],
        n_boot=n_boot,
        seed=seed,
        warn=False,
    )
    summary.update({k: v for k, v in parts.items() if k != "n_detected"})
    summary["border_rule"] = border_rule
    summary["keep_flagged"] = bool(keep_flagged)
    if summary["n"] == 0:
        warnings.warn(
            f"{src or 'image'}: no particle fit for statistics: the summary is empty", LatticefitWarning, stacklevel=2
        )
    summary["n_detected"] = int(len(table))
    summary["n_fit_failed"] = int((~table["fit_ok"]).sum())
    summary["rejection"] = {
        "fit_ecd_band": list(_FIT_ECD_BAND),
        "chi2_factor": _CHI2_FACTOR,
        "error_scale_max": float(table["error_scale"].max()) if len(table) else 1.0,
    }
    summary["n_cluster_unsplit"] = int(table["cluster_unsplit"].sum())
    summary["probe_sigma_nm"] = settings["probe_sigma_nm"]
    ecd = table["ecd_nm"].to_numpy(float)[use]
    summary["ecd_mean_nm"] = float(np.nanmean(ecd)) if ecd.size and np.isfinite(ecd).any() else None
    if bad is not None:
        summary["notes"] = [*summary.get("notes", []), mask_note(int(bad.sum()), bad.size)]
    return _result(table, labels, summary)


# ======================================================================== plotting
def _outline_segments(labels, ids):
    """Outline polylines (x, y in pixel coordinates) of each label in ``ids``."""
    from skimage.measure import find_contours

    objs = ndi.find_objects(labels)
    out = {}
    for k in ids:
        if k < 1 or k > len(objs) or objs[k - 1] is None:
            continue
        sl = objs[k - 1]
        y0, x0 = sl[0].start, sl[1].start
        m = np.pad((labels[sl] == k).astype(np.float32), 1)
        segs = []
        for c in find_contours(m, 0.5):
            segs.append(np.column_stack([c[:, 1] + x0 - 1, c[:, 0] + y0 - 1]))
        out[k] = segs
    return out


def plot_overlay(
    result: ParticleResult,
    image=None,
    ax=None,
    *,
    circles: bool = True,
    centres: bool = True,
    scalebar: bool = True,
    legend: bool = True,
    linewidth: float = 0.8,
):
    """Draw the segmented particles over the image.

    Outlines of the label image by status (:mod:`latticefit._particle_overlay`): particles in the
    statistics in orange with their fitted model diameter as a solid sky-blue circle, particles cut by
    the border in reddish purple, unsplit clusters in vermillion (dashed), rejected fits in yellow
    (dotted, crossed); all Okabe-Ito (colour-blind safe). The scale bar goes to the emptiest corner
    and never covers a detected particle (outside the image when no corner is free).

    Parameters
    ----------
    result : ParticleResult
        Output of :func:`find_particles`.
    image : Micrograph or ndarray, optional
        The analysed image (not needed when only outlines are wanted).
    ax : matplotlib Axes, optional
        Axes to draw in (a new figure otherwise).
    circles, centres, scalebar, legend : bool
        Draw the fitted circles / centre marks / a scale bar / a legend.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.1, diameter_nm=5, n_particles=6, n_touching_pairs=1)
    >>> ax = plot_overlay(find_particles(mg, diameter_range_nm=(2, 10)), mg)
    """
    import matplotlib.pyplot as plt

    from .._plotstyle import show_image
    from . import _overlay as _particle_overlay

    if ax is None:
        _fig, ax = plt.subplots(figsize=(5, 5))
    pix = float(math.sqrt(result.pixel_size_nm[0] * result.pixel_size_nm[1]))
    if image is not None:
        data = image.data if isinstance(image, Micrograph) else np.asarray(image, dtype=np.float32)
        show_image(ax, data, scalebar=False)
    h, w = result.labels.shape
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    t = result.table
    if scalebar and image is not None:
        # the emptiest corner: no segment and no fitted disk of any detection under the bar
        occ_t = t.assign(diameter_px_overlay=t["diameter_nm"] / pix) if len(t) else None
        _particle_overlay.place_scalebar(ax, pix, result.labels, occ_t)
    if len(t) == 0:
        ax.text(0.5, 0.5, "no particles", transform=ax.transAxes, ha="center", va="center", color="white")
        return ax
    handles = _particle_overlay.draw_particles(ax, result, circles=circles, centres=centres, linewidth=linewidth)
    if legend:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.01),
            ncol=2,
            fontsize=6,
            frameon=False,
            handlelength=1.8,
            borderaxespad=0.2,
        )
    return ax


def _g(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def count_line(s: dict, n_detected: int | None = None) -> str:
    """``"N detected = n in statistics + e cut by the border + r rejected (reasons) + c unsplit clusters"``."""
    nd = s.get("n_detected", n_detected)
    rule = s.get("border_rule", "exclude")
    parts = [f"{s['n']} in statistics" + (" (flagged kept)" if s.get("n_flagged_kept") else "")]
    parts.append(f"{s.get('n_edge', 0)} cut by the border (border rule {rule})")
    reasons = s.get("reasons") or {}
    why = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in reasons.items())
    parts.append(f"{s.get('n_rejected', 0)} rejected fits" + (f" ({why})" if why else ""))
    parts.append(f"{s.get('n_cluster', 0)} unsplit clusters")
    return f"{nd} particles detected = " + " + ".join(parts)


def summary_lines(result: ParticleResult) -> list[str]:
    """A short human-readable summary table of a :class:`ParticleResult`."""
    from .._plotstyle import format_uncertain

    s = result.summary
    name = result.source or "image"
    lines = [f"{name}: {count_line(s, len(result.table))}"]
    if s["n"]:

        def ci(key, unit=""):
            v = s.get(key) or [None, None]
            return f"95% CI {_g(v[0])}-{_g(v[1])}{unit}"

        lines += [
            (
                f"  model-fit diameter  mean {format_uncertain(s['mean_nm'], s.get('mean_err_nm'), 'nm')} (± SE; "
                f"{ci('mean_ci95_nm', ' nm')})   median {_g(s['median_nm'])} nm ({ci('median_ci95_nm', ' nm')})"
            ),
            (
                f"  SD {_g(s['std_nm'])} nm ({ci('std_ci95_nm', ' nm')})   RSD {_g(s['rsd_percent'])}% "
                f"({ci('rsd_ci95_percent', '%')}, bootstrap)   corrected for measurement noise "
                f"{_g(s['rsd_corrected_percent'])}%"
            ),
            (
                f"  per-particle error (rms, 1 SE) {_g(s.get('mean_measurement_err_nm'))} nm   "
                f"mask ECD mean {_g(s.get('ecd_mean_nm'))} nm   probe sigma {_g(s.get('probe_sigma_nm'))} nm"
            ),
        ]
        g = s.get("gaussian") or {}
        ln = s.get("lognormal") or {}
        gof = s.get("goodness_of_fit") or {}
        if g and ln:
            lines.append(
                f"  fits: normal mu {_g(g.get('mu_nm'))} nm sigma {_g(g.get('sigma_nm'))} nm "
                f"(KS p {_g((gof.get('normal') or {}).get('p'))}); lognormal median {_g(ln.get('median_nm'))} nm "
                f"sigma_ln {_g(ln.get('sigma_log'))} (KS p {_g((gof.get('lognormal') or {}).get('p'))})"
            )
        adv = s.get("rsd_precision") or {}
        if adv.get("targets"):
            need = ", ".join(f"{t['n_needed']} for ±{t['halfwidth_pp']:g} pp" for t in adv["targets"])
            lines.append(
                f"  RSD precision: ±{_g(adv.get('rsd_ci95_halfwidth_pp'))} pp (95% CI half-width) with "
                f"N = {s['n']}; particles needed: {need}"
            )
        for note in s.get("notes", []):
            lines.append(f"  note: {note}")
    return lines
