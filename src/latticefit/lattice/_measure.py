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

import math
import warnings
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LatticefitError, LatticefitWarning
from ..micrograph import as_micrograph
from ..roi import as_roi, extract
from ..spectrum import FFT_WORKERS, half_plane_power
from . import _basis as lb
from . import _plausibility as lp
from ._detect import detect_candidates
from ._multi import Lattice, _pm, further_lattices, lattice_from_fit
from ._plausibility import empty_rejected
from ._refine import refine_mask, refine_rect

__all__ = [
    "measure_lattice",
    "compare_regions",
    "compare_lattices",
    "LatticeResult",
    "RegionComparison",
    "parse_d_range",
    "SPOT_COLUMNS",
]

SPOT_COLUMNS = [
    "gx_inv_nm",
    "gy_inv_nm",
    "g_abs_inv_nm",
    "d_angstrom",
    "d_err_angstrom",
    "azimuth_deg",
    "azimuth_err_deg",
    "snr",
    "order",
    "h",
    "k",
    "cov_xx",
    "cov_xy",
    "cov_yy",
    "amplitude",
    "phase_rad",
    "gx_px",
    "gy_px",
    "noise_sigma",
    "converged",
    "lattice",
    "lattice_order",
]
#: a reported spot needs at least this many fringe periods across the region (below, the DC and edge
#: leakage bias the estimate beyond its statistical error)
MIN_PERIODS = 5.5
#: version of the ``LatticeResult.to_dict`` JSON (2: ``lattices``, ``rejected_spots``, a spot's ``lattice``)
LATTICE_SCHEMA_VERSION = 2
ANGLE_COLUMNS = ["spot_i", "spot_j", "angle_deg", "angle_err_deg"]
#: the statistical (Fisher) and systematic (image's own distortion) parts of the errors; d_err_angstrom and
#: azimuth_err_deg are their quadrature sum (see lattice._systematic)
_ERR_PART_COLUMNS = ("d_err_stat_angstrom", "d_err_sys_angstrom", "azimuth_err_stat_deg", "azimuth_err_sys_deg")


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
@dataclass(eq=False)
class LatticeResult:
    """The lattice measured in one image or region.

    Attributes
    ----------
    spots : pandas.DataFrame
        One row per Friedel pair, strongest (highest ``snr``) first. Columns:
        ``gx_inv_nm``, ``gy_inv_nm`` (the g vector, 1/nm), ``g_abs_inv_nm`` (|g|),
        ``d_angstrom``, ``d_err_angstrom`` (1 sigma), ``azimuth_deg`` (of g, from
        +x towards +y, in (-90, 90]), ``azimuth_err_deg``, ``snr`` (amplitude
        signal-to-noise ratio, ``a sqrt(n_pixels) / (2 sigma)``), ``order``
        (1 for a plane family, n for its n-th harmonic), ``h``, ``k`` (indices
        in the fitted basis), ``cov_xx``, ``cov_xy``, ``cov_yy`` (covariance of
        (gx, gy) in (1/nm)^2), ``amplitude`` (of the fringe ``a cos(2 pi g.r + phase)``
        in image units), ``phase_rad`` (phase at pixel (0, 0) of the image,
        with r in pixels and g in cycles/px: ``gx_px``, ``gy_px``),
        ``noise_sigma`` (local noise per pixel), ``converged``.
    angles : pandas.DataFrame
        Acute angle between every two first-order plane families (rows
        ``spot_i``, ``spot_j`` of ``spots``): ``angle_deg``, ``angle_err_deg``.
    basis : dict or None
        ``g1_inv_nm``, ``g2_inv_nm`` (fitted basis vectors), ``g1_index``,
        ``g2_index`` (their rows in ``spots``), ``d_angstrom`` [d1, d2],
        ``d_err_angstrom``, ``angle_deg`` (acute angle between the basis
        vectors: 60 for a hexagonal net), ``angle_err_deg``, ``cov_inv_nm2``
        (4x4), ``chi2``, ``dof``, ``n_spots``. None with fewer than two
        independent families.
    pixel_size_nm : (float, float)
    roi : dict or None
    source : str or None
    region_shape : (int, int)
        Shape of the analysed box.
    warnings : list of str
    """

    spots: pd.DataFrame
    angles: pd.DataFrame
    basis: dict | None
    pixel_size_nm: tuple[float, float]
    roi: dict | None
    source: str | None
    region_shape: tuple[int, int]
    warnings: list = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: the image's systematic lattice variation added to the errors (``lattice._systematic.SystematicModel``)
    systematic: Any = None
    #: every lattice: [0] the main one (as ``basis``), then the further nets of the spots it leaves
    #: (``lattice._multi.Lattice``; a spot's ``lattice`` column names its net, -1 none)
    lattices: list = field(default_factory=list)
    #: spots refused as implausible (``lattice._plausibility``): d, azimuth, snr and ``reason``
    rejected_spots: pd.DataFrame = field(default_factory=lambda: empty_rejected())

    def __len__(self) -> int:
        return len(self.spots)

    def to_dict(self) -> dict:
        """The JSON contract of ``latticefit lattice --json`` (more keys are allowed)."""
        spots = []
        for i, r in self.spots.iterrows():
            spots.append(
                {
                    "g_inv_nm": [float(r.gx_inv_nm), float(r.gy_inv_nm)],
                    "d_angstrom": float(r.d_angstrom),
                    "d_err_angstrom": float(r.d_err_angstrom),
                    "azimuth_deg": float(r.azimuth_deg),
                    "azimuth_err_deg": float(r.azimuth_err_deg),
                    "snr": float(r.snr),
                    "order": int(r.order),
                    "hk": None if pd.isna(r.h) else [int(r.h), int(r.k)],
                    "cov_inv_nm2": [[float(r.cov_xx), float(r.cov_xy)], [float(r.cov_xy), float(r.cov_yy)]],
                    "amplitude": float(r.amplitude),
                    "phase_rad": float(r.phase_rad),
                    **{k: float(getattr(r, k)) for k in _ERR_PART_COLUMNS if k in self.spots.columns},
                }
            )
            if "d_err_calibration_angstrom" in self.spots.columns:  # a calibrated image: the two parts
                spots[-1]["d_err_measurement_angstrom"] = float(r.d_err_measurement_angstrom)
                spots[-1]["d_err_calibration_angstrom"] = float(r.d_err_calibration_angstrom)
        angles = [
            {
                "spots": [int(r.spot_i), int(r.spot_j)],
                "angle_deg": float(r.angle_deg),
                "angle_err_deg": float(r.angle_err_deg),
                **{
                    k: float(getattr(r, k))
                    for k in ("angle_err_stat_deg", "angle_err_sys_deg")
                    if k in self.angles.columns
                },
            }
            for r in self.angles.itertuples()
        ]
        for rec, r in zip(spots, self.spots.itertuples()):
            if "lattice" in self.spots.columns:
                rec["lattice"] = int(r.lattice)
        rejected = [
            {
                "g_inv_nm": [float(r.gx_inv_nm), float(r.gy_inv_nm)],
                "d_angstrom": float(r.d_angstrom),
                "azimuth_deg": float(r.azimuth_deg),
                "snr": float(r.snr),
                "reason": str(r.reason),
            }
            for r in self.rejected_spots.itertuples()
        ]
        return {
            "schema_version": LATTICE_SCHEMA_VERSION,
            "file": self.source,
            "pixel_size_nm": list(self.pixel_size_nm),
            "roi": self.roi,
            "region_shape": list(self.region_shape),
            "spots": spots,
            "angles": angles,
            "basis": self.basis,
            "lattices": [lat.to_dict() for lat in self.lattices],
            "rejected_spots": rejected,
            "warnings": list(self.warnings),
            "method": dict(self.info),
        }

    def table(self) -> str:
        """A readable table of the spots (d in Å) and the basis."""
        lines = []
        if len(self.spots) == 0:
            return "no lattice spots found"
        lines.append(f"{'#':>3} {'d (Å)':>16} {'azimuth (°)':>16} {'snr':>8} {'order':>5} {'hk':>8}")
        for i, r in enumerate(self.spots.itertuples()):
            lines.append(
                f"{i:>3} {_pm(r.d_angstrom, r.d_err_angstrom):>16} "
                f"{_pm(r.azimuth_deg, r.azimuth_err_deg):>16} "
                f"{r.snr:>8.1f} {int(r.order):>5} {_hk_text(r):>8}"
            )
        if self.basis:
            b = self.basis
            lines.append(
                "basis: d1 = {} Å, d2 = {} Å, angle = {}°".format(
                    _pm(b["d_angstrom"][0], b["d_err_angstrom"][0]),
                    _pm(b["d_angstrom"][1], b["d_err_angstrom"][1]),
                    _pm(b["angle_deg"], b["angle_err_deg"]),
                )
            )
        for lat in self.lattices[1:]:
            lines.append(lat.describe() + " (hk column 'n:(h,k)')")
        if len(self.rejected_spots):
            lines.append(
                f"{len(self.rejected_spots)} spot(s) refused as not lattice reflections (rejected_spots): "
                + "; ".join(sorted({str(x).split(":")[0].split(" (")[0] for x in self.rejected_spots.reason}))
            )
        lines.append(_budget_line(self.systematic))
        return "\n".join(lines)

    def __repr__(self) -> str:
        basis = "yes" if self.basis else "none"
        return f"LatticeResult({len(self.spots)} spots, basis={basis}, source={self.source!r})"


