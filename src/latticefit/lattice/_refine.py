"""Sub-pixel maximum-likelihood refinement of lattice spots, with Fisher-information errors.

Model: the region holds ``sum_j a_j cos(2 pi g_j . r + phi_j)`` plus white (or
locally white) noise. All spots are fitted jointly by relaxation (RELAX, Li &
Stoica 1996): each spot in turn is refined by maximum likelihood on the data
minus the current models of every other spot (and of its own Friedel
conjugate), and the sweep is repeated.

Rectangles (frequency domain)
    The ML frequency of one tone is the maximum of the periodogram at
    continuous frequency of the UNWINDOWED data. It is computed exactly from
    the DFT bins of a (2K+1)^2 window around the spot: the tone's DFT there is
    the separable Dirichlet kernel ``S(g)``, and the ML estimate maximises
    ``|S^H Y|^2 / |S|^2`` (Newton iterations, :func:`refine_tone_window_nb`).
    Bins on and next to the axes are left out (mean, gradients, edge cross).
    Noise: the median power of the window's residual bins (all tones removed).
    Fisher information of g with the complex amplitude as nuisance:
    ``(2 |alpha|^2 / s^2) Re[D^H (I - S S^H / |S|^2) D]``, D = dS/dg.

Disks and masks (pixel domain)
    Gauss-Newton least squares of ``c + a cos + b sin`` over the mask's pixels
    (:func:`fit_tone_pixels_nb`); covariance ``sigma^2 (J^T J)^-1`` with sigma^2
    the local noise power near the spot in the spectrum of the residual.

Frequencies here are in cycles per pixel, (gy, gx) or (gx, gy) as named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from ._kernels import dirichlet_nb, fit_tone_pixels_nb, refine_tone_window_nb, tone_sum_window_nb

LN2 = math.log(2.0)


@dataclass
class ToneFit:
    gx: float  # cycles/px
    gy: float
    amplitude: float  # a (image intensity units)
    phase_rad: float  # phase at the region's origin pixel (r = 0 of the box)
    cov: np.ndarray  # 2x2 covariance of (gx, gy) in (cycles/px)^2
    snr: float  # amplitude signal-to-noise: a sqrt(n) / (2 sigma)
    noise_sigma: float  # per-pixel noise std at this frequency
    converged: bool


# ============================================================================ rectangles
def _window_bins(k0: int, K: int, n: int, axis_band: int = 1):
    """Bins k0-K..k0+K and the ones used: the axis band |k| <= axis_band is dropped (mean,
    gradients and edge cross live there) unless the spot itself lies in or next to it.
    """
    k = np.arange(k0 - K, k0 + K + 1, dtype=np.int64)
    km = k % n
    k0m = min(k0 % n, n - k0 % n)
    if k0m <= axis_band + 2:
        use = np.ones(k.size, bool)
    else:
        use = (km > axis_band) & (km < n - axis_band)
    return k, use


def _fetch_window(U: np.ndarray, ky: np.ndarray, kx: np.ndarray, M: int, N: int) -> np.ndarray:
    """Full-plane DFT values X[ky, kx] from the rfft2 array U (Friedel symmetry for the other half)."""
    kym = ky % M
    kxm = kx % N
    Wh = U.shape[1]
    direct = kxm < Wh
    out = np.empty((ky.size, kx.size), np.complex128)
    if direct.any():
        out[:, direct] = U[np.ix_(kym, kxm[direct])]
    if (~direct).any():
        out[:, ~direct] = np.conj(U[np.ix_((-kym) % M, (N - kxm[~direct]) % N)])
    return out


def _tone_window(g_y: float, g_x: float, ky, kx, M, N, wy, wx):
    Sy = dirichlet_nb(g_y, ky, M)[0] * wy
    Sx = dirichlet_nb(g_x, kx, N)[0] * wx
    return Sy, Sx


def refine_rect(U: np.ndarray, shape, starts, *, K: int = 32, sweeps: int = 3, max_iter: int = 30) -> list[ToneFit]:
    """Joint ML refinement of tones in a rectangle from its raw rfft2 ``U``.

    ``starts`` is a list of (ky, kx) integer bins (full plane). Returns one
    :class:`ToneFit` per start, in the same order.
    """
    M, N = shape
    K = int(max(4, min(K, (M - 5) // 2, (N - 5) // 2)))
    n = len(starts)
    if n == 0:
        return []
    wins = []
    for ky0, kx0 in starts:
        ky, wy = _window_bins(int(ky0), K, M)
        kx, wx = _window_bins(int(kx0), K, N)
        X = _fetch_window(U, ky, kx, M, N) * np.outer(wy, wx)
        s_bin = math.sqrt(float(np.median(np.abs(X[np.outer(wy, wx)]) ** 2)) / LN2 + 1e-300)
        wins.append((ky, kx, wy.astype(np.bool_), wx.astype(np.bool_), X, 1e-3 * s_bin))
    g = np.array([[ky0 / M, kx0 / N] for ky0, kx0 in starts], float)  # (gy, gx)
    alpha = np.zeros(n, complex)
    conv = np.zeros(n, bool)

    def others(j, include_self_conj=True, include_self=False, exact=False):
        """Sum of the current models of the tones (+g and -g) in window j."""
        ky, kx, wy, wx, X, tol = wins[j]
        fy = np.concatenate([g[:, 0], -g[:, 0]])
        fx = np.concatenate([g[:, 1], -g[:, 1]])
        amp = np.concatenate([alpha, np.conj(alpha)])
        if not include_self:
            amp[j] = 0.0
        if not include_self_conj:
            amp[n + j] = 0.0
        live = amp != 0
        if not live.any():
            return 0.0
        return tone_sum_window_nb(fy[live], fx[live], amp[live], ky, kx, M, N, wy, wx, 0.0 if exact else tol)

    for sweep in range(sweeps):
        g_before = g.copy()
        for j in range(n):
            ky, kx, wy, wx, X, tol = wins[j]
            Y = X - others(j)
            gy, gx, al, J, it, ok = refine_tone_window_nb(Y, ky, kx, wy, wx, M, N, g[j, 0], g[j, 1], max_iter)
            g[j] = gy, gx
            alpha[j] = al
            conv[j] = ok
        if sweep >= 1 and np.max(np.abs(g - g_before) * [M, N]) < 1e-4:
            break
    # uncertainties from the final residual
    out = []
    for j in range(n):
        ky, kx, wy, wx, X, tol = wins[j]
        Y = X - others(j, include_self=True, exact=True)
        used = np.outer(wy, wx)
        res2 = np.abs(Y[used]) ** 2
        s2 = float(np.median(res2) / LN2) if res2.size else float("nan")
        Sy, Sy1, _ = dirichlet_nb(g[j, 0], ky, M)
        Sx, Sx1, _ = dirichlet_nb(g[j, 1], kx, N)
        Sy, Sy1, Sx, Sx1 = Sy * wy, Sy1 * wy, Sx * wx, Sx1 * wx
        ny, nx = np.vdot(Sy, Sy).real, np.vdot(Sx, Sx).real
        nrm = ny * nx
        # inner products of S, Dy = Sy1 (x) Sx, Dx = Sy (x) Sx1
        DyDy = np.vdot(Sy1, Sy1).real * nx
        DxDx = ny * np.vdot(Sx1, Sx1).real
        DyDx = np.vdot(Sy1, Sy) * np.vdot(Sx, Sx1)
        SDy = np.vdot(Sy, Sy1) * nx
        SDx = ny * np.vdot(Sx, Sx1)
        Gyy = DyDy - abs(SDy) ** 2 / nrm
        Gxx = DxDx - abs(SDx) ** 2 / nrm
        Gyx = (DyDx - np.conj(SDy) * SDx / nrm).real
        a2 = abs(alpha[j]) ** 2
        a2_debiased = max(a2 - s2 / nrm, 0.25 * a2)
        fim = (2.0 * a2_debiased / s2) * np.array([[Gxx, Gyx], [Gyx, Gyy]])  # order (gx, gy)
        try:
            cov = np.linalg.inv(fim)
        except np.linalg.LinAlgError:
            cov = np.full((2, 2), np.nan)
        snr = math.sqrt(a2 * nrm / s2) if s2 > 0 else float("inf")
        out.append(
            ToneFit(
                gx=float(g[j, 1]),
                gy=float(g[j, 0]),
                amplitude=2.0 * abs(alpha[j]),
                phase_rad=float(np.angle(alpha[j])),
                cov=cov,
                snr=snr,
                noise_sigma=math.sqrt(s2 / (M * N)),
                converged=bool(conv[j]),
            )
        )
    return out


# ============================================================================ masks
def refine_mask(
    sub: np.ndarray, mask: np.ndarray, starts, *, sweeps: int = 3, max_iter: int = 20, K_noise: int = 6
) -> list[ToneFit]:
    """Joint least-squares refinement of tones over the pixels of ``mask`` (inside the box ``sub``).

    ``starts`` are (gy, gx) in cycles/px. Phases refer to the box's origin pixel.
    """
    n = len(starts)
    if n == 0:
        return []
    M, N = sub.shape
    yy, xx = np.nonzero(mask)
    vals = sub[yy, xx].astype(np.float64)
    vals = vals - vals.mean()
    xc, yc = float(xx.mean()), float(yy.mean())
    xs = (xx - xc).astype(np.float64)
    ys = (yy - yc).astype(np.float64)
    xi = xx.astype(np.int64)
    yi = yy.astype(np.int64)
    npx = vals.size
    # keep every spot's model image unless that would take too much memory (huge masks)
    store = n * npx <= 20_000_000
    models = np.zeros((n, npx)) if store else None
    params = np.zeros((n, 5))
    params[:, 0] = [s[1] for s in starts]
    params[:, 1] = [s[0] for s in starts]
    fitted = np.zeros(n, bool)
    jtj = np.zeros((n, 5, 5))
    conv = np.zeros(n, bool)
    total = np.zeros(npx)

    def model(p):
        t = 2 * np.pi * (p[0] * xs + p[1] * ys)
        return p[4] + p[2] * np.cos(t) + p[3] * np.sin(t)

    for sweep in range(sweeps):
        for j in range(n):
            mj = (models[j] if store else model(params[j])) if fitted[j] else 0.0
            R = vals - (total - mj)
            gx, gy, a, b, c, JTJ, rss, ok = fit_tone_pixels_nb(R, xi, yi, xc, yc, params[j, 0], params[j, 1], max_iter)
            # keep the start if Gauss-Newton wandered off by more than a bin on the first pass
            if sweep == 0 and (abs(gx - params[j, 0]) * N > 1.5 or abs(gy - params[j, 1]) * M > 1.5):
                gx, gy, a, b, c, JTJ, rss, ok = fit_tone_pixels_nb(R, xi, yi, xc, yc, params[j, 0], params[j, 1], 0)
                ok = False
            params[j] = gx, gy, a, b, c
            m = model(params[j])
            total += m - mj
            if store:
                models[j] = m
            fitted[j] = True
            jtj[j] = JTJ
            conv[j] = ok
    # local noise power from the spectrum of the residual
    resid = np.zeros((M, N))
    resid[yy, xx] = vals - total
    Rf = np.abs(sfft.rfft2(resid)) ** 2
    out = []
    for j in range(n):
        gx, gy, a, b, c = params[j]
        ky0 = int(round(gy * M))
        kx0 = int(round(gx * N))
        Kn = max(2, min(K_noise, (M - 5) // 2, (N - 5) // 2))
        ky, wy = _window_bins(ky0, Kn, M)
        kx, wx = _window_bins(kx0, Kn, N)
        Xw = _fetch_window(Rf.astype(np.complex128), ky, kx, M, N).real
        used = np.outer(wy, wx)
        p = Xw[used]
        s2_pix = float(np.median(p) / LN2 / npx) if p.size else float(np.var(vals - total))
        amp2 = a * a + b * b
        amp2_deb = max(amp2 - 4.0 * s2_pix / npx, 0.25 * amp2)
        try:
            cov5 = s2_pix * np.linalg.inv(jtj[j])
            cov = cov5[:2, :2] * (amp2 / amp2_deb)
        except np.linalg.LinAlgError:
            cov = np.full((2, 2), np.nan)
        amp = math.sqrt(amp2)
        # a cos t + b sin t = A cos(t + phi), phi = atan2(-b, a); t refers to the centroid
        phi = math.atan2(-b, a) - 2 * np.pi * (gx * xc + gy * yc)
        snr = amp * math.sqrt(npx) / (2.0 * math.sqrt(s2_pix)) if s2_pix > 0 else float("inf")
        out.append(
            ToneFit(
                gx=float(gx),
                gy=float(gy),
                amplitude=amp,
                phase_rad=float(np.angle(np.exp(1j * phi))),
                cov=cov,
                snr=snr,
                noise_sigma=math.sqrt(s2_pix),
                converged=bool(conv[j]),
            )
        )
    return out
