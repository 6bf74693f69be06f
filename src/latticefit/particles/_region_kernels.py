"""Numba kernels on label and raster images: disk painting and the one-pass region measures.

- :func:`paint_disks` / :func:`paint_disks_ref` rasterise disks;
- :func:`label_areas` / :func:`label_areas_ref` count the pixels of labels ``1..n``;
- :func:`region_measures_all` measures every label of a label image in one pass (its numpy reference is
  :func:`latticefit.particles._measure._measure_regions_ref`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["label_areas", "label_areas_ref", "paint_disks", "paint_disks_ref", "region_measures_all"]


@njit(cache=True)
def paint_disks(shape_h, shape_w, y, x, r):
    """Boolean image, True within ``r[i]`` of any centre ``(y[i], x[i])``."""
    out = np.zeros((shape_h, shape_w), dtype=np.bool_)
    for i in range(y.shape[0]):
        r2 = r[i] * r[i]
        i0 = max(0, int(math.floor(y[i] - r[i])))
        i1 = min(shape_h - 1, int(math.ceil(y[i] + r[i])))
        j0 = max(0, int(math.floor(x[i] - r[i])))
        j1 = min(shape_w - 1, int(math.ceil(x[i] + r[i])))
        for a in range(i0, i1 + 1):
            for b in range(j0, j1 + 1):
                if (a - y[i]) ** 2 + (b - x[i]) ** 2 <= r2:
                    out[a, b] = True
    return out


def paint_disks_ref(shape_h, shape_w, y, x, r):
    """Numpy reference of :func:`paint_disks`."""
    yy, xx = np.mgrid[:shape_h, :shape_w]
    out = np.zeros((shape_h, shape_w), dtype=bool)
    for a, b, c in zip(y, x, r):
        out |= (yy - a) ** 2 + (xx - b) ** 2 <= c * c
    return out


@njit(cache=True)
def label_areas(labels, n):
    """Pixel count of each label ``1..n`` of a 2-D label image (one pass; labels outside ``1..n`` ignored)."""
    out = np.zeros(n, dtype=np.int64)
    h, w = labels.shape
    for a in range(h):
        for b in range(w):
            v = labels[a, b]
            if 0 < v <= n:
                out[v - 1] += 1
    return out


def label_areas_ref(labels, n):
    """Numpy reference of :func:`label_areas`.

    Examples
    --------
    >>> label_areas_ref(np.array([[0, 1, 1], [2, 1, 5]]), 3).tolist()
    [3, 1, 0]
    """
    v = labels.ravel()
    v = v[(v > 0) & (v <= n)]
    return np.bincount(v, minlength=n + 1)[1 : n + 1].astype(np.int64)


# ------------------------------------------------------------- region measures
@njit(cache=True)
def _cross(o0, o1, a0, a1, b0, b1):
    return (a0 - o0) * (b1 - o1) - (a1 - o1) * (b0 - o0)


@njit(cache=True)
def _hull_props(px, py):
    """Convex hull (monotone chain) of points: (feret_max, feret_min, area)."""
    n = px.shape[0]
    if n == 0:
        return np.nan, np.nan, np.nan
    order = np.argsort(px * 1e6 + py)
    xs = px[order]
    ys = py[order]
    hx = np.empty(2 * n)
    hy = np.empty(2 * n)
    k = 0
    for i in range(n):
        while k >= 2 and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    t = k + 1
    for i in range(n - 2, -1, -1):
        while k >= t and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    m = k - 1  # last point repeats the first
    if m < 3:
        ext = max(xs.max() - xs.min(), ys.max() - ys.min())
        return ext, 0.0, 0.0
    area = 0.0
    fmax2 = 0.0
    for i in range(m):
        j = (i + 1) % m
        area += hx[i] * hy[j] - hx[j] * hy[i]
        for q in range(i + 1, m):
            d2 = (hx[i] - hx[q]) ** 2 + (hy[i] - hy[q]) ** 2
            if d2 > fmax2:
                fmax2 = d2
    fmin = np.inf
    for i in range(m):
        j = (i + 1) % m
        ex = hx[j] - hx[i]
        ey = hy[j] - hy[i]
        ln = math.sqrt(ex * ex + ey * ey)
        if ln == 0:
            continue
        nx = -ey / ln
        ny = ex / ln
        lo = np.inf
        hi = -np.inf
        for q in range(m):
            v = hx[q] * nx + hy[q] * ny
            lo = min(lo, v)
            hi = max(hi, v)
        fmin = min(fmin, hi - lo)
    return math.sqrt(fmax2), fmin, 0.5 * abs(area)


@njit(cache=True)
def _accumulate(labels, img, n):
    """First pass over the label image: per-label sums and bounding boxes.

    Returns ``acc`` (n + 1, 9) with columns area, sum y, sum x, sum yy, sum xx, sum xy, crack count
    (edges to another label or the image border), sum I, number of boundary pixels; and ``bb``
    (n + 1, 4) int64 bounding boxes y0, x0, y1, x1 (y1, x1 exclusive).
    """
    h, w = labels.shape
    acc = np.zeros((n + 1, 9))  # area, sy, sx, syy, sxx, sxy, cracks, sum I, n_boundary
    bb = np.empty((n + 1, 4), dtype=np.int64)
    for k in range(n + 1):
        bb[k, 0] = h
        bb[k, 1] = w
        bb[k, 2] = -1
        bb[k, 3] = -1
    for i in range(h):
        for j in range(w):
            k = labels[i, j]
            if k <= 0 or k > n:
                continue
            acc[k, 0] += 1
            acc[k, 1] += i
            acc[k, 2] += j
            acc[k, 3] += i * i
            acc[k, 4] += j * j
            acc[k, 5] += i * j
            acc[k, 7] += img[i, j]
            c = 0
            boundary = False
            if i == 0 or labels[i - 1, j] != k:
                c += 1
            if i == h - 1 or labels[i + 1, j] != k:
                c += 1
            if j == 0 or labels[i, j - 1] != k:
                c += 1
            if j == w - 1 or labels[i, j + 1] != k:
                c += 1
            if c > 0:
                boundary = True
            acc[k, 6] += c
            if boundary:
                acc[k, 8] += 1
            bb[k, 0] = min(bb[k, 0], i)
            bb[k, 1] = min(bb[k, 1], j)
            bb[k, 2] = max(bb[k, 2], i + 1)
            bb[k, 3] = max(bb[k, 3], j + 1)
    return acc, bb


@njit(cache=True)
def _boundary_pixels(labels, n, acc):
    """Second pass: the boundary pixels of every label, grouped by label.

    Returns ``off`` (label ``k`` owns ``off[k]:off[k + 1]``) and the rows ``bpy`` and columns ``bpx``
    of the boundary pixels (a pixel with a 4-neighbour of another label or on the image border).
    """
    h, w = labels.shape
    off = np.zeros(n + 2, dtype=np.int64)
    for k in range(1, n + 1):
        off[k + 1] = off[k] + int(acc[k, 8])
    bpy = np.empty(off[n + 1])
    bpx = np.empty(off[n + 1])
    fill = off.copy()
    for i in range(h):
        for j in range(w):
            k = labels[i, j]
            if k <= 0 or k > n:
                continue
            if (
                i == 0
                or labels[i - 1, j] != k
                or i == h - 1
                or labels[i + 1, j] != k
                or j == 0
                or labels[i, j - 1] != k
                or j == w - 1
                or labels[i, j + 1] != k
            ):
                bpy[fill[k]] = i
                bpx[fill[k]] = j
                fill[k] += 1
    return off, bpy, bpx


@njit(cache=True)
def _moment_axes(acc, k):
    """Centroid, second-moment eigenvalues and orientation of label ``k``: (cy, cx, l1, l2, angle)."""
    a = acc[k, 0]
    cy = acc[k, 1] / a
    cx = acc[k, 2] / a
    vyy = acc[k, 3] / a - cy * cy
    vxx = acc[k, 4] / a - cx * cx
    vxy = acc[k, 5] / a - cy * cx
    t = 0.5 * (vxx + vyy)
    dl = math.sqrt(max(0.25 * (vxx - vyy) ** 2 + vxy * vxy, 0.0))
    l1 = t + dl
    l2 = max(t - dl, 0.0)
    ang = 0.5 * math.atan2(-2.0 * vxy, vxx - vyy) + math.pi / 2.0
    if ang > math.pi / 2.0:
        ang -= math.pi
    return cy, cx, l1, l2, ang


@njit(cache=True)
def _pixel_corners(bpy, bpx, lo, hi):
    """The four corners of each boundary pixel ``lo:hi`` (their hull is the hull of the pixel squares)."""
    nb = hi - lo
    cxs = np.empty(4 * nb)
    cys = np.empty(4 * nb)
    q = 0
    for b in range(lo, hi):
        for ox in (-0.5, 0.5):
            for oy in (-0.5, 0.5):
                cxs[q] = bpx[b] + ox
                cys[q] = bpy[b] + oy
                q += 1
    return cxs, cys


@njit(cache=True)
def region_measures_all(labels, img, n):
    """Shape measurements of labels 1..n in one pass (see :func:`latticefit.particles.region_measures`).

    Returns an (n, 15) array: area, centroid y, centroid x, axis_major, axis_minor, orientation,
    perimeter, solidity, feret_max, feret_min, intensity_mean, bbox y0, x0, y1, x1 (NaN for absent labels).

    Two passes over the label image (:func:`_accumulate`: moments, crack perimeter, bounding boxes;
    :func:`_boundary_pixels`), then one hull per label (:func:`_hull_props`); not a pass per measure.
    Its reference is ``skimage.measure.regionprops``
    (``tests/test_particles.py::test_region_measure_kernel_matches_numpy_reference``).
    """
    acc, bb = _accumulate(labels, img, n)
    off, bpy, bpx = _boundary_pixels(labels, n, acc)
    out = np.full((n, 15), np.nan)
    for k in range(1, n + 1):
        a = acc[k, 0]
        if a == 0:
            continue
        cy, cx, l1, l2, ang = _moment_axes(acc, k)
        cxs, cys = _pixel_corners(bpy, bpx, off[k], off[k + 1])
        fmax, fmin, harea = _hull_props(cxs, cys)
        r = out[k - 1]
        r[0] = a
        r[1] = cy
        r[2] = cx
        r[3] = 4.0 * math.sqrt(l1)
        r[4] = 4.0 * math.sqrt(l2)
        r[5] = ang
        r[6] = acc[k, 6] * math.pi / 4.0
        r[7] = a / harea if harea > 0 else np.nan
        r[8] = fmax
        r[9] = fmin
        r[10] = acc[k, 7] / a
        r[11] = bb[k, 0]
        r[12] = bb[k, 1]
        r[13] = bb[k, 2]
        r[14] = bb[k, 3]
    return out
