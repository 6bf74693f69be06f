"""Part of :mod:`_phases` (see its docstring): zones."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

from ..errors import AnalysisError
from ._reflections import _as_hkl, _as_hkl_raw, _reflection_table, g_cartesian
from ._structure import DEFAULT_BEAM_ENERGY_KV, Phase


# ------------------------------------------------------------- zone axes
def _primitive(v) -> tuple[int, ...]:
    v = [int(x) for x in v]
    g = reduce(math.gcd, [abs(x) for x in v]) or 1
    return tuple(x // g for x in v)


def _zone_key(v):
    nonneg = all(x >= 0 for x in v)
    return (nonneg, sum(x > 0 for x in v), tuple(v))


def equivalent_zone_axes(phase: Phase, uvw) -> set[tuple[int, int, int]]:
    """All directions equivalent to ``[uvw]`` under the Laue group of the phase."""
    v = np.asarray(_primitive(uvw))
    return set(map(tuple, (phase.laue_rotations() @ v).tolist()))


def _canonical_zone(phase: Phase, uvw) -> tuple[int, int, int]:
    orbit = equivalent_zone_axes(phase, uvw)
    cands = sorted(orbit, key=_zone_key, reverse=True)
    best = cands[0]
    # single-axis cubic-type directions read best as [001]
    if sum(x != 0 for x in best) == 1:
        for c in orbit:
            if c[2] > 0 and c[0] == 0 and c[1] == 0:
                return c
    return best


def same_zone_axis(phase: Phase, uvw1, uvw2) -> bool:
    """True when the two directions are equivalent by the phase's Laue symmetry.

    Examples
    --------
    >>> from latticefit.crystal import get_phase, same_zone_axis
    >>> same_zone_axis(get_phase("SrTiO3"), (1, 1, 0), (0, -1, 1))
    True
    """
    return _primitive(uvw2) in equivalent_zone_axes(phase, uvw1)


def unique_zone_axes(phase: Phase, max_index: int = 3) -> list[tuple[int, int, int]]:
    """Symmetry-unique zone axes with |u|, |v|, |w| <= ``max_index`` (Laue-group reduced).

    Sorted by the length of the direction (low-index axes first).

    Examples
    --------
    >>> from latticefit.crystal import get_phase, unique_zone_axes
    >>> unique_zone_axes(get_phase("SrTiO3"), 1)
    [(0, 0, 1), (1, 1, 0), (1, 1, 1)]
    """
    key = ("zones", int(max_index))
    if key in phase._cache:
        return phase._cache[key]
    seen, out = set(), []
    n = int(max_index)
    A = phase.direct_matrix
    for u in range(-n, n + 1):
        for v in range(-n, n + 1):
            for w in range(-n, n + 1):
                if (u, v, w) == (0, 0, 0) or _primitive((u, v, w)) != (u, v, w):
                    continue
                if (u, v, w) in seen:
                    continue
                orbit = equivalent_zone_axes(phase, (u, v, w))
                seen |= orbit
                out.append(_canonical_zone(phase, (u, v, w)))
    out.sort(key=lambda z: (float(np.linalg.norm(np.asarray(z) @ A)), tuple(-abs(x) for x in z)))
    phase._cache[key] = out
    return out


def zone_axis_of(hkl1, hkl2) -> tuple[int, int, int]:
    """The zone axis [uvw] containing two reflections (cross product of the indices, reduced).

    Examples
    --------
    >>> from latticefit.crystal import zone_axis_of
    >>> zone_axis_of((1, -1, 0), (0, 1, -1))
    (1, 1, 1)
    """
    u = np.cross(_as_hkl(hkl1), _as_hkl(hkl2))
    if not np.any(u):
        raise AnalysisError("the two reflections are parallel: they define no zone axis")
    u = _primitive(u)
    if sum(x < 0 for x in u) > sum(x > 0 for x in u):
        u = tuple(-x for x in u)
    return u


def angle_between_reflections(phase: Phase, hkl1, hkl2) -> float:
    """Angle between two reciprocal-lattice vectors in degrees (metric tensor).

    Examples
    --------
    >>> from latticefit.crystal import get_phase, angle_between_reflections
    >>> round(angle_between_reflections(get_phase("SrTiO3"), (1, 0, 0), (1, 1, 0)), 6)
    45.0
    """
    g1, g2 = g_cartesian(phase, hkl1), g_cartesian(phase, hkl2)
    c = float(g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def zone_frame(phase: Phase, uvw, hkl_first=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal in-plane basis (e1, e2) and beam direction n of zone [uvw] (Cartesian).

    e1 lies along ``hkl_first`` (default: the shortest in-zone reciprocal vector);
    e2 = n x e1, so (e1, e2, n) is right-handed.
    """
    n = np.asarray(_primitive(uvw), float) @ phase.direct_matrix
    n /= np.linalg.norm(n)
    if hkl_first is None:
        tab = _reflection_table(phase, 0.5, DEFAULT_BEAM_ENERGY_KV)
        inz = tab["hkl"] @ np.asarray(_primitive(uvw)) == 0
        hkl_first = tab["hkl"][np.nonzero(inz)[0][0]]
    e1 = g_cartesian(phase, hkl_first)
    e1 = e1 - (e1 @ n) * n
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    return e1, e2, n


