"""Pixels that were NaN/inf in the file (``Micrograph.invalid_mask``): masked, not median-filled (issue #17).

A median-filled band is a flat, noise-free slab with steps at its edges: the noise model sees zero
variance there, the background and the LoG see edges, and the fits of the particles it cuts fail. Here:

- :func:`inpaint` fills the masked pixels with a smooth local mean of the valid ones (normalised
  convolution on a coarse grid), so no step reaches the background or the LoG;
- the noise model and the per-scale LoG noise use valid pixels only, away from the mask;
- detections whose centre is masked are dropped, the fits give masked pixels zero weight, the labels do
  not extend into the mask, and a particle the mask cuts is ``edge`` (like one cut by the image border);
- the result says which fraction of the image was masked.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import _kernels as K

__all__ = ["inpaint", "binned_mask", "cut_by_mask", "mask_note", "far_from_mask"]


def binned_mask(bad: np.ndarray, f: int) -> np.ndarray:
    """``bad`` on the grid of blocks of ``f`` px: a block is masked when any of its pixels is.

    Examples
    --------
    >>> b = np.zeros((8, 8), bool); b[1, 6] = True
    >>> binned_mask(b, 4).astype(int).tolist()
    [[0, 1], [0, 0]]
    """
    if f <= 1:
        return bad
    return K.bin_image(np.ascontiguousarray(bad, dtype=np.float32), f) > 0


def subgrid_mask(mask: np.ndarray, step: int) -> np.ndarray:
    """``mask`` on the subgrid of every ``step``-th pixel: masked when any pixel of the ``step`` x ``step``
    block centred on it is.

    Striding alone (``mask[::step, ::step]``) loses what lies between the subgrid's pixels: the rims of
    5 px dots on a 512² grid (step 2), which then count as background in the noise estimate.

    Examples
    --------
    >>> m = np.zeros((6, 6), bool); m[3, 4] = True
    >>> m[::2, ::2].any(), subgrid_mask(m, 2).astype(int).tolist()
    (np.False_, [[0, 0, 0], [0, 0, 0], [0, 0, 1]])
    """
    if step <= 1:
        return mask
    h = step // 2
    ny, nx = -(-mask.shape[0] // step), -(-mask.shape[1] // step)
    pad = np.pad(mask, ((h, max(0, ny * step - mask.shape[0] - h)), (h, max(0, nx * step - mask.shape[1] - h))))
    return binned_mask(pad[: ny * step, : nx * step], step)  # the blocks shifted by step // 2: centred


def inpaint(img: np.ndarray, bad: np.ndarray, scale_px: float) -> np.ndarray:
    """A copy of ``img`` whose ``bad`` pixels hold a smooth local mean of the valid ones.

    Normalised convolution (Gaussian of std ``scale_px``, doubled until every masked pixel has valid
    neighbours) on blocks of about ``scale_px / 4`` px, interpolated back; the valid pixels are unchanged.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> img = (100 + 0.5 * xx).astype(np.float32)
    >>> bad = (yy > 20) & (yy < 30)
    >>> out = inpaint(np.where(bad, np.float32(0), img), bad, 8)
    >>> bool(np.abs(out[bad] - img[bad]).max() < 2), bool((out[~bad] == img[~bad]).all())
    (True, True)
    """
    img = np.asarray(img, dtype=np.float32)
    out = img.copy()
    m = max(1, min(int(scale_px // 4), max(1, min(img.shape) // 8)))
    w = (~bad).astype(np.float32)
    num = K.bin_image(np.where(bad, np.float32(0), img), m) if m > 1 else np.where(bad, 0, img).astype(np.float32)
    den = K.bin_image(w, m) if m > 1 else w
    del w
    fill = np.full(den.shape, np.nan, np.float32)
    s = max(float(scale_px) / m, 1.0)
    while np.isnan(fill).any():
        d = ndi.gaussian_filter(den, s, mode="nearest")
        n = ndi.gaussian_filter(num, s, mode="nearest")
        ok = np.isnan(fill) & (d > 1e-3)
        fill[ok] = n[ok] / d[ok]
        if s > 2 * max(den.shape):
            fill[np.isnan(fill)] = float(np.median(img[~bad]))
        s *= 2.0
    yy, xx = np.nonzero(bad)  # bilinear from the block grid, at the masked pixels only
    coords = np.stack([(yy + 0.5) / m - 0.5, (xx + 0.5) / m - 0.5])
    out[yy, xx] = ndi.map_coordinates(fill, coords, order=1, mode="nearest")
    return out


def cut_by_mask(bad: np.ndarray, x, y, r) -> np.ndarray:
    """True for the disks ``(x, y, r)`` (px) that reach a masked pixel (within ``r + 1`` px of one)."""
    x, y, r = (np.asarray(v, float) for v in (x, y, r))
    if not len(x):
        return np.zeros(0, bool)
    dist = ndi.distance_transform_edt(~bad).astype(np.float32)
    i = np.clip(np.rint(y).astype(int), 0, bad.shape[0] - 1)
    j = np.clip(np.rint(x).astype(int), 0, bad.shape[1] - 1)
    rr = np.where(np.isfinite(r), r, 0.0)
    return dist[i, j] <= rr + 1.0


def mask_note(n_bad: int, n_total: int) -> str:
    """The line the result carries about the masked pixels."""
    return (
        f"{100.0 * n_bad / max(n_total, 1):.3g} % of the image ({n_bad} px) was NaN/infinite in the file: "
        "masked (left out of the noise model, background, detection and fits; particles it cuts are edge)"
    )


def far_from_mask(bad_sub: np.ndarray | None, step: int):
    """Distance (coarse px) of each subsampled pixel to the mask, or None without a mask."""
    if bad_sub is None or not bad_sub.any():
        return None
    return ndi.distance_transform_edt(~bad_sub) * step
