"""The image's own systematic lattice variation (scan distortion, drift, local distortion), from its data.

The Fisher error of a spot (``lattice._refine``) is the error of a perfect
lattice in white noise. A real scan is not a perfect lattice: drift, scan
distortion, fly-back and specimen bending change the local lattice from place
to place, so two regions of one crystal differ by more than their Fisher errors
say. This module measures that variation on the image itself:

1. Tiles: the field is cut into non-overlapping rectangles of the analysed
   region's size (smaller when fewer than ``MIN_TILES`` fit, e.g. for the whole
   image; at most ``MAX_TILES``, evenly spread).
2. Per tile, the lattice is refined (``lattice._tilespots``: the steps of
   :func:`latticefit.lattice.measure_lattice` up to its significant spots)
   and its spots are matched to the region's; the local deformation ``D`` of the
   reciprocal lattice, ``g_tile = (I + D) g_ref`` (4 components: two strains, a
   shear and a rotation; 2 -- scale and rotation -- with a single plane family),
   is fitted by weighted least squares to the matched spots, with its
   statistical covariance ``C_t`` from the spots' Fisher covariances. Fitting
   ``D`` removes the field's global affine map (the mean lattice) and leaves the
   tile-to-tile variation.
3. Field model (``lattice._sysfield``, where the statistics are written out):
   a chi2 test of one common deformation against the tiles' statistical
   errors (p >= ``P_SIGNIFICANT``: no systematic term, a clean image keeps its
   Fisher errors); otherwise ``D(r) = D_0 + B (r - r_mean) + eps(r)``, a linear
   trend across the field (kept when Wilks' test finds it significant) plus an
   uncorrelated part of covariance ``Sigma`` (residual sample covariance minus
   the mean statistical one, times the Student-t small-sample factor
   ``nu / (nu - 2)``). Outlying tiles (a second grain, vacuum) are left out.
4. Propagation: for a reflection of unit direction ``u`` (normal ``n``),
   ``delta d / d = -u^T D u`` and ``delta azimuth = n^T D u``, so
   ``var_sys(d) / d^2 = c^T Sigma_field c`` with ``c = vec(u u^T)`` and
   ``Sigma_field`` a region's covariance about the field's mean lattice; an
   angle between two families has ``a_i - a_j`` with ``a = vec(n u^T)`` (a
   common rotation cancels). The systematic and statistical terms add in
   quadrature. Two regions (:func:`pair_rel_d_cov`, used by
   ``compare_regions``) differ by ``B dr + eps_b - eps_a``: the trend term
   depends on their separation ``dr``, so near regions share their drift.

The term is the scatter of tiles of the region's size; for a region larger than
the tiles (the whole image) it is used as is, an upper bound when the
distortion averages out over larger areas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _sysfield as sf
from ._lookelsewhere import apply_look_elsewhere, n_independent_regions, sidak_z_threshold
from ._match import match_greedy, match_nearest
from ._sysfield import CLIP_SIGMA, P_SIGNIFICANT, _a_vec, _c_vec, _unit
from ._tilespots import tile_spots

__all__ = [
    "CLIP_SIGMA",
    "P_SIGNIFICANT",
    "SystematicModel",
    "apply_look_elsewhere",
    "apply_systematic",
    "estimate_systematic",
    "n_independent_regions",
    "sidak_z_threshold",
    "tile_grid",
]

#: largest relative distance |g_tile - g_ref| / |g_ref| of a reflection followed from tile to tile: that of
#: ``compare_regions`` (its ``match_tolerance``), so that every tile a comparison could match is in the
#: estimate (a tighter one leaves out the most deformed tiles and biases the estimate low)
MATCH_TOLERANCE = 0.08
#: fewest usable tiles for an estimate; fewer -> the tiles are made smaller
MIN_TILES = 6
#: most tiles measured (evenly spread over the field)
MAX_TILES = 36
#: smallest tile side (px), and in periods of the strongest reference spacing
MIN_TILE_PX = 48
MIN_TILE_PERIODS = 6.0

_R90 = np.array([0.0, -1.0, 1.0, 0.0])  # vec of the rotation generator [[0, -1], [1, 0]]


@dataclass(eq=False)
class SystematicModel:
    """Covariance of the local lattice deformation over the field, estimated from the image's tiles.

    Attributes
    ----------
    cov_D : ndarray (4, 4)
        Systematic covariance of ``vec(D) = (Dxx, Dxy, Dyx, Dyy)`` (dimensionless) of one region about
        the field's mean lattice (random part + the trend averaged over the field), 0 when the tiles do
        not scatter significantly more than their Fisher errors.
    cov_D_random : ndarray (4, 4)
        Its spatially uncorrelated part (``kappa`` included); ``cov_D`` when there is no trend.
    trend_B_per_px : ndarray (4, 2)
        Linear trend of ``vec(D)`` across the field, per px of x and y (0: none significant).
    trend_resid_cov, trend_lev_inv_px2 : ndarray (4, 4), (2, 2)
        Residual covariance and OLS leverage of the trend fit (the trend's own estimation variance).
    nu, kappa : int, float
        Degrees of freedom of the residual covariance and the small-sample factor ``nu / (nu - 2)``.
    p_trend : float
        p-value of the trend (Wilks / Bartlett; nan when not tested).
    shrinkage : float
        Shrinkage of the random part's correlations towards 0 (Schäfer-Strimmer; 1: diagonal).
    cov_D_sample : ndarray (4, 4)
        Sample covariance of the tiles' ``D`` (statistical + systematic).
    method : str
        ``"tiles"``, ``"none"`` (not asked for) or ``"unavailable"`` (too few usable tiles).
    n_tiles, n_rejected : int
        Tiles used and tiles left out as outliers.
    tile_shape_px : (int, int)
    chi2, dof, p_value : float, int, float
        Test of the tiles' scatter against their statistical errors.
    notes : list of str
    """

    cov_D: np.ndarray = field(default_factory=lambda: np.zeros((4, 4)))
    cov_D_random: np.ndarray = field(default_factory=lambda: np.zeros((4, 4)))
    trend_B_per_px: np.ndarray = field(default_factory=lambda: np.zeros((4, 2)))
    trend_resid_cov: np.ndarray = field(default_factory=lambda: np.zeros((4, 4)))
    trend_lev_inv_px2: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    nu: int = 0
    kappa: float = 1.0
    p_trend: float = float("nan")
    shrinkage: float = 0.0
    cov_D_sample: np.ndarray = field(default_factory=lambda: np.full((4, 4), np.nan))
    method: str = "none"
    n_tiles: int = 0
    n_rejected: int = 0
    tile_shape_px: tuple = (0, 0)
    chi2: float = float("nan")
    dof: int = 0
    p_value: float = float("nan")
    n_params: int = 0
    notes: list = field(default_factory=list)
    #: reflections followed from tile to tile (n, 2) 1/nm, and the part of their own tile-to-tile variance of
    #: d/d_mean (and of the azimuth, rad^2) that the affine model does not explain (0 unless significant)
    g_ref_inv_nm: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    extra_rel_d_var: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra_azimuth_var_rad2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def significant(self) -> bool:
        return bool(
            np.any(self.cov_D != 0) or np.any(self.extra_rel_d_var > 0) or np.any(self.extra_azimuth_var_rad2 > 0)
        )

    def _extra(self, g, values) -> np.ndarray:
        """Per-reflection extra variance of the reference reflection matching each ``g`` (0 if none)."""
        if not len(self.g_ref_inv_nm):
            return np.zeros(len(g))
        idx, _ = _match_each(g, self.g_ref_inv_nm)
        return np.where(idx >= 0, values[np.clip(idx, 0, None)], 0.0)

    @property
    def has_trend(self) -> bool:
        return bool(np.any(self.trend_B_per_px != 0))

    def pair_cov_D(self, dr_px) -> np.ndarray:
        """Systematic covariance of ``vec(D_b - D_a)`` of two regions ``dr_px = r_b - r_a`` (x, y) px apart.

        Examples
        --------
        >>> m = SystematicModel(cov_D=np.eye(4) * 1e-6, cov_D_random=np.eye(4) * 1e-6)
        >>> float(m.pair_cov_D((300.0, 0.0))[0, 0])  # no trend: twice a region's variance
        2e-06
        """
        dr = np.asarray(dr_px, float)
        if not self.has_trend:
            return 2.0 * self.cov_D
        Bd = self.trend_B_per_px @ dr
        lev = float(dr @ self.trend_lev_inv_px2 @ dr)
        return np.outer(Bd, Bd) + lev * self.trend_resid_cov + 2.0 * self.cov_D_random

    def rel_d_var(self, g) -> np.ndarray:
        """Systematic variance of ``d / d_mean - 1`` of reflections ``g`` ((n, 2) 1/nm)."""
        return np.diag(self.rel_d_cov(g)).copy()

    def rel_d_cov(self, g) -> np.ndarray:
        """Systematic covariance matrix (n, n) of ``d / d_mean - 1`` of reflections ``g``."""
        g = np.atleast_2d(np.asarray(g, float))
        c = _c_vec(g)
        return c @ self.cov_D @ c.T + np.diag(self._extra(g, self.extra_rel_d_var))

    def azimuth_var_rad2(self, g) -> np.ndarray:
        g = np.atleast_2d(np.asarray(g, float))
        a = _a_vec(g)
        return np.einsum("ni,ij,nj->n", a, self.cov_D, a) + self._extra(g, self.extra_azimuth_var_rad2)

    def angle_var_rad2(self, g_i, g_j) -> np.ndarray:
        """Systematic variance of the angle between families ``g_i`` and ``g_j`` (rows)."""
        g_i, g_j = np.atleast_2d(np.asarray(g_i, float)), np.atleast_2d(np.asarray(g_j, float))
        da = _a_vec(g_i) - _a_vec(g_j)
        return (
            np.einsum("ni,ij,nj->n", da, self.cov_D, da)
            + self._extra(g_i, self.extra_azimuth_var_rad2)
            + self._extra(g_j, self.extra_azimuth_var_rad2)
        )

    def to_dict(self) -> dict:
        sd = np.sqrt(np.clip(np.diag(self.cov_D), 0, None))
        return {
            "method": self.method,
            "n_tiles": self.n_tiles,
            "n_rejected": self.n_rejected,
            "tile_shape_px": [int(v) for v in self.tile_shape_px],
            "chi2": _num(self.chi2),
            "dof": int(self.dof),
            "p_value": _num(self.p_value),
            "significant": self.significant,
            "cov_D": self.cov_D.tolist(),
            "cov_D_random": self.cov_D_random.tolist(),
            "trend_B_per_px": self.trend_B_per_px.tolist(),
            "p_trend": _num(self.p_trend),
            "nu": int(self.nu),
            "kappa": float(self.kappa),
            "shrinkage": float(self.shrinkage),
            "sd_D": [float(v) for v in sd],
            "notes": list(self.notes),
        }


def _num(v):
    return float(v) if v is not None and np.isfinite(v) else None


# ============================================================================ tiles
def tile_grid(
    field_box, region_shape, *, min_tiles: int = MIN_TILES, max_tiles: int = MAX_TILES, min_side: int = MIN_TILE_PX
):
    """Non-overlapping tiles ``(x, y, w, h)`` covering ``field_box = (x0, y0, W, H)`` in the region's shape.

    The tiles keep the region's aspect ratio and are shrunk until ``min_tiles``
    fit (not below ``min_side`` px); at most ``max_tiles``, evenly spread.

    Examples
    --------
    >>> len(tile_grid((0, 0, 1024, 1024), (200, 200)))
    25
    >>> tile_grid((0, 0, 512, 512), (512, 512))[0][2:]
    (158, 158)
    """
    x0, y0, W, H = (int(v) for v in field_box)
    h, w = (int(min(region_shape[0], H)), int(min(region_shape[1], W)))
    while (H // h) * (W // w) < min_tiles and int(min(h, w) * 0.9) >= min_side:
        h, w = int(h * 0.9), int(w * 0.9)
    ny, nx = H // h, W // w
    if ny * nx < 2:
        return []
    oy, ox = y0 + (H - ny * h) // 2, x0 + (W - nx * w) // 2
    tiles = [(ox + i * w, oy + j * h, w, h) for j in range(ny) for i in range(nx)]
    if len(tiles) > max_tiles:
        pick = np.unique(np.round(np.linspace(0, len(tiles) - 1, max_tiles)).astype(int))
        tiles = [tiles[k] for k in pick]
    return tiles


def _fit_deformation(g_ref: np.ndarray, g_tile: np.ndarray, cov_tile: np.ndarray, P: np.ndarray):
    """Weighted LS of ``g_tile - g_ref = D g_ref`` with ``vec(D) = P theta``; (theta, cov_theta)."""
    A = np.zeros((2 * len(g_ref), 4))
    A[0::2, 0:2] = g_ref
    A[1::2, 2:4] = g_ref
    A = A @ P
    y = (g_tile - g_ref).reshape(-1)
    W = np.zeros((2 * len(g_ref), 2 * len(g_ref)))
    for k, c in enumerate(cov_tile):
        try:
            W[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = np.linalg.inv(c)
        except np.linalg.LinAlgError:
            return None
    F = A.T @ W @ A
    try:
        cov = np.linalg.inv(F)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(cov)) or np.linalg.cond(F) > 1e12:
        return None
    return cov @ A.T @ W @ y, cov


def _match(g_ref: np.ndarray, g: np.ndarray, tol: float | None = None):
    """Rows of ``g`` matching each ``g_ref`` row (sign-aligned, within ``MATCH_TOLERANCE``), or -1."""
    return match_greedy(g_ref, g, MATCH_TOLERANCE if tol is None else tol)


def _match_each(g: np.ndarray, g_ref: np.ndarray, tol: float | None = None):
    """For each row of ``g``, the nearest row of ``g_ref`` within ``tol`` (relative, either sign), or -1."""
    return match_nearest(g, g_ref, MATCH_TOLERANCE if tol is None else tol)


def _spot_arrays(spots):
    g = spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    cov = np.stack(
        [
            spots["cov_xx"].to_numpy(float),
            spots["cov_xy"].to_numpy(float),
            spots["cov_xy"].to_numpy(float),
            spots["cov_yy"].to_numpy(float),
        ],
        axis=1,
    ).reshape(-1, 2, 2)
    return g, cov


def estimate_systematic(
    image,
    reference_spots,
    region_shape,
    *,
    measure,
    field_box=None,
    measure_kwargs=None,
    min_tiles: int = MIN_TILES,
    max_tiles: int = MAX_TILES,
) -> SystematicModel:
    """Estimate the image's systematic lattice variation at the scale of ``region_shape``.

    Parameters
    ----------
    image : Micrograph
        The calibrated image.
    reference_spots : pandas.DataFrame
        Spots of the analysed region (``measure_lattice(...).spots``): the
        reflections followed from tile to tile.
    region_shape : (int, int)
        (rows, columns) of the analysed region's box: the tile size.
    measure : callable
        The lattice measurement run on each tile, :func:`latticefit.lattice.measure_lattice` (passed in, so
        that this module does not import the one that calls it).
    field_box : (x, y, w, h), optional
        Part of the image to tile (default: all of it), e.g. one half for a
        held-out check.
    measure_kwargs : dict, optional
        Options of :func:`latticefit.lattice.measure_lattice` for the tiles
        (``d_range_angstrom``, ``min_snr``...).

    Returns
    -------
    SystematicModel

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.lattice import measure_lattice
    >>> mg, _ = synth.cubic_001(shape=(384, 384), noise_sigma=1.0, seed=3)
    >>> res = measure_lattice(mg, roi=(0, 0, 128, 128), systematic="none")
    >>> m = estimate_systematic(mg, res.spots, res.region_shape, measure=measure_lattice)
    >>> m.method, m.n_tiles, m.significant  # a perfect lattice: no excess scatter
    ('tiles', 9, False)
    """
    tiles, min_side = _tiles_for(image, reference_spots, region_shape, field_box, min_tiles, max_tiles)
    model = SystematicModel(method="unavailable", tile_shape_px=tuple(tiles[0][3:1:-1]) if tiles else (0, 0))
    spots = reference_spots
    if spots is None or len(spots) == 0:
        model.notes.append("no reference spots: no systematic estimate")
        return model
    if "order" in spots:
        spots = spots[spots["order"].to_numpy() >= 1] if (spots["order"].to_numpy() >= 1).any() else spots
    ref = _Reference.of(spots)
    kw = dict(measure_kwargs or {})
    kw["systematic"] = "none"
    measured = [m for m in (_measure_tile(image, t, measure, kw, ref) for t in tiles) if m is not None]
    if not tiles:
        model.notes.append(
            f"the field holds fewer than 2 tiles of >= {min_side} px: no estimate of the image's "
            "systematic variation (errors are statistical only)"
        )
        return model
    if len(measured) < 3:
        model.notes.append(
            f"only {len(measured)} of {len(tiles)} tiles hold the region's lattice: no estimate of "
            "the image's systematic variation (errors are statistical only)"
        )
        model.n_tiles = len(measured)
        return model
    _combine_tiles(model, measured, ref)
    return model


def _tiles_for(image, reference_spots, region_shape, field_box, min_tiles, max_tiles):
    """The tile grid over ``field_box``: tiles of the region's size, holding enough periods of the strongest
    reference spacing to measure it (coarser, weaker spots may go unmatched; >= 2 matched spots needed).
    """
    H, W = image.shape
    box = field_box if field_box is not None else (0, 0, W, H)
    min_side = MIN_TILE_PX
    if reference_spots is not None and len(reference_spots):
        py, px = image.require_calibration()
        d_px = 0.1 * float(reference_spots["d_angstrom"].iloc[0]) / min(py, px)
        min_side = max(min_side, int(math.ceil(MIN_TILE_PERIODS * d_px)))
    return tile_grid(box, region_shape, min_tiles=min_tiles, max_tiles=max_tiles, min_side=min_side), min_side


@dataclass
class _Reference:
    """The reference reflections followed from tile to tile, with their unit vectors."""

    g: np.ndarray  # (n, 2) 1/nm
    u: np.ndarray  # unit vectors
    nrm: np.ndarray  # unit normals
    g_abs: np.ndarray
    two_d: bool  # two independent directions: the full 2x2 deformation is fitted
    P: np.ndarray  # deformation parameters -> the 4 elements of D

    @classmethod
    def of(cls, spots) -> _Reference:
        g, _ = _spot_arrays(spots)
        u, _ = _unit(g)
        _, nrm = _unit(g)
        two_d = len(g) >= 2 and np.linalg.matrix_rank(u, tol=0.1) >= 2
        P = np.eye(4) if two_d else np.column_stack([[1.0, 0.0, 0.0, 1.0], _R90])
        return cls(g, u, nrm, np.linalg.norm(g, axis=1), bool(two_d), P)


def _measure_tile(image, tile, measure, kw, ref: _Reference):
    """``(theta, cov, q, centre)`` of one tile: its deformation parameters relative to the reference, their
    covariance, per reflection (rel |g| change, its variance, azimuth change, its variance) and the tile's
    centre (x, y) px; None when the tile does not hold the lattice.
    """
    import warnings

    from ..errors import LatticefitWarning
    from ..roi import Rect

    x, y, w, h = tile
    arrays = tile_spots(image, tile, kw)  # the measurement up to its refined, significant spots
    if arrays is None:  # NaN pixels in the tile: the whole measurement, masked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            try:
                res = measure(image, roi=Rect(x, y, w, h), **kw)
            except Exception:  # noqa: BLE001 - a tile that cannot be measured is left out
                return None
        arrays = _spot_arrays(res.spots)
    g_t, cov_t = arrays
    if len(g_t) == 0:
        return None
    idx, sign = _match(ref.g, g_t)
    ok = idx >= 0
    if ok.sum() < (2 if ref.two_d else 1):
        return None
    if ref.two_d and np.linalg.matrix_rank(ref.u[ok], tol=0.1) < 2:
        return None
    fit = _fit_deformation(ref.g[ok], sign[ok, None] * g_t[idx[ok]], cov_t[idx[ok]], ref.P)
    if fit is None:
        return None
    q = np.full((4, len(ref.g)), np.nan)
    dg = sign[ok, None] * g_t[idx[ok]] - ref.g[ok]
    ct = cov_t[idx[ok]]
    u, nrm, gn = ref.u[ok], ref.nrm[ok], ref.g_abs[ok]
    q[0, ok] = np.einsum("ni,ni->n", u, dg) / gn
    q[1, ok] = np.einsum("ni,nij,nj->n", u, ct, u) / gn**2
    q[2, ok] = np.einsum("ni,ni->n", nrm, dg) / gn
    q[3, ok] = np.einsum("ni,nij,nj->n", nrm, ct, nrm) / gn**2
    return fit[0], fit[1], q, (x + w / 2.0, y + h / 2.0)


def _combine_tiles(model: SystematicModel, measured: list, ref: _Reference) -> None:
    """Fill ``model`` from the tiles (``lattice._sysfield.fit_field``): outlier rejection, the χ² test of one
    common deformation, the field model (trend + random part, small-sample factor), and each reflection's
    own excess scatter.
    """
    th, cv = np.array([m[0] for m in measured]), np.array([m[1] for m in measured])
    per = np.array([m[2] for m in measured])
    pos = np.array([m[3] for m in measured], float)
    fit = sf.fit_field(th, cv, pos)
    per = per[fit.keep]
    n, p = int(fit.keep.sum()), ref.P.shape[1]
    model.n_rejected = int((~fit.keep).sum())
    model.n_tiles, model.n_params = n, p
    if n < 3:
        model.notes.append("too few tiles left after outlier rejection: no systematic estimate")
        return
    P = ref.P
    model.method, model.chi2, model.dof, model.p_value = "tiles", fit.chi2, fit.dof, fit.p_value
    model.cov_D_sample = P @ fit.sample @ P.T
    model.nu, model.kappa, model.p_trend, model.shrinkage = fit.nu, fit.kappa, fit.p_trend, fit.shrinkage
    if fit.significant:  # else the tiles agree within their statistical errors: all terms stay 0
        model.cov_D = P @ fit.field_cov() @ P.T
        model.cov_D_random = P @ fit.Sigma @ P.T
        if fit.has_trend:
            model.trend_B_per_px = P @ fit.B_per_px
            model.trend_resid_cov = P @ fit.S_resid @ P.T
            model.trend_lev_inv_px2 = fit.lev_inv
        note = sf.kappa_note(fit)
        if note:
            model.notes.append(note)
    # what the affine model leaves: each reflection's own significant excess scatter (non-affine distortion)
    model.g_ref_inv_nm = ref.g
    a, c = _a_vec(ref.g), _c_vec(ref.g)
    model.extra_rel_d_var = sf.excess_per_reflection(per[:, 0], per[:, 1], np.diag(c @ model.cov_D @ c.T))
    model.extra_azimuth_var_rad2 = sf.excess_per_reflection(
        per[:, 2], per[:, 3], np.einsum("ni,ij,nj->n", a, model.cov_D, a)
    )


# ============================================================================ propagation
def _hypot(*parts):
    return np.sqrt(sum(np.asarray(p, dtype=float) ** 2 for p in parts))


def apply_systematic(result, model: SystematicModel) -> None:
    """Add the systematic term to the spots, angles and basis of a LatticeResult (in place).

    Each error then has up to three parts, as ordinary columns: ``*_stat`` (Fisher, the noise),
    ``*_sys`` (this image's systematic variation) and ``*_calibration`` (an applied lattice calibration's
    own uncertainty, when there is one); ``*_measurement`` is the first two in quadrature (what a ratio
    of two regions of one image needs: a common calibration cancels) and the plain name the total.
    Spots: ``d_err_*_angstrom`` and ``azimuth_err_*_deg``; angles ``angle_err_*_deg``; the basis the
    same keys (lists for the two d's).
    """
    result.systematic = model
    sp = result.spots
    meas_d = "d_err_measurement_angstrom" if "d_err_measurement_angstrom" in sp else "d_err_angstrom"
    meas_az = "azimuth_err_measurement_deg" if "azimuth_err_measurement_deg" in sp else "azimuth_err_deg"
    if "d_err_stat_angstrom" not in sp:
        sp["d_err_stat_angstrom"] = sp[meas_d].to_numpy(float) if len(sp) else []
        sp["azimuth_err_stat_deg"] = sp[meas_az].to_numpy(float) if len(sp) else []
    if len(sp):
        g = sp[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        d = sp["d_angstrom"].to_numpy(float)
        d_sys = d * np.sqrt(np.clip(model.rel_d_var(g), 0, None))
        az_sys = np.degrees(np.sqrt(np.clip(model.azimuth_var_rad2(g), 0, None)))
    else:
        d_sys = az_sys = np.zeros(0)
    cal_d = sp["d_err_calibration_angstrom"].to_numpy(float) if "d_err_calibration_angstrom" in sp else 0.0
    cal_az = sp["azimuth_err_calibration_deg"].to_numpy(float) if "azimuth_err_calibration_deg" in sp else 0.0
    sp["d_err_sys_angstrom"] = d_sys
    sp["d_err_measurement_angstrom"] = _hypot(sp["d_err_stat_angstrom"], d_sys)
    sp["d_err_angstrom"] = _hypot(sp["d_err_measurement_angstrom"], cal_d)
    sp["azimuth_err_sys_deg"] = az_sys
    sp["azimuth_err_measurement_deg"] = _hypot(sp["azimuth_err_stat_deg"], az_sys)
    sp["azimuth_err_deg"] = _hypot(sp["azimuth_err_measurement_deg"], cal_az)
    an = result.angles
    meas_an = "angle_err_measurement_deg" if "angle_err_measurement_deg" in an else "angle_err_deg"
    if "angle_err_stat_deg" not in an:
        an["angle_err_stat_deg"] = an[meas_an].to_numpy(float) if len(an) else []
    if len(an) and len(sp):
        gi = g[an["spot_i"].to_numpy(int)]
        gj = g[an["spot_j"].to_numpy(int)]
        a_sys = np.degrees(np.sqrt(np.clip(model.angle_var_rad2(gi, gj), 0, None)))
    else:
        a_sys = np.zeros(len(an))
    cal_an = an["angle_err_calibration_deg"].to_numpy(float) if "angle_err_calibration_deg" in an else 0.0
    an["angle_err_sys_deg"] = a_sys
    an["angle_err_measurement_deg"] = _hypot(an["angle_err_stat_deg"], a_sys)
    an["angle_err_deg"] = _hypot(an["angle_err_measurement_deg"], cal_an)
    b = result.basis
    if b:
        b.setdefault("d_err_stat_angstrom", list(b.get("d_err_measurement_angstrom", b["d_err_angstrom"])))
        b.setdefault("angle_err_stat_deg", b.get("angle_err_measurement_deg", b["angle_err_deg"]))
        g1, g2 = np.asarray(b["g1_inv_nm"], float), np.asarray(b["g2_inv_nm"], float)
        G = np.vstack([g1, g2])
        ds = np.asarray(b["d_angstrom"], float) * np.sqrt(np.clip(model.rel_d_var(G), 0, None))
        asys = math.degrees(math.sqrt(max(float(model.angle_var_rad2(g1, g2)[0]), 0.0)))
        cal_b = b.get("d_err_calibration_angstrom", [0.0, 0.0])
        meas = [float(math.hypot(s, y)) for s, y in zip(b["d_err_stat_angstrom"], ds)]
        b["d_err_sys_angstrom"] = [float(v) for v in ds]
        b["d_err_measurement_angstrom"] = meas
        b["d_err_angstrom"] = [float(math.hypot(m, c)) for m, c in zip(meas, cal_b)]
        b["angle_err_sys_deg"] = asys
        b["angle_err_measurement_deg"] = float(math.hypot(b["angle_err_stat_deg"], asys))
        b["angle_err_deg"] = float(math.hypot(b["angle_err_measurement_deg"], b.get("angle_err_calibration_deg", 0.0)))
    result.info["systematic"] = model.to_dict()
