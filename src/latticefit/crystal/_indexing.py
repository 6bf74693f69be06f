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
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnalysisError
from ._phases import (
    DEFAULT_BEAM_ENERGY_KV,
    Phase,
    _reflection_table,
    format_hkl,
    hkl_to_hkil,
    resolve_phases,
    unique_zone_axes,
    uvw_to_uvtw,
    zone_frame,
)

__all__ = [
    "IndexingSolution",
    "IndexingResult",
    "index_spots",
    "index_lattice",
    "spot_uncertainties",
    "COST_UNMATCHED",
]

COST_UNMATCHED = 16.0
PENALTY_CENTRING = COST_UNMATCHED + 1.0
PENALTY_DYNAMICAL = 6.0
PENALTY_MISSING = 2.0
MISSING_MIN_INTENSITY = 0.01
MISSING_FULL_INTENSITY = 0.1
_KIND_CODE = {"": 0, "centring": 1, "glide": 2, "screw": 2, "special-position": 2}


# ----------------------------------------------------------- zone nets
@dataclass
class _ZoneNet:
    uvw: tuple[int, int, int]
    z: np.ndarray            # complex in-plane coordinates (1/nm), both Friedel mates
    absz: np.ndarray
    hkl: np.ndarray          # (m, 3)
    kind: np.ndarray         # 0 allowed, 1 centring-extinct, 2 dynamical-extinct
    intensity: np.ndarray    # |F|^2 relative to the strongest allowed reflection of the zone
    penalty: np.ndarray
    reason: list
    length: float            # |uvw| in Å (sorting key for ties)


def _zone_nets(phase: Phase, max_index: int, d_min: float, beam_energy_kv) -> list[_ZoneNet]:
    key = ("nets", int(max_index), round(d_min, 3), beam_energy_kv)
    if key in phase._cache:
        return phase._cache[key]
    tab = _reflection_table(phase, d_min, beam_energy_kv)
    kind = np.array([_KIND_CODE[k] for k in tab["kind"]], int)
    nets = []
    for uvw in unique_zone_axes(phase, max_index):
        inz = tab["hkl"] @ np.asarray(uvw) == 0
        idx = np.nonzero(inz)[0]
        if idx.size < 2:
            continue
        allowed_idx = idx[tab["allowed"][idx]]
        first = tab["hkl"][allowed_idx[0] if allowed_idx.size else idx[0]]
        e1, e2, _ = zone_frame(phase, uvw, first)
        g = tab["g_cart"][idx] * 10.0
        z = (g @ e1) + 1j * (g @ e2)
        inten = tab["F_abs"][idx] ** 2
        imax = inten[tab["allowed"][idx]].max() if allowed_idx.size else 1.0
        k = kind[idx]
        pen = np.where(k == 1, PENALTY_CENTRING, np.where(k == 2, PENALTY_DYNAMICAL, 0.0))
        nets.append(_ZoneNet(tuple(uvw), z, np.abs(z), tab["hkl"][idx], k, inten / imax, pen,
                             [tab["reason"][i] for i in idx],
                             float(np.linalg.norm(np.asarray(uvw) @ phase.direct_matrix))))
    phase._cache[key] = nets
    return nets


