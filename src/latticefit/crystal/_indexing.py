"""Automatic indexing of lattice spots: phase, zone axis, (hkl) per spot, calibration factor.

Given refined spots (reciprocal vectors ``g = (gx, gy)`` in 1/nm, one per
Friedel pair, with 2x2 covariances or just d errors), :func:`index_spots`
finds the phase, zone axis [uvw], in-plane rotation and (optionally) a free
scale that best explain them:

1. For every phase and every symmetry-unique zone axis with |u|,|v|,|w| <=
   ``max_index`` (Laue-group reduced, :func:`latticefit.crystal.unique_zone_axes`)
   the 2-D net of zero-order-Laue-zone reflections is precomputed (allowed and
   extinct ones, with kinematic intensities) and cached on the phase.
2. Two strong, non-collinear observed spots form a base pair (pairs are tried
   by increasing sum of strength ranks, in batches, until a solution explains
   75 % of the spots, so that a spurious strong spot cannot hide the answer).
   Every pair of predicted reflections whose lengths, length ratio and
   enclosed angle agree within tolerance gives a hypothesis: a similarity
   transform (rotation, optional mirror because the zone-axis sign is not
   observable, and the scale when ``free_scale``).
3. Each hypothesis assigns every observed spot to its nearest predicted
   reflection and is scored; the best is refined by least squares on the
   matched spots and rescored.

Tolerances: a spot matches a reflection when its radial (d) and tangential
(angle) residuals lie inside an ellipse of half-axes ``max(3 sigma, floor)``;
the floors (``tol_d=1.5 %`` in d, ``tol_angle_deg=1.5°``) stand for the
calibration and scan-distortion errors that dominate real images when the
statistical errors are tiny.

Score (lower is better): ``sum_spots cost + missing penalty`` where a matched
spot costs ``9 q`` (``q <= 1`` its squared normalised residual, i.e. a
chi-square in units of sigma = tolerance / 3), an unmatched spot costs 16,
a spot that only an extinct reflection explains costs ``9 q + 17`` for a
lattice-centring absence (never restored by double diffraction: worse than
unmatched) or ``9 q + 6`` for a glide/screw/special-position absence (excitable
by double diffraction), and every allowed predicted reflection (Friedel pair)
inside the observed range that no spot explains costs ``2 min(1, I / 0.1)``
with ``I`` its kinematic intensity relative to the strongest reflection of the
zone (ignored below 0.01): dense high-index zones, and phases whose strong
reflections nobody saw, pay for them.

Examples
--------
>>> import numpy as np
>>> from latticefit.crystal import get_phase, zone_axis_reflections
>>> net = zone_axis_reflections(get_phase("MAPbBr3"), (1, 1, 1), d_min_angstrom=4.0)
>>> g = net[["gx_inv_nm", "gy_inv_nm"]].to_numpy()[::2]   # one per Friedel pair
>>> res = index_spots(g, phases=["MAPbBr3", "PbS"])
>>> res.best.phase.name, res.best.zone_axis
('MAPbBr3', (1, 1, 1))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError, ParameterError, check_param
from ._index_nets import (  # noqa: F401
    _KIND_CODE,
    COST_UNMATCHED,
    MISSING_FULL_INTENSITY,
    MISSING_MIN_INTENSITY,
    PENALTY_CENTRING,
    PENALTY_DYNAMICAL,
    PENALTY_MISSING,
    _zone_nets,
    _ZoneNet,
)
from ._index_results import IndexingResult, IndexingSolution  # noqa: F401
from ._index_search import (  # noqa: F401
    _base_pairs,
    _best_transform,
    _evaluate,
    _friedel_mate,
    _hypotheses,
    _implied_scale,
    _refine,
    _solution,
    _wrap_pi,
    spot_uncertainties,
)
from ._phases import (
    DEFAULT_BEAM_ENERGY_KV,
    resolve_phases,
)

__all__ = [
    "IndexingSolution",
    "IndexingResult",
    "index_spots",
    "index_lattice",
    "spot_uncertainties",
    "COST_UNMATCHED",
]


# ---------------------------------------------------------------- API
def check_index_params(max_index, scale_range, beam_energy_kv, *, optional_kv: bool = False):
    """Validated ``(max_index, (scale_lo, scale_hi), beam_energy_kv)`` of an indexing (:class:`ParameterError`).

    Examples
    --------
    >>> check_index_params(3, (0.8, 1.25), 300)
    (3, (0.8, 1.25), 300.0)
    """
    max_index = check_param("max_index", max_index, lo=1, hi=20, integer=True)
    try:
        lo, hi = scale_range
    except (TypeError, ValueError):
        raise ParameterError(
            f"scale_range must be a pair (lo, hi) with 0 < lo <= 1 <= hi, got {scale_range!r}"
        ) from None
    lo = check_param("scale_range[0]", lo, lo=0, hi=1, lo_open=True)
    hi = check_param("scale_range[1]", hi, lo=1)
    kv = check_param("beam_energy_kv", beam_energy_kv, lo=1, hi=5000, optional=optional_kv)
    return max_index, (lo, hi), kv


def index_spots(
    g_inv_nm,
    *,
    cov=None,
    d_err_angstrom=None,
    azimuth_err_deg=None,
    snr=None,
    phases=None,
    cifs=(),
    zone_axes=None,
    max_index: int = 3,
    free_scale: bool = False,
    scale_range: tuple[float, float] = (0.85, 1.15),
    tol_d: float = 0.015,
    tol_angle_deg: float = 1.5,
    beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
    n_alternatives: int = 5,
    lattice: dict | None = None,
) -> IndexingResult:
    """Index spots against candidate phases: zone axis, (hkl) per spot and calibration factor.

    Parameters
    ----------
    g_inv_nm : array (n, 2)
        Spot reciprocal vectors (gx, gy) in 1/nm, x right / y down, one per Friedel pair.
    cov : array (n, 2, 2), optional
        Covariance of each g in (1/nm)^2.
    d_err_angstrom, azimuth_err_deg : array (n,), optional
        Used when ``cov`` is not given.
    snr : array (n,), optional
        Spot strength; the strongest spots form the base pairs (input order otherwise).
    phases : list of str or Phase, optional
        Candidate phases (names of the built-in library or Phase objects).
    cifs : list of paths
        Extra candidate phases from CIF files. With neither, the whole library is searched.
    zone_axes : list of (u, v, w), optional
        Restrict the search to these zone axes (e.g. ``[(1, 1, 1)]``).
    max_index : int
        Largest |u|, |v|, |w| of the enumerated zone axes.
    free_scale : bool
        Fit the calibration factor within ``scale_range`` (else the scale is fixed at 1 and only
        the tolerance absorbs calibration error; the implied factor is reported either way).
    tol_d, tol_angle_deg : float
        Tolerance floors (relative d, degrees).
    beam_energy_kv : float
        Beam energy for the structure factors.
    n_alternatives : int
        Runner-up solutions to keep (distinct phase/zone).
    lattice : dict, optional
        The ``measure_lattice(...).to_dict()`` record, merged into :meth:`IndexingResult.to_dict`.

    Returns
    -------
    IndexingResult

    Raises
    ------
    AnalysisError
        Without spots, or with non-finite vectors.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([[2.5608, 0.0], [0.0, 2.5608], [2.5608, 2.5608]])   # SrTiO3 [001], 1/nm
    >>> r = index_spots(g, phases=["SrTiO3"])
    >>> r.best.zone_axis, [tuple(map(int, x)) for x in r.spots[["h", "k", "l"]].abs().to_numpy()]
    ((0, 0, 1), [(1, 0, 0), (0, 1, 0), (1, 1, 0)])
    """
    max_index, scale_range, beam_energy_kv = check_index_params(max_index, scale_range, beam_energy_kv)
    tol_d = check_param("tol_d", tol_d, lo=0, hi=1, lo_open=True, hi_open=True)
    tol_angle_deg = check_param("tol_angle_deg", tol_angle_deg, lo=0, hi=90, lo_open=True)
    n_alternatives = check_param("n_alternatives", n_alternatives, lo=0, integer=True)
    t0 = time.perf_counter()
    g = _spot_vectors(g_inv_nm)
    obs = _observed(g, cov, d_err_angstrom, azimuth_err_deg, snr, tol_d, tol_angle_deg)
    plist = resolve_phases(phases, cifs)
    # 1. the zone nets of every phase, down to the smallest observed spacing
    smin, smax = (float(scale_range[0]), float(scale_range[1])) if free_scale else (1.0, 1.0)
    d_min = 10.0 / (obs.gmax * (1 + obs.tol_r.max()) / smin)
    d_min = math.floor(d_min * 20) / 20.0  # cache-friendly 0.05 Å steps
    pairs = _base_pairs(obs.zo, obs.order, obs.tol_t)
    nets_by_phase = [(phase, _phase_nets(phase, max_index, d_min, beam_energy_kv, zone_axes)) for phase in plist]
    # 2. hypotheses from base pairs; 3. the best refined transform of every zone net, then scored
    candidates = _search(nets_by_phase, pairs, obs, smin, smax, free_scale)
    solutions = _ranked_solutions(candidates, obs, free_scale)
    per_phase = {}
    for s in solutions:
        per_phase.setdefault(s.phase.name, s)
    best = solutions[0] if solutions else None
    alts = solutions[1 : 1 + int(n_alternatives)]
    spots = _annotate(best, per_phase, g)
    return IndexingResult(best, alts, spots, plist, bool(free_scale), time.perf_counter() - t0, lattice, per_phase)


def _spot_vectors(g_inv_nm) -> np.ndarray:
    """The spots' g as an (n, 2) array; :class:`AnalysisError` without spots or with non-finite/zero ones."""
    g = np.asarray(g_inv_nm, float).reshape(-1, 2)
    if g.shape[0] == 0:
        raise AnalysisError("no spots to index")
    if not np.all(np.isfinite(g)) or np.any(np.hypot(g[:, 0], g[:, 1]) <= 0):
        raise AnalysisError("spot vectors must be finite and non-zero")
    return g


