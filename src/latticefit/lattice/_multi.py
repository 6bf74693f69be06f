"""Further lattices: the significant spots that the main lattice leaves unindexed, grouped into nets.

A dot with a few % mismatch, a twin, a second phase or a moiré gives spots off
the main net. The same finest-net search as for the main lattice
(:func:`latticefit.lattice._basis.find_basis`) runs on the leftovers; a net is
accepted when it indexes at least ``MIN_SPOTS`` spots spanning two independent
directions, and the search repeats on what is still left. Only the spots that
fit no net stay unindexed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from math import gcd

import numpy as np

from . import _basis as lb

__all__ = ["MIN_SPOTS", "Lattice", "further_lattices", "lattice_from_fit"]

#: fewest spots of an accepted further lattice (two of them independent)
MIN_SPOTS = 3
#: most further lattices searched
MAX_LATTICES = 4
#: largest |h|, |k| in a further lattice: with few spots, high orders are chance coincidences
MAX_INDEX = 3


def _pm(v: float, e: float) -> str:
    """``value ± error`` with the error to two significant digits (the lattice tables' format)."""
    if not np.isfinite(e) or e <= 0:
        return f"{v:.4f}"
    digits = max(0, min(6, 1 - int(math.floor(math.log10(e)))))
    return f"{v:.{digits}f} ± {e:.{digits}f}"


@dataclass
class Lattice:
    """One 2-D reciprocal net of a region: its basis, numbers with 1-sigma errors and spots.

    Attributes
    ----------
    index : int
        0 for the main lattice (``LatticeResult.basis``), 1, 2, ... for the further ones.
    g1_inv_nm, g2_inv_nm : list of float
        Fitted basis vectors (gx, gy), 1/nm (the reduced, shortest pair, at an acute angle).
    d_angstrom, d_err_angstrom : list of float
        d of the two basis vectors and their 1-sigma errors (Å).
    angle_deg, angle_err_deg : float
        Acute angle between the basis vectors.
    spots : list of int
        Rows of ``LatticeResult.spots`` indexed by this net.
    g1_index, g2_index : int or None
        Rows of the spots observed at +-g1 and +-g2 (None when not observed).
    cov_inv_nm2 : list
        4 x 4 covariance of (g1x, g1y, g2x, g2y).
    chi2 : float
    dof : int

    Examples
    --------
    >>> lat = Lattice(index=1, g1_inv_nm=[2.5, 0.0], g2_inv_nm=[0.0, 2.5], d_angstrom=[4.0, 4.0],
    ...               d_err_angstrom=[0.01, 0.01], angle_deg=90.0, angle_err_deg=0.1, spots=[3, 5, 8])
    >>> lat.to_dict()["d_angstrom"], lat.n_spots
    ([4.0, 4.0], 3)
    """

    index: int
    g1_inv_nm: list
    g2_inv_nm: list
    d_angstrom: list
    d_err_angstrom: list
    angle_deg: float
    angle_err_deg: float
    spots: list = field(default_factory=list)
    g1_index: int | None = None
    g2_index: int | None = None
    cov_inv_nm2: list = field(default_factory=list)
    chi2: float | None = None
    dof: int = 0

    @property
    def n_spots(self) -> int:
        return len(self.spots)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "g1_inv_nm": list(self.g1_inv_nm),
            "g2_inv_nm": list(self.g2_inv_nm),
            "d_angstrom": list(self.d_angstrom),
            "d_err_angstrom": list(self.d_err_angstrom),
            "angle_deg": self.angle_deg,
            "angle_err_deg": self.angle_err_deg,
            "spots": list(self.spots),
            "n_spots": self.n_spots,
            "g1_index": self.g1_index,
            "g2_index": self.g2_index,
            "cov_inv_nm2": self.cov_inv_nm2,
            "chi2": self.chi2,
            "dof": self.dof,
            "index_convention": "g = n1 * g1 + n2 * g2",
        }

    def describe(self) -> str:
        """One line: ``lattice 1: d1 = ..., d2 = ..., angle = ..., 4 spots``."""
        return (
            f"lattice {self.index}: d1 = {_pm(self.d_angstrom[0], self.d_err_angstrom[0])} Å, "
            f"d2 = {_pm(self.d_angstrom[1], self.d_err_angstrom[1])} Å, "
            f"angle = {_pm(self.angle_deg, self.angle_err_deg)}°, {self.n_spots} spots"
        )


