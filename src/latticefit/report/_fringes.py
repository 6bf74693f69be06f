"""Part of :mod:`_lattice_report` (see its docstring): fringes."""

from __future__ import annotations

import math

import numpy as np


# =====================================================================  fringes
def fringe_phase(sub: np.ndarray, g_inv_nm, pixel_size_nm) -> float:
    """Phase φ (rad) of the fringes of reciprocal vector ``g`` in an image: maxima where g·r = n − φ/2π.

    ``r`` is measured in nm from the centre of pixel (0, 0) of ``sub``; ``g`` is (gx, gy) in 1/nm.
    """
    sub = np.asarray(sub, np.float64)
    gp = _pixel_matrix(pixel_size_nm).T @ np.asarray(g_inv_nm, float)  # cycles/px
    yy, xx = np.mgrid[: sub.shape[0], : sub.shape[1]]
    arg = 2 * np.pi * (gp[0] * xx + gp[1] * yy)
    c = np.sum((sub - sub.mean()) * np.exp(-1j * arg))
    return float(np.angle(c))


def fringe_segments(
    g_inv_nm, phase: float, pixel_size_nm, center_px, *, n_lines: int = 5, half_length_px: float = 20.0
):
    """End points (pixels) of ``n_lines`` fringe-maximum lines perpendicular to ``g`` around ``center_px``.

    Returns
    -------
    ndarray (n_lines, 2, 2)
        ``[[x0, y0], [x1, y1]]`` per line, in the pixel frame where ``phase`` was measured.
    """
    gx, gy = float(g_inv_nm[0]), float(g_inv_nm[1])
    A = _pixel_matrix(pixel_size_nm)
    px = math.sqrt(abs(np.linalg.det(A)))
    g = math.hypot(gx, gy)
    u = np.array([gx, gy]) / g  # unit vector along g (nm frame)
    c_nm = A @ np.asarray(center_px, float)
    t0 = gx * c_nm[0] + gy * c_nm[1]
    off = phase / (2 * np.pi)
    n0 = round(t0 + off)
    perp = np.array([-u[1], u[0]])
    segs = []
    for k in range(n_lines):
        n = n0 + k - (n_lines - 1) // 2
        foot = c_nm + u * ((n - off - t0) / g)
        for_nm = np.array([foot - perp * half_length_px * px, foot + perp * half_length_px * px])
        segs.append(np.linalg.solve(A, for_nm.T).T)
    return np.array(segs)


def _pixel_matrix(pixel_size_nm) -> np.ndarray:
    """A (py, px) pair or a 2x2 pixel-to-nm matrix (x, y order) -> the matrix."""
    a = np.asarray(pixel_size_nm, float)
    return a.reshape(2, 2) if a.size == 4 else np.diag([a[1], a[0]])


def hkl_label(hkl, *, mathtext: bool = True) -> str:
    """``(0 1 -1)`` as ``(01\u0305 1)``-style text: mathtext with overbars for negative indices.

    Examples
    --------
    >>> hkl_label((0, 1, -1), mathtext=False)
    '(01-1)'
    >>> hkl_label((0, 1, -1))
    '$(01\\\\bar{1})$'
    """
    if hkl is None:
        return ""
    if isinstance(hkl, str):
        parts = _parse_hkl_text(hkl)
        if parts is None:
            return hkl
        hkl = parts
    idx = [int(round(v)) for v in hkl]
    if not mathtext:
        return "(" + "".join(str(v) for v in idx) + ")"
    body = "".join(rf"\bar{{{-v}}}" if v < 0 else str(v) for v in idx)
    return f"$({body})$"


def _parse_hkl_text(text: str):
    t = text.strip().strip("()[]{}").replace(",", " ")
    if " " in t.strip():
        try:
            return [int(v) for v in t.split()]
        except ValueError:
            return None
    out, i = [], 0
    while i < len(t):
        if t[i] == "-" and i + 1 < len(t) and t[i + 1].isdigit():
            out.append(-int(t[i + 1]))
            i += 2
        elif t[i].isdigit():
            out.append(int(t[i]))
            i += 1
        else:
            return None
    return out if len(out) in (3, 4) else None


