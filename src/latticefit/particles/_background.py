"""The smooth background under the particles: robust local planes on a coarse grid, iteratively clipped."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import _kernels as K

#: background of the detection: 'opening' (grey opening, follows steps) or 'smooth' (masked smoothing)
BACKGROUND_METHOD = "opening"


def _interp_index(n_dst, n_src, f_src, f_dst):
    c = ((np.arange(n_dst) + 0.5) * f_dst) / f_src - 0.5
    c = np.clip(c, 0, n_src - 1)
    if n_src == 1:
        z = np.zeros(n_dst, int)
        return z, z, np.zeros(n_dst, np.float32)
    i0 = np.minimum(c.astype(int), n_src - 2)
    return i0, i0 + 1, (c - i0).astype(np.float32)


def background_at(bg, f, y, x):
    """The coarse background grid ``bg`` (blocks of ``f`` px) at full-resolution points ``(y, x)``: the value
    of the nearest cell, float64.

    Examples
    --------
    >>> background_at(np.array([[1.0, 2.0], [3.0, 4.0]]), 4, np.array([0.0, 7.0]), np.array([7.0, 9.0])).tolist()
    [2.0, 4.0]
    """
    i = np.clip(np.rint((np.asarray(y, float) + 0.5) / f - 0.5).astype(int), 0, bg.shape[0] - 1)
    j = np.clip(np.rint((np.asarray(x, float) + 0.5) / f - 0.5).astype(int), 0, bg.shape[1] - 1)
    return bg[i, j].astype(np.float64)


def _resample(a, f_src, f_dst, shape_dst):
    """Bilinear resampling between block grids: ``a`` on blocks of ``f_src`` px to blocks of ``f_dst`` px."""
    a = np.asarray(a, dtype=np.float32)
    y0, y1, ty = _interp_index(shape_dst[0], a.shape[0], f_src, f_dst)
    x0, x1, tx = _interp_index(shape_dst[1], a.shape[1], f_src, f_dst)
    rows = a[y0] * (1 - ty)[:, None] + a[y1] * ty[:, None]
    return rows[:, x0] * (1 - tx) + rows[:, x1] * tx


def _local_plane_smooth(wi, wb, sig):
    """Gaussian-weighted local linear regression (normalised convolution of order 1).

    ``wi`` holds weight * value and ``wb`` the weights on a grid; at every grid
    point a plane is fitted to the neighbourhood with Gaussian weights of std
    ``sig`` and evaluated there. Unlike plain normalised smoothing this follows
    a gradient up to the image border.
    """
    wi = wi.astype(np.float64)
    wb = wb.astype(np.float64)
    h, w = wb.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    yy -= h / 2.0
    xx -= w / 2.0

    def G(a):
        return ndi.gaussian_filter(a, sig, mode="constant", cval=0.0)

    s0, sx, sy = G(wb), G(wb * xx), G(wb * yy)
    sxx, sxy, syy = G(wb * xx * xx), G(wb * xx * yy), G(wb * yy * yy)
    t0, tx, ty = G(wi), G(wi * xx), G(wi * yy)
    # solve [[s0 sx sy] [sx sxx sxy] [sy sxy syy]] [a bx by] = [t0 tx ty] per point, evaluate a + bx x + by y
    A = np.stack([np.stack([s0, sx, sy], -1), np.stack([sx, sxx, sxy], -1), np.stack([sy, sxy, syy], -1)], -2)
    b = np.stack([t0, tx, ty], -1)
    A = A + np.eye(3) * (1e-9 * (s0[..., None, None] + 1e-12))
    try:
        coef = np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return t0 / np.maximum(s0, 1e-12)
    out = coef[..., 0] + coef[..., 1] * xx + coef[..., 2] * yy
    flat = t0 / np.maximum(s0, 1e-12)
    bad = ~np.isfinite(out) | (s0 < 1e-3 * s0.max())
    out[bad] = flat[bad]
    return out.astype(np.float32)


def _background_grid(img, scale_px, *, n_iter=4, clip_sigma=2.0):
    """Background of ``img`` (its own grid) with bright particles masked iteratively.

    Returns ``(background, particle_mask)`` on the grid of ``img``.
    """
    img = np.ascontiguousarray(img, dtype=np.float32)
    m = max(1, int(scale_px // 4))
    m = min(m, max(1, min(img.shape) // 4))
    sig = max(scale_px / m, 1.0)
    w = np.ones_like(img)
    mask = np.zeros(img.shape, bool)
    bg = None
    for it in range(n_iter + 1):
        wi = K.bin_image(img * w, m) if m > 1 else img * w  # block sums / m^2 of masked data
        wb = K.bin_image(w, m) if m > 1 else w  # fraction of unmasked pixels per block
        small = _local_plane_smooth(wi, wb, sig)
        bg = _resample(small, m, 1, img.shape) if m > 1 else small
        if it == n_iter:
            break
        r = img - bg
        neg = -r[(r < 0) & (w > 0)]
        noise = float(np.median(neg) / 0.6745) if neg.size > 10 else float(np.std(r))
        new_mask = r > clip_sigma * max(noise, 1e-12)
        if new_mask.mean() > 0.95:
            break
        mask = new_mask
        w = (~mask).astype(np.float32)
    return bg.astype(np.float32), mask


def estimate_background(image, scale_px: float, *, n_iter: int = 4, clip_sigma: float = 2.0, return_mask: bool = False):
    """Slowly varying background under bright particles (particles masked iteratively).

    Masked pixels are left out of a normalised Gaussian smoothing of std
    ``scale_px`` (done on blocks of ~``scale_px / 4`` px and interpolated
    back), and every pixel more than
    ``clip_sigma`` noise SDs above the current background is masked before the next
    round; the noise SD comes from the negative residuals only (particles are
    bright), so dense fields do not inflate it.

    Parameters
    ----------
    image : ndarray
        2-D image.
    scale_px : float
        Smoothing length in pixels: larger than the particles.
    return_mask : bool
        Also return the boolean particle mask (True = particle) at full resolution.

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = 100 + 0.2 * xx + 50.0 * ((xx - 64) ** 2 + (yy - 64) ** 2 < 100)
    >>> bg = estimate_background(img, 30)
    >>> bool(abs(bg[64, 64] - (100 + 0.2 * 64)) < 3)
    True
    """
    img = np.asarray(image, dtype=np.float32)
    bg, mask = _background_grid(img, scale_px, n_iter=n_iter, clip_sigma=clip_sigma)
    return (bg, mask) if return_mask else bg
