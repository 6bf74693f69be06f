"""Power spectra of micrographs with calibrated reciprocal axes.

The default removes the "edge cross" of the discrete Fourier transform with
Moisan's periodic-plus-smooth decomposition [1]_: the image ``u`` is split into
a periodic component ``p`` and a smooth component ``s`` (``u = p + s``), and the
spectrum of ``p`` is shown. Hann and Tukey windows are options. Regions of
interest are a rectangle, a circle (a dot is a disk) or a boolean mask
(:mod:`latticefit.roi`); the pixels outside a disk or mask get zero weight and
the edge of the disk is tapered for display.

Conventions: x runs right and y down, as in the displayed image; reciprocal
axes ``gx``, ``gy`` are in 1/nm (cycles per nm); the zero frequency sits at
index ``n // 2`` of the fftshifted axes, for odd and even sizes alike.

References
----------
.. [1] L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging
   Vis. 39, 161-179 (2011).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft as sfft

from ._fft_kernels import periodic_power_nb
from .errors import LatticefitError
from .micrograph import as_micrograph
from .roi import as_roi, extract

__all__ = ["Spectrum", "power_spectrum", "periodic_smooth_decomposition", "frequency_axes", "WINDOWS"]

WINDOWS = ("periodic", "hann", "tukey", None)
FFT_WORKERS = 2


def frequency_axes(shape, pixel_size_nm=None) -> tuple[np.ndarray, np.ndarray]:
    """Fftshifted reciprocal axes ``(gy, gx)`` of an image of ``shape`` (h, w).

    In 1/nm when ``pixel_size_nm`` (y, x) is given, else in cycles per pixel.
    The zero frequency is at index ``n // 2`` (odd and even ``n``).

    Examples
    --------
    >>> gy, gx = frequency_axes((5, 4), (0.1, 0.1))
    >>> gy.tolist(), gx.tolist()
    ([-4.0, -2.0, 0.0, 2.0, 4.0], [-5.0, -2.5, 0.0, 2.5])
    """
    h, w = shape
    py, px = pixel_size_nm if pixel_size_nm is not None else (1.0, 1.0)
    gy = np.fft.fftshift(np.fft.fftfreq(h, d=py))
    gx = np.fft.fftshift(np.fft.fftfreq(w, d=px))
    return gy, gx


def _boundary_ffts(u: np.ndarray):
    """FFTs of the boundary jumps of ``u`` (Moisan's boundary image, separable form)."""
    a = (u[-1, :] - u[0, :]).astype(np.float64)
    b = (u[:, -1] - u[:, 0]).astype(np.float64)
    return np.fft.fft(a), np.fft.fft(b)


def periodic_smooth_decomposition(image) -> tuple[np.ndarray, np.ndarray]:
    """Moisan's periodic-plus-smooth decomposition ``u = p + s``.

    ``s`` is the smooth image whose periodic discrete Laplacian equals the
    boundary image ``v`` of ``u`` (the jumps across the periodised edges), with
    zero mean; ``p = u - s`` has (almost) no edge discontinuity, so its DFT has
    no edge cross.

    Parameters
    ----------
    image : array_like
        2-D image.

    Returns
    -------
    periodic, smooth : ndarray (float64)

    Examples
    --------
    >>> import numpy as np
    >>> u = np.add.outer(np.arange(32.0), np.arange(48.0))   # a ramp: far from periodic
    >>> p, s = periodic_smooth_decomposition(u)
    >>> bool(np.allclose(p + s, u)), bool(abs(s.mean()) < 1e-9)
    (True, True)
    """
    u = np.asarray(image, dtype=np.float64)
    if u.ndim != 2:
        raise LatticefitError(f"expected a 2-D image, got shape {u.shape}")
    M, N = u.shape
    A, B = _boundary_ffts(u)
    q = np.arange(M)[:, None]
    r = np.arange(N)[None, :]
    v_hat = A[None, :] * (1 - np.exp(2j * np.pi * q / M)) + B[:, None] * (1 - np.exp(2j * np.pi * r / N))
    den = 2 * np.cos(2 * np.pi * q / M) + 2 * np.cos(2 * np.pi * r / N) - 4.0
    den[0, 0] = 1.0
    s_hat = v_hat / den
    s_hat[0, 0] = 0.0
    s = np.real(np.fft.ifft2(s_hat))
    return u - s, s


def _tapered_mask(mask: np.ndarray) -> np.ndarray:
    """A mask whose edge falls smoothly to zero (sin^2 over ~15% of its equivalent radius)."""
    from scipy import ndimage

    m = np.asarray(mask, bool)
    d = ndimage.distance_transform_edt(m)
    r_eq = np.sqrt(max(m.sum(), 1) / np.pi)
    t = max(2.0, 0.15 * r_eq)
    return (np.sin(0.5 * np.pi * np.clip(d / t, 0, 1)) ** 2).astype(np.float32)


def _periodic_window(n: int, window: str) -> np.ndarray:
    """Periodic (``sym=False``) Hann or Tukey(0.25) window of ``n`` points.

    The closed forms of ``scipy.signal.windows.hann``/``tukey`` (equal to them, tested):
    ``scipy.signal`` imports ``scipy.stats`` and ``scipy.optimize``, over a second on a small machine.
    """
    if n <= 1:
        return np.ones(max(n, 0))
    if window == "hann":
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    alpha, m = 0.25, n + 1  # the periodic window is the symmetric one of n + 1 points, last dropped
    k = np.arange(n, dtype=np.float64)
    width = int(np.floor(alpha * (m - 1) / 2.0))
    w = np.ones(n)
    lo = k <= width
    hi = k >= m - width - 1
    w[lo] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * k[lo] / alpha / (m - 1))))
    w[hi] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * k[hi] / alpha / (m - 1))))
    return w


