"""Part of :mod:`_indexing` (see its docstring): index_nets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._phases import (
    Phase,
    _reflection_table,
    unique_zone_axes,
    zone_frame,
)

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
    z: np.ndarray  # complex in-plane coordinates (1/nm), both Friedel mates
    absz: np.ndarray
    hkl: np.ndarray  # (m, 3)
    kind: np.ndarray  # 0 allowed, 1 centring-extinct, 2 dynamical-extinct
    intensity: np.ndarray  # |F|^2 relative to the strongest allowed reflection of the zone
    penalty: np.ndarray
    reason: list
    length: float  # |uvw| in Å (sorting key for ties)


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
        nets.append(
            _ZoneNet(
                tuple(uvw),
                z,
                np.abs(z),
                tab["hkl"][idx],
                k,
                inten / imax,
                pen,
                [tab["reason"][i] for i in idx],
                float(np.linalg.norm(np.asarray(uvw) @ phase.direct_matrix)),
            )
        )
    phase._cache[key] = nets
    return nets
