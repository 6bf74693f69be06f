"""Lattice metrology: d-spacings and angles at the statistical limit, each with its uncertainty.

:func:`measure_lattice` finds the lattice spots of an image (or of a region of
it), refines every spot's frequency by maximum likelihood (all spots jointly),
states a 1-sigma error from the Fisher information with the amplitude and the
local noise estimated from the data, and fits the two-vector reciprocal basis
that indexes the spots (higher orders become known harmonics, stray maxima are
dropped). :func:`compare_regions` matches the reflections of two regions of the
same image and reports their relative differences: ratios cancel the 1-5 %
magnification calibration error.

Conventions: x runs right and y down, as in the displayed image; ``g`` vectors
are (gx, gy) in 1/nm; the azimuth of ``g`` is measured from +x towards +y, and
each Friedel pair is reported once with the azimuth in (-90, 90]. Angles between
plane families are acute (0-90); the basis angle is the angle between the two
basis vectors chosen acute too (60 deg for a hexagonal net, 90 for a square one).

Method (see ``docs/lattice.md``)
--------------------------------
1. Spectrum: Moisan periodic component of the region (disk/mask: edge-tapered
   mask), power summed over sliding 2x2 cells (the spectrum is binned first
   when larger than 1024 px), divided by the radial background (ring median);
   local maxima above a Gamma-law threshold calibrated on pure noise.
2. Refinement: ML frequency of every candidate, jointly (RELAX): for a
   rectangle, the maximum of the projected periodogram of the raw DFT at
   continuous frequency in a window of bins; for a disk/mask, a Gauss-Newton
   least-squares sinusoid fit over the mask pixels.
3. Errors: Fisher information ``(2 pi)^2 a^2 / (2 sigma^2) sum (r - r_mean)(r - r_mean)^T``
   (its exact windowed/masked form), with the amplitude ``a`` and the local
   noise ``sigma`` from the data; spots below ``min_snr`` are dropped.
4. Basis: the pair of spots that indexes the most signal with the lowest
   orders; weighted least-squares fit of the basis to every indexed spot.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidDataError, LatticefitError, LatticefitWarning, check_param
from ..micrograph import as_micrograph
from ..roi import as_roi, extract
from ..spectrum import FFT_WORKERS, half_plane_power
from . import _plausibility as lp
from . import _steps as st
from . import _wholelimit as wl
from ._multi import Lattice, lattice_from_fit
from ._plausibility import empty_rejected
from ._result import (  # noqa: F401 - re-exported
    _ERR_PART_COLUMNS,
    ANGLE_COLUMNS,
    LATTICE_SCHEMA_VERSION,
    SPOT_COLUMNS,
    LatticeResult,
    _basis_index_text,
    _budget_line,
    _empty_angles,
    _empty_spots,
)

__all__ = [
    "measure_lattice",
    "LatticeResult",
    "parse_d_range",
    "SPOT_COLUMNS",
]

MIN_PERIODS = st.MIN_PERIODS  # fewest fringe periods across the region of a reported spot (lattice._steps)


# ============================================================================ parsing
def parse_d_range(text) -> tuple[float | None, float | None]:
    """Parse a d-range into Å: ``'3-5A'``, ``'3-5 Å'``, ``'0.3-0.5nm'``, ``'3,5'``, ``'3:5'``, ``'3-'``.

    MIN and MAX are separated by ``-``, ``,`` or ``:``; an optional unit (``A``, ``Å``,
    ``nm``, ``pm``) follows the range; a bare range is Å; an open end is None.

    Raises
    ------
    LatticefitError
        On unreadable text or a reversed, zero or negative range (one line).

    Examples
    --------
    >>> parse_d_range("1-10A"), parse_d_range("0.2-0.5nm"), parse_d_range("3,5"), parse_d_range("3:5 Å")
    ((1.0, 10.0), (2.0, 5.0), (3.0, 5.0), (3.0, 5.0))
    >>> parse_d_range("3-")
    (3.0, None)
    """
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise LatticefitError(f"a d-range needs (MIN, MAX), got {text!r}")
        lo, hi = (float(v) if v is not None else None for v in text)
        _check_d_range(lo, hi, text)
        return lo, hi
    t = str(text).strip().replace(" ", "")
    unit = 1.0
    for suf, f in (("nm", 10.0), ("pm", 0.01), ("Å", 1.0), ("A", 1.0), ("a", 1.0)):
        if t.endswith(suf):
            t, unit = t[: -len(suf)], f
            break
    bad = (
        f"cannot read a d-range from {text!r}: expected MIN-MAX, MIN,MAX or MIN:MAX (Å, or with a unit: 1-10A, 0.1-1nm)"
    )
    seps = [c for c in ",:" if c in t]
    if len(seps) > 1:
        raise LatticefitError(bad)
    if seps:
        parts = t.split(seps[0])
    elif t.startswith("-"):
        raise LatticefitError(f"d-range {text!r} must be positive (0 < MIN < MAX)")
    else:
        parts = t.split("-")
    if len(parts) != 2:
        raise LatticefitError(bad if t.count("-") < 2 else f"d-range {text!r} must be positive (0 < MIN < MAX)")
    try:
        lo = float(parts[0]) * unit if parts[0] else None
        hi = float(parts[1]) * unit if parts[1] else None
    except ValueError:
        raise LatticefitError(bad) from None
    _check_d_range(lo, hi, text)
    return lo, hi


def _check_d_range(lo, hi, text) -> None:
    if any(v is not None and not (np.isfinite(v) and v > 0) for v in (lo, hi)):
        raise LatticefitError(f"d-range {text!r} must be positive (0 < MIN < MAX)")
    if lo is not None and hi is not None and not lo < hi:
        raise LatticefitError(f"d-range {text!r} is reversed or empty: MIN must be < MAX")


# ============================================================================ result


def _mask_invalid(mg, sub, weight, origin, notes):
    """The region's mask without the image's NaN/inf pixels (``Micrograph.invalid_mask``), with a note.

    The masked pixels then go the way of any non-rectangular region: a smoothly tapered mask in the power
    spectrum and a least-squares fit over the valid pixels only (issue #17: not median-filled).
    """
    if mg.invalid_mask is None:
        return weight
    y0, x0 = origin
    bad = mg.invalid_mask[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]]
    inside = np.ones(sub.shape, bool) if weight is None else weight
    n_bad = int(np.count_nonzero(bad & inside))
    if n_bad == 0:
        return weight
    keep = inside & ~bad
    frac = n_bad / max(int(np.count_nonzero(inside)), 1)
    if not keep.any():
        raise InvalidDataError("every pixel of the region is NaN or infinite", mg.source)
    notes.append(
        f"{100.0 * frac:.3g} % of the region ({n_bad} px) is NaN/infinite in the file: masked "
        "(tapered in the spectrum, left out of the fit)"
    )
    return keep


# ============================================================================ measure
def measure_lattice(
    image,
    *,
    roi=None,
    pixel_size=None,
    d_range_angstrom=None,
    min_snr: float = st.DEFAULT_MIN_SNR,
    max_spots: int = st.DEFAULT_MAX_SPOTS,
    keep_unindexed: bool = False,
    p_false: float = st.DEFAULT_P_FALSE,
    window_bins: int = st.DEFAULT_WINDOW_BINS,
    workers: int = FFT_WORKERS,
    systematic="auto",
) -> LatticeResult:
    """Measure the lattice spots of an image or region, with 1-sigma uncertainties.

    Parameters
    ----------
    image : Micrograph, Signal2D or array_like
        The image (see :func:`latticefit.as_micrograph`); must be calibrated
        (or given ``pixel_size``).
    roi : Rect, Circle, Mask, bool array, tuple, dict or hyperspy ROI, optional
        Region to analyse: a rectangle, a disk (a dot) or a mask, at least 32
        px across; a hyperspy ``RectangularROI``/``CircleROI``/``PolygonROI`` is
        in the image's calibrated units. Default: the whole image.
    pixel_size : float, str or (float, float), optional
        Overrides the calibration (a bare number is nm).
    d_range_angstrom : (float or None, float or None) or str, optional
        Keep spacings within (d_min, d_max) Å, e.g. ``(1, 10)`` or ``'1-10A'``.
    min_snr : float
        Smallest amplitude signal-to-noise ratio of a reported spot
        (``a sqrt(n) / (2 sigma)``; 5 keeps pure noise out).
    max_spots : int
        Most candidates refined.
    keep_unindexed : bool
        Keep the significant spots that the fitted basis does not index
        (order 0) instead of dropping them.
    p_false : float
        Wanted rate of false detections per pure-noise image.
    window_bins : int
        Half-width of the DFT window of the refinement (rectangles).
    workers : int
        FFT threads.
    systematic : {"auto", "none"} or SystematicModel
        The image's own systematic lattice variation (scan distortion, drift)
        added in quadrature to the statistical errors: ``"auto"`` estimates it
        from tiles of the region's size over the whole image
        (``lattice._systematic``), ``"none"`` keeps the Fisher errors only, a
        model (``result.systematic`` of an earlier call) reuses an estimate.
        Both parts are columns: ``d_err_stat_angstrom``,
        ``d_err_sys_angstrom`` (``d_err_angstrom`` is the total), and the same
        for azimuths and angles.

    Returns
    -------
    LatticeResult

    Raises
    ------
    RegionError
        If the region lies outside the image or is smaller than 32 px.
    CalibrationError
        If the image has no pixel size.

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, truth = synth.perovskite_111(shape=(512, 512), noise_sigma=0.5, seed=1)
    >>> res = measure_lattice(mg, d_range_angstrom=(3, 6))
    >>> len(res.spots), round(res.basis["angle_deg"])
    (3, 60)
    >>> bool(abs(res.spots.d_angstrom[0] - 4.195) < 4 * res.spots.d_err_angstrom[0])
    True
    """
    min_snr, max_spots, p_false, window_bins, workers = _check_options(
        min_snr, max_spots, p_false, window_bins, workers
    )
    mg = as_micrograph(image, pixel_size)
    py, px = mg.require_calibration()
    pyx = (py, px)
    B = mg.reciprocal_matrix  # cycles/px -> 1/nm (A^-T: exact for non-square and sheared pixels)
    reg = _region(mg, image, roi, pixel_size)
    d_range = parse_d_range(d_range_angstrom)
    options = dict(
        d_range_angstrom=d_range,
        min_snr=min_snr,
        max_spots=max_spots,
        keep_unindexed=keep_unindexed,
        p_false=p_false,
        window_bins=window_bins,
        workers=workers,
    )
    run = _start_run(mg, reg, systematic, options)
    if reg.is_blank():
        return run.empty("the region is blank (constant): no lattice spots")
    # 1. spectrum and detection; 2. ML refinement of every candidate
    d_range_nm = st.d_range_in_nm(d_range)
    P, U = half_plane_power(reg.sub, reg.weight, "periodic", workers=workers)
    fits = st.detect_and_refine(P, U, reg.sub, reg.weight, pyx, d_range_nm, p_false, max_spots, window_bins, run.info)
    if not fits:
        return run.empty(NO_SPOT_NOTE)
    # 3. significant and measurable spots (lattice._steps)
    spots, n_short = st.measurable_spots(fits, min_snr, reg.shape, B, d_range_nm, run.notes)
    if not spots:
        return run.empty(
            "no measurable lattice spot: the region is too small for its spacings" if n_short else NO_SPOT_NOTE
        )
    # 4. plausibility: blank images, > 50 nm or < 2 px, beyond the beam's limit, streaks, scan lines
    profile = lp.ring_profile(P, reg.shape)
    c = st.plausible_spots(spots, B, P, reg.shape, pyx, mg, reg.values, U, profile, run.notes)
    run.rejected = c.rejected_spots()
    if not c.spots:
        return run.empty()
    # 5. indexing: the main lattice, further lattices, the basis fit
    tol = st.index_tolerance(c, reg.shape, pyx)
    # a region's spots on no lattice: no finer than the whole image supports (lattice._wholelimit)
    whole = (lambda: wl.whole_image_limit(mg, measure_lattice)) if _is_part(reg, mg) else None
    idx = st.index_spots(c, B, P, reg.shape, pyx, profile, tol, keep_unindexed, run.info, run.notes, whole)
    run.rejected = c.rejected_spots()
    if reg.roi is None and _default_options(options):
        wl.remember(mg, run.info.get("information_limit_angstrom"))
    # 6. the table, strongest first; basis rows renumbered; calibration errors added
    table, basis = _strongest_first(st.spot_table(c, idx, reg.origin), idx)
    angles = _angles_table(table)
    if mg.affine_cov is not None:
        run.info["calibration"] = dict(mg.calibration_info or {})
        table, angles, basis = _add_calibration_errors(table, angles, basis, B, mg.affine_cov)
    if basis is not None:
        run.lattices = _lattice_list(table, basis, idx.further)
    return run.finish(table, angles, basis)


def _check_options(min_snr, max_spots, p_false, window_bins, workers):
    """The numeric options of :func:`measure_lattice`, checked (one-line errors)."""
    return (
        check_param("min_snr", min_snr, lo=0),
        check_param("max_spots", max_spots, lo=1, integer=True),
        check_param("p_false", p_false, lo=0, hi=1, lo_open=True, hi_open=True),
        check_param("window_bins", window_bins, lo=1, integer=True),
        check_param("workers", workers, integer=True),
    )


@dataclass
class _Region:
    """The analysed region: its box of pixels, the mask inside it (None: the whole box) and the box origin."""

    roi: Any
    sub: np.ndarray
    weight: np.ndarray | None
    origin: tuple  # (y0, x0) of the box in the image
    notes: list

    @property
    def shape(self) -> tuple:
        """(height, width) of the box."""
        return self.sub.shape

    @property
    def values(self) -> np.ndarray:
        """The region's pixel values (the masked ones only for a mask)."""
        return self.sub[self.weight] if self.weight is not None else self.sub

    def is_blank(self) -> bool:
        """Whether every pixel of the region has the same value."""
        vals = self.values
        return float(np.ptp(vals[::7, ::7] if vals.ndim == 2 else vals)) == 0.0 and float(np.ptp(vals)) == 0.0


def _region(mg, image, roi, pixel_size) -> _Region:
    """The region ``roi`` of the image, NaN/inf pixels masked (a mask that fills its box is a rectangle)."""
    try:
        roi = as_roi(roi, image, pixel_size=pixel_size)
        sub, weight, (y0, x0) = extract(mg.data, roi)
    except LatticefitError as e:
        raise e.with_source(mg.source) from None
    notes: list[str] = []
    weight = _mask_invalid(mg, sub, weight, (y0, x0), notes)
    if weight is not None and weight.all():
        weight = None  # a mask that fills its box is a rectangle
    return _Region(roi=roi, sub=sub, weight=weight, origin=(y0, x0), notes=notes)


def _default_options(options: dict) -> bool:
    """Whether ``options`` are :func:`measure_lattice`'s defaults (its information limit is then the whole
    image's, lattice._wholelimit); the FFT thread count does not change results.
    """
    defaults = inspect.signature(measure_lattice).parameters
    return all(v == defaults[k].default for k, v in options.items() if k != "workers")


def _is_part(reg: _Region, mg) -> bool:
    """Whether the region is a part of the image (not the whole field)."""
    if reg.roi is None:
        return False
    return tuple(reg.shape) != tuple(mg.data.shape) or (reg.weight is not None and mg.invalid_mask is None)


def _start_run(mg, reg: _Region, systematic, options: dict) -> _Run:
    """The record of one call, before any spot is found."""
    return _Run(
        mg=mg,
        roi=reg.roi.to_dict() if reg.roi is not None else None,
        shape=reg.shape,
        systematic=systematic,
        options=options,
        info={
            "refinement": "rect-window-ML" if reg.weight is None else "mask-least-squares",
            "min_snr": options["min_snr"],
        },
        notes=reg.notes,
    )


def _strongest_first(table: pd.DataFrame, idx):
    """The spot table sorted by SNR (stable) and the basis with its g1/g2 rows renumbered to match."""
    old_index = np.nonzero(idx.keep)[0]
    order_idx = np.argsort(-table["snr"].to_numpy(), kind="stable")
    table = table.iloc[order_idx].reset_index(drop=True)
    basis = idx.basis
    if basis is not None:
        new_pos = {int(old_index[o]): p for p, o in enumerate(order_idx)}
        i, j = basis.pop("_rows")
        basis["g1_index"] = new_pos.get(i) if i is not None else None
        basis["g2_index"] = new_pos.get(j) if j is not None else None
        basis["index_convention"] = "g = n1 * g1 + n2 * g2"
    return table, basis


NO_SPOT_NOTE = "no significant lattice spot (pure noise, amorphous or blank region?)"


@dataclass
class _Run:
    """What one :func:`measure_lattice` call carries from step to step until its result is assembled."""

    mg: Any
    roi: dict | None
    shape: tuple
    systematic: Any
    options: dict
    info: dict
    notes: list = field(default_factory=list)
    lattices: list = field(default_factory=list)
    rejected: pd.DataFrame = field(default_factory=empty_rejected)

    def empty(self, note: str | None = None) -> LatticeResult:
        """A result without spots (``note`` says why)."""
        if note:
            self.notes.append(note)
        return self.finish(_empty_spots(), _empty_angles(), None, stacklevel=4)

    def finish(self, spots, angles, basis, stacklevel: int = 3) -> LatticeResult:
        """The result, with the image's systematic variation in its error budget (lattice._systematic)."""
        mg = self.mg
        out = LatticeResult(
            spots=spots,
            angles=angles,
            basis=basis,
            pixel_size_nm=tuple(mg.require_calibration()),
            roi=self.roi,
            source=mg.source,
            region_shape=tuple(self.shape),
            warnings=self.notes,
            info=self.info,
            lattices=self.lattices,
            rejected_spots=self.rejected,
        )
        _add_systematic(out, mg, self.systematic, self.options)
        for n in self.notes:
            warnings.warn(f"{mg.name}: {n}", LatticefitWarning, stacklevel=stacklevel)
        return out


def _lattice_list(spots: pd.DataFrame, basis: dict, further: list) -> list:
    """The main lattice (from ``basis``) and the further ones as :class:`Lattice` objects (result row order)."""
    lat = spots["lattice"].to_numpy(int)
    main = Lattice(
        index=0,
        g1_inv_nm=basis["g1_inv_nm"],
        g2_inv_nm=basis["g2_inv_nm"],
        d_angstrom=list(basis["d_angstrom"]),
        d_err_angstrom=list(basis["d_err_angstrom"]),
        angle_deg=basis["angle_deg"],
        angle_err_deg=basis["angle_err_deg"],
        spots=[int(r) for r in np.nonzero(lat == 0)[0]],
        g1_index=basis.get("g1_index"),
        g2_index=basis.get("g2_index"),
        cov_inv_nm2=basis["cov_inv_nm2"],
        chi2=basis["chi2"],
        dof=basis["dof"],
    )
    out = [main]
    h, k = spots["n1"].to_numpy(), spots["n2"].to_numpy()
    for m, (_, _, fit_m, _) in enumerate(further, start=1):
        rows = np.nonzero(lat == m)[0]
        lt = lattice_from_fit(m, fit_m, rows)
        for name, target in (("g1_index", (1, 0)), ("g2_index", (0, 1))):
            hit = [int(r) for r in rows if (abs(int(h[r])), abs(int(k[r]))) == target]
            setattr(lt, name, hit[0] if hit else None)  # rows are strongest first
        out.append(lt)
    return out


def _add_calibration_errors(spots, angles, basis, B, cov_A):
    """Add the calibration's own uncertainty (covariance of the pixel matrix) to the d and angle errors.

    ``d_err_angstrom`` becomes the total; ``d_err_measurement_angstrom`` and
    ``d_err_calibration_angstrom`` keep the parts (ratios within one image need only the first).
    """
    from .._calibration_affine import spot_calibration_errors

    if len(spots) == 0:
        return spots, angles, basis
    g = spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    sg, sphi, dphi = spot_calibration_errors(g, B, cov_A)
    d = spots["d_angstrom"].to_numpy(float)
    e_meas = spots["d_err_angstrom"].to_numpy(float)
    e_cal = d * sg / spots["g_abs_inv_nm"].to_numpy(float)
    spots = spots.copy()
    spots["d_err_measurement_angstrom"] = e_meas
    spots["d_err_calibration_angstrom"] = e_cal
    spots["d_err_angstrom"] = np.hypot(e_meas, e_cal)
    az_meas = spots["azimuth_err_deg"].to_numpy(float)
    spots["azimuth_err_measurement_deg"] = az_meas
    spots["azimuth_err_calibration_deg"] = np.degrees(sphi)
    spots["azimuth_err_deg"] = np.hypot(az_meas, np.degrees(sphi))
    if len(angles):
        angles = angles.copy()
        i, j = angles["spot_i"].to_numpy(int), angles["spot_j"].to_numpy(int)
        dd = dphi[i] - dphi[j]
        cal = np.degrees(np.sqrt(np.abs(np.einsum("nk,kl,nl->n", dd, cov_A, dd))))
        meas = np.hypot(az_meas[i], az_meas[j])
        angles["angle_err_measurement_deg"] = meas
        angles["angle_err_calibration_deg"] = cal
        angles["angle_err_deg"] = np.hypot(meas, cal)
    if basis is not None:
        gb = np.array([basis["g1_inv_nm"], basis["g2_inv_nm"]], float)
        sgb, _, dphib = spot_calibration_errors(gb, B, cov_A)
        db = 10.0 / np.linalg.norm(gb, axis=1)
        ecal = db * sgb / np.linalg.norm(gb, axis=1)
        basis["d_err_measurement_angstrom"] = list(basis["d_err_angstrom"])
        basis["d_err_calibration_angstrom"] = [float(v) for v in ecal]
        basis["d_err_angstrom"] = [float(math.hypot(a, b)) for a, b in zip(basis["d_err_angstrom"], ecal)]
        dd = dphib[0] - dphib[1]
        acal = math.degrees(math.sqrt(abs(dd @ cov_A @ dd)))
        basis["angle_err_measurement_deg"] = basis["angle_err_deg"]
        basis["angle_err_calibration_deg"] = acal
        basis["angle_err_deg"] = float(math.hypot(basis["angle_err_deg"], acal))
    return spots, angles, basis


def _add_systematic(out: LatticeResult, mg, systematic, measure_kwargs: dict) -> None:
    """Estimate (or reuse) the image's systematic lattice variation and add it to ``out``'s errors."""
    from . import _systematic as ls

    if isinstance(systematic, ls.SystematicModel):
        model = systematic
    elif systematic in (None, "none", False):
        model = ls.SystematicModel(method="none")
    elif systematic == "auto":
        if len(out.spots):
            model = ls.estimate_systematic(
                mg, out.spots, out.region_shape, measure=measure_lattice, measure_kwargs=measure_kwargs
            )
        else:
            model = ls.SystematicModel(method="unavailable")
        out.warnings.extend(model.notes)
    else:
        raise LatticefitError(f"systematic must be 'auto', 'none' or a SystematicModel, got {systematic!r}")
    ls.apply_systematic(out, model)


def _angles_table(spots: pd.DataFrame, max_families: int = 8) -> pd.DataFrame:
    order = spots["order"].to_numpy()
    az = spots["azimuth_deg"].to_numpy(float)
    aze = spots["azimuth_err_deg"].to_numpy(float)
    first = [i for i in range(len(spots)) if order[i] in (0, 1)][:max_families]
    rows = []
    for a in range(len(first)):
        for b in range(a + 1, len(first)):
            i, j = first[a], first[b]
            t = abs(az[i] - az[j]) % 180.0
            t = min(t, 180.0 - t)
            rows.append((i, j, t, math.hypot(aze[i], aze[j])))
    if not rows:
        return _empty_angles()
    df = pd.DataFrame(rows, columns=ANGLE_COLUMNS)
    df["spot_i"] = df["spot_i"].astype(int)
    df["spot_j"] = df["spot_j"].astype(int)
    return df


# ============================================================================ compare
