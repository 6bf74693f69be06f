"""``strain_map``: geometric phase analysis read as a method section.

1. choose two non-collinear reflections (the fitted basis of :func:`measure_lattice`, or given);
2. isolate each with a Gaussian mask in the FFT and take its complex lattice image;
3. refine g on the reference region: the weighted mean phase gradient is ``2 pi dg``;
4. phase gradients -> displacement gradient -> strain, rotation, dilatation;
5. per-pixel sigma from the measured noise power (Fisher / linear propagation).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import AnalysisError, InvalidDataError, LatticefitError, check_param
from ..micrograph import as_micrograph
from ..roi import as_roi
from . import _kernels, _phase, _strain
from ._derived import DerivedMaps
from ._result import MAP_NAMES, StrainMap
from ._systematic import floor_from_moments

__all__ = ["choose_reflections", "strain_map"]

FFT_WORKERS = 2
#: smallest acute angle between g1 and g2 (degrees)
MIN_ANGLE_DEG = 15.0
#: the mask sigma may reach this fraction of the shortest |g| (beyond it, it picks up DC and neighbours)
MAX_MASK_FRACTION = 0.25
#: the default resolution keeps the mask at most this fraction of |g| (the DC of a HAADF image is then
#: 5 mask sigmas away; at 0.3 the SrTiO3 [110] ADF file showed 7x-noise false strain from leakage)
DEFAULT_MASK_FRACTION = 0.2
#: pixels closer to the image edge than this many point-spread sigmas are flagged invalid
EDGE_SIGMAS = 4.0
#: width of the cosine taper at the edges (point-spread sigmas), see :func:`_phase.tukey_window`
TAPER_SIGMAS = 2.0
#: median amplitude signal-to-noise in the reference region below which a reflection is "no lattice"
MIN_FRINGE_SNR = 3.0
#: about this many pixels of the reference region (a regular subsample) give the fringe check its median
FRINGE_CHECK_PIXELS = 250_000
#: at most about this many pixels (a regular subsample, at most half a point-spread sigma apart) give each
#: map's systematic floor its two moments
FLOOR_PIXELS = 1_000_000
#: at most this many pixels of a large image go to measure_lattice when choosing g (a central square)
CHOOSE_MAX_SIDE_PX = 1024
#: a reference mask (ring, disk) larger than this is replaced by its bounding box when choosing g
CHOOSE_MAX_MASK_PX = 20_000


def _pixel_matrix(mg, calibration) -> np.ndarray:
    """C (2x2): (x_px, y_px) -> (x_nm, y_nm). From ``calibration.matrix_nm_per_px`` or the pixel size."""
    if calibration is not None:
        m = getattr(calibration, "matrix_nm_per_px", None)
        if m is None:
            raise AnalysisError("calibration has no matrix_nm_per_px (2x2 pixel-to-nm matrix)", mg.source)
        c = np.asarray(m, dtype=float)
        if c.shape != (2, 2) or not np.all(np.isfinite(c)) or abs(np.linalg.det(c)) <= 0:
            raise AnalysisError(
                f"calibration matrix_nm_per_px must be a finite invertible 2x2 matrix, got {m!r}", mg.source
            )
        return c
    mg.require_calibration()
    return np.asarray(mg.pixel_matrix_nm, dtype=float)  # the image's affine calibration, else diag(px, py)


def _as_g_pair(g, c: np.ndarray, source) -> np.ndarray:
    """Two reflections given as ((gx, gy), (gx, gy)) in 1/nm -> rows of G in cycles/px."""
    arr = np.asarray(g, dtype=float)
    if arr.shape != (2, 2) or not np.all(np.isfinite(arr)):
        raise AnalysisError(f"g must be two reflections ((gx, gy), (gx, gy)) in 1/nm, got {g!r}", source)
    return arr @ c  # g_px = C^T g_nm, as rows: G_nm C


def choose_reflections(mg, *, reference=None) -> np.ndarray:
    """Two reflections from :func:`measure_lattice` on the reference region, rows (gx, gy) in 1/nm.

    The strongest first-order spot and the strongest first-order spot at least
    15 degrees from it (lowest noise in the phase); if there is none, the same
    among all spots. A large image is measured on its central
    ``CHOOSE_MAX_SIDE_PX`` square (or the reference region; a reference mask of more
    than ``CHOOSE_MAX_MASK_PX`` pixels, e.g. the ring around a dot, on its bounding box).

    Raises
    ------
    AnalysisError
        If fewer than two non-collinear reflections are found.
    """
    from ..lattice._measure import measure_lattice
    from ..roi import Rect

    roi = reference
    if roi is not None and not isinstance(as_roi(roi), Rect):
        # a ring or mask: the reflections are chosen on its bounding box (g is refined on the region itself
        # afterwards); a pixel-wise fit over a large mask costs tens of seconds and picks the same spots
        m = as_roi(roi).mask(mg.shape)
        if int(m.sum()) > CHOOSE_MAX_MASK_PX:
            y0, y1, x0, x1 = as_roi(roi).bounds(mg.shape)
            roi = Rect(x0, y0, x1 - x0, y1 - y0)
    if roi is None and max(mg.shape) > CHOOSE_MAX_SIDE_PX:
        ny, nx = mg.shape
        s = CHOOSE_MAX_SIDE_PX
        roi = Rect(max(0, (nx - s) // 2), max(0, (ny - s) // 2), min(s, nx), min(s, ny))
    # spots off the fitted lattice are kept (order 0), not dropped with a warning: the two reflections are
    # chosen among the first-order spots, and a dropped-spot warning would offer an option GPA does not need
    res = measure_lattice(mg, roi=roi, keep_unindexed=True)
    spots = res.spots  # strongest (highest snr) first
    first = spots[spots.order == 1] if len(spots) else spots
    for table in (first, spots):
        for i in range(len(table)):
            a = np.array([table.gx_inv_nm.iloc[i], table.gy_inv_nm.iloc[i]])
            for j in range(i + 1, len(table)):
                b = np.array([table.gx_inv_nm.iloc[j], table.gy_inv_nm.iloc[j]])
                if _acute_angle_deg(a, b) >= MIN_ANGLE_DEG:
                    return np.array([a, b])
    raise AnalysisError(
        f"no lattice: found {len(spots)} significant reflection(s), GPA needs two non-collinear ones", mg.source
    )


def _acute_angle_deg(a, b) -> float:
    c = abs(float(np.dot(a, b))) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, c)))


def _check_inputs(data, g_px, s_inv_nm, sigma_px, inv_metric, source) -> None:
    for i, g in enumerate(g_px):
        if max(abs(g[0]), abs(g[1])) >= 0.5:
            raise AnalysisError(
                f"g{i + 1} = ({g[0]:.3f}, {g[1]:.3f}) cycles/px is beyond the Nyquist frequency", source
            )
    gnm = [math.sqrt(float(g @ inv_metric @ g)) for g in g_px]
    if min(gnm) <= 0:
        raise AnalysisError("g must be non-zero", source)
    if s_inv_nm > MAX_MASK_FRACTION * min(gnm):
        raise AnalysisError(
            f"resolution sigma {1 / (2 * math.pi * s_inv_nm):.3g} nm is finer than the lattice allows: the mask "
            f"(sigma {s_inv_nm:.3g}/nm) would exceed {MAX_MASK_FRACTION} |g| = {MAX_MASK_FRACTION * min(gnm):.3g}/nm; "
            f"use sigma_nm >= {1 / (2 * math.pi * MAX_MASK_FRACTION * min(gnm)):.3g}",
            source,
        )
    if sigma_px * EDGE_SIGMAS * 2 >= 0.8 * min(data.shape):
        raise AnalysisError(
            f"resolution sigma {sigma_px:.1f} px is too coarse for a {data.shape[1]}x{data.shape[0]} px "
            "image (nothing left away from the edges)",
            source,
        )


def _reference_mask(shape, reference, valid, source) -> np.ndarray:
    if reference is None:
        return valid
    roi = as_roi(reference)
    m = roi.mask(shape) & valid
    if m.sum() < 16:
        raise AnalysisError(
            f"reference region {roi.describe()} has fewer than 16 pixels away from the image edges", source
        )
    return m


def _fields(spec, shape, g_px, s_inv_nm, inv_metric, p_noise):
    return [
        _phase.masked_field(
            spec, shape, g, s_inv_nm=s_inv_nm, inv_metric=inv_metric, noise_power_per_bin=p_noise, workers=FFT_WORKERS
        )
        for g in g_px
    ]


def _refine(fields, ref_mask):
    """One refinement step: the amplitude^2-weighted mean phase gradient in the reference region is 2 pi dg."""
    grads, shifts = [], []
    for f in fields:
        res = (f.g_px[0] - f.k0_px[0], f.g_px[1] - f.k0_px[1])
        gx, gy = _kernels.phase_gradient_from_angle(f.theta, res)
        mx, my = _kernels.weighted_gradient_mean(gx, gy, f.h, ref_mask)
        dg = (mx / _strain.TWO_PI, my / _strain.TWO_PI)
        gx -= np.float32(_strain.TWO_PI * dg[0])
        gy -= np.float32(_strain.TWO_PI * dg[1])
        grads.append((gx, gy))
        shifts.append(dg)
    return grads, np.array(shifts)


def strain_map(
    image,
    *,
    g=None,
    sigma_nm: float | None = None,
    reference=None,
    calibration=None,
    pixel_size=None,
    refine: bool = True,
) -> StrainMap:
    """Geometric phase analysis: strain, rotation and dilatation maps with per-pixel 1-sigma errors.

    After Hÿtch, Snoeck & Kilaas (1998). Two non-collinear reflections are
    isolated by Gaussian masks in the FFT; g is refined on the reference region
    (its mean strain is zero by construction); the displacement gradient of the
    phases gives the strain tensor of the local lattice relative to the
    reference, ``F - I`` with ``F = (I - D)^-1``.

    Parameters
    ----------
    image : Micrograph, Signal2D or array_like
        A calibrated image (or give ``pixel_size`` / ``calibration``).
    g : ((gx, gy), (gx, gy)) in 1/nm, optional
        The two reflections (x = column, y = row, as in :func:`measure_lattice`).
        Default: :func:`choose_reflections` (the two strongest non-collinear spots).
    sigma_nm : float, optional
        Spatial resolution: the standard deviation (nm) of the Gaussian real-space
        point spread of the maps; the Fourier mask has sigma ``1 / (2 pi sigma_nm)``.
        Default: two periods of the longer of the two spacings, or 6 % of the
        shorter image side if that is less, but at least 0.8 periods (mask
        sigma at most 0.2 |g|; 0.25 |g| is the finest accepted).
    reference : Rect, Circle, Mask, bool array or hyperspy ROI, optional
        Region whose lattice is the reference (zero strain); a hyperspy ROI is in
        the image's calibrated units. Default: the whole field away from the edges.
    calibration : object with ``matrix_nm_per_px``, optional
        An affine calibration: the 2x2 matrix taking (x_px, y_px) to (x_nm, y_nm).
        Used instead of the pixel size: maps are in the calibrated frame
        (``D_nm = C D_px C^-1``) and g in calibrated 1/nm.
    pixel_size : float, str or (float, float), optional
        Overrides the image calibration (a bare number is nm).
    refine : bool
        Refine g on the reference region (default True).

    Returns
    -------
    StrainMap

    Raises
    ------
    AnalysisError
        No lattice (fewer than two reflections), collinear or too weak g, or a
        resolution the lattice or the image size does not allow.
    InvalidDataError
        A blank image or one with NaN pixels.

    Notes
    -----
    Uncertainty: Fisher / first-order propagation. The noise power per FFT bin
    is the median of ``|F(k)|^2 / ln 2`` between the lattice reflections (white
    noise assumed near g); the phase-gradient variance of each field is
    ``P sum_k M(k)^2 sin^2(2 pi dk) / (2 N^2 |H_g(r)|^2)`` for the central
    differences used, propagated through ``-(1/2 pi) C G^-1 . C^-1``. The
    errors of neighbouring pixels are correlated over the point spread.

    Edges: the image is tapered over 2 point-spread sigmas before the FFT and
    pixels within 4 sigmas of an edge are flagged not ``valid``. On a perfect
    lattice the false strain at 4 sigmas is < 1e-5; a region strained by e
    relative to the reference reads about 0.01 e low within 4-5 sigmas of an
    edge (measured on a 2 % step), not included in sigma.

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit.micrograph import Micrograph
    >>> y, x = np.mgrid[:320, :320] * 0.02                    # nm
    >>> ux = 0.01 / 1.01 * np.maximum(x - 3.2, 0)               # lattice 1 % longer along x, right half
    >>> img = np.cos(2 * np.pi * (x - ux) / 0.4) + np.cos(2 * np.pi * y / 0.4)
    >>> sm = strain_map(Micrograph(img, pixel_size_nm=(0.02, 0.02)),
    ...                 g=((2.5, 0), (0, 2.5)), sigma_nm=0.3, reference=(0, 0, 130, 320))
    >>> round(float(np.median(sm.exx[100:220, 215:250])) * 100, 2)
    1.0
    """
    sigma_nm = check_param("sigma_nm", sigma_nm, lo=0, lo_open=True, optional=True)
    if hasattr(calibration, "apply") or isinstance(calibration, (str, os.PathLike, dict)):
        # a latticefit Calibration (object, record or JSON path): the Micrograph carries its matrix
        mg, calibration = as_micrograph(image, pixel_size, calibration=calibration), None
    else:
        mg = as_micrograph(image, pixel_size)
    try:
        reference = as_roi(reference, image, pixel_size=pixel_size)  # a hyperspy ROI: in the image's units
        return _strain_map(mg, g, sigma_nm, reference, calibration, refine)
    except LatticefitError as e:
        raise e.with_source(mg.source) from None


def _strain_map(mg, g, sigma_nm, reference, calibration, refine) -> StrainMap:
    data = np.asarray(mg.data, dtype=np.float32)
    shape = data.shape
    src = mg.source
    if min(shape) < 32:
        raise AnalysisError(f"image is {shape[1]}x{shape[0]} px; GPA needs at least 32x32", src)
    if not np.all(np.isfinite(data)):
        raise InvalidDataError("image has NaN or infinite pixels; GPA needs a complete image", src)
    if float(np.ptp(data)) == 0.0:
        raise InvalidDataError("image is blank (all pixels equal): no lattice to analyse", src)
    c = _pixel_matrix(mg, calibration)
    inv_metric = np.linalg.inv(c) @ np.linalg.inv(c).T
    g_nm0 = choose_reflections(mg, reference=reference) if g is None else np.asarray(g, dtype=float)
    g_px = _as_g_pair(g_nm0, c, src)
    if _acute_angle_deg(g_nm0[0], g_nm0[1]) < MIN_ANGLE_DEG:
        raise AnalysisError(
            f"g1 and g2 are collinear ({_acute_angle_deg(g_nm0[0], g_nm0[1]):.1f} deg apart, "
            f"need >= {MIN_ANGLE_DEG:g}): GPA needs two independent reflections",
            src,
        )
    d_nm = [1.0 / float(np.linalg.norm(v)) for v in g_nm0]
    if sigma_nm is None:
        # two periods of the longer spacing, finer on a small field (so that half of it stays away from the
        # edges), never finer than the mask allows
        px_nm0 = math.sqrt(abs(np.linalg.det(c)))
        sigma_nm = max(
            min(2.0 * max(d_nm), 0.06 * min(shape) * px_nm0), max(d_nm) / (2.0 * math.pi * DEFAULT_MASK_FRACTION)
        )
    sigma_nm = float(sigma_nm)
    if not sigma_nm > 0:
        raise AnalysisError(f"resolution sigma_nm must be positive, got {sigma_nm}", src)
    s_inv_nm = 1.0 / (2.0 * math.pi * sigma_nm)
    px_nm = math.sqrt(abs(np.linalg.det(c)))
    sigma_px = sigma_nm / px_nm
    _check_inputs(data, g_px, s_inv_nm, sigma_px, inv_metric, src)

    edge = int(math.ceil(EDGE_SIGMAS * sigma_px))
    valid = np.zeros(shape, dtype=bool)
    valid[edge : shape[0] - edge, edge : shape[1] - edge] = True
    ref_mask = _reference_mask(shape, reference, valid, src)

    window = _phase.tukey_window(shape, TAPER_SIGMAS * sigma_px)
    spec = _phase.half_spectrum(data, window, workers=FFT_WORKERS)
    gpx_abs = [math.hypot(*gg) for gg in g_px]
    # the window lowers the noise power by mean(w^2); inside it the noise is the image's own
    p_noise = _phase.noise_power(spec, shape, g_px, exclude_px=max(3.0 * s_inv_nm * px_nm, 0.2 * min(gpx_abs)))
    w = window.ravel()
    p_noise /= float(np.dot(w, w)) / w.size
    del window, w
    fields = _fields(spec, shape, g_px, s_inv_nm, inv_metric, p_noise)
    _check_fringes(fields, ref_mask, src)
    g_start = g_px.copy()
    grads = None
    if refine:
        grads, dg = _refine(fields, ref_mask)  # gradients already corrected for the refined g
        g_px = g_px + dg
        # re-centre the masks when g moved by more than a tenth of the mask width
        if np.max(np.abs(dg)) * math.sqrt(np.max(np.linalg.eigvalsh(inv_metric))) > 0.1 * s_inv_nm:
            fields = _fields(spec, shape, g_px, s_inv_nm, inv_metric, p_noise)
            grads, dg = _refine(fields, ref_mask)
            g_px = g_px + dg
    del spec
    maps, derived = _strain_maps(fields, g_px, c, grads)
    del grads
    return _assemble(
        mg, data, fields, maps, derived, g_px, g_start, c, sigma_nm, s_inv_nm, p_noise, valid, ref_mask, reference
    )


def _check_fringes(fields, ref_mask, src) -> None:
    # the amplitude is smooth over the point spread: a regular subsample of <= ~250k pixels gives its median
    step = max(1, int(math.sqrt(ref_mask.size / FRINGE_CHECK_PIXELS)))
    for i, f in enumerate(fields):
        amp = _kernels.masked_amplitude(f.h[::step, ::step], ref_mask[::step, ::step])
        noise = math.sqrt(f.phase_var_base * 2.0)  # sd of |noise| of h (complex, both parts)
        snr = float(np.median(amp)) / noise if noise > 0 else np.inf
        if snr < MIN_FRINGE_SNR:
            raise AnalysisError(
                f"no lattice fringe at g{i + 1}: median amplitude is {snr:.1f} x the noise in the "
                f"reference region (need >= {MIN_FRINGE_SNR:g})",
                src,
            )


def _strain_maps(fields, g_px, c, grads=None, engine: str = "numba") -> tuple[dict, DerivedMaps]:
    """The strain tensor, rotation and dilatation (angles in numpy's SIMD float32 atan2, the 2x2 algebra in
    one numba pass), and the :class:`DerivedMaps` that compute the other maps when they are first read.

    ``engine='numpy'`` uses the numpy references (:func:`_strain.deformation`) throughout.
    """
    coefs = _strain.strain_sigma_coefficients(g_px, c, [f.grad_var_base for f in fields])
    derived = DerivedMaps(list(fields), np.asarray(g_px), np.asarray(c), coefs, engine)
    res = derived.residuals()
    if grads is None and engine == "numba":
        grads = [_kernels.phase_gradient_from_angle(f.theta, r) for f, r in zip(fields, res)]
    elif grads is None:
        grads = [_strain.phase_gradient(f.h, r) for f, r in zip(fields, res)]
    flat = (grads[0][0], grads[0][1], grads[1][0], grads[1][1])
    maps = _kernels.deformation_maps(flat, g_px, c) if engine == "numba" else _strain.deformation(flat, g_px, c)
    return maps, derived


def _maps(fields, g_px, c, grads=None, engine: str = "numba") -> dict:
    """Every map of :func:`_strain_maps`, the derived ones computed now."""
    maps, derived = _strain_maps(fields, g_px, c, grads, engine)
    return {**maps, **derived.all()}


def _assemble(
    mg, data, fields, maps, derived, g_px, g_start, c, sigma_nm, s_inv_nm, p_noise, valid, ref_mask, reference
):
    c_inv = np.linalg.inv(c)
    ref = None if reference is None else as_roi(reference).to_dict()
    # the maps are smooth over the point spread: a regular subsample at half its sigma loses nothing
    px_nm = math.sqrt(abs(np.linalg.det(c)))
    step = max(1, min(int(0.5 * sigma_nm / px_nm), int(math.sqrt(valid.size / FLOOR_PIXELS))))
    sub = (slice(None, None, step), slice(None, None, step))
    in_ref = (ref_mask & valid)[sub]
    noise_var = derived.mean_sigma_squared(in_ref, step)
    # (the subsample is small: the map's mean square through the two-array kernel, the map given twice)
    floors = {
        n: floor_from_moments(_kernels.masked_mean_squares(maps[n][sub], maps[n][sub], in_ref)[0], noise_var[n])
        for n in MAP_NAMES
    }
    return StrainMap(
        **maps,
        derived=derived,
        valid=valid,
        reference_mask=ref_mask,
        g_inv_nm=g_px @ c_inv,
        g_initial_inv_nm=g_start @ c_inv,
        g_px=g_px,
        matrix_nm_per_px=c,
        sigma_nm=sigma_nm,
        mask_sigma_inv_nm=s_inv_nm,
        noise_sigma_per_px=math.sqrt(p_noise / data.size),
        source=mg.source,
        reference=ref,
        image=data,
        noise_model=[(f.window, f.noise_power_per_bin, f.h) for f in fields],
        systematic_sd=floors,
    )