def _separable_window(shape, window: str) -> np.ndarray:
    if window not in ("hann", "tukey"):  # pragma: no cover - guarded by the caller
        raise ValueError(window)
    h, w = shape
    return np.outer(_periodic_window(h, window), _periodic_window(w, window)).astype(np.float32)


def _check_window(window):
    if window not in WINDOWS:
        raise LatticefitError(f"window must be one of 'periodic', 'hann', 'tukey' or None, got {window!r}")


def half_plane_power(sub: np.ndarray, weight, window="periodic", *, workers: int = FFT_WORKERS):
    """Half-plane (rfft2 layout) power spectrum of a region, plus the raw rfft2.

    Parameters
    ----------
    sub : ndarray
        The region's pixels (its bounding box).
    weight : ndarray of bool or None
        The region's mask inside ``sub`` (None for a rectangle).
    window : {'periodic', 'hann', 'tukey', None}

    Returns
    -------
    power : ndarray float32 (h, w // 2 + 1)
        Power of the displayed spectrum, rows in fft order.
    raw : ndarray complex64 (h, w // 2 + 1) or None
        rfft2 of the unwindowed, mean-subtracted rectangle (None for a mask or a
        window other than 'periodic'/None): the data of the sub-pixel refinement.
    """
    _check_window(window)
    x = np.asarray(sub, dtype=np.float32)
    M, N = x.shape
    if weight is not None:
        w = np.asarray(weight, bool)
        mu = float(x[w].mean()) if w.any() else 0.0
        taper = _tapered_mask(w) if window is not None else w.astype(np.float32)
        y = (x - np.float32(mu)) * taper
        Y = sfft.rfft2(y, workers=workers)
        return (Y.real**2 + Y.imag**2).astype(np.float32), None
    if window in ("hann", "tukey"):
        y = (x - np.float32(x.mean())) * _separable_window(x.shape, window)
        Y = sfft.rfft2(y, workers=workers)
        return (Y.real**2 + Y.imag**2).astype(np.float32), None
    U = sfft.rfft2(x, workers=workers)
    U[0, 0] = 0.0  # the mean
    if window is None:
        return (U.real**2 + U.imag**2).astype(np.float32), U
    A, B = _boundary_ffts(x)
    P = periodic_power_nb(U, A.astype(np.complex128), B.astype(np.complex128), M, N)
    P[0, 0] = 0.0
    return P, U


def half_to_full(P: np.ndarray, width: int) -> np.ndarray:
    """Full fftshifted plane (h, width) from a half-plane rfft-layout array (Friedel symmetry)."""
    M = P.shape[0]
    full = np.empty((M, width), dtype=P.dtype)
    Wh = P.shape[1]
    full[:, :Wh] = P
    if width > Wh:
        kx = np.arange(Wh, width)
        full[:, Wh:] = P[(-np.arange(M)) % M][:, width - kx]
    return np.fft.fftshift(full)


