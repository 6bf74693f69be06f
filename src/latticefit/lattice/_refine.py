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

from ._dirichlet import dirichlet_nb, tone_sum_window_nb
from ._kernels import fit_tone_pixels_nb, refine_tone_window_nb

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


# ============================================================================ windows
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


# ============================================================================ shared steps
def _relax(update, n: int, sweeps: int, settle=None) -> None:
    """RELAX sweeps: ``update(sweep, j)`` refines tone j on the data minus the current models of the others.

    ``settle`` = (frequencies, bins per cycle): stop after the second sweep once no frequency moved
    by more than 1e-4 bin in a sweep.
    """
    for sweep in range(sweeps):
        before = settle[0].copy() if settle is not None else None
        for j in range(n):
            update(sweep, j)
        if settle is not None and sweep >= 1 and np.max(np.abs(settle[0] - before) * settle[1]) < 1e-4:
            break


def _median_noise(power):
    """Noise power from the median of exponentially distributed powers (median = ln 2 x mean)."""
    return np.median(power) / LN2


def _debiased(a2, bias):
    """Squared amplitude less its noise bias, kept at >= a quarter of the raw value."""
    return max(a2 - bias, 0.25 * a2)


def _inverse(matrix):
    """``matrix^-1``, or None when it is singular."""
    try:
        return np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return None


def _tone_fit(gx, gy, amplitude, phase_rad, cov, snr, noise_sigma, converged) -> ToneFit:
    """One :class:`ToneFit` (NaN covariance when the information matrix was singular)."""
    return ToneFit(
        gx=float(gx),
        gy=float(gy),
        amplitude=amplitude,
        phase_rad=float(phase_rad),
        cov=np.full((2, 2), np.nan) if cov is None else cov,
        snr=snr,
        noise_sigma=noise_sigma,
        converged=bool(converged),
    )


# ============================================================================ rectangles
@dataclass
class _RectWindow:
    """The DFT window of one spot: bins, used-bin flags, the data and the tone-sum tolerance."""

    ky: np.ndarray
    kx: np.ndarray
    wy: np.ndarray
    wx: np.ndarray
    X: np.ndarray
    tol: float


def _rect_window(U, ky0, kx0, K: int, M: int, N: int) -> _RectWindow:
    """The window of bins around the start (ky0, kx0), its data and a tolerance from its median power."""
    ky, wy = _window_bins(int(ky0), K, M)
    kx, wx = _window_bins(int(kx0), K, N)
    X = _fetch_window(U, ky, kx, M, N) * np.outer(wy, wx)
    s_bin = math.sqrt(float(np.median(np.abs(X[np.outer(wy, wx)]) ** 2)) / LN2 + 1e-300)
    return _RectWindow(ky, kx, wy.astype(np.bool_), wx.astype(np.bool_), X, 1e-3 * s_bin)