def _hk_text(r) -> str:
    """(h,k) of a spot in its lattice: plain for the main one, ``n:(h,k)`` for further lattice n, ``-`` for none."""
    if pd.isna(r.h):
        return "-"
    lat = int(getattr(r, "lattice", 0)) if not pd.isna(getattr(r, "lattice", 0)) else 0
    if lat < 0:
        return "-"
    return f"({int(r.h)},{int(r.k)})" if lat == 0 else f"{lat}:({int(r.h)},{int(r.k)})"


def _budget_line(model) -> str:
    """What the ± of the table are (the error budget)."""
    if model is None or model.method == "none":
        return "± : 1 sigma standard uncertainty, statistical (Fisher) only"
    if model.method != "tiles":
        return "± : 1 sigma standard uncertainty, statistical only (too few tiles to estimate the image's distortion)"
    if not model.significant:
        return (
            f"± : 1 sigma standard uncertainty; the image's own distortion is not significant over "
            f"{model.n_tiles} tiles (p = {model.p_value:.2g}): statistical only"
        )
    return (
        f"± : 1 sigma standard uncertainty, statistical and the image's own distortion (scatter of "
        f"{model.n_tiles} tiles) in quadrature"
    )


def _empty_spots() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in SPOT_COLUMNS})


def _empty_angles() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in ANGLE_COLUMNS})