def zone_axis_reflections(
    phase: Phase,
    zone_axis,
    *,
    d_min_angstrom: float = 1.0,
    g_max_inv_nm: float | None = None,
    beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
    include_extinct: bool = False,
):
    """Reflections of the zero-order Laue zone of ``[uvw]`` with d >= ``d_min_angstrom``.

    ``g_max_inv_nm`` (|g| <= g_max in 1/nm), when given, replaces ``d_min_angstrom = 10 / g_max``.

    Returns a DataFrame (both Friedel mates) with h, k, l, d_angstrom, g_inv_nm, gx_inv_nm,
    gy_inv_nm (in-plane coordinates, x along the shortest allowed reflection), angle_deg
    (azimuth in that frame), F_abs, intensity_rel, allowed, extinction_kind, extinction_reason.
    For a hexagonal phase the 4-index (hkil) is added as column ``hkil``.

    Examples
    --------
    >>> from latticefit.crystal import get_phase, zone_axis_reflections
    >>> z = zone_axis_reflections(get_phase("MAPbBr3"), (1, 1, 1), d_min_angstrom=4.0)
    >>> len(z), round(float(z.d_angstrom.iloc[0]), 3)
    (6, 4.195)
    """
    import pandas as pd

    uvw = np.asarray(_primitive(zone_axis))
    if g_max_inv_nm is not None:
        d_min_angstrom = 10.0 / float(g_max_inv_nm)
    tab = _reflection_table(phase, d_min_angstrom, beam_energy_kv)
    inz = tab["hkl"] @ uvw == 0
    keep = inz & (tab["allowed"] | include_extinct)
    idx = np.nonzero(keep)[0]
    if idx.size == 0:
        return pd.DataFrame(
            columns=[
                "h",
                "k",
                "l",
                "d_angstrom",
                "g_inv_nm",
                "gx_inv_nm",
                "gy_inv_nm",
                "angle_deg",
                "F_abs",
                "intensity_rel",
                "allowed",
                "extinction_kind",
                "extinction_reason",
            ]
        )
    first_allowed = np.nonzero(inz & tab["allowed"])[0]
    first = tab["hkl"][first_allowed[0] if first_allowed.size else idx[0]]
    e1, e2, _ = zone_frame(phase, uvw, first)
    g = tab["g_cart"][idx] * 10.0
    gx, gy = g @ e1, g @ e2
    hkl = tab["hkl"][idx]
    df = pd.DataFrame(
        {
            "h": hkl[:, 0],
            "k": hkl[:, 1],
            "l": hkl[:, 2],
            "d_angstrom": tab["d"][idx],
            "g_abs_inv_nm": 10.0 / tab["d"][idx],
            "gx_inv_nm": gx,
            "gy_inv_nm": gy,
            "angle_deg": np.degrees(np.arctan2(gy, gx)),
            "F_abs": tab["F_abs"][idx],
            "intensity_rel": tab["intensity_rel"][idx],
            "allowed": tab["allowed"][idx],
            "extinction_kind": [tab["kind"][i] for i in idx],
            "extinction_reason": [tab["reason"][i] for i in idx],
        }
    )
    if phase.is_hexagonal:
        df["hkil"] = [hkl_to_hkil(h) for h in hkl]
    return df


# ------------------------------------------------------- 4-index notation
def hkl_to_hkil(hkl) -> tuple[int, int, int, int]:
    """Miller-Bravais (hkil) of a hexagonal plane (hkl): i = -(h + k).

    Examples
    --------
    >>> from latticefit.crystal import hkl_to_hkil
    >>> hkl_to_hkil((1, 0, 1))
    (1, 0, -1, 1)
    """
    h, k, l = (int(v) for v in _as_hkl_raw(hkl)[:3])
    return (h, k, -(h + k), l)


def uvw_to_uvtw(uvw) -> tuple[int, int, int, int]:
    """Four-index direction [UVTW] of a three-index hexagonal direction [uvw] (reduced to integers).

    U = (2u - v)/3, V = (2v - u)/3, T = -(u + v)/3, W = w.

    Examples
    --------
    >>> from latticefit.crystal import uvw_to_uvtw
    >>> uvw_to_uvtw((1, 0, 0))
    (2, -1, -1, 0)
    >>> uvw_to_uvtw((1, 1, 0))
    (1, 1, -2, 0)
    """
    u, v, w = (int(x) for x in _as_hkl_raw(uvw)[:3])
    U, V, T, W = 2 * u - v, 2 * v - u, -(u + v), 3 * w
    return _primitive((U, V, T, W))  # type: ignore[return-value]