# =====================================================================  result adapters
# Thin accessors over the LatticeResult / comparison / indexing objects, so the drawing
# code below only sees plain numbers.
def _spot_table(lattice):
    """The spots DataFrame of a LatticeResult."""
    return lattice.spots


def _basis_rows(lattice) -> tuple[int, int] | None:
    """Row positions (in ``lattice.spots``) of the two basis spots, or None."""
    spots = _spot_table(lattice)
    if spots is None or len(spots) == 0:
        return None
    basis = getattr(lattice, "basis", None) or {}
    for k1, k2 in (("g1_index", "g2_index"), ("index_1", "index_2"), ("i", "j"), ("g1", "g2")):
        if k1 in basis and k2 in basis and not isinstance(basis[k1], (list, tuple, dict)):
            try:
                return int(basis[k1]), int(basis[k2])
            except (TypeError, ValueError):
                pass
    # fall back: the two strongest first-order spots not parallel
    order = spots["order"].to_numpy() if "order" in spots else np.ones(len(spots))
    snr = spots["snr"].to_numpy() if "snr" in spots else np.ones(len(spots))
    cand = [i for i in np.argsort(-snr) if order[i] == 1] or list(np.argsort(-snr))
    if len(cand) < 2:
        return (int(cand[0]), None) if cand else None
    az = spots["azimuth_deg"].to_numpy()
    i = int(cand[0])
    for j in cand[1:]:
        dif = abs(((az[j] - az[i]) + 90.0) % 180.0 - 90.0)
        if dif > 10.0:
            return i, int(j)
    return i, None


def _basis_angle(lattice, rows) -> tuple[float, float]:
    """Acute angle (deg) between the two drawn spots and its uncertainty.

    The fitted basis angle when the rows are the basis spots, else the angle
    table's entry for the pair, else computed from the two spots.
    """
    basis = getattr(lattice, "basis", None) or {}
    if rows is None or len(rows) < 2 or rows[1] is None:
        return np.nan, np.nan
    if "angle_deg" in basis and {basis.get("g1_index"), basis.get("g2_index")} == set(rows):
        return float(basis["angle_deg"]), float(basis.get("angle_err_deg", np.nan))
    angles = getattr(lattice, "angles", None)
    if angles is not None and len(angles):
        for r in angles.to_dict("records"):
            if {int(r["spot_i"]), int(r["spot_j"])} == set(rows):
                return float(r["angle_deg"]), float(r["angle_err_deg"])
    spots = _spot_table(lattice)
    a = spots.iloc[list(rows)]
    g = a[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    ang = math.degrees(math.acos(np.clip(abs(np.dot(g[0], g[1])) / np.linalg.norm(g[0]) / np.linalg.norm(g[1]), 0, 1)))
    err = math.hypot(*a["azimuth_err_deg"].to_numpy(float)) if "azimuth_err_deg" in a else np.nan
    return ang, err


def plain_text(label: str) -> str:
    r"""A figure label without mathtext: ``'d$(01\bar{1})$'`` -> ``'d(01-1)'``, ``'$d_1$'`` -> ``'d1'``.

    Examples
    --------
    >>> plain_text(r"d$(01\bar{1})$ = 4.195 ± 0.003 Å")
    'd(01-1) = 4.195 ± 0.003 Å'
    >>> plain_text(r"$g_{2}$")
    'g2'
    """
    import re

    t = re.sub(r"\\bar\{(\d+)\}", r"-\1", label)
    t = re.sub(r"_\{([^}]*)\}", r"\1", t)
    t = re.sub(r"_(\w)", r"\1", t)
    return t.replace("$", "")