def lattice_from_fit(index: int, fit: lb.BasisFit, rows) -> Lattice:
    """A :class:`Lattice` from a basis fit; ``rows`` are the spot rows it indexes (result order)."""
    nums = lb.basis_numbers(fit)
    return Lattice(
        index=index,
        g1_inv_nm=[float(v) for v in fit.b1],
        g2_inv_nm=[float(v) for v in fit.b2],
        d_angstrom=nums["d_angstrom"],
        d_err_angstrom=nums["d_err_angstrom"],
        angle_deg=nums["angle_deg"],
        angle_err_deg=nums["angle_err_deg"],
        spots=[int(r) for r in rows],
        cov_inv_nm2=fit.cov.tolist(),
        chi2=float(fit.chi2),
        dof=int(fit.dof),
    )


def _spans_plane(G: np.ndarray) -> bool:
    if len(G) < 2:
        return False
    u = G / np.linalg.norm(G, axis=1)[:, None]
    cross = np.abs(u[:, None, 0] * u[None, :, 1] - u[:, None, 1] * u[None, :, 0])
    return bool((cross >= 0.1).any())


def _acceptable(G, hk, member, basis, tol, main_basis, g_limit) -> bool:
    rows = np.nonzero(member)[0]
    for target in ((1, 0), (0, 1)):
        if not any((abs(int(hk[r][0])), abs(int(hk[r][1]))) == target for r in rows):
            return False  # a basis vector not observed
    tol_b = float(np.median(tol[rows]))
    for b in basis:
        if g_limit is not None and np.linalg.norm(b) > 1.1 * g_limit:
            return False
        if main_basis is not None:
            hkf = np.linalg.solve(main_basis, b)
            if np.abs(hkf).max() <= 12 and np.linalg.norm(main_basis @ np.rint(hkf) - b) <= tol_b:
                return False  # a main-lattice node: a side band
    return True


def further_lattices(
    G: np.ndarray,
    covs: np.ndarray,
    snr: np.ndarray,
    tol: np.ndarray,
    free: np.ndarray,
    main_basis=None,
    g_limit: float | None = None,
):
    """Group the ``free`` spots (bool mask) into further nets.

    A net is accepted when it indexes ``MIN_SPOTS`` spots spanning the plane with
    ``|h|, |k| <= MAX_INDEX``, both its (reduced) basis vectors are observed
    spots, they lie within ``g_limit`` (1/nm, the information limit) and neither
    is a node of the main lattice (``main_basis``, 2 x 2 columns g1, g2): a net
    stepping by a main-lattice vector is a side band of the main lattice (scan
    noise mixed with it), not a second crystal.

    Returns
    -------
    list of (hk, member_mask, fit, order)
        Per accepted net: integer indices of every spot (valid where
        ``member_mask``), the :class:`~latticefit.lattice._basis.BasisFit` and
        the harmonic order of each member.

    Examples
    --------
    >>> a, b = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    >>> G = np.array([a, b, a + b, 2 * a, [3.3, 1.1]])
    >>> out = further_lattices(G, np.tile(np.eye(2) * 1e-6, (5, 1, 1)), np.full(5, 20.0), np.full(5, 0.02),
    ...                        np.ones(5, bool))
    >>> len(out), out[0][1].tolist()
    (1, [True, True, True, True, False])
    """
    free = np.asarray(free, bool).copy()
    out = []
    for _ in range(MAX_LATTICES):
        rows = np.nonzero(free)[0]
        if len(rows) < MIN_SPOTS or not _spans_plane(G[rows]):
            break
        found = lb.find_basis(G[rows], snr[rows], tol[rows], max_index=MAX_INDEX)
        if found is None:
            break
        i, j, sign, hk_sub, ok_sub = found
        if int(ok_sub.sum()) < MIN_SPOTS or not _spans_plane(G[rows][ok_sub]):
            break
        r1, r2, T = lb.reduce_basis(G[rows[i]], sign * G[rows[j]])
        hk_sub = np.rint(np.linalg.solve(T, hk_sub.T).T).astype(int)
        hk = np.zeros((len(G), 2), int)
        member = np.zeros(len(G), bool)
        hk[rows] = hk_sub
        member[rows] = ok_sub
        dup = lb.drop_duplicate_indices(hk, member, snr)
        member &= ~dup
        if int(member.sum()) < MIN_SPOTS:
            break
        if not _acceptable(G, hk, member, (r1, r2), tol, main_basis, g_limit):
            break
        fit = lb.fit_basis(G, covs, hk, member)
        order = np.array([gcd(abs(int(h)), abs(int(k))) if m else 0 for (h, k), m in zip(hk, member)])
        out.append((hk, member, fit, order))
        free &= ~member
    return out
