"""Shape measurements of each segment: ECD, Feret min/max, aspect ratio (numba kernel beside a numpy reference)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from . import _kernels as K


def _hull_calipers(pts):
    """Feret max, Feret min and area of the convex hull of points (x, y)."""
    from scipy.spatial import ConvexHull

    try:
        hull = ConvexHull(pts)
    except Exception:
        ext = np.ptp(pts, axis=0)
        return float(ext.max()), float(ext.min()), float(ext[0] * ext[1])
    v = pts[hull.vertices]
    d = v[:, None, :] - v[None, :, :]
    fmax = float(np.sqrt((d**2).sum(-1)).max())
    e = np.roll(v, -1, axis=0) - v
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    nrm = np.column_stack([-e[:, 1], e[:, 0]])
    fmin = float(np.ptp(v @ nrm.T, axis=0).min())
    return fmax, fmin, float(hull.volume)


def region_measures(mask: np.ndarray) -> dict:
    """Shape measurements of one binary region (pixel units).

    ``area`` (pixel count), ``centroid`` (y, x), ``axis_major_length`` /
    ``axis_minor_length`` / ``orientation`` (as :func:`skimage.measure.regionprops`:
    4 sqrt of the inertia-tensor eigenvalues, angle of the major axis from the
    row axis), ``feret_max`` / ``feret_min`` and ``solidity`` from the convex hull
    of the pixel squares (ImageJ's convention), and ``perimeter``: the boundary
    crack length times pi/4 (unbiased for randomly oriented smooth outlines).

    Examples
    --------
    >>> yy, xx = np.mgrid[:41, :41]
    >>> m = (yy - 20) ** 2 + (xx - 20) ** 2 <= 15 ** 2
    >>> r = region_measures(m)
    >>> round(r["feret_max"]), round(4 * np.pi * r["area"] / r["perimeter"] ** 2, 1)
    (31, 0.9)
    """
    ys, xs = np.nonzero(mask)
    n = ys.size
    out = dict(
        area=float(n),
        centroid=(np.nan, np.nan),
        axis_major_length=np.nan,
        axis_minor_length=np.nan,
        orientation=np.nan,
        feret_max=np.nan,
        feret_min=np.nan,
        solidity=np.nan,
        perimeter=np.nan,
    )
    if n == 0:
        return out
    cy, cx = ys.mean(), xs.mean()
    dy, dx = ys - cy, xs - cx
    # central second moments (as skimage's inertia tensor, without a pixel-size term)
    a = (dy * dy).mean()
    c = (dx * dx).mean()
    b = (dy * dx).mean()
    Txx, Tyy, Txy = c, a, -b
    t = 0.5 * (Txx + Tyy)
    dlt = math.sqrt(max(0.25 * (Txx - Tyy) ** 2 + Txy**2, 0.0))
    l1, l2 = t + dlt, max(t - dlt, 0.0)
    out["centroid"] = (float(cy), float(cx))
    out["axis_major_length"] = 4.0 * math.sqrt(l1)
    out["axis_minor_length"] = 4.0 * math.sqrt(l2)
    # orientation (skimage): angle between the row axis and the major axis, in (-pi/2, pi/2]
    ang = 0.5 * math.atan2(-2.0 * b, c - a) + math.pi / 2.0
    if ang > math.pi / 2.0:
        ang -= math.pi
    out["orientation"] = ang
    m = np.pad(mask, 1)
    cracks = int(np.count_nonzero(m[1:, :] != m[:-1, :]) + np.count_nonzero(m[:, 1:] != m[:, :-1]))
    out["perimeter"] = cracks * math.pi / 4.0
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    by, bx = np.nonzero(mask & ~inner)
    pts = np.concatenate([np.column_stack([bx + ox, by + oy]) for ox in (-0.5, 0.5) for oy in (-0.5, 0.5)])
    fmax, fmin, harea = _hull_calipers(pts.astype(np.float64))
    out["feret_max"], out["feret_min"] = fmax, fmin
    out["solidity"] = float(n / harea) if harea > 0 else np.nan
    return out


_MEASURE_COLUMNS = (
    "area",
    "centroid-0",
    "centroid-1",
    "axis_major_length",
    "axis_minor_length",
    "orientation",
    "perimeter",
    "solidity",
    "feret_max",
    "feret_min",
    "intensity_mean",
    "bbox-0",
    "bbox-1",
    "bbox-2",
    "bbox-3",
)


def _measure_regions(labels, img, n):
    """Measurements of labels 1..n (numba kernel; :func:`_measure_regions_ref` is the numpy reference)."""
    import pandas as pd

    arr = K.region_measures_all(
        np.ascontiguousarray(labels, dtype=np.int32), np.ascontiguousarray(img, dtype=np.float32), int(n)
    )
    df = pd.DataFrame(arr, columns=list(_MEASURE_COLUMNS))
    df.insert(0, "label", np.arange(1, n + 1))
    return df


def _measure_regions_ref(labels, img, n):
    """:func:`region_measures` of labels 1..n plus the mean intensity (rows of missing labels are NaN)."""
    import pandas as pd

    objs = ndi.find_objects(labels, max_label=n)
    cols = {k: np.full(n, np.nan) for k in _MEASURE_COLUMNS}
    for k, sl in enumerate(objs):
        if sl is None:
            continue
        mask = labels[sl] == (k + 1)
        r = region_measures(mask)
        y0, x0 = sl[0].start, sl[1].start
        cols["area"][k] = r["area"]
        cols["centroid-0"][k] = r["centroid"][0] + y0
        cols["centroid-1"][k] = r["centroid"][1] + x0
        for key in (
            "axis_major_length",
            "axis_minor_length",
            "orientation",
            "perimeter",
            "solidity",
            "feret_max",
            "feret_min",
        ):
            cols[key][k] = r[key]
        cols["intensity_mean"][k] = float(img[sl][mask].mean())
        cols["bbox-0"][k], cols["bbox-1"][k] = y0, x0
        cols["bbox-2"][k], cols["bbox-3"][k] = sl[0].stop, sl[1].stop
    df = pd.DataFrame(cols)
    df.insert(0, "label", np.arange(1, n + 1))
    return df