# ============================================================================ measure
def measure_lattice(
    image,
    *,
    roi=None,
    pixel_size=None,
    d_range_angstrom=None,
    min_snr: float = 5.0,
    max_spots: int = 64,
    keep_unindexed: bool = False,
    p_false: float = 1e-3,
    window_bins: int = 32,
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
    mg = as_micrograph(image, pixel_size)
    py, px = mg.require_calibration()
    B = mg.reciprocal_matrix  # cycles/px -> 1/nm (A^-T: exact for non-square and sheared pixels)
    try:
        roi = as_roi(roi, image, pixel_size=pixel_size)
        sub, weight, (y0, x0) = extract(mg.data, roi)
    except LatticefitError as e:
        raise e.with_source(mg.source) from None
    if weight is not None and weight.all():
        weight = None  # a mask that fills its box is a rectangle
    M, N = sub.shape
    notes: list[str] = []
    d_range = parse_d_range(d_range_angstrom)
    d_range_nm = None if d_range is None else tuple(v / 10.0 if v else v for v in d_range)
    info = {"refinement": "rect-window-ML" if weight is None else "mask-least-squares", "min_snr": min_snr}
    roi_dict = roi.to_dict() if roi is not None else None

    extra: dict[str, Any] = {"lattices": [], "rejected_spots": empty_rejected()}

    def finish(spots, angles, basis):
        out = LatticeResult(
            spots=spots,
            angles=angles,
            basis=basis,
            pixel_size_nm=(py, px),
            roi=roi_dict,
            source=mg.source,
            region_shape=(M, N),
            warnings=notes,
            info=info,
            lattices=extra["lattices"],
            rejected_spots=extra["rejected_spots"],
        )
        # ---- error budget: the image's own systematic variation (see lattice._systematic)
        _add_systematic(
            out,
            mg,
            systematic,
            dict(
                d_range_angstrom=d_range,
                min_snr=min_snr,
                max_spots=max_spots,
                keep_unindexed=keep_unindexed,
                p_false=p_false,
                window_bins=window_bins,
                workers=workers,
            ),
        )
        for n in notes:
            warnings.warn(f"{mg.name}: {n}", LatticefitWarning, stacklevel=3)
        return out

    vals = sub[weight] if weight is not None else sub
    if float(np.ptp(vals[::7, ::7] if vals.ndim == 2 else vals)) == 0.0 and float(np.ptp(vals)) == 0.0:
        notes.append("the region is blank (constant): no lattice spots")
        return finish(_empty_spots(), _empty_angles(), None)

    P, U = half_plane_power(sub, weight, "periodic", workers=workers)
    cand = detect_candidates(P, (M, N), (py, px), d_range_nm=d_range_nm, p_false=p_false, max_candidates=max_spots)
    info.update(
        {"detection_threshold": cand.threshold, "detection_bin": cand.bin_factor, "n_candidates": int(len(cand.ky))}
    )
    if len(cand.ky) == 0:
        notes.append("no significant lattice spot (pure noise, amorphous or blank region?)")
        return finish(_empty_spots(), _empty_angles(), None)

    if weight is None:
        fits = refine_rect(U, (M, N), list(zip(cand.ky, cand.kx)), K=window_bins)
    else:
        fits = refine_mask(sub, weight, [(ky / M, kx / N) for ky, kx in zip(cand.ky, cand.kx)])

    # ---- collect, map to the half plane, merge duplicates, keep significant
    rows = []
    for f in fits:
        gx, gy, cov, phase = f.gx, f.gy, f.cov, f.phase_rad
        if gx < 0 or (gx == 0 and gy < 0):
            gx, gy, phase = -gx, -gy, -phase
        rows.append([gx, gy, f.snr, f.amplitude, phase, cov, f.noise_sigma, f.converged])
    rows.sort(key=lambda r: -r[2])
    kept = []
    for r in rows:
        if not (np.isfinite(r[2]) and r[2] >= min_snr and np.all(np.isfinite(r[5]))):
            continue
        dup = False
        for q in kept:
            for s in (1, -1):
                if abs(r[0] - s * q[0]) * N < 0.75 and abs(r[1] - s * q[1]) * M < 0.75:
                    dup = True
        if not dup:
            kept.append(r)
    # d-range after refinement
    if d_range_nm is not None:
        lo, hi = d_range_nm
        kk = []
        for r in kept:
            g = math.hypot(*(B @ [r[0], r[1]]))
            if (lo is None or g <= 1 / lo) and (hi is None or g >= 1 / hi):
                kk.append(r)
        kept = kk
    # fewer than MIN_PERIODS fringe periods across the region: the estimate is biased by the DC/edge leakage
    n_short = sum(1 for r in kept if _periods(r[0], r[1], (M, N)) < MIN_PERIODS)
    if n_short:
        kept = [r for r in kept if _periods(r[0], r[1], (M, N)) >= MIN_PERIODS]
        notes.append(
            f"{n_short} spot(s) with fewer than {MIN_PERIODS:g} fringe periods across the region were "
            "dropped (not measurable reliably: use a larger region)"
        )
    if not kept:
        notes.append(
            "no measurable lattice spot: the region is too small for its spacings"
            if n_short
            else "no significant lattice spot (pure noise, amorphous or blank region?)"
        )
        return finish(_empty_spots(), _empty_angles(), None)
    n_nc = sum(1 for r in kept if not r[7])
    if n_nc:
        notes.append(f"{n_nc} spot refinement(s) did not fully converge")

    G = np.array([B @ [r[0], r[1]] for r in kept])
    covs = np.array([B @ r[5] @ B.T for r in kept])
    snr = np.array([r[2] for r in kept])
    # ---- plausibility: blank images, > 50 nm or < 2 px, beyond the beam's limit, streaks, scan lines
    profile = lp.ring_profile(P, (M, N))
    reasons, pnotes = lp.check_spots(
        G,
        np.array([[r[0], r[1]] for r in kept]),
        P,
        (M, N),
        (py, px),
        data=vals,
        mode=mg.mode,
        beam_energy_kv=mg.beam_energy_kv,
        U=U,
        profile=profile,
    )
    notes.extend(pnotes)
    # a streak-like maximum is refused only when the lattice of the other spots does not index it (a lattice
    # spot can sit on a streak of scan lines or in a row of satellites)
    streak = np.array([bool(r) and r.startswith("streak") for r in reasons])
    rejected = [lp.rejected_table(G, snr, [None if s_ else r for r, s_ in zip(reasons, streak)])]
    extra["rejected_spots"] = rejected[0]
    good = np.array([r is None for r in reasons]) | streak
    if not good.all():
        kept = [r for r, g_ok in zip(kept, good) if g_ok]
        G, covs, snr, streak = G[good], covs[good], snr[good], streak[good]
        reasons = [r for r, g_ok in zip(reasons, good) if g_ok]
    if not kept:
        return finish(_empty_spots(), _empty_angles(), None)
    gnorm = np.linalg.norm(G, axis=1)
    # indexing tolerance: half a bin or 1.5 % of |g|, whichever is larger, plus 4 sigma
    bin_nm = 1.0 / min(M * py, N * px)
    sig = np.sqrt(np.clip(covs[:, 0, 0] + covs[:, 1, 1], 0, None))
    tol = np.maximum(0.5 * bin_nm, 0.015 * gnorm) + 4 * sig

    hk = np.zeros((len(G), 2), int)
    order = np.ones(len(G), int)
    lat_id = np.full(len(G), -1)  # 0: the main lattice, 1, 2, ...: further lattices, -1: none
    lat_order = np.zeros(len(G), int)
    further: list = []
    basis = None
    found = lb.find_basis(G, snr, tol, exclude=streak)

    def refuse_streaks(mask) -> None:
        if mask.any():
            rejected.append(lp.rejected_table(G, snr, [r if m else None for r, m in zip(reasons, mask)]))
            extra["rejected_spots"] = pd.concat(rejected, ignore_index=True)
            notes.append(
                f"{int(mask.sum())} spot(s) refused as not a lattice reflection: streak (elongated along "
                "the radius, or a bump on a radial streak, and on no lattice of the other spots; see "
                "rejected_spots)"
            )

    half_hidden = [_periods(r[0] / 2, r[1] / 2, (M, N)) < MIN_PERIODS for r in kept]
    if found is not None:
        i, j, sign, hk, ok = found
        # conventional basis: the two shortest vectors of the indexed net (a unimodular change keeps the set)
        r1, r2 = G[i], sign * G[j]
        if int(ok.sum()) >= 3:  # with two spots the basis is the spots themselves
            r1, r2, T = lb.reduce_basis(G[i], sign * G[j])
            hk = np.rint(np.linalg.solve(T, hk.T).T).astype(int)
        if min(_periods(*np.linalg.solve(B, r), (M, N)) for r in (r1, r2)) < MIN_PERIODS:
            notes.append(
                f"the net of these spots has a basis vector with < {MIN_PERIODS:g} periods across the "
                "region, which cannot be measured: harmonics cannot be told apart, no basis "
                "(use a larger region)"
            )
            found = None
        elif int(ok.sum()) <= 2 and (half_hidden[i] or half_hidden[j]):
            notes.append(
                "only two spots, and a fundamental at twice their spacing would have < "
                f"{MIN_PERIODS:g} periods across the region (not measurable): harmonics cannot be "
                "recognised, no basis (use a larger region)"
            )
            found = None
    elif len(G) >= 2:
        notes.append("the spots do not span two independent plane families: no basis")
    else:
        notes.append("a single plane family: no basis")
    if found is None and any(half_hidden):
        notes.append(
            f"a fundamental at twice the spacing of some spot(s) would have < {MIN_PERIODS:g} periods "
            "across the region and could not be seen: they may be harmonics (use a larger region)"
        )
    if found is None:
        hk = np.zeros((len(G), 2), int)
        keep = ~streak
        refuse_streaks(streak)
    else:
        dup = lb.drop_duplicate_indices(hk, ok, snr)
        if dup.any():
            ok = ok & ~dup
            notes.append(
                f"{int(dup.sum())} spot(s) repeating the indices of a stronger spot (one reflection "
                "split in two, e.g. across the +-90 deg azimuth wrap) were dropped"
            )
        # ---- off-lattice spots beyond the information limit the data support (lattice._plausibility)
        g_lim, how = lp.information_limit(G, ok, P, (M, N), (py, px), profile)
        info["information_limit_angstrom"] = None if g_lim is None else 10.0 / g_lim
        far = lp.beyond_limit(G, ~dup, g_lim, how)  # lattice spots too: chance high-order coincidences
        farm = np.array([r is not None for r in far])
        ok = ok & ~farm
        if farm.any():
            rejected.append(lp.rejected_table(G, snr, far))
            extra["rejected_spots"] = pd.concat(rejected, ignore_index=True)
            notes.append(
                f"{int(farm.sum())} spot(s) beyond the information limit the data "
                f"support ({10 / g_lim:.3g} Å: {how}) refused as noise (see rejected_spots)"
            )
        refuse_streaks(streak & ~ok & ~farm)
        farm = farm | (streak & ~ok)  # refused: out of further lattices and of keep_unindexed
        if not (ok[i] and ok[j] and tuple(np.abs(hk[i])) == (1, 0) and tuple(np.abs(hk[j])) == (0, 1)):
            i, j = _basis_rows(hk, ok, snr)
        order = np.array([gcd(abs(int(h)), abs(int(k))) if o else 0 for (h, k), o in zip(hk, ok)])
        lat_id[ok], lat_order[ok] = 0, order[ok]
        # ---- further lattices from the spots the main one leaves (a dot, a twin, a moire: lattice._multi)
        B_main = np.column_stack([r1, r2])
        further = further_lattices(G, covs, snr, tol, ~ok & ~dup & ~farm, main_basis=B_main, g_limit=g_lim)
        for m, (hk_m, member, fit_m, order_m) in enumerate(further, start=1):
            lat_id[member], hk[member], lat_order[member] = m, hk_m[member], order_m[member]
        if further:
            notes.append(
                f"{len(further)} further lattice(s) index {int((lat_id >= 1).sum())} spot(s) off the main "
                "lattice (a dot, twin, second phase or moire?): see result.lattices"
            )
        loose = (lat_id < 0) & ~dup & ~farm
        if not keep_unindexed and loose.any():
            notes.append(
                f"{int(loose.sum())} significant spot(s) on no lattice were dropped "
                "(keep them with keep_unindexed=True / --keep-unindexed)"
            )
        keep = ok | (lat_id >= 1) | (keep_unindexed & ~farm)
        fit = lb.fit_basis(G, covs, hk, ok)
        notes.extend(fit.notes)
        nums = lb.basis_numbers(fit)
        basis = {
            "g1_inv_nm": [float(v) for v in fit.b1],
            "g2_inv_nm": [float(v) for v in fit.b2],
            **nums,
            "cov_inv_nm2": fit.cov.tolist(),
            "chi2": float(fit.chi2),
            "dof": int(fit.dof),
            "n_spots": int(ok.sum()),
            "_rows": (i, j),
        }

    # ---- table
    G, covs, snr, hk, order = G[keep], covs[keep], snr[keep], hk[keep], order[keep]
    lat_id, lat_order = lat_id[keep], lat_order[keep]
    kept = [r for r, k in zip(kept, keep) if k]
    gnorm = np.linalg.norm(G, axis=1)
    u = G / gnorm[:, None]
    var_g = np.einsum("ni,nij,nj->n", u, covs, u)
    nperp = np.column_stack([-u[:, 1], u[:, 0]])
    var_az = np.einsum("ni,nij,nj->n", nperp, covs, nperp) / gnorm**2
    d = 10.0 / gnorm
    gx_px = np.array([r[0] for r in kept])
    gy_px = np.array([r[1] for r in kept])
    phase_img = np.array([r[4] for r in kept]) - 2 * np.pi * (gx_px * x0 + gy_px * y0)
    spots = pd.DataFrame(
        {
            "gx_inv_nm": G[:, 0],
            "gy_inv_nm": G[:, 1],
            "g_abs_inv_nm": gnorm,
            "d_angstrom": d,
            "d_err_angstrom": d * np.sqrt(var_g) / gnorm,
            "azimuth_deg": np.degrees(np.arctan2(G[:, 1], G[:, 0])),
            "azimuth_err_deg": np.degrees(np.sqrt(var_az)),
            "snr": snr,
            "order": order.astype(int),
            "h": hk[:, 0].astype(int),
            "k": hk[:, 1].astype(int),
            "cov_xx": covs[:, 0, 0],
            "cov_xy": covs[:, 0, 1],
            "cov_yy": covs[:, 1, 1],
            "amplitude": np.array([r[3] for r in kept]),
            "phase_rad": np.angle(np.exp(1j * phase_img)),
            "gx_px": gx_px,
            "gy_px": gy_px,
            "noise_sigma": np.array([r[6] for r in kept]),
            "converged": np.array([bool(r[7]) for r in kept]),
            "lattice": lat_id.astype(int),
            "lattice_order": lat_order.astype(int),
        }
    )
    if basis is None:  # indices are undefined without a basis (never (0, 0))
        spots["h"] = pd.array([pd.NA] * len(spots), dtype="Int64")
        spots["k"] = pd.array([pd.NA] * len(spots), dtype="Int64")
    old_index = np.nonzero(keep)[0]
    order_idx = np.argsort(-spots["snr"].to_numpy(), kind="stable")
    spots = spots.iloc[order_idx].reset_index(drop=True)
    new_pos = {int(old_index[o]): p for p, o in enumerate(order_idx)}
    if basis is not None:
        i, j = basis.pop("_rows")
        basis["g1_index"] = new_pos.get(i) if i is not None else None
        basis["g2_index"] = new_pos.get(j) if j is not None else None
        basis["hk_convention"] = "g = h * g1 + k * g2"
    angles = _angles_table(spots)
    if mg.affine_cov is not None:
        info["calibration"] = dict(mg.calibration_info or {})
        spots, angles, basis = _add_calibration_errors(spots, angles, basis, B, mg.affine_cov)
    if basis is not None:
        extra["lattices"] = _lattice_list(spots, basis, further)
    return finish(spots, angles, basis)


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
    h, k = spots["h"].to_numpy(), spots["k"].to_numpy()
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


def _periods(gx_px: float, gy_px: float, shape) -> float:
    """Distance of g (cycles/px) from the spectrum centre in DFT bins of a (M, N) box (periods across the box)."""
    return math.hypot(gx_px * shape[1], gy_px * shape[0])


def _basis_rows(hk: np.ndarray, ok: np.ndarray, snr: np.ndarray):
    """Rows of the strongest indexed spots with indices +-(1, 0) and +-(0, 1) (None when not observed)."""
    out = []
    for target in ((1, 0), (0, 1)):
        rows = [r for r in range(len(hk)) if ok[r] and tuple(np.abs(hk[r])) == target]
        out.append(int(max(rows, key=lambda r: snr[r])) if rows else None)
    return out[0], out[1]


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
def _err_parts(spots: pd.DataFrame, i: int) -> tuple[float, float]:
    """(statistical, systematic) d error of row ``i`` (Å); (total, 0) for a table without the parts."""
    if "d_err_stat_angstrom" in spots.columns:
        return float(spots.d_err_stat_angstrom.iat[i]), float(spots.d_err_sys_angstrom.iat[i])
    return float(spots.d_err_angstrom.iat[i]), 0.0


def _rel_diff_cov(rows: pd.DataFrame, res_a: LatticeResult, res_b: LatticeResult) -> np.ndarray:
    """Covariance of the relative differences of matched reflections: statistical (diagonal) plus each region's
    systematic part, which is correlated between reflections (one local deformation moves them all).
    """
    cov = np.diag(rows["rel_diff_err_stat"].to_numpy(float) ** 2)
    for res, col in ((res_a, "spot_a"), (res_b, "spot_b")):
        model = getattr(res, "systematic", None)
        if model is not None and len(rows):
            g = res.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)[rows[col].to_numpy(int)]
            cov = cov + model.rel_d_cov(g)
    return cov