@dataclass
class _Observed:
    """The observed spots as complex numbers ``gx + i gy``, with their errors and matching tolerances."""

    zo: np.ndarray
    r: np.ndarray  # |g|
    sig_r: np.ndarray  # radial and tangential 1-sigma errors (1/nm)
    sig_t: np.ndarray
    tol_r: np.ndarray  # relative radial and angular (rad) tolerances
    tol_t: np.ndarray
    order: np.ndarray  # strongest first
    gmax: float


def _observed(g, cov, d_err_angstrom, azimuth_err_deg, snr, tol_d, tol_angle_deg) -> _Observed:
    """Tolerances ``max(3 sigma, floor)`` of every spot and the strength order of the spots."""
    zo = g[:, 0] + 1j * g[:, 1]
    sig_r, sig_t = spot_uncertainties(g, cov=cov, d_err_angstrom=d_err_angstrom, azimuth_err_deg=azimuth_err_deg)
    r = np.abs(zo)
    tol_r = np.maximum(3 * sig_r / r, float(tol_d))
    tol_t = np.maximum(3 * sig_t / r, math.radians(float(tol_angle_deg)))
    order = np.argsort(-np.asarray(snr, float)) if snr is not None else np.arange(len(g))
    return _Observed(zo, r, sig_r, sig_t, tol_r, tol_t, order, float(r.max()))


