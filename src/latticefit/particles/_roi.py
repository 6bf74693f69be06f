"""find_particles inside a region: the region's box is analysed, particles are kept by their centre.

A rectangle's border is the analysed field's border, so particles it cuts are ``edge`` as at the image
border. For a disk or mask the box is analysed and a particle whose centre lies outside the region is dropped;
one whose fitted disk crosses the region's border is ``edge`` (left out of the statistics, as at the image
border), and the summary is recomputed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ..errors import LatticefitError
from ..micrograph import as_micrograph
from ..roi import Rect, as_roi
from ._sizestats import size_summary


def find_particles_in_roi(find, image, roi, *, pixel_size=None, source=None, **kwargs):
    """Run ``find`` (:func:`find_particles`) on the region ``roi`` of ``image``; positions in full-image pixels.

    Called by ``find_particles(image, roi=...)``; ``roi`` is any region :func:`latticefit.roi.as_roi` accepts
    (a hyperspy ROI in the image's calibrated units included).
    """
    mg = as_micrograph(image, pixel_size, source=source)
    src = source or mg.source
    try:
        r = as_roi(roi, image, pixel_size=pixel_size)
        y0, y1, x0, x1 = r.bounds(mg.shape)
    except LatticefitError as e:
        raise e.with_source(src) from None
    res = find(mg.crop(y0, y1, x0, x1), source=src, **kwargs)
    H, W = mg.shape
    t = res.table.copy()
    t["x_px"] = t["x_px"] + x0
    t["y_px"] = t["y_px"] + y0
    labels = np.zeros((H, W), np.int32)
    labels[y0:y1, x0:x1] = res.labels
    summary = res.summary
    if not isinstance(r, Rect) and len(t):
        inside = r.mask((H, W))
        yi = np.clip(np.rint(t["y_px"].to_numpy(float)).astype(int), 0, H - 1)
        xi = np.clip(np.rint(t["x_px"].to_numpy(float)).astype(int), 0, W - 1)
        keep = inside[yi, xi]
        # distance (px) from each centre to the nearest pixel outside the region
        depth = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1][yi, xi]
        pix = math.sqrt(res.pixel_size_nm[0] * res.pixel_size_nm[1])
        rad = (
            np.where(
                np.isfinite(t["diameter_nm"].to_numpy(float)),
                t["diameter_nm"].to_numpy(float) / 2,
                t["log_radius_nm"].to_numpy(float),
            )
            / pix
        )
        t["edge"] = t["edge"].to_numpy(bool) | (depth < rad + 0.5)
        lut = np.zeros(int(labels.max()) + 1, np.int32)
        old = t["label"].to_numpy(int)[keep]
        lut[old] = np.arange(1, len(old) + 1, dtype=np.int32)
        labels = lut[labels]
        t = t[keep].reset_index(drop=True)
        t["label"] = np.arange(1, len(t) + 1, dtype=np.int64)
        summary = _resummarise(t, res, kwargs)
    summary = dict(summary, roi=r.to_dict())
    settings = dict(res.settings, roi=r.to_dict())
    return type(res)(
        table=t,
        summary=summary,
        labels=labels,
        pixel_size_nm=res.pixel_size_nm,
        source=src,
        background_grid=None,
        settings=settings,
    )


def _resummarise(t, res, kwargs) -> dict:
    """The size statistics of ``t`` (the particles left in the region), with the settings of ``res``."""
    use = (~t["edge"].to_numpy(bool)) & t["fit_ok"].to_numpy(bool)
    weights = t["ml_weight"].to_numpy(float)[use] if kwargs.get("edge_correction") == "miles-lantuejoul" else None
    s = size_summary(
        t["diameter_nm"].to_numpy(float)[use],
        t["diameter_err_nm"].to_numpy(float)[use],
        weights=weights,
        n_excluded=int(t["edge"].sum()),
        n_boot=kwargs.get("n_boot", 2000),
        seed=kwargs.get("seed", 0),
        warn=False,
    )
    keep_keys = ("diameter_range_nm", "pixel_size_nm", "probe_sigma_nm", "calibration")
    s.update({k: res.summary[k] for k in keep_keys if k in res.summary})
    s["n_detected"] = int(len(t))
    s["n_fit_failed"] = int((~t["fit_ok"]).sum())
    s["n_cluster_unsplit"] = int(t["cluster_unsplit"].sum())
    ecd = t["ecd_nm"].to_numpy(float)[use]
    s["ecd_mean_nm"] = float(np.nanmean(ecd)) if ecd.size and np.isfinite(ecd).any() else None
    return s