def _gls_mean(x: np.ndarray, cov: np.ndarray) -> tuple[float, float, float]:
    """Generalised least-squares mean of correlated values: (mean, its 1-sigma error, chi2)."""
    ci = np.linalg.pinv(cov)
    one = np.ones(len(x))
    var = 1.0 / float(one @ ci @ one)
    m = var * float(one @ ci @ x)
    r = x - m
    return m, math.sqrt(var), float(r @ ci @ r)


def _birge_ratio(res: LatticeResult) -> float:
    """sqrt(chi2/dof) of a region's basis fit when significantly above 1 (p < 0.001), else 1."""
    from scipy import special

    b = res.basis
    if not b or not b.get("dof") or b["dof"] <= 0 or b.get("chi2") is None:
        return 1.0
    if special.chdtrc(b["dof"], b["chi2"]) >= 1e-3:  # = scipy.stats.chi2.sf
        return 1.0
    return float(math.sqrt(b["chi2"] / b["dof"]))


@dataclass(eq=False)
class RegionComparison:
    """Matched reflections of two regions of one image and their relative differences.

    Attributes
    ----------
    a, b : LatticeResult
        The two regions' lattices.
    table : pandas.DataFrame
        One row per matched reflection: ``spot_a``, ``spot_b`` (rows of
        ``a.spots``/``b.spots``), ``d_a_angstrom``, ``d_a_err_angstrom``,
        ``d_b_angstrom``, ``d_b_err_angstrom``, ``rel_diff`` (``d_b / d_a - 1``),
        ``rel_diff_err``, ``z`` (``rel_diff / rel_diff_err``), ``significant``
        (``|z| > z_threshold``), ``azimuth_a_deg``, ``dazimuth_deg`` (b - a),
        ``dazimuth_err_deg``, ``snr_a``, ``snr_b``, ``order``,
        ``rel_diff_err_stat`` and ``z_stat`` (statistical part only; the
        ``d_*_err_angstrom``, ``rel_diff_err`` and ``z`` columns include the
        image's systematic term).
    summary : dict
        Generalised least-squares mean relative difference of the
        first-order reflections (``mean_rel_diff``, ``mean_rel_diff_err``,
        ``z``, ``significant``, ``chi2``, ``n``; ``mean_rel_diff_stat``,
        ``mean_rel_diff_err_stat``, ``z_stat`` with statistical errors only).
    labels : (str, str)
    z_threshold : float
    warnings : list of str
        E.g. that a region's errors were scaled by its lattice-fit sqrt(chi2/dof).
    """

    a: LatticeResult
    b: LatticeResult
    table: pd.DataFrame
    summary: dict
    labels: tuple[str, str] = ("a", "b")
    z_threshold: float = 3.0
    warnings: list = field(default_factory=list)
    calibration: Any = None  # the self-calibration on region a (calibrate_on), or None

    def to_dict(self) -> dict:
        out = {
            "labels": list(self.labels),
            "z_threshold": self.z_threshold,
            "regions": {self.labels[0]: self.a.to_dict(), self.labels[1]: self.b.to_dict()},
            "matches": self.table.to_dict(orient="records"),
            "summary": self.summary,
            "warnings": list(self.warnings),
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out


def compare_regions(
    image,
    roi_a,
    roi_b,
    *,
    pixel_size=None,
    d_range_angstrom=None,
    z_threshold: float = 3.0,
    match_tolerance: float = 0.08,
    labels=("a", "b"),
    calibrate_on=None,
    phase=None,
    calibration=None,
    systematic="auto",
    **measure_kwargs,
) -> RegionComparison:
    """Match the reflections of two regions of one image and report their relative differences.

    The relative difference of a spacing, ``d_b / d_a - 1``, does not depend on
    the magnification calibration, so a 0.2 % lattice mismatch between a dot
    and its matrix can be significant even when the calibration is only known
    to a few %.

    Parameters
    ----------
    image : Micrograph, Signal2D or array_like
    roi_a, roi_b : region
        The two regions (e.g. the matrix and a dot); hyperspy ROIs are in the
        calibrated units of ``image`` (before ``calibration``/``calibrate_on``).
    d_range_angstrom : optional
        Passed to :func:`measure_lattice`.
    z_threshold : float
        A difference is significant when ``|rel_diff| > z_threshold * rel_diff_err``.
    match_tolerance : float
        Largest relative distance ``|g_a - g_b| / |g_a|`` of a match.
    labels : (str, str)
        Names of the regions in the output.
    calibrate_on : ``'matrix'``, ``'a'`` or None
        Self-calibration: region a (the matrix), of known ``phase``, calibrates the image affinely
        (:func:`latticefit.calibration.calibrate`, ``affine=True``) and both regions are measured in
        corrected units (the result's ``calibration``).
    phase : str, Phase or CIF path
        The phase of region a, for ``calibrate_on``.
    calibration : Calibration, dict or path, optional
        A lattice calibration applied to the image first.
    systematic : {"auto", "none"} or SystematicModel
        The image's systematic lattice variation in each region's errors (see
        :func:`measure_lattice`); ``rel_diff_err`` and ``z`` use the total
        (statistical + systematic) errors, ``rel_diff_err_stat`` and
        ``z_stat`` the statistical part only.
    **measure_kwargs
        Other :func:`measure_lattice` options.

    Returns
    -------
    RegionComparison

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.roi import Circle, Rect
    >>> mg, t = synth.perovskite_111(shape=(512, 512), noise_sigma=0.3, seed=2,
    ...     inclusions=[dict(x_px=380, y_px=380, radius_nm=3.5, mismatch=0.03)])
    >>> cmp = compare_regions(mg, Rect(20, 20, 220, 220), Circle(380, 380, 70), labels=("matrix", "dot"))
    >>> bool(cmp.summary["significant"]), round(cmp.summary["mean_rel_diff"], 2)
    (True, 0.03)
    """
    roi_a, roi_b = (
        as_roi(r, image, pixel_size=pixel_size) for r in (roi_a, roi_b)
    )  # hyperspy ROIs: before calibration
    mg = as_micrograph(image, pixel_size, calibration=calibration)
    self_cal = None
    if calibrate_on is not None:
        if calibrate_on not in ("matrix", "a", labels[0]):
            raise LatticefitError(f"calibrate_on must be 'matrix' (region a), got {calibrate_on!r}", mg.source)
        if phase is None:
            raise LatticefitError("calibrate_on needs the phase of region a (phase=...)", mg.source)
        from ..crystal._calibrate import calibrate

        self_cal = calibrate(mg, roi_a, phase, affine=True, tiles=False, d_range_angstrom=d_range_angstrom)
        mg = self_cal.apply(mg)
    res_a = measure_lattice(mg, roi=roi_a, d_range_angstrom=d_range_angstrom, systematic=systematic, **measure_kwargs)
    res_b = measure_lattice(mg, roi=roi_b, d_range_angstrom=d_range_angstrom, systematic=systematic, **measure_kwargs)
    return compare_lattices(
        res_a,
        res_b,
        z_threshold=z_threshold,
        match_tolerance=match_tolerance,
        labels=labels,
        name=mg.name,
        calibration=self_cal,
    )


def compare_lattices(
    res_a: LatticeResult,
    res_b: LatticeResult,
    *,
    z_threshold: float = 3.0,
    match_tolerance: float = 0.08,
    labels=("a", "b"),
    name: str = "image",
    calibration=None,
) -> RegionComparison:
    """Match the reflections of two measured regions and report their relative differences.

    The comparison step of :func:`compare_regions`, for lattices already measured (e.g. one matrix
    region compared with many dots, :func:`latticefit.report.measure_dots`). Parameters as in
    :func:`compare_regions`; ``name`` labels the warnings, ``calibration`` is recorded in the result.

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.roi import Circle, Rect
    >>> mg, t = synth.perovskite_111(shape=(512, 512), noise_sigma=0.3, seed=2,
    ...     inclusions=[dict(x_px=380, y_px=380, radius_nm=3.5, mismatch=0.03)])
    >>> a = measure_lattice(mg, roi=Rect(20, 20, 220, 220))
    >>> b = measure_lattice(mg, roi=Circle(380, 380, 70))
    >>> round(compare_lattices(a, b).summary["mean_rel_diff"], 2)
    0.03
    """
    self_cal = calibration
    notes: list[str] = []
    # a region whose spots deviate from a perfect lattice (distortion, drift, strain) scatters by more than
    # the statistical errors: inflate its errors by sqrt(chi2/dof) (Birge ratio), as the basis errors are
    scale_a, scale_b = _birge_ratio(res_a), _birge_ratio(res_b)
    for lab, sc, res in ((labels[0], scale_a, res_a), (labels[1], scale_b, res_b)):
        if sc > 1.0:
            notes.append(
                f"region {lab}: its spots deviate from a perfect lattice (chi2/dof = "
                f"{res.basis['chi2'] / res.basis['dof']:.1f}); its d errors are scaled by "
                f"sqrt(chi2/dof) = {sc:.2f}, so the significance includes that scatter"
            )
    rows = []
    sa, sb = res_a.spots, res_b.spots
    # a calibration common to both regions cancels in the ratio: measurement errors only
    err_col_a, err_col_b = (
        "d_err_measurement_angstrom" if "d_err_measurement_angstrom" in s.columns else "d_err_angstrom"
        for s in (sa, sb)
    )
    az_col_a, az_col_b = (
        "azimuth_err_measurement_deg" if "azimuth_err_measurement_deg" in s.columns else "azimuth_err_deg"
        for s in (sa, sb)
    )
    used_b: set[int] = set()
    for i in range(len(sa)):
        ga = np.array([sa.gx_inv_nm.iat[i], sa.gy_inv_nm.iat[i]])
        best = None
        for j in range(len(sb)):
            if j in used_b:
                continue
            gb = np.array([sb.gx_inv_nm.iat[j], sb.gy_inv_nm.iat[j]])
            dist = min(np.linalg.norm(ga - gb), np.linalg.norm(ga + gb)) / np.linalg.norm(ga)
            if dist <= match_tolerance and (best is None or dist < best[0]):
                best = (dist, j)
        if best is None:
            continue
        j = best[1]
        used_b.add(j)
        da, ea = sa.d_angstrom.iat[i], sa[err_col_a].iat[i]
        db, eb = sb.d_angstrom.iat[j], sb[err_col_b].iat[j]
        rel = db / da - 1.0
        # statistical part (Birge-scaled) and the image's systematic part, in quadrature (lattice._systematic)
        sta, stb = _err_parts(sa, i), _err_parts(sb, j)
        rel_err_stat = (db / da) * math.hypot(sta[0] / da * scale_a, stb[0] / db * scale_b)
        rel_err = (db / da) * math.hypot(rel_err_stat * da / db, sta[1] / da, stb[1] / db)
        daz = ((sb.azimuth_deg.iat[j] - sa.azimuth_deg.iat[i]) + 90.0) % 180.0 - 90.0
        daz_err = math.hypot(sa[az_col_a].iat[i], sb[az_col_b].iat[j])
        z = rel / rel_err if rel_err > 0 else float("inf")
        rows.append(
            {
                "spot_a": i,
                "spot_b": j,
                "d_a_angstrom": da,
                "d_a_err_angstrom": ea,
                "d_b_angstrom": db,
                "d_b_err_angstrom": eb,
                "rel_diff": rel,
                "rel_diff_err": rel_err,
                "z": z,
                "rel_diff_err_stat": rel_err_stat,
                "z_stat": rel / rel_err_stat if rel_err_stat > 0 else float("inf"),
                "significant": bool(abs(z) > z_threshold),
                "azimuth_a_deg": sa.azimuth_deg.iat[i],
                "dazimuth_deg": daz,
                "dazimuth_err_deg": daz_err,
                "snr_a": sa.snr.iat[i],
                "snr_b": sb.snr.iat[j],
                "order": int(sa.order.iat[i]),
            }
        )
    cols = [
        "spot_a",
        "spot_b",
        "d_a_angstrom",
        "d_a_err_angstrom",
        "d_b_angstrom",
        "d_b_err_angstrom",
        "rel_diff",
        "rel_diff_err",
        "z",
        "significant",
        "azimuth_a_deg",
        "dazimuth_deg",
        "dazimuth_err_deg",
        "snr_a",
        "snr_b",
        "order",
        "rel_diff_err_stat",
        "z_stat",
    ]
    table = pd.DataFrame(rows, columns=cols)
    summary = {"mean_rel_diff": None, "mean_rel_diff_err": None, "z": None, "significant": False, "chi2": None, "n": 0}
    if len(table):
        first = table[table["order"] <= 1]
        if len(first) == 0:
            first = table
        x = first["rel_diff"].to_numpy()
        m, e, chi2 = _gls_mean(x, np.diag(first["rel_diff_err_stat"].to_numpy() ** 2))
        m_sys, e_tot, chi2_tot = _gls_mean(x, _rel_diff_cov(first, res_a, res_b))
        summary = {
            "mean_rel_diff": m_sys,
            "mean_rel_diff_err": e_tot,
            "z": m_sys / e_tot,
            "significant": bool(abs(m_sys / e_tot) > z_threshold),
            "chi2": chi2_tot,
            "n": int(len(first)),
            "mean_rel_diff_stat": m,
            "mean_rel_diff_err_stat": e,
            "z_stat": m / e,
        }
    else:
        notes.append("no reflection is common to the two regions")
    for n in notes:
        warnings.warn(f"{name}: {n}", LatticefitWarning, stacklevel=3)
    return RegionComparison(
        a=res_a,
        b=res_b,
        table=table,
        summary=summary,
        labels=tuple(labels),
        z_threshold=z_threshold,
        warnings=notes,
        calibration=self_cal,
    )