def _phase_nets(phase, max_index, d_min, beam_energy_kv, zone_axes) -> list:
    """The zone nets of ``phase`` (cached), only those of ``zone_axes`` (or equivalent) when given."""
    nets = _zone_nets(phase, max_index, max(d_min, 0.2), beam_energy_kv)
    if zone_axes is not None:
        from ._phases import same_zone_axis

        nets = [n for n in nets if any(same_zone_axis(phase, z, n.uvw) for z in zone_axes)]
    return nets


def _search(nets_by_phase, pairs, obs: _Observed, smin, smax, free_scale) -> list:
    """The best transform (phase, net, c, mirror) of every zone net that some base pair fits.

    Base pairs go in batches: the search stops once the best solution explains most spots, so that
    a spurious strong spot costs extra batches only when it matters.
    """
    found: dict = {}  # (phase index, uvw) -> (cost, n_allowed, phase, net, c, mirror)
    batches = [pairs[:3], pairs[3:8], pairs[8:]] if pairs else [None]
    for batch in batches:
        if batch is not None and not batch:
            continue
        for ip, (phase, nets) in enumerate(nets_by_phase):
            for net in nets:
                hit = _best_transform(
                    net, obs.zo, batch, obs.order, obs.r, obs.tol_r, obs.tol_t, smin, smax, free_scale, obs.gmax
                )
                if hit is None:
                    continue
                key = (ip, net.uvw)
                if key not in found or hit[0] < found[key][0]:
                    found[key] = (hit[0], hit[1], phase, net, hit[2], hit[3])
        if found and max(v[1] for v in found.values()) >= 0.75 * len(obs.zo):
            break
    return [(v[2], v[3], v[4], v[5]) for v in found.values()]