# ------------------------------------------------------------ results
@dataclass(eq=False)
class IndexingSolution:
    """One explanation of the spots: phase, zone axis, orientation, scale and per-spot labels.

    Attributes
    ----------
    phase : Phase
    zone_axis : (u, v, w)
        Zone axis (three-index; :attr:`zone_axis_4` for hexagonal phases).
    rotation_deg : float
        Azimuth in the image (x right, y down) of the zone frame's x axis.
    mirrored : bool
        The net appears mirrored, i.e. it is viewed along ``-[uvw]`` in the frame convention of
        :func:`latticefit.crystal.zone_frame` (the sign of a zone axis is not observable in an FFT).
    scale_factor, scale_factor_err : float
        Implied calibration factor ``true pixel size / file pixel size`` (``g_obs = k g_calc``)
        from the matched spots, with its 1-sigma error.
    free_scale : bool
        Whether the scale was free during the search (else it was fixed at 1).
    score : float
        Total cost (lower is better), see the module docstring.
    spots : pandas.DataFrame
        One row per observed spot: gx_inv_nm, gy_inv_nm, d_angstrom, h, k, l, status
        (``allowed``/``extinct``/``unmatched``), d_calc_angstrom, residual_angstrom (scale-corrected
        d minus d_calc), angle_residual_deg, chi2, extinction_reason.
    """

    phase: Phase
    zone_axis: tuple
    rotation_deg: float
    mirrored: bool
    scale_factor: float
    scale_factor_err: float
    free_scale: bool
    score: float
    spots: object
    n_missing: int = 0
    zone_determined: bool = True

    @property
    def n_spots(self) -> int:
        return int(len(self.spots))

    @property
    def n_matched(self) -> int:
        """Spots explained by an allowed reflection."""
        return int((self.spots["status"] == "allowed").sum())

    @property
    def n_extinct(self) -> int:
        """Spots that only an extinct reflection of this phase explains."""
        return int((self.spots["status"] == "extinct").sum())

    @property
    def fraction_matched(self) -> float:
        return self.n_matched / max(self.n_spots, 1)

    @property
    def chi2_reduced(self) -> float:
        """Mean chi-square per matched spot and dimension (in units of tolerance / 3)."""
        m = self.spots["status"] == "allowed"
        return float(self.spots.loc[m, "chi2"].sum() / max(2 * int(m.sum()), 1))

    @property
    def zone_axis_4(self):
        """Four-index [UVTW] for hexagonal phases, else None."""
        return uvw_to_uvtw(self.zone_axis) if self.phase.is_hexagonal else None

    def summary(self) -> dict:
        """Short JSON-ready record (used for the alternatives)."""
        out = {
            "phase": self.phase.name,
            "space_group": self.phase.space_group,
            "zone_axis": list(self.zone_axis),
            "score": self.score,
            "n_spots": self.n_spots,
            "n_matched": self.n_matched,
            "n_extinct": self.n_extinct,
            "n_missing": self.n_missing,
            "fraction_matched": self.fraction_matched,
            "chi2_reduced": self.chi2_reduced,
            "scale_factor": self.scale_factor,
            "scale_factor_err": self.scale_factor_err,
            "rotation_deg": self.rotation_deg,
            "mirrored": self.mirrored,
            "zone_determined": self.zone_determined,
        }
        if self.phase.is_hexagonal:
            out["zone_axis_4"] = list(self.zone_axis_4)
        return out

    def describe(self) -> str:
        za = "[" + " ".join(str(v) for v in self.zone_axis) + "]"
        if self.phase.is_hexagonal:
            za += " = [" + " ".join(str(v) for v in self.zone_axis_4) + "]"
        if not self.zone_determined:
            za += " (undetermined: the matched spots form one plane family)"
        return (f"{self.phase.label} zone {za}: {self.n_matched}/{self.n_spots} spots allowed"
                f"{f', {self.n_extinct} extinct' if self.n_extinct else ''}, score {self.score:.1f}, "
                f"scale {self.scale_factor:.4f} ± {self.scale_factor_err:.4f}")

    def __repr__(self) -> str:
        return f"IndexingSolution({self.describe()})"


