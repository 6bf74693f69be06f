"""Part of :mod:`_core` (see its docstring): truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidDataError
from ._series import _SHELL_RTOL, _az180, _friedel_representative, _structure_factor

# ----------------------------------------------------------------------------- truth objects


def _first_order(b1, b2, basis, *, hk_max: int = 8, rel_tol: float = 1e-9):
    """First-order reflections of a net with a basis.

    The shortest shell of reflections with non-zero structure factor, plus
    further shells until they span the plane; one member per Friedel pair
    (azimuth in [0, 180)), sorted by azimuth. Independent of the column width.
    """
    r = np.arange(-hk_max, hk_max + 1)
    hh, kk = np.meshgrid(r, r, indexing="ij")
    hh, kk = hh.ravel(), kk.ravel()
    half = (hh > 0) | ((hh == 0) & (kk > 0))
    hh, kk = hh[half], kk[half]
    F_abs = np.abs(_structure_factor(hh, kk, basis))
    wsum = sum(abs(w) for _, _, w in basis)
    ok = F_abs > rel_tol * wsum
    hh, kk = hh[ok], kk[ok]
    g = hh[:, None] * b1[None, :] + kk[:, None] * b2[None, :]
    gl = np.linalg.norm(g, axis=1)
    order = np.argsort(gl, kind="stable")
    chosen: list[int] = []
    i = 0
    while i < len(order):
        shell_len = gl[order[i]]
        shell = [j for j in order[i:] if abs(gl[j] - shell_len) <= _SHELL_RTOL * shell_len]
        chosen.extend(shell)
        i += len(shell)
        if np.linalg.matrix_rank(g[chosen], tol=1e-9 * shell_len) >= 2:
            break
    if not chosen:
        raise InvalidDataError(
            f"no reflection with non-zero structure factor up to |h|, |k| = {hk_max}: the basis weights cancel", "synth"
        )
    out = [_friedel_representative(int(hh[j]), int(kk[j]), g[j]) for j in chosen]
    out.sort(key=lambda t: round(float(_az180(t[2])[0]), 9))
    return out


def _enumerate_reflections(b1, b2, g_max: float, a1, a2):
    hmax = int(math.ceil(g_max * np.linalg.norm(a1))) + 1
    kmax = int(math.ceil(g_max * np.linalg.norm(a2))) + 1
    hh, kk = np.meshgrid(np.arange(-hmax, hmax + 1), np.arange(-kmax, kmax + 1), indexing="ij")
    hh, kk = hh.ravel(), kk.ravel()
    g = hh[:, None] * b1[None, :] + kk[:, None] * b2[None, :]
    gl = np.linalg.norm(g, axis=1)
    sel = (gl <= g_max * (1 + 1e-12)) & ((hh != 0) | (kk != 0))
    return hh[sel], kk[sel], g[sel], gl[sel]


@dataclass
class LatticeTruth:
    """Ground truth of a :func:`lattice_image`.

    Attributes
    ----------
    pixel_size_nm : (float, float)
        Pixel size (y, x) in nm.
    a1_nm, a2_nm : ndarray (2,)
        Real-space basis vectors (x, y) in nm.
    b1_inv_nm, b2_inv_nm : ndarray (2,)
        Reciprocal basis (gx, gy) in 1/nm, ``a_i . b_j = delta_ij``.
    g_inv_nm : ndarray (n, 2)
        First-order reflections (gx, gy) in 1/nm, one per Friedel pair (the
        member with azimuth in [0, 180)), sorted by azimuth: the shortest
        reflections with non-zero structure factor (and, for a net whose
        shortest shell is collinear, the next shell that spans the plane).
    hk : list of (int, int)
        Net indices ``(h, k)`` of ``g_inv_nm``, ``g = h b1 + k b2``.
    labels : list of str
        Crystallographic labels of ``g_inv_nm`` (3-D Miller indices for the
        crystal presets, ``'(h k)'`` otherwise).
    d_angstrom : ndarray (n,)
        d-spacings ``1 / |g|`` of ``g_inv_nm`` in Å.
    azimuth_deg : ndarray (n,)
        Azimuths of ``g_inv_nm``, degrees from +x towards +y, in [0, 180).
    angle_deg : float
        Angle between the plane families ``b1`` and ``b2``, folded to [0, 90].
    basis : tuple of (u, v, weight)
        Column basis in fractional coordinates of ``a1``, ``a2``.
    origin_px : (float, float)
        Pixel position (x, y) of the column at fractional (0, 0).
    column_sigma_nm, contrast, background, noise_sigma, dose : float
        Rendering parameters (see the module docstring).
    inclusions : list of dict
        One per embedded disk: ``x_px``, ``y_px``, ``radius_nm``,
        ``mismatch``, ``rotation_deg``, ``a1_nm``, ``a2_nm``, ``g_inv_nm``,
        ``d_angstrom``, ``azimuth_deg``, ``contrast``, ``edge_nm``.
    """

    pixel_size_nm: tuple[float, float]
    a1_nm: np.ndarray
    a2_nm: np.ndarray
    b1_inv_nm: np.ndarray
    b2_inv_nm: np.ndarray
    g_inv_nm: np.ndarray
    hk: list
    labels: list
    d_angstrom: np.ndarray
    azimuth_deg: np.ndarray
    angle_deg: float
    basis: tuple
    origin_px: tuple[float, float]
    column_sigma_nm: float
    contrast: float
    background: float
    noise_sigma: float
    dose: float | None
    inclusions: list = field(default_factory=list)
    _series: Any = field(default=None, repr=False)
    _label_fn: Any = field(default=None, repr=False)

    def reflections(self, g_max_inv_nm: float, *, half: bool = False):
        """Every reflection of the net up to ``|g| <= g_max_inv_nm`` with non-zero structure factor.

        Parameters
        ----------
        g_max_inv_nm : float
            Largest ``|g|`` in 1/nm (e.g. the Nyquist frequency ``0.5 / pixel_size_nm``).
        half : bool
            Keep one member of each Friedel pair (azimuth in [0, 180)).

        Returns
        -------
        pandas.DataFrame
            Columns ``h``, ``k``, ``label``, ``gx_inv_nm``, ``gy_inv_nm``,
            ``g_inv_nm``, ``d_angstrom``, ``azimuth_deg`` (in [0, 360), or
            [0, 180) with ``half``), ``amplitude`` (amplitude of the cosine
            fringe in image intensity units: the pattern is
            ``background + sum amplitude cos(2 pi g.(r - r0) + phase)`` over
            one member of each pair) and ``phase_rad``; sorted by ``|g|``
            then azimuth.

        Examples
        --------
        >>> from latticefit.synth import cubic_001
        >>> mg, t = cubic_001(shape=(64, 64))
        >>> t.reflections(4.0, half=True)[["label", "d_angstrom"]].round(3).values.tolist()
        [['(1 0 0)', 3.905], ['(0 1 0)', 3.905], ['(1 1 0)', 2.761], ['(-1 1 0)', 2.761]]
        """
        import pandas as pd

        a1, a2 = self.a1_nm, self.a2_nm
        hh, kk, g, gl = _enumerate_reflections(self.b1_inv_nm, self.b2_inv_nm, g_max_inv_nm, a1, a2)
        F = _structure_factor(hh, kk, self.basis)
        wsum = sum(abs(w) for _, _, w in self.basis)
        ok = np.abs(F) > 1e-9 * wsum
        hh, kk, g, gl, F = hh[ok], kk[ok], g[ok], gl[ok], F[ok]
        area = abs(a1[0] * a2[1] - a1[1] * a2[0])
        s = self.column_sigma_nm
        p2v = self._series.p2v if self._series is not None else 1.0
        coef = (2 * math.pi * s**2 / area) * np.exp(-2 * math.pi**2 * s**2 * gl**2) * F
        amp = 2.0 * np.abs(coef) / p2v * abs(self.contrast)
        phase = np.angle(coef) + (math.pi if self.contrast < 0 else 0.0)
        az = np.degrees(np.arctan2(g[:, 1], g[:, 0])) % 360.0
        if half:
            keep = (az < 180.0 - 1e-9) | (az > 360.0 - 1e-9)
            az = np.where(az > 360.0 - 1e-9, 0.0, az)
            hh, kk, g, gl, amp, phase, az = hh[keep], kk[keep], g[keep], gl[keep], amp[keep], phase[keep], az[keep]
        lab = self._label_fn or _label_2d
        df = pd.DataFrame(
            {
                "n1": hh.astype(int),
                "n2": kk.astype(int),
                "label": [lab(int(a), int(b)) for a, b in zip(hh, kk)],
                "gx_inv_nm": g[:, 0],
                "gy_inv_nm": g[:, 1],
                "g_abs_inv_nm": gl,
                "d_angstrom": 10.0 / gl,
                "azimuth_deg": az,
                "amplitude": amp,
                "phase_rad": np.angle(np.exp(1j * phase)),
            }
        )
        df["_gr"] = np.round(df["g_abs_inv_nm"], 9)
        df["_ar"] = np.round(df["azimuth_deg"], 6)
        df = df.sort_values(["_gr", "_ar"], kind="stable").drop(columns=["_gr", "_ar"]).reset_index(drop=True)
        return df

    def to_dict(self) -> dict:
        """JSON-ready dict (lengths in the units their names state)."""
        return {
            "kind": "lattice",
            "pixel_size_nm": list(self.pixel_size_nm),
            "a1_nm": list(map(float, self.a1_nm)),
            "a2_nm": list(map(float, self.a2_nm)),
            "b1_inv_nm": list(map(float, self.b1_inv_nm)),
            "b2_inv_nm": list(map(float, self.b2_inv_nm)),
            "g_inv_nm": np.asarray(self.g_inv_nm).tolist(),
            "hk": [list(x) for x in self.hk],
            "labels": list(self.labels),
            "d_angstrom": np.asarray(self.d_angstrom).tolist(),
            "azimuth_deg": np.asarray(self.azimuth_deg).tolist(),
            "angle_deg": float(self.angle_deg),
            "basis": [list(b) for b in self.basis],
            "origin_px": list(self.origin_px),
            "column_sigma_nm": self.column_sigma_nm,
            "contrast": self.contrast,
            "background": self.background,
            "noise_sigma": self.noise_sigma,
            "dose": self.dose,
            "inclusions": [_jsonable_inclusion(i) for i in self.inclusions],
        }


def _jsonable_inclusion(inc: dict) -> dict:
    out = {}
    for k, v in inc.items():
        out[k] = np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
    return out


def _label_2d(h: int, k: int) -> str:
    return f"({h} {k})"
