"""The maps of a GPA result that are computed when first read: error maps, amplitudes, phases, displacement.

The strain tensor, rotation and dilatation are what every GPA is run for; the other thirteen maps
(five 1-sigma maps, two fringe amplitudes and their phase sigmas, two geometric phases and the two
displacement components) are each one more full-size pass over the two lattice fields. They are
computed here on first access, all of a group in one pass, and kept. The summary numbers that need
them over the reference region (the mean noise variance of each map, for its systematic floor) come
from two means of ``1 / |h|^2`` instead, because every sigma map is ``sqrt(a1 / |h1|^2 + a2 / |h2|^2)``
(:func:`latticefit.gpa._strain.strain_sigma_coefficients`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _kernels, _strain

__all__ = ["AMPLITUDE_GROUP", "LAZY_MAPS", "PHASE_GROUP", "DerivedMaps"]

#: computed together in one pass over the two fields' amplitudes
AMPLITUDE_GROUP = (
    "sigma_exx",
    "sigma_eyy",
    "sigma_exy",
    "sigma_rotation_rad",
    "sigma_dilatation",
    "amplitude_g1",
    "amplitude_g2",
    "sigma_phase_g1_rad",
    "sigma_phase_g2_rad",
)
#: computed together from the two fields' angles
PHASE_GROUP = ("phase_g1_rad", "phase_g2_rad", "ux_nm", "uy_nm")
LAZY_MAPS = AMPLITUDE_GROUP + PHASE_GROUP


@dataclass(eq=False)
class DerivedMaps:
    """What the lazy maps are computed from, and the maps once computed.

    Attributes
    ----------
    fields : list of LatticeField
        The two demodulated lattice fields (``h``, ``theta``, ``k0_px``, ``phase_var_base``).
    g_px : (2, 2) ndarray
        The refined reflections, cycles/px.
    matrix_nm_per_px : (2, 2) ndarray
    coefs : dict
        Per strain map, ``(a1, a2)`` with ``var = a1 / |h1|^2 + a2 / |h2|^2``.
    engine : {'numba', 'numpy'}
        The numba kernels or their numpy references.
    """

    fields: list
    g_px: np.ndarray
    matrix_nm_per_px: np.ndarray
    coefs: dict
    engine: str = "numba"
    cache: dict = field(default_factory=dict, repr=False)

    def get(self, name: str) -> np.ndarray:
        """The map ``name``, computing its group on first use."""
        if name not in self.cache:
            self.cache.update(self._amplitude_group() if name in AMPLITUDE_GROUP else self._phase_group())
        return self.cache[name]

    def all(self) -> dict[str, np.ndarray]:
        return {n: self.get(n) for n in LAZY_MAPS}

    def residuals(self) -> list[tuple[float, float]]:
        """Per field, the carrier ``g - k0`` (cycles/px) left in ``h`` after the whole-bin shift."""
        return [(g[0] - f.k0_px[0], g[1] - f.k0_px[1]) for f, g in zip(self.fields, self.g_px)]

    def _amplitude_group(self) -> dict[str, np.ndarray]:
        h1, h2 = self.fields[0].h, self.fields[1].h
        if self.engine == "numba":
            return _kernels.amplitude_maps(h1, h2, self.coefs, [f.phase_var_base for f in self.fields])
        maps = {f"sigma_{k}": v for k, v in _strain.strain_sigmas(h1, h2, self.coefs).items()}
        for n, f in enumerate(self.fields, start=1):
            w = np.maximum(np.abs(f.h) ** 2, np.float32(1e-30))
            maps[f"sigma_phase_g{n}_rad"] = np.sqrt(np.float32(f.phase_var_base) / w)
            maps[f"amplitude_g{n}"] = np.float32(2.0) * np.sqrt(w)
        return maps

    def _phase_group(self) -> dict[str, np.ndarray]:
        res = self.residuals()
        if self.engine == "numba":
            phases = [_kernels.wrapped_phase_from_angle(f.theta, r) for f, r in zip(self.fields, res)]
        else:
            phases = [_strain.wrapped_phase(f.h, r) for f, r in zip(self.fields, res)]
        ux, uy = _strain.displacement(phases[0], phases[1], self.g_px, self.matrix_nm_per_px)
        return {"phase_g1_rad": phases[0], "phase_g2_rad": phases[1], "ux_nm": ux, "uy_nm": uy}

    def mean_sigma_squared(self, mask, step: int = 1) -> dict[str, float]:
        """Per strain map, the mean of ``sigma^2`` over ``mask`` (from the means of ``1 / |h|^2``).

        ``mask`` is on the grid of every ``step``-th pixel in both directions.
        """
        inv = [_kernels.masked_mean_inverse_power(f.h[::step, ::step], mask) for f in self.fields]
        return {n: float(a1 * inv[0] + a2 * inv[1]) for n, (a1, a2) in self.coefs.items()}
