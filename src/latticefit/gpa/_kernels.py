"""Numba kernel of GPA's per-pixel algebra; numpy reference: :func:`latticefit.gpa._strain.deformation`.

From the four phase gradients to the five strain maps is ~35 elementwise
numpy operations, each a pass over memory with a temporary; one fused pass
is several times faster (bench_gpa). The phase angles stay in numpy, whose
float32 SIMD ``atan2`` is faster than a scalar loop (measured: a kernel that
also took the angles was 2x slower than numpy).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["deformation_maps"]


@njit(cache=True, parallel=True)
def _deformation(p1x, p1y, p2x, p2y, k, cinv, out):
    ny, nx = p1x.shape
    for i in prange(ny):
        for j in range(nx):
            a, b, c, d = p1x[i, j], p1y[i, j], p2x[i, j], p2y[i, j]
            q11 = a * cinv[0, 0] + b * cinv[1, 0]
            q12 = a * cinv[0, 1] + b * cinv[1, 1]
            q21 = c * cinv[0, 0] + d * cinv[1, 0]
            q22 = c * cinv[0, 1] + d * cinv[1, 1]
            dxx = k[0, 0] * q11 + k[0, 1] * q21
            dxy = k[0, 0] * q12 + k[0, 1] * q22
            dyx = k[1, 0] * q11 + k[1, 1] * q21
            dyy = k[1, 0] * q12 + k[1, 1] * q22
            axx, axy, ayx, ayy = 1.0 - dxx, -dxy, -dyx, 1.0 - dyy
            det = axx * ayy - axy * ayx
            fxx, fxy, fyx, fyy = ayy / det, -axy / det, -ayx / det, axx / det
            out[0, i, j] = fxx - 1.0
            out[1, i, j] = fyy - 1.0
            out[2, i, j] = 0.5 * (fxy + fyx)
            out[3, i, j] = math.atan2(fyx - fxy, fxx + fyy)
            out[4, i, j] = fxx + fyy - 2.0


def deformation_maps(grads, g_px: np.ndarray, c_nm_per_px: np.ndarray) -> dict[str, np.ndarray]:
    """Same contract as :func:`latticefit.gpa._strain.deformation` (float32 maps)."""
    p1x, p1y, p2x, p2y = (np.ascontiguousarray(g, dtype=np.float32) for g in grads)
    k = -(c_nm_per_px @ np.linalg.inv(g_px)) / (2.0 * np.pi)
    out = np.empty((5,) + p1x.shape, dtype=np.float32)
    _deformation(
        p1x,
        p1y,
        p2x,
        p2y,
        np.ascontiguousarray(k, dtype=np.float64),
        np.ascontiguousarray(np.linalg.inv(c_nm_per_px), dtype=np.float64),
        out,
    )
    return {"exx": out[0], "eyy": out[1], "exy": out[2], "rotation_rad": out[3], "dilatation": out[4]}
