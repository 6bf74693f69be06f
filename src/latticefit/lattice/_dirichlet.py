"""Numba kernels of the lattice measurement (part of :mod:`._kernels`): the Dirichlet sums of a tone.

``S(f)[k] = sum_x exp(2 pi i (f - k/n) x)``, x = 0..n-1: the DFT at integer bins of a complex exponential of
continuous frequency, with its derivatives (:func:`dirichlet_nb`), for many frequencies in closed form
(:func:`dirichlet_matrix_nb`), and the sum of many tones' models over a window of bins
(:func:`tone_sum_window_nb`). Each kernel has its numpy reference (``*_ref``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------- Dirichlet
@njit(cache=True)
def dirichlet_nb(f, k, n):
    """DFT at integer bins ``k`` of ``exp(2 pi i f x)``, x = 0..n-1, and its f-derivatives.

    Returns three complex arrays (S, dS/df, d2S/df2) with
    ``S[j] = sum_x exp(2 pi i (f - k[j]/n) x)``.
    """
    m = k.size
    S = np.empty(m, np.complex128)
    S1 = np.empty(m, np.complex128)
    S2 = np.empty(m, np.complex128)
    c0 = 0.5 * (n - 1)
    sx2 = n * (n * n - 1.0) / 12.0
    sx4 = n * (n * n - 1.0) * (3.0 * n * n - 7.0) / 240.0
    for j in range(m):
        u = f - k[j] / n
        u = u - math.floor(u + 0.5)  # periodic in u with period 1 (n samples)
        # D(u) = sum over centred x' of exp(2 pi i u x') = sin(pi n u) / sin(pi u)  (real)
        if abs(math.pi * n * u) < 1e-3:
            w = TWO_PI * u
            D = n - 0.5 * w * w * sx2 + w**4 / 24.0 * sx4
            D1 = -(TWO_PI**2) * u * sx2 + (TWO_PI**4) * u**3 / 6.0 * sx4
            D2 = -(TWO_PI**2) * sx2 + (TWO_PI**4) * u * u / 2.0 * sx4
        else:
            s = math.sin(math.pi * u)
            C = math.cos(math.pi * u)
            sN = math.sin(math.pi * n * u)
            cN = math.cos(math.pi * n * u)
            D = sN / s
            n1 = n * cN * s - sN * C
            D1 = math.pi * n1 / (s * s)
            D2 = math.pi**2 * (sN * (1.0 - n * n) * s * s - 2.0 * n1 * C) / (s**3)
        # S is 1-periodic in u (x is integer), so the wrapped u serves for the phase too
        ph = TWO_PI * u * c0
        e = complex(math.cos(ph), math.sin(ph))
        a = complex(0.0, TWO_PI * c0)
        S[j] = e * D
        S1[j] = e * (a * D + D1)
        S2[j] = e * (a * a * D + 2.0 * a * D1 + D2)
    return S, S1, S2


@njit(cache=True)
def _dirichlet_one(f, k, n, c0):
    """One element of :func:`dirichlet_matrix_nb` from the sines (near the tone, where the ratio is 0/0)."""
    u = f - k / n
    u = u - math.floor(u + 0.5)
    if abs(math.pi * n * u) < 1e-3:
        w = TWO_PI * u
        D = n - 0.5 * w * w * n * (n * n - 1.0) / 12.0
    else:
        D = math.sin(math.pi * n * u) / math.sin(math.pi * u)
    ph = TWO_PI * u * c0
    return complex(math.cos(ph) * D, math.sin(ph) * D)


@njit(cache=True)
def dirichlet_matrix_nb(fs, k, n):
    """``S[i, j] = sum_x exp(2 pi i (fs[i] - k[j]/n) x)`` for many frequencies (no derivatives).

    The geometric sum in closed form, ``(1 - e^{2 pi i n f}) / (1 - e^{2 pi i f} e^{-2 pi i k/n})``: one
    complex division per element and a rotation per bin shared by all frequencies (``e^{-2 pi i k n} = 1``);
    the sines of :func:`_dirichlet_one` where the denominator is small.
    """
    out = np.empty((fs.size, k.size), np.complex128)
    rot = _bin_rotations(k, n)
    for i in range(fs.size):
        _dirichlet_row(fs[i], k, n, rot, out[i])
    return out


@njit(cache=True)
def _bin_rotations(k, n):
    """``e^{-2 pi i k / n}`` per bin (the factor of the closed-form Dirichlet sum that depends on the bin)."""
    rot = np.empty(k.size, np.complex128)
    for j in range(k.size):
        a = -TWO_PI * (k[j] % n) / n
        rot[j] = complex(math.cos(a), math.sin(a))
    return rot


@njit(cache=True)
def _dirichlet_row(f, k, n, rot, out, w=None):
    """One row of :func:`dirichlet_matrix_nb` into ``out`` (bins not in ``w`` set to 0 when it is given)."""
    c0 = 0.5 * (n - 1)
    nf = n * f - math.floor(n * f)
    num = 1.0 - complex(math.cos(TWO_PI * nf), math.sin(TWO_PI * nf))
    z = complex(math.cos(TWO_PI * f), math.sin(TWO_PI * f))
    for j in range(k.size):
        if w is not None and not w[j]:
            out[j] = 0.0
            continue
        d = 1.0 - z * rot[j]
        out[j] = num / d if abs(d) > 1e-2 else _dirichlet_one(f, k[j], n, c0)


@njit(cache=True)
def tone_sum_window_nb(fy, fx, amp, ky, kx, M, N, wy, wx, tol=0.0):
    """``sum_t amp[t] Sy(fy[t]) (x) Sx(fx[t])`` on the window bins (rows/cols not in wy/wx are 0).

    Tones whose largest contribution to the window is below ``tol`` are skipped. The sum runs on real and
    imaginary planes (a real multiply-add over contiguous columns); not a BLAS product: this is called
    thousands of times on 65 x 65 windows, where a threaded BLAS in two processes on two cores is 6x slower
    than this loop.
    """
    Sy = dirichlet_matrix_nb(fy, ky, M)
    Sx = dirichlet_matrix_nb(fx, kx, N)
    H = ky.size
    W = kx.size
    out_re = np.zeros((H, W))
    out_im = np.zeros((H, W))
    b_re = np.zeros(W)
    b_im = np.zeros(W)
    for t in range(fy.size):
        a = amp[t]
        if tol > 0.0:
            my = 0.0
            for i in range(H):
                my = max(my, abs(Sy[t, i]))
            mx = 0.0
            for j in range(W):
                mx = max(mx, abs(Sx[t, j]))
            if abs(a) * my * mx < tol:
                continue
        for j in range(W):
            b_re[j] = Sx[t, j].real if wx[j] else 0.0
            b_im[j] = Sx[t, j].imag if wx[j] else 0.0
        for i in range(H):
            if not wy[i]:
                continue
            c = a * Sy[t, i]
            for j in range(W):
                out_re[i, j] += c.real * b_re[j] - c.imag * b_im[j]
                out_im[i, j] += c.real * b_im[j] + c.imag * b_re[j]
    out = np.empty((H, W), np.complex128)
    for i in range(H):
        for j in range(W):
            out[i, j] = complex(out_re[i, j], out_im[i, j])
    return out


def tone_sum_window_ref(fy, fx, amp, ky, kx, M, N, wy, wx):
    out = np.zeros((ky.size, kx.size), complex)
    for t in range(len(fy)):
        out += amp[t] * np.outer(dirichlet_ref(fy[t], ky, M)[0] * wy, dirichlet_ref(fx[t], kx, N)[0] * wx)
    return out


def dirichlet_ref(f, k, n):
    x = np.arange(n)
    E = np.exp(2j * np.pi * (f - np.asarray(k, float)[:, None] / n) * x[None, :])
    S = E.sum(1)
    S1 = (E * (2j * np.pi * x)).sum(1)
    S2 = (E * (2j * np.pi * x) ** 2).sum(1)
    return S, S1, S2
