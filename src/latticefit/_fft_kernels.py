"""Numba kernel of the periodic-plus-smooth spectrum, with its pure-numpy reference.

:func:`periodic_power_nb` is the power spectrum of Moisan's periodic component, fused with the smooth-component
subtraction (one pass over the rfft2 array). It sits in the bottom layer because both :mod:`latticefit.spectrum`
and :mod:`latticefit.lattice` use it; the test compares it with :func:`periodic_power_ref` on random input.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["fft_workers", "periodic_power_nb", "periodic_power_ref"]

TWO_PI = 2.0 * math.pi


def fft_workers() -> int:
    """Threads for a ``scipy.fft`` call: numba's thread count (1 in a batch worker, the cores otherwise).

    ``latticefit batch`` runs numba on one thread per process (``--jobs`` is the cores used); the FFTs of
    that process follow it, so that two workers on two cores do not each start two FFT threads.

    Examples
    --------
    >>> from latticefit._fft_kernels import fft_workers
    >>> fft_workers() >= 1
    True
    """
    import numba

    return max(1, int(numba.get_num_threads()))


@njit(cache=True, fastmath=True)
def periodic_power_nb(U, A, B, M, N):
    """|p_hat|^2 of Moisan's periodic component from the rfft2 ``U`` of the image.

    ``A`` = fft of ``u[-1, :] - u[0, :]`` (length >= U.shape[1]), ``B`` = fft of
    ``u[:, -1] - u[:, 0]`` (length M). ``s_hat = v_hat / (2cos(2pi q/M) + 2cos(2pi r/N) - 4)``
    with ``v_hat(q, r) = A(r)(1 - e^{2pi i q/M}) + B(q)(1 - e^{2pi i r/N})``.
    """
    H, W = U.shape
    out = np.empty((H, W), np.float32)
    cr = np.empty(W)
    err_ = np.empty(W)
    eri = np.empty(W)
    for r in range(W):
        t = TWO_PI * r / N
        cr[r] = math.cos(t)
        err_[r] = 1.0 - math.cos(t)
        eri[r] = -math.sin(t)
    for q in range(H):
        t = TWO_PI * q / M
        cq = math.cos(t)
        eqr = 1.0 - cq
        eqi = -math.sin(t)
        br = B[q].real
        bi = B[q].imag
        for r in range(W):
            ur = U[q, r].real
            ui = U[q, r].imag
            den = 2.0 * cq + 2.0 * cr[r] - 4.0
            if den == 0.0:  # q = r = 0: s_hat = 0
                out[q, r] = ur * ur + ui * ui
                continue
            inv = 1.0 / den
            ar = A[r].real
            ai = A[r].imag
            vr = ar * eqr - ai * eqi + br * err_[r] - bi * eri[r]
            vi = ar * eqi + ai * eqr + br * eri[r] + bi * err_[r]
            pr = ur - vr * inv
            pi = ui - vi * inv
            out[q, r] = pr * pr + pi * pi
    return out


def periodic_power_ref(U, A, B, M, N):
    H, W = U.shape
    q = np.arange(H)[:, None]
    r = np.arange(W)[None, :]
    den = 2 * np.cos(2 * np.pi * q / M) + 2 * np.cos(2 * np.pi * r / N) - 4.0
    den[0, 0] = 1.0
    v = A[None, :W] * (1 - np.exp(2j * np.pi * q / M)) + B[:, None] * (1 - np.exp(2j * np.pi * r / N))
    s = v / den
    s[0, 0] = 0.0
    return (np.abs(U - s) ** 2).astype(np.float32)
