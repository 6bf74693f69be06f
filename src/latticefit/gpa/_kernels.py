"""Numba kernel of GPA's per-pixel algebra; numpy reference: :func:`latticefit.gpa._strain.deformation`.

From the four phase gradients to the five strain maps is ~35 elementwise
numpy operations, each a pass over memory with a temporary; one fused pass
is several times faster (bench_gpa). The phase angles stay in numpy, whose
float32 SIMD ``atan2`` is faster than a scalar loop (measured: a kernel that
also took the angles was 2x slower than numpy); for the same reason the
rotation's ``atan2`` runs in numpy on the two arguments the kernel writes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["deformation_maps"]


@njit(cache=True, parallel=True)
def _deformation(p1x, p1y, p2x, p2y, k, cinv, out, rot_x):
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
            out[3, i, j] = fyx - fxy  # the rotation's atan2 arguments: numpy's SIMD float32 atan2 follows
            rot_x[i, j] = fxx + fyy
            out[4, i, j] = fxx + fyy - 2.0


def deformation_maps(grads, g_px: np.ndarray, c_nm_per_px: np.ndarray) -> dict[str, np.ndarray]:
    """Same contract as :func:`latticefit.gpa._strain.deformation` (float32 maps)."""
    p1x, p1y, p2x, p2y = (np.ascontiguousarray(g, dtype=np.float32) for g in grads)
    k = -(c_nm_per_px @ np.linalg.inv(g_px)) / (2.0 * np.pi)
    out = np.empty((5,) + p1x.shape, dtype=np.float32)
    rot_x = np.empty(p1x.shape, dtype=np.float32)
    _deformation(
        p1x,
        p1y,
        p2x,
        p2y,
        np.ascontiguousarray(k, dtype=np.float64),
        np.ascontiguousarray(np.linalg.inv(c_nm_per_px), dtype=np.float64),
        out,
        rot_x,
    )
    np.arctan2(out[3], rot_x, out=out[3])  # a scalar atan2 in the kernel took 3/4 of its time
    return {"exx": out[0], "eyy": out[1], "exy": out[2], "rotation_rad": out[3], "dilatation": out[4]}


@njit(cache=True, parallel=True)
def _amplitude_maps(h1, h2, coef, phase_var, out):
    ny, nx = h1.shape
    for i in prange(ny):
        for j in range(nx):
            a = h1[i, j]
            b = h2[i, j]
            w1 = max(np.float32(a.real * a.real + a.imag * a.imag), np.float32(1e-30))
            w2 = max(np.float32(b.real * b.real + b.imag * b.imag), np.float32(1e-30))
            inv1 = np.float32(1.0) / w1
            inv2 = np.float32(1.0) / w2
            for m in range(coef.shape[0]):
                out[m, i, j] = math.sqrt(coef[m, 0] * inv1 + coef[m, 1] * inv2)
            m = coef.shape[0]
            out[m, i, j] = 2.0 * math.sqrt(w1)
            out[m + 1, i, j] = 2.0 * math.sqrt(w2)
            out[m + 2, i, j] = math.sqrt(phase_var[0] / w1)
            out[m + 3, i, j] = math.sqrt(phase_var[1] / w2)


def amplitude_maps(h1, h2, coefs: dict, phase_var_base) -> dict[str, np.ndarray]:
    """The per-pixel sigma maps of the strain components, the amplitudes and the phase sigmas, in one pass.

    Same contract as :func:`latticefit.gpa._strain.strain_sigmas` (the ``sigma_<map>`` entries) plus
    ``amplitude_g1/2`` (``2 |h|``) and ``sigma_phase_g1/2_rad`` (``sqrt(phase_var / |h|^2)``), which
    the numpy path of ``gpa._api._maps`` computes map by map (seven passes over two complex fields).
    """
    names = list(coefs)
    coef = np.array([coefs[n] for n in names], dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(names) + 4,) + h1.shape, dtype=np.float32)
    _amplitude_maps(
        np.ascontiguousarray(h1, np.complex64),
        np.ascontiguousarray(h2, np.complex64),
        coef,
        np.asarray(phase_var_base, dtype=np.float64),
        out,
    )
    maps = {f"sigma_{n}": out[k] for k, n in enumerate(names)}
    k = len(names)
    maps.update(amplitude_g1=out[k], amplitude_g2=out[k + 1])
    maps.update(sigma_phase_g1_rad=out[k + 2], sigma_phase_g2_rad=out[k + 3])
    return maps


@njit(cache=True, parallel=True)
def _weighted_gradient_sums(gx, gy, h, mask):
    ny, nx = gx.shape
    sx = np.zeros(ny)
    sy = np.zeros(ny)
    sw = np.zeros(ny)
    for i in prange(ny):
        ax, ay, aw = 0.0, 0.0, 0.0
        for j in range(nx):
            if mask[i, j]:
                z = h[i, j]
                w = np.float64(np.float32(z.real * z.real + z.imag * z.imag))
                ax += gx[i, j] * w
                ay += gy[i, j] * w
                aw += w
        sx[i], sy[i], sw[i] = ax, ay, aw
    return sx.sum(), sy.sum(), sw.sum()


def weighted_gradient_mean(gx, gy, h, mask) -> tuple[float, float]:
    """``|h|^2``-weighted means of the phase gradients ``gx, gy`` over ``mask`` (one pass, no copies).

    Numpy reference: ``(gx[mask] * w).sum() / w.sum()`` with ``w = (abs(h) ** 2)[mask]`` in float64
    (equal to rounding: the sums run per row, then over rows).
    """
    sx, sy, sw = _weighted_gradient_sums(gx, gy, np.ascontiguousarray(h, np.complex64), mask)
    return sx / sw, sy / sw


@njit(cache=True, parallel=True)
def _masked_square_sums(v, s, mask):
    ny, nx = v.shape
    sv = np.zeros(ny)
    ss = np.zeros(ny)
    cnt = np.zeros(ny)
    for i in prange(ny):
        av, as_, c = 0.0, 0.0, 0.0
        for j in range(nx):
            if mask[i, j]:
                a = np.float64(v[i, j])
                b = np.float64(s[i, j])
                av += a * a
                as_ += b * b
                c += 1.0
        sv[i], ss[i], cnt[i] = av, as_, c
    return sv.sum(), ss.sum(), cnt.sum()


def masked_mean_squares(values, sigma, mask) -> tuple[float, float, int]:
    """``mean(values[mask] ** 2)``, ``mean(sigma[mask] ** 2)`` (float64) and the pixel count, in one pass.

    Numpy reference: ``np.mean(values[mask].astype(np.float64) ** 2)`` (the same to rounding: the sums run
    per row, then over rows); no boolean-index copies of the 4096² maps.
    """
    sv, ss, n = _masked_square_sums(
        np.ascontiguousarray(values), np.ascontiguousarray(sigma), np.ascontiguousarray(mask, np.bool_)
    )
    return (sv / n, ss / n, int(n)) if n else (float("nan"), float("nan"), 0)


@njit(cache=True, parallel=True)
def _masked_inverse_power_sums(h, mask):
    ny, nx = h.shape
    s = np.zeros(ny)
    cnt = np.zeros(ny)
    for i in prange(ny):
        a, c = 0.0, 0.0
        for j in range(nx):
            if mask[i, j]:
                z = h[i, j]
                w = max(np.float32(z.real * z.real + z.imag * z.imag), np.float32(1e-30))
                a += 1.0 / np.float64(w)
                c += 1.0
        s[i], cnt[i] = a, c
    return s.sum(), cnt.sum()


def masked_mean_inverse_power(h, mask) -> float:
    """``mean(1 / max(|h[mask]|^2, 1e-30))`` (float64), one pass (nan for an empty mask).

    Numpy reference: ``np.mean(1.0 / np.maximum(np.abs(h[mask]).astype(np.float64) ** 2, 1e-30))``
    (``|h|^2`` is taken in float32, as in the sigma maps).
    """
    s, n = _masked_inverse_power_sums(np.ascontiguousarray(h, np.complex64), np.ascontiguousarray(mask, np.bool_))
    return s / n if n else float("nan")


@njit(cache=True)
def _masked_abs(h, mask, out):
    n = 0
    ny, nx = h.shape
    for i in range(ny):
        for j in range(nx):
            if mask[i, j]:
                z = h[i, j]
                out[n] = math.sqrt(z.real * z.real + z.imag * z.imag)
                n += 1
    return n


def masked_amplitude(h, mask) -> np.ndarray:
    """``abs(h[mask])`` (float32) without the complex copy of the boolean index."""
    out = np.empty(int(np.count_nonzero(mask)), dtype=np.float32)
    n = _masked_abs(np.ascontiguousarray(h, np.complex64), np.ascontiguousarray(mask), out)
    return out[:n]


@njit(cache=True)
def _wrap(d):
    if d > math.pi:
        return d - 2.0 * math.pi
    if d <= -math.pi:
        return d + 2.0 * math.pi
    return d


@njit(cache=True, parallel=True)
def _gradient_from_angle(theta, tx, ty, gx, gy):
    ny, nx = theta.shape
    for i in prange(ny):
        i0 = i - 1 if i > 0 else 0
        i1 = i + 1 if i < ny - 1 else ny - 1
        fy = 0.5 if (0 < i < ny - 1) else 1.0
        for j in range(nx):
            j0 = j - 1 if j > 0 else 0
            j1 = j + 1 if j < nx - 1 else nx - 1
            fx = 0.5 if (0 < j < nx - 1) else 1.0
            gx[i, j] = _wrap(theta[i, j1] - theta[i, j0]) * fx - tx
            gy[i, j] = _wrap(theta[i1, j] - theta[i0, j]) * fy - ty


def phase_gradient_from_angle(theta, residual_px) -> tuple[np.ndarray, np.ndarray]:
    """Phase gradients (rad/px) from the field's angle map ``theta = angle(h)``: no arctangent per pixel.

    ``angle(h[x+1] conj(h[x-1])) = wrap(theta[x+1] - theta[x-1])``, so one SIMD ``np.angle`` per field
    replaces the two arctangents per pixel of :func:`latticefit.gpa._strain.phase_gradient` (its numpy
    reference; equal to float32 rounding).
    """
    gx = np.empty(theta.shape, dtype=np.float32)
    gy = np.empty(theta.shape, dtype=np.float32)
    tx, ty = (float(np.float32(2.0 * math.pi * r)) for r in residual_px)
    _gradient_from_angle(np.ascontiguousarray(theta, np.float32), tx, ty, gx, gy)
    return gx, gy


@njit(cache=True, parallel=True)
def _wrapped_from_angle(theta, tx, ty, out):
    ny, nx = theta.shape
    two_pi = np.float32(2.0 * math.pi)
    pi = np.float32(math.pi)
    for i in prange(ny):
        ry = ty * np.float32(i)
        for j in range(nx):
            p = theta[i, j] - (tx * np.float32(j) + ry) + pi
            p = p - two_pi * np.floor(p / two_pi)
            out[i, j] = p - pi


def wrapped_phase_from_angle(theta, residual_px) -> np.ndarray:
    """``P_g`` in (-pi, pi] from ``theta = angle(h)``, carrier ``g - k0`` removed, in one pass.

    Numpy reference: :func:`latticefit.gpa._strain.wrapped_phase` (equal to float32 rounding).
    """
    out = np.empty(theta.shape, dtype=np.float32)
    tx, ty = (np.float32(2.0 * math.pi * r) for r in residual_px)
    _wrapped_from_angle(np.ascontiguousarray(theta, np.float32), tx, ty, out)
    return out