@dataclass(eq=False)
class Spectrum:
    """A power spectrum with calibrated reciprocal axes.

    Attributes
    ----------
    power : ndarray float32 (h, w)
        Power, fftshifted (zero frequency at ``[h // 2, w // 2]``) for display.
    gx_inv_nm, gy_inv_nm : ndarray
        Reciprocal axes in 1/nm (x right, y down); in cycles/pixel when the
        image is uncalibrated.
    pixel_size_nm : (float, float) or None
        Pixel size (y, x) of the image.
    shape : (int, int)
        Shape of the transformed region (its bounding box).
    roi : dict or None
        The region (``to_dict()`` form).
    window : str or None
        Window used.
    source : str or None
        File of the image.
    """

    power: np.ndarray
    gx_inv_nm: np.ndarray
    gy_inv_nm: np.ndarray
    pixel_size_nm: tuple[float, float] | None
    shape: tuple[int, int]
    roi: dict | None = None
    window: str | None = "periodic"
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def extent_inv_nm(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` for ``imshow(power, extent=...)`` with the default ``origin='upper'``.

        Pixel edges, so that each pixel is centred on its frequency; gy grows
        downwards, like y in the image.
        """
        gx, gy = self.gx_inv_nm, self.gy_inv_nm
        dx = gx[1] - gx[0] if gx.size > 1 else 1.0
        dy = gy[1] - gy[0] if gy.size > 1 else 1.0
        return (float(gx[0] - dx / 2), float(gx[-1] + dx / 2), float(gy[-1] + dy / 2), float(gy[0] - dy / 2))

    @property
    def log_power(self) -> np.ndarray:
        """``log10(power)`` with the zeros lifted to the smallest positive value (for display)."""
        p = self.power
        pos = p[p > 0]
        floor = pos.min() if pos.size else 1.0
        return np.log10(np.maximum(p, floor))

    @property
    def g_step_inv_nm(self) -> tuple[float, float]:
        """Frequency spacing (gy, gx) of one bin."""
        return (float(self.gy_inv_nm[1] - self.gy_inv_nm[0]), float(self.gx_inv_nm[1] - self.gx_inv_nm[0]))

    def to_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "pixel_size_nm": list(self.pixel_size_nm) if self.pixel_size_nm else None,
            "roi": self.roi,
            "window": self.window,
            "source": self.source,
            "extent_inv_nm": list(self.extent_inv_nm),
        }


def power_spectrum(image, *, roi=None, pixel_size=None, window="periodic", workers: int = FFT_WORKERS) -> Spectrum:
    """Power spectrum of an image or a region of it, with reciprocal axes in 1/nm.

    Parameters
    ----------
    image : Micrograph, Signal2D or array_like
        The image (see :func:`latticefit.as_micrograph`).
    roi : Rect, Circle, Mask, bool array, tuple or dict, optional
        Region to transform; a disk or mask is weighted by its (edge-tapered)
        mask. At least 32 px across.
    pixel_size : float, str or (float, float), optional
        Overrides the image's calibration (a bare number is nm).
    window : {'periodic', 'hann', 'tukey', None}
        ``'periodic'`` (default): Moisan's periodic component (no edge cross);
        ``'hann'``/``'tukey'`` (alpha 0.25): separable windows; ``None``: the raw
        DFT of the mean-subtracted region.
    workers : int
        FFT worker threads.

    Returns
    -------
    Spectrum

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, truth = synth.cubic_001(shape=(256, 256), seed=0)
    >>> spec = power_spectrum(mg)
    >>> spec.power.shape, round(float(spec.gx_inv_nm[128]), 6)
    ((256, 256), 0.0)
    >>> import matplotlib.pyplot as plt
    >>> _ = plt.imshow(spec.log_power, extent=spec.extent_inv_nm, cmap="gray")
    """
    mg = as_micrograph(image, pixel_size)
    try:
        roi = as_roi(roi)
        sub, weight, _ = extract(mg.data, roi)
    except LatticefitError as e:
        raise e.with_source(mg.source) from None
    P, _ = half_plane_power(sub, weight, window, workers=workers)
    full = half_to_full(P, sub.shape[1])
    gy, gx = frequency_axes(sub.shape, mg.pixel_size_nm)
    return Spectrum(
        power=full,
        gx_inv_nm=gx,
        gy_inv_nm=gy,
        pixel_size_nm=mg.pixel_size_nm,
        shape=tuple(sub.shape),
        roi=roi.to_dict() if roi is not None else None,
        window=window,
        source=mg.source,
    )
