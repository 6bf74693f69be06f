"""The steps of :func:`latticefit.lattice.measure_lattice` after detection and refinement.

1. **Significant spots** (:func:`significant_spots`): each refined candidate is mapped to the half plane
   (gx >= 0), spots below ``min_snr`` or with a non-finite covariance are dropped, and a spot within 0.75
   bin of a stronger one (or of its Friedel mate) is the same reflection.
2. **Measurable spots** (:func:`within_d_range`, :func:`drop_short_fringes`): the d-range is applied to the
   refined |g|; a spot with fewer than ``MIN_PERIODS`` fringe periods across the region is dropped (its
   estimate is biased by the DC and edge leakage beyond its statistical error).
3. **Plausibility** (:func:`plausible_spots`, ``lattice._plausibility``): blank images, spacings > 50 nm or
   < 2 px, beyond the beam's limit, streaks and scan lines are refused and listed in ``rejected_spots``.
4. **Indexing** (:func:`index_spots`): the basis pair that indexes the most signal with the lowest orders
   (``lattice._basis``), reduced to the two shortest vectors of the net; duplicate indices, off-lattice spots
   beyond the information limit and streaks on no lattice are refused; further lattices (a dot, a twin, a
   moire: ``lattice._multi``) index what the main one leaves; the basis is fitted to every indexed spot by
   weighted least squares.
5. **Table** (:func:`spot_table`): d, azimuth and their Fisher errors from each spot's covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from math import gcd

import numpy as np
import pandas as pd

from . import _basis as lb
from . import _plausibility as lp
from . import _wholelimit as wl
from ._detect import detect_candidates
from ._multi import further_lattices
from ._refine import refine_mask, refine_rect

#: a reported spot needs at least this many fringe periods across the region (below, the DC and edge
#: leakage bias the estimate beyond its statistical error)
MIN_PERIODS = 5.5


@dataclass
class RefinedSpot:
    """One refined spot in the half plane: frequency in cycles per pixel and its fit."""

    gx_cycles_per_px: float
    gy_cycles_per_px: float
    snr: float
    amplitude: float
    phase_rad: float
    cov_cycles_per_px2: np.ndarray  # (2, 2) covariance of (gx, gy) in (cycles/px)^2
    noise_sigma: float
    converged: bool

    @property
    def g_px(self) -> tuple[float, float]:
        return self.gx_cycles_per_px, self.gy_cycles_per_px


@dataclass
class SpotIndexing:
    """Indices of the measured spots in the main lattice and the further ones, and the basis fit."""

    hk: np.ndarray  # (n, 2) basis indices n1, n2
    order: np.ndarray  # order in the main lattice (0: off it)
    lattice: np.ndarray  # 0: main, 1, 2, ...: further lattices, -1: none
    lattice_order: np.ndarray
    keep: np.ndarray  # spots reported
    basis: dict | None = None
    further: list = field(default_factory=list)


#: how the dropped-spot warning tells the user to keep them (commands that cannot use them reword it)
KEEP_UNINDEXED_HINT = " (keep them with keep_unindexed=True / --keep-unindexed)"


def periods(gx_px: float, gy_px: float, shape) -> float:
    """Distance of g (cycles/px) from the spectrum centre in DFT bins of a (M, N) box (periods across the box)."""
    return math.hypot(gx_px * shape[1], gy_px * shape[0])


def basis_rows(hk: np.ndarray, ok: np.ndarray, snr: np.ndarray):
    """Rows of the strongest indexed spots with indices +-(1, 0) and +-(0, 1) (None when not observed)."""
    out = []
    for target in ((1, 0), (0, 1)):
        rows = [r for r in range(len(hk)) if ok[r] and tuple(np.abs(hk[r])) == target]
        out.append(int(max(rows, key=lambda r: snr[r])) if rows else None)
    return out[0], out[1]


#: defaults of :func:`latticefit.lattice.measure_lattice`'s numeric options, shared with the tiles of its
#: systematic-error estimate (``lattice._tilespots``)
DEFAULT_MIN_SNR = 5.0
DEFAULT_MAX_SPOTS = 64
DEFAULT_P_FALSE = 1e-3
DEFAULT_WINDOW_BINS = 32


# ------------------------------------------------------------------ 1-2: significant, measurable spots
def d_range_in_nm(d_range_angstrom):
    """A parsed d-range (Å, either bound may be None) in nm; None stays None."""
    if d_range_angstrom is None:
        return None
    return tuple(v / 10.0 if v else v for v in d_range_angstrom)


def detect_and_refine(P, U, sub, weight, pyx, d_range_nm, p_false, max_spots, window_bins, info) -> list:
    """Candidate spots above the noise threshold (lattice._detect), each refined jointly (lattice._refine).

    ``sub`` is the region's box and ``weight`` its mask (None for a rectangle, refined from the raw rfft2
    ``U``); ``info`` gets the detection threshold, bin factor and candidate count.
    """
    shape = sub.shape
    cand = detect_candidates(P, shape, pyx, d_range_nm=d_range_nm, p_false=p_false, max_candidates=max_spots)
    info.update(detection_threshold=cand.threshold, detection_bin=cand.bin_factor, n_candidates=int(len(cand.ky)))
    if len(cand.ky) == 0:
        return []
    if weight is None:
        return refine_rect(U, shape, list(zip(cand.ky, cand.kx)), K=window_bins)
    M, N = shape
    return refine_mask(sub, weight, [(ky / M, kx / N) for ky, kx in zip(cand.ky, cand.kx)])


def measurable_spots(fits, min_snr, shape, B, d_range_nm, notes):
    """The significant spots in the d-range with enough fringe periods; returns (spots, n too short)."""
    spots = significant_spots(fits, min_snr, shape)
    spots = within_d_range(spots, B, d_range_nm)
    spots, n_short = drop_short_fringes(spots, shape, notes)
    n_nc = sum(1 for s in spots if not s.converged)
    if n_nc:
        notes.append(f"{n_nc} spot refinement(s) did not fully converge")
    return spots, n_short


def significant_spots(fits, min_snr: float, shape) -> list[RefinedSpot]:
    """Refined fits in the half plane, strongest first, without insignificant spots and duplicates."""
    M, N = shape
    spots = []
    for f in fits:
        gx, gy, phase = f.gx, f.gy, f.phase_rad
        if gx < 0 or (gx == 0 and gy < 0):
            gx, gy, phase = -gx, -gy, -phase
        spots.append(RefinedSpot(gx, gy, f.snr, f.amplitude, phase, f.cov, f.noise_sigma, f.converged))
    spots.sort(key=lambda s: -s.snr)
    kept: list[RefinedSpot] = []
    for s in spots:
        if not (np.isfinite(s.snr) and s.snr >= min_snr and np.all(np.isfinite(s.cov_cycles_per_px2))):
            continue
        same = any(
            abs(s.gx_cycles_per_px - k * q.gx_cycles_per_px) * N < 0.75
            and abs(s.gy_cycles_per_px - k * q.gy_cycles_per_px) * M < 0.75
            for q in kept
            for k in (1, -1)
        )
        if not same:
            kept.append(s)
    return kept


def within_d_range(spots: list[RefinedSpot], B: np.ndarray, d_range_nm) -> list[RefinedSpot]:
    """The spots whose refined spacing lies in ``d_range_nm`` (either bound may be None)."""
    if d_range_nm is None:
        return spots
    lo, hi = d_range_nm
    out = []
    for s in spots:
        g = math.hypot(*(B @ [s.gx_cycles_per_px, s.gy_cycles_per_px]))
        if (lo is None or g <= 1 / lo) and (hi is None or g >= 1 / hi):
            out.append(s)
    return out


def drop_short_fringes(spots: list[RefinedSpot], shape, notes: list) -> tuple[list[RefinedSpot], int]:
    """Drop spots with fewer than ``MIN_PERIODS`` fringe periods across the region; returns (spots, n dropped)."""
    n_short = sum(1 for s in spots if periods(*s.g_px, shape) < MIN_PERIODS)
    if n_short:
        spots = [s for s in spots if periods(*s.g_px, shape) >= MIN_PERIODS]
        notes.append(
            f"{n_short} spot(s) with fewer than {MIN_PERIODS:g} fringe periods across the region were "
            "dropped (not measurable reliably: use a larger region)"
        )
    return spots, n_short


# ------------------------------------------------------------------ 3: plausibility
@dataclass
class Candidates:
    """The measurable spots as arrays (1/nm), with what plausibility said about each."""

    spots: list[RefinedSpot]
    G: np.ndarray  # (n, 2) g in 1/nm
    covs: np.ndarray  # (n, 2, 2) in (1/nm)^2
    snr: np.ndarray
    streak: np.ndarray  # streak-like: refused only when no lattice indexes it
    reasons: list
    rejected: list = field(default_factory=list)  # tables of refused spots

    def subset(self, good: np.ndarray) -> Candidates:
        return Candidates(
            [s for s, k in zip(self.spots, good) if k],
            self.G[good],
            self.covs[good],
            self.snr[good],
            self.streak[good],
            [r for r, k in zip(self.reasons, good) if k],
            self.rejected,
        )

    def rejected_spots(self) -> pd.DataFrame:
        if len(self.rejected) == 1:
            return self.rejected[0]
        return pd.concat(self.rejected, ignore_index=True)


def spots_in_inv_nm(spots, B) -> tuple[np.ndarray, np.ndarray]:
    """(gx, gy) of the spots in 1/nm (n, 2) and their covariances in (1/nm)^2 (n, 2, 2); ``B``: cycles/px -> 1/nm."""
    G = np.array([B @ [s.gx_cycles_per_px, s.gy_cycles_per_px] for s in spots])
    covs = np.array([B @ s.cov_cycles_per_px2 @ B.T for s in spots])
    return G, covs


def plausible_spots(spots, B, P, shape, pyx, mg, vals, U, profile, notes) -> Candidates:
    """Refuse spots that are no lattice reflection (lattice._plausibility); streak-like ones wait for indexing."""
    G, covs = spots_in_inv_nm(spots, B)
    snr = np.array([s.snr for s in spots])
    g_px = np.array([s.g_px for s in spots])
    reasons, pnotes = lp.check_spots(
        G, g_px, P, shape, pyx, data=vals, mode=mg.mode, beam_energy_kv=mg.beam_energy_kv, U=U, profile=profile
    )
    notes.extend(pnotes)
    # a streak-like maximum is refused only when the lattice of the other spots does not index it (a lattice
    # spot can sit on a streak of scan lines or in a row of satellites)
    streak = np.array([bool(r) and r.startswith("streak") for r in reasons])
    cand = Candidates(spots, G, covs, snr, streak, reasons)
    cand.rejected.append(lp.rejected_table(G, snr, [None if s_ else r for r, s_ in zip(reasons, streak)]))
    good = np.array([r is None for r in reasons]) | streak
    return cand if good.all() else cand.subset(good)


# ------------------------------------------------------------------ 4: indexing
def _refuse_streaks(c: Candidates, mask: np.ndarray, notes: list) -> None:
    if mask.any():
        c.rejected.append(lp.rejected_table(c.G, c.snr, [r if m else None for r, m in zip(c.reasons, mask)]))
        notes.append(
            f"{int(mask.sum())} spot(s) refused as not a lattice reflection: streak (elongated along "
            "the radius, or a bump on a radial streak, and on no lattice of the other spots; see "
            "rejected_spots)"
        )


def main_basis(c: Candidates, B, shape, tol, notes):
    """The main lattice's basis: ``(i, j, r1, r2, hk, ok)`` (reduced to the shortest pair) or None.

    A net with a basis vector of fewer than ``MIN_PERIODS`` periods across the region, or two spots whose
    fundamental would be unmeasurable, has no basis (harmonics could not be told apart).
    """
    found = lb.find_basis(c.G, c.snr, tol, exclude=c.streak)
    half_hidden = [periods(s.gx_cycles_per_px / 2, s.gy_cycles_per_px / 2, shape) < MIN_PERIODS for s in c.spots]
    out = None
    if found is not None:
        i, j, sign, hk, ok = found
        # conventional basis: the two shortest vectors of the indexed net (a unimodular change keeps the set)
        r1, r2 = c.G[i], sign * c.G[j]
        if int(ok.sum()) >= 3:  # with two spots the basis is the spots themselves
            r1, r2, T = lb.reduce_basis(c.G[i], sign * c.G[j])
            hk = np.rint(np.linalg.solve(T, hk.T).T).astype(int)
        out = (i, j, r1, r2, hk, ok)
        if min(periods(*np.linalg.solve(B, r), shape) for r in (r1, r2)) < MIN_PERIODS:
            notes.append(
                f"the net of these spots has a basis vector with < {MIN_PERIODS:g} periods across the "
                "region, which cannot be measured: harmonics cannot be told apart, no basis "
                "(use a larger region)"
            )
            out = None
        elif int(ok.sum()) <= 2 and (half_hidden[i] or half_hidden[j]):
            notes.append(
                "only two spots, and a fundamental at twice their spacing would have < "
                f"{MIN_PERIODS:g} periods across the region (not measurable): harmonics cannot be "
                "recognised, no basis (use a larger region)"
            )
            out = None
    elif len(c.G) >= 2:
        notes.append("the spots do not span two independent plane families: no basis")
    else:
        notes.append("a single plane family: no basis")
    if out is None and any(half_hidden):
        notes.append(
            f"a fundamental at twice the spacing of some spot(s) would have < {MIN_PERIODS:g} periods "
            "across the region and could not be seen: they may be harmonics (use a larger region)"
        )
    return out


def _refuse_off_lattice(c: Candidates, hk, ok, P, shape, pyx, profile, info, notes):
    """Duplicate indices and spots beyond the information limit: returns ``(ok, dup, far, g_limit)``."""
    dup = lb.drop_duplicate_indices(hk, ok, c.snr)
    if dup.any():
        ok = ok & ~dup
        notes.append(
            f"{int(dup.sum())} spot(s) repeating the indices of a stronger spot (one reflection "
            "split in two, e.g. across the +-90 deg azimuth wrap) were dropped"
        )
    # off-lattice spots beyond the information limit the data support (lattice._plausibility)
    g_lim, how = lp.information_limit(c.G, ok, P, shape, pyx, profile)
    info["information_limit_angstrom"] = None if g_lim is None else 10.0 / g_lim
    far = lp.beyond_limit(c.G, ~dup, g_lim, how)  # lattice spots too: chance high-order coincidences
    farm = np.array([r is not None for r in far])
    ok = ok & ~farm
    if farm.any():
        c.rejected.append(lp.rejected_table(c.G, c.snr, far))
        notes.append(
            f"{int(farm.sum())} spot(s) beyond the information limit the data "
            f"support ({10 / g_lim:.3g} Å: {how}) refused as noise (see rejected_spots)"
        )
    _refuse_streaks(c, c.streak & ~ok & ~farm, notes)
    farm = farm | (c.streak & ~ok)  # refused: out of further lattices and of keep_unindexed
    return ok, dup, farm, g_lim


def index_spots(
    c: Candidates, B, P, shape, pyx, profile, tol, keep_unindexed, info, notes, whole_limit=None
) -> SpotIndexing:
    """Index the spots in the main lattice and further ones; fit the main basis (see the module docstring).

    ``whole_limit``: for a region, a callable giving the whole image's information limit (Å); spots of the
    region on no lattice beyond it are refused (``lattice._wholelimit``).
    """
    n = len(c.G)
    idx = SpotIndexing(
        hk=np.zeros((n, 2), int),
        order=np.ones(n, int),
        lattice=np.full(n, -1),
        lattice_order=np.zeros(n, int),
        keep=~c.streak,
    )
    found = main_basis(c, B, shape, tol, notes)
    if found is None:
        _refuse_streaks(c, c.streak, notes)
        idx.keep &= ~wl.refuse_beyond(c, whole_limit, idx.keep, notes)
        return idx
    i, j, r1, r2, hk, ok = found
    ok, dup, farm, g_lim = _refuse_off_lattice(c, hk, ok, P, shape, pyx, profile, info, notes)
    if not (ok[i] and ok[j] and tuple(np.abs(hk[i])) == (1, 0) and tuple(np.abs(hk[j])) == (0, 1)):
        i, j = basis_rows(hk, ok, c.snr)
    idx.order = np.array([gcd(abs(int(h)), abs(int(k))) if o else 0 for (h, k), o in zip(hk, ok)])
    idx.lattice[ok], idx.lattice_order[ok] = 0, idx.order[ok]
    own = None if g_lim is None else 10.0 / g_lim  # the region's own limit (Å)
    farm |= wl.refuse_beyond(c, whole_limit, ~ok & ~dup & ~farm, notes, own_limit_angstrom=own)
    # further lattices from the spots the main one leaves (a dot, a twin, a moire: lattice._multi)
    B_main = np.column_stack([r1, r2])
    idx.further = further_lattices(c.G, c.covs, c.snr, tol, ~ok & ~dup & ~farm, main_basis=B_main, g_limit=g_lim)
    for m, (hk_m, member, _, order_m) in enumerate(idx.further, start=1):
        idx.lattice[member], hk[member], idx.lattice_order[member] = m, hk_m[member], order_m[member]
    if idx.further:
        notes.append(
            f"{len(idx.further)} further lattice(s) index {int((idx.lattice >= 1).sum())} spot(s) off the main "
            "lattice (a dot, twin, second phase or moire?): see result.lattices"
        )
    loose = (idx.lattice < 0) & ~dup & ~farm
    if not keep_unindexed and loose.any():
        notes.append(f"{int(loose.sum())} significant spot(s) on no lattice were dropped{KEEP_UNINDEXED_HINT}")
    idx.keep = ok | (idx.lattice >= 1) | (keep_unindexed & ~farm)
    idx.hk = hk
    fit = lb.fit_basis(c.G, c.covs, hk, ok)
    notes.extend(fit.notes)
    idx.basis = {
        "g1_inv_nm": [float(v) for v in fit.b1],
        "g2_inv_nm": [float(v) for v in fit.b2],
        **lb.basis_numbers(fit),
        "cov_inv_nm2": fit.cov.tolist(),
        "chi2": float(fit.chi2),
        "dof": int(fit.dof),
        "n_spots": int(ok.sum()),
        "_rows": (i, j),
    }
    return idx


# ------------------------------------------------------------------ 5: the table
def spot_table(c: Candidates, idx: SpotIndexing, origin_px) -> pd.DataFrame:
    """The reported spots (``idx.keep``), in detection order, with d, azimuth and their Fisher errors.

    ``origin_px`` = (y0, x0) of the region in the image: phases are referred to the image origin.
    """
    keep = idx.keep
    G, covs = c.G[keep], c.covs[keep]
    kept = [s for s, k in zip(c.spots, keep) if k]
    hk = idx.hk[keep]
    gnorm = np.linalg.norm(G, axis=1)
    u = G / gnorm[:, None]
    var_g = np.einsum("ni,nij,nj->n", u, covs, u)
    nperp = np.column_stack([-u[:, 1], u[:, 0]])
    var_az = np.einsum("ni,nij,nj->n", nperp, covs, nperp) / gnorm**2
    d = 10.0 / gnorm
    gx_px = np.array([s.gx_cycles_per_px for s in kept])
    gy_px = np.array([s.gy_cycles_per_px for s in kept])
    y0, x0 = origin_px
    phase_img = np.array([s.phase_rad for s in kept]) - 2 * np.pi * (gx_px * x0 + gy_px * y0)
    spots = pd.DataFrame(
        {
            "gx_inv_nm": G[:, 0],
            "gy_inv_nm": G[:, 1],
            "g_abs_inv_nm": gnorm,
            "d_angstrom": d,
            "d_err_angstrom": d * np.sqrt(var_g) / gnorm,
            "azimuth_deg": np.degrees(np.arctan2(G[:, 1], G[:, 0])),
            "azimuth_err_deg": np.degrees(np.sqrt(var_az)),
            "snr": c.snr[keep],
            "order": idx.order[keep].astype(int),
            "n1": hk[:, 0].astype(int),
            "n2": hk[:, 1].astype(int),
            "cov_xx": covs[:, 0, 0],
            "cov_xy": covs[:, 0, 1],
            "cov_yy": covs[:, 1, 1],
            "amplitude": np.array([s.amplitude for s in kept]),
            "phase_rad": np.angle(np.exp(1j * phase_img)),
            "gx_cycles_per_px": gx_px,
            "gy_cycles_per_px": gy_px,
            "noise_sigma": np.array([s.noise_sigma for s in kept]),
            "converged": np.array([bool(s.converged) for s in kept]),
            "lattice": idx.lattice[keep].astype(int),
            "lattice_order": idx.lattice_order[keep].astype(int),
        }
    )
    if idx.basis is None:  # indices are undefined without a basis (never (0, 0))
        spots["n1"] = pd.array([pd.NA] * len(spots), dtype="Int64")
        spots["n2"] = pd.array([pd.NA] * len(spots), dtype="Int64")
    return spots


def index_tolerance(c: Candidates, shape, pyx) -> np.ndarray:
    """Indexing tolerance per spot (1/nm): half a DFT bin or 1.5 % of |g|, whichever is larger, plus 4 sigma."""
    M, N = shape
    py, px = pyx
    bin_nm = 1.0 / min(M * py, N * px)
    sig = np.sqrt(np.clip(c.covs[:, 0, 0] + c.covs[:, 1, 1], 0, None))
    return np.maximum(0.5 * bin_nm, 0.015 * np.linalg.norm(c.G, axis=1)) + 4 * sig