class _RectTones:
    """The tones of a rectangle: the frequencies g (gy, gx), complex amplitudes and the windows."""

    def __init__(self, U, shape, starts, K: int, max_iter: int):
        self.M, self.N = M, N = shape
        self.max_iter = max_iter
        self.wins = [_rect_window(U, ky0, kx0, K, M, N) for ky0, kx0 in starts]
        self.g = np.array([[ky0 / M, kx0 / N] for ky0, kx0 in starts], float)  # (gy, gx)
        n = len(starts)
        self.alpha = np.zeros(n, complex)
        self.conv = np.zeros(n, bool)

    def others(self, j: int, include_self: bool = False, exact: bool = False):
        """Sum of the current models of the tones (+g and -g) in window j (its own +g only if asked)."""
        w, g = self.wins[j], self.g
        fy = np.concatenate([g[:, 0], -g[:, 0]])
        fx = np.concatenate([g[:, 1], -g[:, 1]])
        amp = np.concatenate([self.alpha, np.conj(self.alpha)])
        if not include_self:
            amp[j] = 0.0
        live = amp != 0
        if not live.any():
            return 0.0
        return tone_sum_window_nb(
            fy[live], fx[live], amp[live], w.ky, w.kx, self.M, self.N, w.wy, w.wx, 0.0 if exact else w.tol
        )

    def update(self, sweep: int, j: int) -> None:
        """ML frequency and amplitude of tone j in its window, all other tones removed."""
        w = self.wins[j]
        Y = w.X - self.others(j)
        gy, gx, al, _, _, ok = refine_tone_window_nb(
            Y, w.ky, w.kx, w.wy, w.wx, self.M, self.N, self.g[j, 0], self.g[j, 1], self.max_iter
        )
        self.g[j] = gy, gx
        self.alpha[j] = al
        self.conv[j] = ok

    def information(self, j: int):
        """Fisher information shape of g_j (order gx, gy; amplitude as nuisance) and ``|S|^2``."""
        w, M, N = self.wins[j], self.M, self.N
        Sy, Sy1, _ = dirichlet_nb(self.g[j, 0], w.ky, M)
        Sx, Sx1, _ = dirichlet_nb(self.g[j, 1], w.kx, N)
        Sy, Sy1, Sx, Sx1 = Sy * w.wy, Sy1 * w.wy, Sx * w.wx, Sx1 * w.wx
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
        return np.array([[Gxx, Gyx], [Gyx, Gyy]]), nrm

    def tone_fit(self, j: int) -> ToneFit:
        """Tone j with its Fisher covariance, the noise from the window's final residual."""
        w = self.wins[j]
        Y = w.X - self.others(j, include_self=True, exact=True)
        res2 = np.abs(Y[np.outer(w.wy, w.wx)]) ** 2
        s2 = float(_median_noise(res2)) if res2.size else float("nan")
        G, nrm = self.information(j)
        a2 = abs(self.alpha[j]) ** 2
        cov = _inverse((2.0 * _debiased(a2, s2 / nrm) / s2) * G)
        snr = math.sqrt(a2 * nrm / s2) if s2 > 0 else float("inf")
        return _tone_fit(
            self.g[j, 1],
            self.g[j, 0],
            2.0 * abs(self.alpha[j]),
            np.angle(self.alpha[j]),
            cov,
            snr,
            math.sqrt(s2 / (self.M * self.N)),
            self.conv[j],
        )


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
    tones = _RectTones(U, shape, starts, K, max_iter)
    _relax(tones.update, n, sweeps, settle=(tones.g, [M, N]))
    return [tones.tone_fit(j) for j in range(n)]