@dataclass(eq=False)
class IndexingResult:
    """Best solution, ranked runner-ups and per-spot extinction flags across the candidate phases.

    ``spots`` is the best solution's per-spot table plus ``phase`` and ``extinct_in`` (names of the
    candidate phases whose best solution needs an extinct reflection for that spot) and
    ``extinction_reasons``.
    """

    best: IndexingSolution | None
    alternatives: list
    spots: object
    phases: list
    free_scale: bool
    elapsed_s: float
    lattice: dict | None = None
    per_phase_best: dict = field(default_factory=dict)

    @property
    def phase(self):
        return None if self.best is None else self.best.phase

    @property
    def zone_axis(self):
        return None if self.best is None else self.best.zone_axis

    @property
    def scale_factor(self):
        return None if self.best is None else self.best.scale_factor

    @property
    def scale_factor_err(self):
        return None if self.best is None else self.best.scale_factor_err

    def to_dict(self) -> dict:
        """The lattice JSON contract plus indexing keys (``zone_axis``, ``phase``, ``scale_factor`` ...)."""
        out = dict(self.lattice) if self.lattice else {}
        spots_in = list(out.get("spots") or [])
        rows = []
        for i, r in enumerate(self.spots.to_dict("records")):
            base = dict(spots_in[i]) if i < len(spots_in) else {
                "g_inv_nm": [r["gx_inv_nm"], r["gy_inv_nm"]], "d_angstrom": r["d_angstrom"]}
            if r["status"] == "unmatched":
                base["hkl"] = None
            else:
                base["hkl"] = [int(r["h"]), int(r["k"]), int(r["l"])]
                if self.best is not None and self.best.phase.is_hexagonal:
                    base["hkil"] = list(hkl_to_hkil((r["h"], r["k"], r["l"])))
            base["phase"] = r["phase"]
            base["status"] = r["status"]
            base["d_calc_angstrom"] = r["d_calc_angstrom"]
            base["residual_angstrom"] = r["residual_angstrom"]
            base["angle_residual_deg"] = r["angle_residual_deg"]
            base["extinct_in"] = list(r["extinct_in"])
            base["extinction_reasons"] = list(r["extinction_reasons"])
            rows.append(base)
        out["spots"] = rows
        b = self.best
        out["phase"] = None if b is None else b.phase.name
        out["space_group"] = None if b is None else b.phase.space_group
        out["zone_axis"] = None if b is None else list(b.zone_axis)
        if b is not None and b.phase.is_hexagonal:
            out["zone_axis_4"] = list(b.zone_axis_4)
        out["scale_factor"] = None if b is None else b.scale_factor
        out["scale_factor_err"] = None if b is None else b.scale_factor_err
        out["free_scale"] = self.free_scale
        out["indexing"] = None if b is None else b.summary()
        out["alternatives"] = [a.summary() for a in self.alternatives]
        out["phases_searched"] = [p.name for p in self.phases]
        out["indexing_time_s"] = self.elapsed_s
        return out

    def table(self) -> str:
        """Readable multi-line report."""
        lines = []
        if self.best is None:
            lines.append("no solution: no candidate phase/zone explains two spots")
        else:
            b = self.best
            mode = "free" if self.free_scale else "fixed"
            lines.append(f"best: {b.describe()} ({mode} scale), rotation {b.rotation_deg:.1f}°")
            lines.append(f"{'#':>3} {'d (Å)':>7} {'hkl':>10} {'d_calc':>7} {'resid(Å)':>9} {'dφ(°)':>6}  status / flags")
            for i, r in enumerate(self.spots.to_dict("records")):
                if r["status"] == "unmatched":
                    hkl = "-"
                elif self.best.phase.is_hexagonal:
                    hkl = format_hkl(hkl_to_hkil((r["h"], r["k"], r["l"])))
                else:
                    hkl = format_hkl((r["h"], r["k"], r["l"]))
                dc = "" if r["status"] == "unmatched" else f"{r['d_calc_angstrom']:.4f}"
                res = "" if r["status"] == "unmatched" else f"{r['residual_angstrom']:+.4f}"
                da = "" if r["status"] == "unmatched" else f"{r['angle_residual_deg']:+.2f}"
                flags = r["status"]
                if r["status"] == "extinct" and r["extinction_reason"]:
                    flags += ": " + r["extinction_reason"]
                others = [p for p in r["extinct_in"] if self.best is None or p != self.best.phase.name]
                if len(others) == 1:
                    flags += "; " + [w for p, w in zip(r["extinct_in"], r["extinction_reasons"]) if p == others[0]][0]
                elif others:
                    flags += "; needs an extinct reflection in " + ", ".join(others)
                lines.append(f"{i:>3} {r['d_angstrom']:7.4f} {hkl:>10} {dc:>7} {res:>9} {da:>6}  {flags}")
        if self.alternatives:
            lines.append("alternatives:")
            for j, a in enumerate(self.alternatives, 2):
                lines.append(f"  {j}. {a.describe()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"IndexingResult(best={self.best!r}, {len(self.alternatives)} alternatives)"


# ------------------------------------------------------------- helpers
def spot_uncertainties(g_inv_nm, *, cov=None, d_err_angstrom=None, azimuth_err_deg=None):
    """Radial and tangential 1-sigma errors (1/nm) of each spot from whatever is known.

    ``cov`` (n, 2, 2) in (1/nm)^2 wins; else ``d_err_angstrom`` (radial) and ``azimuth_err_deg``
    (tangential; defaults to the radial error); zeros when nothing is given.
    """
    g = np.asarray(g_inv_nm, float).reshape(-1, 2)
    r = np.hypot(g[:, 0], g[:, 1])
    u = g / np.where(r > 0, r, 1.0)[:, None]
    t = np.stack([-u[:, 1], u[:, 0]], 1)
    if cov is not None:
        C = np.asarray(cov, float).reshape(-1, 2, 2)
        sr = np.sqrt(np.maximum(np.einsum("ni,nij,nj->n", u, C, u), 0))
        st = np.sqrt(np.maximum(np.einsum("ni,nij,nj->n", t, C, t), 0))
        return np.nan_to_num(sr), np.nan_to_num(st)
    sr = np.zeros(len(g))
    if d_err_angstrom is not None:
        d = 10.0 / np.where(r > 0, r, np.inf)
        sr = np.nan_to_num(np.asarray(d_err_angstrom, float).reshape(-1) / d * r)
    st = sr.copy()
    if azimuth_err_deg is not None:
        st = np.nan_to_num(np.radians(np.asarray(azimuth_err_deg, float).reshape(-1)) * r)
    return sr, st


def _wrap_pi(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _base_pairs(zo: np.ndarray, order: np.ndarray, tol_ang: np.ndarray, n_top: int = 6):
    """Pairs of strong, non-collinear spots (indices into zo), strongest combinations first.

    Pairs are ordered by the sum of their strength ranks, so a spurious strong spot cannot
    occupy every one of the first pairs.
    """
    top = order[: min(len(order), n_top)]
    ranked = []
    for a_i in range(len(top)):
        for b_i in range(a_i + 1, len(top)):
            i, j = top[a_i], top[b_i]
            ang = abs(_wrap_pi(np.angle(zo[j]) - np.angle(zo[i])))
            ang = min(ang, np.pi - ang)
            if ang > max(np.radians(12.0), 3 * (tol_ang[i] + tol_ang[j])):
                ranked.append((a_i + b_i, b_i, (int(i), int(j))))
    return [p for *_, p in sorted(ranked)]


def _hypotheses(net: _ZoneNet, zo, i, j, tol_r, tol_t, smin, smax):
    """Transforms c (complex, |c| = scale) and mirror flags mapping net onto spots i and j."""
    ri, rj = abs(zo[i]), abs(zo[j])
    p = net.absz
    ki = ri / p
    kj = rj / p
    ci = np.nonzero((ki >= smin * (1 - tol_r[i])) & (ki <= smax * (1 + tol_r[i])))[0]
    cj = np.nonzero((kj >= smin * (1 - tol_r[j])) & (kj <= smax * (1 + tol_r[j])))[0]
    if ci.size == 0 or cj.size == 0:
        return np.zeros(0, complex), np.zeros(0, bool)
    A, B = np.meshgrid(ci, cj, indexing="ij")
    A, B = A.ravel(), B.ravel()
    ok = A != B
    ratio = (rj / ri) / (p[B] / p[A])
    ok &= np.abs(ratio - 1) <= tol_r[i] + tol_r[j]
    ang_o = _wrap_pi(np.angle(zo[j]) - np.angle(zo[i]))
    ang_p = _wrap_pi(np.angle(net.z[B]) - np.angle(net.z[A]))
    tol = tol_t[i] + tol_t[j]
    prop = ok & (np.abs(_wrap_pi(ang_o - ang_p)) <= tol)
    mirr = ok & (np.abs(_wrap_pi(ang_o + ang_p)) <= tol)
    cs, ms = [], []
    for sel, mirror in ((prop, False), (mirr, True)):
        if not np.any(sel):
            continue
        pa, pb = net.z[A[sel]], net.z[B[sel]]
        if mirror:
            pa, pb = np.conj(pa), np.conj(pb)
        c = (np.conj(pa) * zo[i] + np.conj(pb) * zo[j]) / (np.abs(pa) ** 2 + np.abs(pb) ** 2)
        cs.append(c)
        ms.append(np.full(c.size, mirror))
    if not cs:
        return np.zeros(0, complex), np.zeros(0, bool)
    c = np.concatenate(cs)
    m = np.concatenate(ms)
    return c, m


def _evaluate(net: _ZoneNet, c: np.ndarray, mirror: np.ndarray, zo, tol_r, tol_t, gmax_obs):
    """Vectorised scoring of H hypotheses. Returns cost (H,), best index (H, n), q (H, n), n_missing (H,)."""
    zp = np.where(mirror[:, None], np.conj(net.z)[None, :], net.z[None, :]) * c[:, None]  # (H, m)
    u = zo / np.abs(zo)
    delta = zp[:, None, :] - zo[None, :, None]                                            # (H, n, m)
    rot = delta * np.conj(u)[None, :, None]
    scale_o = np.abs(zo)[None, :, None]
    zr = rot.real / (scale_o * tol_r[None, :, None])
    zt = rot.imag / (scale_o * tol_t[None, :, None])
    q = zr * zr + zt * zt
    eff = np.where(q <= 1.0, 9.0 * q + net.penalty[None, None, :], np.inf)
    best = np.argmin(eff, axis=2)                                                          # (H, n)
    beff = np.take_along_axis(eff, best[..., None], 2)[..., 0]
    bq = np.take_along_axis(q, best[..., None], 2)[..., 0]
    cost_spot = np.where(np.isfinite(beff), beff, COST_UNMATCHED)
    matched = np.isfinite(beff)
    # missing: strong allowed reflections inside the observed range that no spot explains
    inrange = (np.abs(zp) <= gmax_obs * 0.98) & (net.kind == 0)[None, :] & \
              (net.intensity >= MISSING_MIN_INTENSITY)[None, :]
    weight = np.minimum(1.0, net.intensity / MISSING_FULL_INTENSITY)
    used = np.zeros(zp.shape, bool)
    H, n = best.shape
    rows = np.repeat(np.arange(H), n)
    used[rows[matched.ravel()], best.ravel()[matched.ravel()]] = True
    # a spot explains both Friedel mates: mark the mate too (the net holds both signs)
    mate = _friedel_mate(net)
    used |= used[:, mate]
    missing = inrange & ~used
    n_missing = missing.sum(axis=1) // 2
    # both Friedel mates are counted: half a penalty each
    cost = cost_spot.sum(axis=1) + 0.5 * PENALTY_MISSING * (missing * weight[None, :]).sum(axis=1)
    return cost, best, np.where(matched, bq, np.inf), n_missing


def _friedel_mate(net: _ZoneNet) -> np.ndarray:
    if not hasattr(net, "_mate"):
        lookup = {tuple(h): k for k, h in enumerate(net.hkl)}
        net._mate = np.array([lookup.get(tuple(-h), k) for k, h in enumerate(net.hkl)])
    return net._mate


def _refine(net, c, mirror, best, q, zo, tol_r, tol_t, free_scale):
    """Least-squares similarity transform on the spots matched to allowed reflections."""
    ok = np.isfinite(q) & (net.kind[best] == 0)
    if ok.sum() < 1:
        return c
    zp = net.z[best[ok]]
    if mirror:
        zp = np.conj(zp)
    w = 1.0 / (np.abs(zo[ok]) ** 2 * (tol_r[ok] ** 2 + tol_t[ok] ** 2))
    c_new = np.sum(w * np.conj(zp) * zo[ok]) / np.sum(w * np.abs(zp) ** 2)
    if not free_scale:
        c_new = c_new / abs(c_new)
    return c_new


def _implied_scale(net, c, mirror, best, q, zo, sig_r):
    """Calibration factor k = |g_obs| / |g_calc| from matched allowed spots, with its error."""
    ok = np.isfinite(q) & (net.kind[best] == 0)
    if not np.any(ok):  # only extinct matches: still say what scale they imply
        ok = np.isfinite(q)
    if not np.any(ok):
        return float("nan"), float("nan")
    zp = net.z[best[ok]]
    if mirror:
        zp = np.conj(zp)
    pred_dir = zp * c / np.abs(zp * c)
    k_i = (zo[ok] * np.conj(pred_dir)).real / np.abs(zp)
    sig = sig_r[ok] / np.abs(zp)
    n = int(ok.sum())
    if np.all(sig > 0):
        w = 1.0 / sig ** 2
        k = float(np.sum(w * k_i) / np.sum(w))
        formal = float(1.0 / math.sqrt(np.sum(w)))
    else:
        k = float(np.mean(k_i))
        formal = 0.0
    scatter = float(np.std(k_i, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return k, max(formal, scatter)


def _best_transform(net, zo, pairs, order, r, tol_r, tol_t, smin, smax, free_scale, gmax_obs):
    """Best refined transform of one zone net for the given base pairs (None: no hypothesis).

    Returns (cost, n spots matched to allowed reflections, c, mirror).
    """
    cs, ms = [], []
    if pairs is not None:
        for (i, j) in pairs:
            c, m = _hypotheses(net, zo, i, j, tol_r, tol_t, smin, smax)
            cs.append(c)
            ms.append(m)
    else:  # a single spot or collinear spots: orient on the strongest spot only
        i = order[0]
        k = r[i] / net.absz
        sel = (k >= smin * (1 - tol_r[i])) & (k <= smax * (1 + tol_r[i]))
        for mirror in (False, True):
            p = np.conj(net.z[sel]) if mirror else net.z[sel]
            cs.append(zo[i] / p)
            ms.append(np.full(p.size, mirror))
    if not cs:
        return None
    c = np.concatenate(cs)
    m = np.concatenate(ms)
    if c.size == 0:
        return None
    if not free_scale:
        c = c / np.abs(c)
    # identical transforms from symmetry-equivalent labellings: keep one
    key = np.round(np.angle(c) * 200) + 1e4 * np.round(np.abs(c) * 500) + 1e9 * m
    _, first = np.unique(key, return_index=True)
    c, m = c[first], m[first]
    cost, best, q, _ = _evaluate(net, c, m, zo, tol_r, tol_t, gmax_obs)
    h = int(np.argmin(cost))
    c_ref = _refine(net, c[h], m[h], best[h], q[h], zo, tol_r, tol_t, free_scale)
    if free_scale and not (smin * 0.98 <= abs(c_ref) <= smax * 1.02):
        c_ref = c[h]
    cost2, best2, q2, _ = _evaluate(net, np.array([c_ref]), m[h:h + 1], zo, tol_r, tol_t, gmax_obs)
    if cost2[0] > cost[h]:  # refinement made it worse (rare): keep the hypothesis
        c_ref, cost2, best2, q2 = c[h], cost[h:h + 1], best[h:h + 1], q[h:h + 1]
    n_allowed = int(np.sum(np.isfinite(q2[0]) & (net.kind[best2[0]] == 0)))
    return float(cost2[0]), n_allowed, c_ref, bool(m[h])


def _solution(phase, net, c, mirror, zo, tol_r, tol_t, sig_r, gmax_obs, free_scale):
    import pandas as pd

    cost, best, q, n_missing = _evaluate(net, np.array([c]), np.array([mirror]), zo, tol_r, tol_t, gmax_obs)
    best, q = best[0], q[0]
    k, k_err = _implied_scale(net, c, mirror, best, q, zo, sig_r)
    zp = net.z[best]
    if mirror:
        zp = np.conj(zp)
    zp_img = zp * c
    matched = np.isfinite(q)
    kind = net.kind[best]
    status = np.where(~matched, "unmatched", np.where(kind == 0, "allowed", "extinct"))
    hkl = net.hkl[best]
    d_obs = 10.0 / np.abs(zo)
    d_calc = 10.0 / net.absz[best]
    kk = k if (free_scale and np.isfinite(k)) else 1.0
    residual = kk * d_obs - d_calc
    dphi = np.degrees(_wrap_pi(np.angle(zo) - np.angle(zp_img)))
    reasons = [net.reason[b] if (m and kd > 0) else "" for b, m, kd in zip(best, matched, kind)]
    spots = pd.DataFrame({
        "gx_inv_nm": zo.real, "gy_inv_nm": zo.imag, "d_angstrom": d_obs,
        "h": hkl[:, 0], "k": hkl[:, 1], "l": hkl[:, 2], "status": status,
        "d_calc_angstrom": d_calc, "residual_angstrom": residual, "angle_residual_deg": dphi,
        "chi2": np.where(matched, 9.0 * q, np.nan), "extinction_reason": reasons,
        # predicted vector of the assigned reflection in the image frame at scale 1
        "gx_calc_inv_nm": (zp * c / abs(c)).real, "gy_calc_inv_nm": (zp * c / abs(c)).imag,
    })
    e1_angle = math.degrees(math.atan2(c.imag, c.real))
    za = np.angle(zo[matched])
    spread = np.abs(((za[:, None] - za[None, :]) + np.pi / 2) % np.pi - np.pi / 2) if za.size else np.zeros((0, 0))
    determined = bool(spread.size and spread.max() > math.radians(5.0))
    return IndexingSolution(phase, net.uvw, e1_angle, bool(mirror), k, k_err, free_scale, float(cost[0]),
                            spots, int(n_missing[0]), determined)


# ---------------------------------------------------------------- API
def index_spots(g_inv_nm, *, cov=None, d_err_angstrom=None, azimuth_err_deg=None, snr=None,
                phases=None, cifs=(), zone_axes=None, max_index: int = 3, free_scale: bool = False,
                scale_range: tuple[float, float] = (0.85, 1.15), tol_d: float = 0.015,
                tol_angle_deg: float = 1.5, beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
                n_alternatives: int = 5, lattice: dict | None = None) -> IndexingResult:
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
    t0 = time.perf_counter()
    g = np.asarray(g_inv_nm, float).reshape(-1, 2)
    if g.shape[0] == 0:
        raise AnalysisError("no spots to index")
    if not np.all(np.isfinite(g)) or np.any(np.hypot(g[:, 0], g[:, 1]) <= 0):
        raise AnalysisError("spot vectors must be finite and non-zero")
    zo = g[:, 0] + 1j * g[:, 1]
    sig_r, sig_t = spot_uncertainties(g, cov=cov, d_err_angstrom=d_err_angstrom, azimuth_err_deg=azimuth_err_deg)
    r = np.abs(zo)
    tol_r = np.maximum(3 * sig_r / r, float(tol_d))
    tol_t = np.maximum(3 * sig_t / r, math.radians(float(tol_angle_deg)))
    order = np.argsort(-np.asarray(snr, float)) if snr is not None else np.arange(len(g))
    plist = resolve_phases(phases, cifs)
    smin, smax = (float(scale_range[0]), float(scale_range[1])) if free_scale else (1.0, 1.0)
    gmax_obs = float(r.max())
    d_min = 10.0 / (gmax_obs * (1 + tol_r.max()) / smin)
    d_min = math.floor(d_min * 20) / 20.0  # cache-friendly 0.05 Å steps
    pairs = _base_pairs(zo, order, tol_t)
    nets_by_phase = []
    for phase in plist:
        nets = _zone_nets(phase, max_index, max(d_min, 0.2), beam_energy_kv)
        if zone_axes is not None:
            from ._phases import same_zone_axis

            nets = [n for n in nets if any(same_zone_axis(phase, z, n.uvw) for z in zone_axes)]
        nets_by_phase.append((phase, nets))

    # base pairs in batches: stop once the best solution explains most spots, so that a spurious
    # strong spot costs extra batches only when it matters
    found: dict = {}  # (phase index, uvw) -> (cost, n_allowed, phase, net, c, mirror)
    batches = [pairs[:3], pairs[3:8], pairs[8:]] if pairs else [None]
    for batch in batches:
        if batch is not None and not batch:
            continue
        for ip, (phase, nets) in enumerate(nets_by_phase):
            for net in nets:
                hit = _best_transform(net, zo, batch, order, r, tol_r, tol_t, smin, smax, free_scale, gmax_obs)
                if hit is None:
                    continue
                key = (ip, net.uvw)
                if key not in found or hit[0] < found[key][0]:
                    found[key] = (hit[0], hit[1], phase, net, hit[2], hit[3])
        if found and max(v[1] for v in found.values()) >= 0.75 * len(zo):
            break
    candidates = [(v[2], v[3], v[4], v[5]) for v in found.values()]

    solutions = [_solution(p, n, c, mm, zo, tol_r, tol_t, sig_r, gmax_obs, free_scale)
                 for (p, n, c, mm) in candidates]
    # ties (same geometry, e.g. two fcc phases with a free scale) go to the scale closest to 1,
    # then to the lower-index zone axis
    solutions.sort(key=lambda s: (round(s.score, 3), -s.n_matched,
                                  abs(math.log(s.scale_factor)) if np.isfinite(s.scale_factor) else 1.0,
                                  float(np.linalg.norm(np.asarray(s.zone_axis) @ s.phase.direct_matrix))))
    solutions = [s for s in solutions if s.n_matched + s.n_extinct > 0]
    per_phase = {}
    for s in solutions:
        per_phase.setdefault(s.phase.name, s)
    best = solutions[0] if solutions else None
    alts = solutions[1: 1 + int(n_alternatives)]
    spots = _annotate(best, per_phase, g)
    return IndexingResult(best, alts, spots, plist, bool(free_scale), time.perf_counter() - t0, lattice, per_phase)


def _annotate(best, per_phase, g):
    import pandas as pd

    n = len(g)
    if best is None:
        spots = pd.DataFrame({"gx_inv_nm": g[:, 0], "gy_inv_nm": g[:, 1], "d_angstrom": 10.0 / np.hypot(g[:, 0], g[:, 1]),
                              "h": 0, "k": 0, "l": 0, "status": "unmatched", "d_calc_angstrom": np.nan,
                              "residual_angstrom": np.nan, "angle_residual_deg": np.nan, "chi2": np.nan,
                              "extinction_reason": ""})
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
        raise AnalysisError("the lattice measurement found no spots to index",
                            getattr(lattice_result, "source", None))
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
    return index_spots(g, cov=cov, d_err_angstrom=None if d_err is None else d_err.to_numpy(float),
                       azimuth_err_deg=None if az_err is None else az_err.to_numpy(float),
                       snr=None if snr is None else snr.to_numpy(float), phases=phases, lattice=lat, **kwargs)
