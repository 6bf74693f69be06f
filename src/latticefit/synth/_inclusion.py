"""Part of :mod:`_core` (see its docstring): the inclusions (embedded disks) of :func:`lattice_image`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidDataError
from ._series import _az180, _net_series, _net_vectors, _render_series, reciprocal_basis
from ._truth import _first_order, _label_2d


@dataclass(frozen=True)
class _InclusionSpec:
    """One inclusion's parameters, parsed and checked (keys of ``lattice_image(inclusions=...)``)."""

    x_px: float
    y_px: float
    radius_nm: float
    mismatch: float
    rotation_deg: float
    contrast: float
    edge_nm: float


def _add_inclusion(
    img,
    inc,
    n,
    *,
    a_nm,
    b_nm,
    gamma_deg,
    rotation_deg,
    basis,
    column_sigma_nm,
    contrast,
    background,
    ps,
    origin,
    a1,
    a2,
    source,
    label_fn,
):
    """Blend inclusion ``n`` (a dict, see :func:`lattice_image`) into ``img`` (in place); returns it and its truth."""
    spec = _parse_inclusion(inc, n, rotation_deg=rotation_deg, contrast=contrast, source=source)
    s = 1.0 + spec.mismatch
    ia1, ia2 = _net_vectors(a_nm * s, b_nm * s, gamma_deg, spec.rotation_deg)
    ib1, ib2 = reciprocal_basis(ia1, ia2)
    series = _net_series(ia1, ia2, basis, column_sigma_nm)
    origin_i = _coherent_origin(spec, ps, origin, a1, a2)
    _blend_disk(img, spec, series, ps, origin_i, background)
    truth = _inclusion_truth(spec, origin_i, (ia1, ia2), (ib1, ib2), basis, label_fn)
    return img, truth


def _parse_inclusion(inc, n, *, rotation_deg, contrast, source) -> _InclusionSpec:
    """Read centre, radius and mismatch (required) and rotation, contrast, edge (defaults: the matrix's, 0)."""
    try:
        xc, yc = float(inc["x_px"]), float(inc["y_px"])
        radius_nm = float(inc["radius_nm"])
        mismatch = float(inc.get("mismatch", 0.0))
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidDataError(f"inclusion {n} needs x_px, y_px, radius_nm and mismatch ({e})", source) from None
    if not radius_nm > 0:
        raise InvalidDataError(f"inclusion {n}: radius_nm must be > 0, got {radius_nm}", source)
    if not mismatch > -1:
        raise InvalidDataError(f"inclusion {n}: mismatch must be > -1, got {mismatch}", source)
    rot = float(inc.get("rotation_deg", rotation_deg))
    c_inc = float(inc.get("contrast", contrast))
    edge_nm = float(inc.get("edge_nm", 0.0))
    return _InclusionSpec(xc, yc, radius_nm, mismatch, rot, c_inc, edge_nm)


def _coherent_origin(spec: _InclusionSpec, ps, origin, a1, a2):
    """Origin (x, y px) of the inclusion's net: the matrix lattice point nearest to the disk centre."""
    py, px = ps
    rel = np.array([(spec.x_px - origin[0]) * px, (spec.y_px - origin[1]) * py])
    frac = np.linalg.solve(np.array([a1, a2]).T, rel)
    lp = np.round(frac) @ np.array([a1, a2])
    return origin[0] + lp[0] / px, origin[1] + lp[1] / py


def _blend_disk(img, spec: _InclusionSpec, series, ps, origin_i, background) -> None:
    """Render the inclusion's net in the disk's bounding box and blend it in (sharp, or linear over edge_nm)."""
    py, px = ps
    xc, yc, radius_nm, edge_nm = spec.x_px, spec.y_px, spec.radius_nm, spec.edge_nm
    h, w = img.shape
    r_px_x, r_px_y = (radius_nm + edge_nm / 2) / px, (radius_nm + edge_nm / 2) / py
    x0, x1 = max(0, int(math.floor(xc - r_px_x)) - 1), min(w, int(math.ceil(xc + r_px_x)) + 2)
    y0, y1 = max(0, int(math.floor(yc - r_px_y)) - 1), min(h, int(math.ceil(yc + r_px_y)) + 2)
    if not (x0 < x1 and y0 < y1):
        return
    rows = np.arange(y0, y1, dtype=np.float64)
    cols = np.arange(x0, x1, dtype=np.float64)
    patch = background + spec.contrast * _render_series(series, rows, cols, ps, origin_i)
    rr = np.hypot(((cols - xc) * px)[None, :], ((rows - yc) * py)[:, None])
    if edge_nm > 0:
        wgt = np.clip((radius_nm - rr) / edge_nm + 0.5, 0.0, 1.0)
    else:
        wgt = (rr <= radius_nm).astype(np.float64)
    sub = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = sub * (1.0 - wgt) + patch * wgt


def _inclusion_truth(spec: _InclusionSpec, origin_i, a12, b12, basis, label_fn) -> dict:
    """The inclusion's truth record (its parameters, net origin, real and reciprocal basis, first order)."""
    (ia1, ia2), (ib1, ib2) = a12, b12
    first = _first_order(ib1, ib2, basis)
    g = np.array([f[2] for f in first])
    lab = label_fn or _label_2d
    return {
        "x_px": spec.x_px,
        "y_px": spec.y_px,
        "radius_nm": spec.radius_nm,
        "mismatch": spec.mismatch,
        "rotation_deg": spec.rotation_deg,
        "contrast": spec.contrast,
        "edge_nm": spec.edge_nm,
        "origin_px": [float(origin_i[0]), float(origin_i[1])],
        "a1_nm": ia1,
        "a2_nm": ia2,
        "b1_inv_nm": ib1,
        "b2_inv_nm": ib2,
        "g_inv_nm": g,
        "hk": [[f[0], f[1]] for f in first],
        "labels": [lab(f[0], f[1]) for f in first],
        "d_angstrom": 10.0 / np.linalg.norm(g, axis=1),
        "azimuth_deg": _az180(g),
    }