# ============================================================================ masks
class _MaskTones:
    """The tones of a mask: per tone (gx, gy, a, b, c) of ``c + a cos t + b sin t`` about the centroid."""

    def __init__(self, sub, mask, starts, max_iter: int):
        n = len(starts)
        self.shape = sub.shape
        self.max_iter = max_iter
        yy, xx = self.yy, self.xx = np.nonzero(mask)
        vals = sub[yy, xx].astype(np.float64)
        self.vals = vals - vals.mean()
        self.xc, self.yc = float(xx.mean()), float(yy.mean())
        self.xs = (xx - self.xc).astype(np.float64)
        self.ys = (yy - self.yc).astype(np.float64)
        self.xi = xx.astype(np.int64)
        self.yi = yy.astype(np.int64)
        self.npx = npx = self.vals.size
        # keep every spot's model image unless that would take too much memory (huge masks)
        self.store = n * npx <= 20_000_000
        self.models = np.zeros((n, npx)) if self.store else None
        self.params = np.zeros((n, 5))
        self.params[:, 0] = [s[1] for s in starts]
        self.params[:, 1] = [s[0] for s in starts]
        self.fitted = np.zeros(n, bool)
        self.jtj = np.zeros((n, 5, 5))
        self.conv = np.zeros(n, bool)
        self.total = np.zeros(npx)

    def model(self, p):
        """The tone with parameters ``p`` at the mask's pixels."""
        t = 2 * np.pi * (p[0] * self.xs + p[1] * self.ys)
        return p[4] + p[2] * np.cos(t) + p[3] * np.sin(t)

    def update(self, sweep: int, j: int) -> None:
        """Gauss-Newton fit of tone j to the pixels minus every other tone."""
        M, N = self.shape
        p0 = self.params[j]
        mj = (self.models[j] if self.store else self.model(p0)) if self.fitted[j] else 0.0
        R = self.vals - (self.total - mj)
        args = (R, self.xi, self.yi, self.xc, self.yc, p0[0], p0[1])
        gx, gy, a, b, c, JTJ, _, ok = fit_tone_pixels_nb(*args, self.max_iter)
        # keep the start if Gauss-Newton wandered off by more than a bin on the first pass
        if sweep == 0 and (abs(gx - p0[0]) * N > 1.5 or abs(gy - p0[1]) * M > 1.5):
            gx, gy, a, b, c, JTJ, _, ok = fit_tone_pixels_nb(*args, 0)
            ok = False
        self.params[j] = gx, gy, a, b, c
        m = self.model(self.params[j])
        self.total += m - mj
        if self.store:
            self.models[j] = m
        self.fitted[j] = True
        self.jtj[j] = JTJ
        self.conv[j] = ok

    def residual_power(self) -> np.ndarray:
        """The power spectrum (complex, full-plane fetchable) of the residual over the mask."""
        resid = np.zeros(self.shape)
        resid[self.yy, self.xx] = self.vals - self.total
        return (np.abs(sfft.rfft2(resid)) ** 2).astype(np.complex128)

    def tone_fit(self, j: int, Rf: np.ndarray, K_noise: int) -> ToneFit:
        """Tone j with its least-squares covariance, the noise from the residual's spectrum near it."""
        M, N = self.shape
        npx = self.npx
        gx, gy, a, b, c = self.params[j]
        Kn = max(2, min(K_noise, (M - 5) // 2, (N - 5) // 2))
        ky, wy = _window_bins(int(round(gy * M)), Kn, M)
        kx, wx = _window_bins(int(round(gx * N)), Kn, N)
        p = _fetch_window(Rf, ky, kx, M, N).real[np.outer(wy, wx)]
        s2_pix = float(_median_noise(p) / npx) if p.size else float(np.var(self.vals - self.total))
        amp2 = a * a + b * b
        inv = _inverse(self.jtj[j])
        cov = None if inv is None else (s2_pix * inv)[:2, :2] * (amp2 / _debiased(amp2, 4.0 * s2_pix / npx))
        amp = math.sqrt(amp2)
        # a cos t + b sin t = A cos(t + phi), phi = atan2(-b, a); t refers to the centroid
        phi = math.atan2(-b, a) - 2 * np.pi * (gx * self.xc + gy * self.yc)
        snr = amp * math.sqrt(npx) / (2.0 * math.sqrt(s2_pix)) if s2_pix > 0 else float("inf")
        return _tone_fit(gx, gy, amp, np.angle(np.exp(1j * phi)), cov, snr, math.sqrt(s2_pix), self.conv[j])


def refine_mask(
    sub: np.ndarray, mask: np.ndarray, starts, *, sweeps: int = 3, max_iter: int = 20, K_noise: int = 6
) -> list[ToneFit]:
    """Joint least-squares refinement of tones over the pixels of ``mask`` (inside the box ``sub``).

    ``starts`` are (gy, gx) in cycles/px. Phases refer to the box's origin pixel.
    """
    n = len(starts)
    if n == 0:
        return []
    tones = _MaskTones(sub, mask, starts, max_iter)
    _relax(tones.update, n, sweeps)
    Rf = tones.residual_power()  # local noise power from the spectrum of the residual
    return [tones.tone_fit(j, Rf, K_noise) for j in range(n)]
