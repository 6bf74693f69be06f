"""Numba kernels of the HAADF particle analysis, each paired with a pure-numpy reference.

The kernels are the hot loops of :mod:`latticefit.particles`. This module holds the detection kernels
and re-exports the others, so ``from latticefit.particles import _kernels as K`` reaches all of them:

- :func:`scale_space_maxima` / :func:`scale_space_maxima_ref` find the local
  maxima of a (scale, y, x) Laplacian-of-Gaussian stack above a per-scale threshold;
- :func:`prune_blobs` / :func:`prune_blobs_ref` keep the strongest of
  overlapping detections;
- :func:`bin_image` block-averages an image (:func:`bin_image_ref` its numpy reference);
- the blurred projected-sphere profile table (:func:`sphere_profile_table`, :func:`profile_table`,
  :func:`sphere_profile_direct`, :func:`sphere_profile_reference`) lives in
  :mod:`latticefit.particles._profile_kernels`;
- the touching-spheres model and its Levenberg-Marquardt fit (:func:`fit_groups`, :func:`eval_groups`,
  :func:`evaluate_model`, :func:`sphere_model_ref`, ``N_BACKGROUND``) in
  :mod:`latticefit.particles._fit_kernels`;
- :func:`paint_disks` / :func:`paint_disks_ref` and :func:`region_measures_all` in
  :mod:`latticefit.particles._region_kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._fit_kernels import N_BACKGROUND, eval_groups, evaluate_model, fit_groups, sphere_model_ref
from ._profile_kernels import (
    TABLE_RHO_MAX,
    TABLE_S_MAX,
    TABLE_S_MIN,
    ProfileTable,
    profile_table,
    sphere_profile_direct,
    sphere_profile_reference,
    sphere_profile_table,
    table_lookup,
)
from ._region_kernels import paint_disks, paint_disks_ref, region_measures_all

__all__ = [
    "N_BACKGROUND",
    "TABLE_RHO_MAX",
    "TABLE_S_MIN",
    "TABLE_S_MAX",
    "ProfileTable",
    "profile_table",
    "sphere_profile_table",
    "sphere_profile_direct",
    "sphere_profile_reference",
    "table_lookup",
    "scale_space_maxima",
    "scale_space_maxima_ref",
    "prune_blobs",
    "prune_blobs_ref",
    "bin_image",
    "bin_image_ref",
    "fit_groups",
    "eval_groups",
    "evaluate_model",
    "sphere_model_ref",
    "paint_disks",
    "paint_disks_ref",
    "region_measures_all",
]


# ----------------------------------------------------------- scale-space maxima
@njit(cache=True)
def grow_rows(out, n):
    """``out`` with room for row ``n``: its rows doubled when full (the kernels' growing output)."""
    if n < out.shape[0]:
        return out
    bigger = np.empty((2 * out.shape[0], out.shape[1]))
    bigger[:n] = out[:n]
    return bigger


@njit(cache=True)
def plane_below(plane, i, j, v, strict_before, strict_after):
    """True when no pixel of the 3x3 neighbourhood of ``(i, j)`` in ``plane`` beats ``v``.

    A neighbour before ``(i, j)`` in raster order beats it when ``>= v`` (``strict_before``) or ``> v``; the
    centre and the neighbours after it when ``>= v`` (``strict_after``) or ``> v``. Pixels beyond the image
    are no neighbours; NaN never beats. The one 3x3 test of the scale space: in the own plane
    ``(True, False)`` (``>`` the earlier neighbours, ``>=`` the later ones: a flat plateau yields one point),
    against the scale before ``(True, True)`` and the scale after ``(False, False)``.
    """
    h, w = plane.shape
    for di in range(-1, 2):
        ii = i + di
        if ii < 0 or ii >= h:
            continue
        for dj in range(-1, 2):
            jj = j + dj
            if jj < 0 or jj >= w:
                continue
            u = plane[ii, jj]
            strict = strict_before if (di < 0 or (di == 0 and dj < 0)) else strict_after
            if u > v or (strict and u == v):
                return False
    return True


@njit(cache=True)
def scale_space_maxima(stack, thresholds, border):
    """Local maxima of ``stack[k, y, x]`` over the 3x3x3 neighbourhood above ``thresholds[k]``.

    A point is kept when its value exceeds the threshold of its scale, is
    ``>=`` every neighbour (scales beyond the stack and pixels beyond the image
    are not neighbours) and is strictly greater than the neighbours that come
    before it in raster order (so a flat plateau yields one point). Pixels within
    ``border`` of the image edge are skipped.

    Returns
    -------
    ndarray (n, 4)
        Rows ``(k, y, x, value)``.
    """
    ns, h, w = stack.shape
    out = np.empty((4096, 4))
    n = 0
    for k in range(ns):
        thr = thresholds[k]
        for i in range(border, h - border):
            for j in range(border, w - border):
                v = stack[k, i, j]
                if v <= thr:
                    continue
                if not plane_below(stack[k], i, j, v, True, False):
                    continue
                if k > 0 and not plane_below(stack[k - 1], i, j, v, True, True):
                    continue
                if k < ns - 1 and not plane_below(stack[k + 1], i, j, v, False, False):
                    continue
                out = grow_rows(out, n)
                out[n, 0] = k
                out[n, 1] = i
                out[n, 2] = j
                out[n, 3] = v
                n += 1
    return out[:n].copy()


def scale_space_maxima_ref(stack, thresholds, border):
    """Numpy reference of :func:`scale_space_maxima` (same rows, same order)."""
    from scipy import ndimage as ndi

    stack = np.asarray(stack, dtype=np.float64)
    ns, h, w = stack.shape
    padded = np.pad(stack, 1, mode="constant", constant_values=-np.inf)
    keep = stack > np.asarray(thresholds)[:, None, None]
    for dk in (-1, 0, 1):
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if dk == di == dj == 0:
                    continue
                nb = padded[1 + dk : 1 + dk + ns, 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
                before = (dk < 0) or (dk == 0 and (di < 0 or (di == 0 and dj < 0)))
                keep &= (nb < stack) if before else (nb <= stack)
    del ndi
    if border > 0:
        keep[:, :border, :] = False
        keep[:, h - border :, :] = False
        keep[:, :, :border] = False
        keep[:, :, w - border :] = False
    k, i, j = np.nonzero(keep)
    return np.column_stack([k, i, j, stack[k, i, j]]).astype(np.float64)


# ----------------------------------------------------------------------- prune
@njit(cache=True)
def prune_blobs(y, x, r, strength, overlap):
    """Greedy non-maximum suppression of blobs.

    Blobs are visited from the strongest; one is rejected when its centre lies
    closer than ``max(r_i, r_j) + overlap * min(r_i, r_j)`` to an already
    accepted blob ``j`` (two touching spheres, ``d = r_i + r_j``, both stay for
    ``overlap < 1``; a small blob centred on the rim of a larger one goes).

    Returns
    -------
    ndarray of bool
        ``True`` for the kept blobs (input order).
    """
    n = y.shape[0]
    order = np.argsort(-strength, kind="mergesort")
    keep = np.zeros(n, dtype=np.bool_)
    acc = np.empty(n, dtype=np.int64)
    na = 0
    for oi in range(n):
        i = order[oi]
        ok = True
        for a in range(na):
            j = acc[a]
            lim = max(r[i], r[j]) + overlap * min(r[i], r[j])
            dy = y[i] - y[j]
            dx = x[i] - x[j]
            if dy * dy + dx * dx < lim * lim:
                ok = False
                break
        if ok:
            keep[i] = True
            acc[na] = i
            na += 1
    return keep


def prune_blobs_ref(y, x, r, strength, overlap):
    """Pure-python reference of :func:`prune_blobs`."""
    order = np.argsort(-np.asarray(strength), kind="mergesort")
    kept: list[int] = []
    for i in order:
        if all(np.hypot(y[i] - y[j], x[i] - x[j]) >= max(r[i], r[j]) + overlap * min(r[i], r[j]) for j in kept):
            kept.append(int(i))
    out = np.zeros(len(y), dtype=bool)
    out[kept] = True
    return out


# ----------------------------------------------------------------------- binning
def bin_image(img, f):
    """Mean over ``f x f`` blocks (the ragged last row/column of blocks is dropped), float32.

    A numba kernel (rows of blocks in parallel; :func:`bin_image_ref` is its numpy reference, equal to the
    bit): numpy's reshape-and-sum reduces an axis of length ``f`` per output pixel, 59 ms on a 2048² image
    at ``f = 2`` where the kernel takes 4-8 ms.
    """
    a = np.asarray(img)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return _bin_kernel(a, int(f))


@njit(cache=True, parallel=True)
def _bin_kernel(a, f):
    h, w = a.shape[0] // f, a.shape[1] // f
    out = np.empty((h, w), np.float32)
    for i in prange(h):
        row = np.zeros(w)
        for di in range(f):  # the same order of sums as the reference: along a block row, then over rows
            src = a[i * f + di]
            for j in range(w):
                s = 0.0
                for dj in range(f):
                    s += float(src[j * f + dj])  # float64 sums (a float32 scalar would stay float32 with the JIT off)
                row[j] += s
        for j in range(w):
            out[i, j] = row[j] / (f * f)
    return out


def bin_image_ref(img, f):
    """Numpy reference of :func:`bin_image`."""
    f = int(f)
    h, w = img.shape[0] // f, img.shape[1] // f
    a = np.asarray(img)[: h * f, : w * f]
    out = a.reshape(h, f, w, f).sum(axis=3, dtype=np.float64).sum(axis=1)
    return (out / (f * f)).astype(np.float32)