def _ranked_solutions(candidates, obs: _Observed, free_scale) -> list:
    """The scored solutions, best first, without those that explain no spot.

    Ties (same geometry, e.g. two fcc phases with a free scale) go to the scale closest to 1, then
    to the lower-index zone axis.
    """
    solutions = [
        _solution(p, n, c, mm, obs.zo, obs.tol_r, obs.tol_t, obs.sig_r, obs.gmax, free_scale)
        for (p, n, c, mm) in candidates
    ]
    solutions.sort(
        key=lambda s: (
            round(s.score, 3),
            -s.n_matched,
            abs(math.log(s.scale_factor)) if np.isfinite(s.scale_factor) else 1.0,
            float(np.linalg.norm(np.asarray(s.zone_axis) @ s.phase.direct_matrix)),
        )
    )
    return [s for s in solutions if s.n_matched + s.n_extinct > 0]


def _annotate(best, per_phase, g):
    import pandas as pd

    n = len(g)
    if best is None:
        spots = pd.DataFrame(
            {
                "gx_inv_nm": g[:, 0],
                "gy_inv_nm": g[:, 1],
                "d_angstrom": 10.0 / np.hypot(g[:, 0], g[:, 1]),
                "h": 0,
                "k": 0,
                "l": 0,
                "status": "unmatched",
                "d_calc_angstrom": np.nan,
                "residual_angstrom": np.nan,
                "angle_residual_deg": np.nan,
                "chi2": np.nan,
                "extinction_reason": "",
            }
        )
    else:
        spots = best.spots.copy()
    spots["phase"] = [None if s == "unmatched" else (best.phase.name if best else None) for s in spots["status"]]
    ext_in = [[] for _ in range(n)]
    reasons = [[] for _ in range(n)]
    n_best = 0 if best is None else best.n_matched
    for name, sol in per_phase.items():
        # only phases that would explain as many spots as the best solution if their extinct
        # reflections were allowed: the extinction is then what rules them out
        if sol.n_matched + sol.n_extinct < n_best:
            continue
        for i, (st, why) in enumerate(zip(sol.spots["status"], sol.spots["extinction_reason"])):
            if st == "extinct":
                ext_in[i].append(name)
                reasons[i].append(why)
    spots["extinct_in"] = ext_in
    spots["extinction_reasons"] = reasons
    return spots


def index_lattice(lattice_result, phases=None, **kwargs) -> IndexingResult:
    """Index the spots of a :func:`latticefit.lattice.measure_lattice` result.

    Uses the spot covariances (``cov_xx``, ``cov_xy``, ``cov_yy``) when present, else the d and
    azimuth errors, and ``snr`` to choose the base spots. Keyword arguments go to
    :func:`index_spots`; the result's :meth:`~IndexingResult.to_dict` extends the lattice JSON record.
    """
    spots = lattice_result.spots
    if spots is None or len(spots) == 0:
        raise AnalysisError("the lattice measurement found no spots to index", getattr(lattice_result, "source", None))
    g = spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    cov = None
    if {"cov_xx", "cov_xy", "cov_yy"} <= set(spots.columns):
        cxx, cxy, cyy = (spots[c].to_numpy(float) for c in ("cov_xx", "cov_xy", "cov_yy"))
        if np.all(np.isfinite(cxx)) and np.all(np.isfinite(cyy)) and np.all(np.isfinite(cxy)):
            cov = np.stack([np.stack([cxx, cxy], -1), np.stack([cxy, cyy], -1)], -2)
    d_err = spots["d_angstrom_err"] if "d_angstrom_err" in spots.columns else spots.get("d_err_angstrom")
    az_err = spots.get("azimuth_err_deg")
    snr = spots.get("snr")
    lat = lattice_result.to_dict() if hasattr(lattice_result, "to_dict") else None
    return index_spots(
        g,
        cov=cov,
        d_err_angstrom=None if d_err is None else d_err.to_numpy(float),
        azimuth_err_deg=None if az_err is None else az_err.to_numpy(float),
        snr=None if snr is None else snr.to_numpy(float),
        phases=phases,
        lattice=lat,
        **kwargs,
    )
