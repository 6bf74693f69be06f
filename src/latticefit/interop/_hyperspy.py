"""latticefit results as hyperspy objects: FFT and map signals with calibrated axes, markers, ROIs.

Free functions that read the results' public fields (``LatticeResult.spots``, ``ParticleResult.table`` and
``.labels``, ``StrainMap.to_signal``), so they work on any result of these types without changing them.
Tables stay pandas DataFrames (``result.spots``, ``result.table``, ``comparison.table``).
"""

from __future__ import annotations

import math

import numpy as np

from .._plotstyle import OKABE_ITO
from ..errors import LatticefitError
from ..micrograph import Micrograph, as_micrograph
from ..roi import Circle, Mask, Rect, as_roi

__all__ = [
    "fft_signal",
    "spot_markers",
    "particle_markers",
    "add_markers",
    "to_signal",
    "anomaly_signal",
    "to_hyperspy_roi",
    "image_signal",
]


def _hs():
    import hyperspy.api as hs

    return hs


def _set_axes(s, names, scales, offsets, units):
    """Set the two signal axes (x first, as hyperspy orders them)."""
    for ax, n, sc, off in zip(s.axes_manager.signal_axes, names, scales, offsets):
        ax.name, ax.scale, ax.offset, ax.units = n, float(sc), float(off), units


def image_signal(image, *, pixel_size=None):
    """The image as a calibrated ``Signal2D`` (a Signal2D is returned as it is; axes in nm otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> s = image_signal(np.zeros((64, 80)), pixel_size=0.02)
    >>> s.axes_manager.signal_shape, s.axes_manager[0].scale, s.axes_manager[0].units
    ((80, 64), 0.02, 'nm')
    """
    if hasattr(image, "axes_manager"):
        return image
    return as_micrograph(image, pixel_size).to_signal()


def _axes_of(signal, result_pixel_size):
    """((scale, offset) along x, (scale, offset) along y, units) of ``signal``; nm from 0 without one."""
    if signal is None:
        py, px = result_pixel_size
        return (px, 0.0), (py, 0.0), "nm"
    ax, ay = signal.axes_manager.signal_axes
    return (ax.scale, ax.offset), (ay.scale, ay.offset), str(ax.units)


def fft_signal(image, *, roi=None, pixel_size=None, window="periodic", log=True):
    """Power spectrum of an image or region as a ``Signal2D`` on calibrated reciprocal axes (1/nm).

    The axes ``gx``/``gy`` match ``LatticeResult.spots`` (``gx_inv_nm``, ``gy_inv_nm``; gy grows downwards as
    y does), so :func:`spot_markers` of a result measured on the same region sit on its spots.

    Parameters
    ----------
    image : Micrograph, Signal2D or array
    roi : region, optional
        Any region :func:`latticefit.roi.as_roi` accepts, hyperspy ROIs in the image's calibrated units
        included; a ``LatticeResult.roi`` dict (rectangle or circle) too.
    pixel_size : optional
        Calibration of an array (nm for a bare number).
    window : str
        See :func:`latticefit.spectrum.power_spectrum`.
    log : bool
        ``log10`` of the power (for display) instead of the power.

    Returns
    -------
    hyperspy.signals.Signal2D
        ``metadata.latticefit.roi`` holds the region (``to_dict()`` form).

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, _ = synth.perovskite_111(shape=(256, 256), noise_sigma=0.2, seed=1)
    >>> s = fft_signal(mg, roi=(0, 0, 128, 128))
    >>> s.axes_manager.signal_shape, s.axes_manager[0].units, round(s.axes_manager[0].scale, 4)
    ((128, 128), '1/nm', 0.3125)
    """
    from ..spectrum import power_spectrum  # lazy: scipy.fft and numba only when an FFT is asked for

    r = as_roi(roi, image, pixel_size=pixel_size)
    spec = power_spectrum(image, roi=r, pixel_size=pixel_size, window=window)
    hs = _hs()
    s = hs.signals.Signal2D((spec.log_power if log else spec.power).astype(np.float32))
    gy, gx = spec.gy_inv_nm, spec.gx_inv_nm
    (sgy, sgx) = spec.g_step_inv_nm
    _set_axes(s, ("gx", "gy"), (sgx, sgy), (gx[0], gy[0]), "1/nm")
    s.metadata.General.title = "log10 power spectrum" if log else "power spectrum"
    s.metadata.set_item("Signal.quantity", "log10(power)" if log else "power")
    s.metadata.set_item("latticefit.roi", r.to_dict() if r is not None else None)
    s.metadata.set_item("latticefit.window", str(window))
    return s


def spot_markers(result, *, friedel: bool = True, labels: bool = True, size_inv_nm: float | None = None):
    """Markers of a ``LatticeResult``'s refined spots, for the signal of :func:`fft_signal`.

    Circles centred on each refined g (and on -g with ``friedel``), blue for first-order plane families,
    orange for harmonics (order > 1), vermillion for spots off the lattice (order 0), and text labels with
    d in Å (the value only; its 1-sigma SD is ``result.spots.d_err_angstrom``).

    Parameters
    ----------
    result : LatticeResult
    friedel : bool
        Mark the Friedel mate -g too.
    labels : bool
        Add the d-spacing labels.
    size_inv_nm : float, optional
        Circle diameter in 1/nm (default: 4 % of the largest |g|).

    Returns
    -------
    list of hyperspy markers

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.lattice import measure_lattice
    >>> mg, _ = synth.perovskite_111(shape=(256, 256), noise_sigma=0.2, seed=1)
    >>> res = measure_lattice(mg, systematic="none")
    >>> s = fft_signal(mg)
    >>> s.add_marker(spot_markers(res), permanent=True, plot_marker=False)
    >>> sorted(s.metadata.Markers.keys())
    ['Circles', 'Texts']
    """
    hs = _hs()
    sp = result.spots
    if len(sp) == 0:
        return []
    g = sp[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
    order = sp["order"].to_numpy(int)
    size = size_inv_nm or 0.08 * float(np.max(np.hypot(g[:, 0], g[:, 1])))
    colour = np.where(
        order == 1, OKABE_ITO["sky_blue"], np.where(order > 1, OKABE_ITO["orange"], OKABE_ITO["vermillion"])
    )
    pos = np.vstack([g, -g]) if friedel else g
    cols = list(colour) * (2 if friedel else 1)
    out = [
        hs.plot.markers.Circles(
            offsets=pos, sizes=np.full(len(pos), size), edgecolor=cols, linewidth=1.2, facecolors="none"
        )
    ]
    if labels:
        texts = [f"{d:.3f} Å" for d in sp["d_angstrom"].to_numpy(float)]
        lab = g + np.array([0.0, -0.9 * size])  # above the circle (gy grows downwards)
        out.append(
            hs.plot.markers.Texts(
                offsets=lab,
                texts=texts,
                color=cols[: len(g)],
                sizes=(1,),
                horizontalalignment="center",
                verticalalignment="bottom",
            )
        )
    return out


def _outline_verts(labels, ids):
    """Closed outline polygons (x, y in pixels) of each label in ``ids`` (the overlay's outlines)."""
    from ..particles._overlay import _outline_segments

    return _outline_segments(labels, ids)


def particle_markers(result, signal=None, *, outlines: bool = True, circles: bool = True, centres: bool = True):
    """Markers of a ``ParticleResult``: segmented outlines, model-fit circles and centres, on the image.

    Outlines in orange (particles cut by the border in reddish purple), fitted diameters as dashed
    sky-blue circles above them (``diameter_nm``), centres as sky-blue points; positions in the calibrated
    units of ``signal`` (its scale and offset; nm from 0 without one).

    Parameters
    ----------
    result : ParticleResult
    signal : Signal2D, optional
        The image the markers go on (default: the axes of ``result.pixel_size_nm`` from 0).
    outlines, circles, centres : bool

    Returns
    -------
    list of hyperspy markers

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.particles import find_particles
    >>> mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.1, diameter_nm=5, n_particles=6,
    ...                          n_touching_pairs=1)
    >>> res = find_particles(mg, diameter_range_nm=(2, 10))
    >>> s = mg.to_signal()
    >>> s.add_marker(particle_markers(res, s), permanent=True, plot_marker=False)
    >>> sorted(s.metadata.Markers.keys())[:2]
    ['Circles', 'Points']
    """
    hs = _hs()
    t = result.table
    if len(t) == 0:
        return []
    (sx, ox), (sy, oy), units = _axes_of(signal, result.pixel_size_nm)
    py, px = result.pixel_size_nm
    xy = np.column_stack([t["x_px"].to_numpy(float) * sx + ox, t["y_px"].to_numpy(float) * sy + oy])
    out = []
    if outlines:
        edge = dict(zip(t["label"].to_numpy(int), t["edge"].to_numpy(bool)))
        verts, cols = [], []
        for lab, polys in _outline_verts(result.labels, t["label"].to_numpy(int)).items():
            for v in polys:
                verts.append(np.column_stack([v[:, 0] * sx + ox, v[:, 1] * sy + oy]))
                cols.append(OKABE_ITO["reddish_purple"] if edge[lab] else OKABE_ITO["orange"])
        if verts:
            out.append(
                hs.plot.markers.Polygons(verts=verts, edgecolor=cols, facecolors="none", linewidth=1.0, zorder=3)
            )
    if circles:
        ok = t["fit_ok"].to_numpy(bool) & np.isfinite(t["diameter_nm"].to_numpy(float))
        if ok.any():
            # the fitted diameter in the signal's units: nm -> px (geometric-mean pixel) -> signal scale
            d = t["diameter_nm"].to_numpy(float)[ok] / math.sqrt(py * px) * sx
            out.append(
                hs.plot.markers.Circles(
                    offsets=xy[ok],
                    sizes=d,
                    edgecolor=OKABE_ITO["sky_blue"],
                    linewidth=1.0,
                    linestyle=(0, (2, 2)),
                    facecolors="none",
                    zorder=4,
                )
            )
    if centres:
        out.append(hs.plot.markers.Points(offsets=xy, sizes=4, color=OKABE_ITO["sky_blue"], zorder=5))
    return out


def add_markers(signal, result, *, permanent: bool = True, **kwargs):
    """Add a result's markers to ``signal`` (spots on an FFT signal, particles on an image).

    ``permanent=True`` stores them in ``signal.metadata.Markers``: they are drawn by ``signal.plot()`` and
    saved with the signal. A signal already plotted gets them drawn at once.

    Parameters
    ----------
    signal : Signal2D
        :func:`fft_signal` for a ``LatticeResult``; the analysed image for a ``ParticleResult``.
    result : LatticeResult or ParticleResult
    **kwargs
        Passed to :func:`spot_markers` or :func:`particle_markers`.

    Returns
    -------
    list of hyperspy markers
    """
    if hasattr(result, "spots"):
        markers = spot_markers(result, **kwargs)
    elif hasattr(result, "table") and hasattr(result, "labels"):
        markers = particle_markers(result, signal, **kwargs)
    else:
        raise LatticefitError(f"no markers for a {type(result).__name__}: give a LatticeResult or ParticleResult")
    if markers:
        plotted = getattr(signal, "_plot", None) is not None and signal._plot.is_active
        signal.add_marker(markers, permanent=permanent, plot_marker=plotted)
    return markers


def anomaly_signal(score, pixel_size_nm, *, title: str = "lattice anomaly"):
    """A lattice/contrast anomaly map (``LatticeReport.anomaly``, in noise sigmas) as a calibrated Signal2D.

    Examples
    --------
    >>> import numpy as np
    >>> s = anomaly_signal(np.zeros((32, 48)), (0.05, 0.05))
    >>> s.axes_manager[1].name, s.axes_manager[1].scale, s.metadata.Signal.quantity
    ('y', 0.05, 'anomaly score (noise sigmas)')
    """
    hs = _hs()
    s = hs.signals.Signal2D(np.asarray(score, dtype=np.float32))
    py, px = (float(v) for v in np.broadcast_to(pixel_size_nm, 2))
    _set_axes(s, ("x", "y"), (px, py), (0.0, 0.0), "nm")
    s.metadata.General.title = title
    s.metadata.set_item("Signal.quantity", "anomaly score (noise sigmas)")
    return s


def to_signal(result, image=None, *, roi=None, markers: bool = True, g_max_inv_nm=None):
    """One result as a hyperspy signal, markers included.

    - ``LatticeResult``: the FFT of its region of ``image`` (:func:`fft_signal`) with its spots;
    - ``ParticleResult``: ``image`` as a calibrated Signal2D with outlines, circles, centres;
    - ``StrainMap``: its calibrated maps (``StrainMap.to_signal``; no image needed);
    - ``LatticeReport``: its anomaly map (when the dot was chosen from it).

    ``g_max_inv_nm`` limits the FFT to ``|gx|, |gy| <= g_max`` (default 1.25 x the largest spot |g|; ``"all"``
    keeps the whole spectrum up to Nyquist).

    Examples
    --------
    >>> from latticefit import synth
    >>> from latticefit.lattice import measure_lattice
    >>> mg, _ = synth.perovskite_111(shape=(256, 256), noise_sigma=0.2, seed=1)
    >>> res = measure_lattice(mg, roi=(0, 0, 160, 160), systematic="none")
    >>> to_signal(res, mg, g_max_inv_nm="all").axes_manager.signal_shape
    (160, 160)
    >>> s = to_signal(res, mg)  # zoomed on the spots: |g| <= 1.25 x the largest
    >>> s.axes_manager.signal_shape, s.axes_manager[0].units, sorted(s.metadata.Markers.keys())
    ((48, 48), '1/nm', ['Circles', 'Texts'])
    """
    if hasattr(result, "exx") and hasattr(result, "to_signal"):
        return result.to_signal()
    if hasattr(result, "anomaly") and hasattr(result, "hrtem"):
        if result.anomaly is None:
            raise LatticefitError("this report has no anomaly map (its dot was not chosen from the HRTEM)")
        return anomaly_signal(result.anomaly, result.hrtem.pixel_size_nm)
    if image is None:
        raise LatticefitError(f"to_signal of a {type(result).__name__} needs the analysed image")
    if hasattr(result, "spots"):
        region = roi if roi is not None else result.roi
        if isinstance(region, dict) and region.get("type") == "mask":
            raise LatticefitError("a mask region cannot be rebuilt from the result: pass roi= (the mask)")
        s = fft_signal(image, roi=region)
        if len(result.spots) and g_max_inv_nm != "all":
            # the spots' neighbourhood: 1.25 x the largest |g| (the rest is noise up to Nyquist)
            gm = float(g_max_inv_nm or 1.25 * result.spots["g_abs_inv_nm"].max())
            ax, ay = s.axes_manager.signal_axes
            if gm < min(-ax.offset, -ay.offset):
                s = s.isig[-gm:gm, -gm:gm]
    else:
        s = image_signal(image).deepcopy() if hasattr(image, "axes_manager") else image_signal(image)
    if markers:
        add_markers(s, result)
    return s


def to_hyperspy_roi(roi, image=None, *, pixel_size=None):
    """A latticefit Rect or Circle (pixels) as a hyperspy ``RectangularROI``/``CircleROI`` in calibrated units.

    The inverse of :func:`latticefit.roi.from_hyperspy_roi`, on the axes of ``image`` (a Signal2D's scale and
    offset; a Micrograph's or ``pixel_size``'s nm from 0).

    Examples
    --------
    >>> import numpy as np
    >>> from latticefit.roi import Circle
    >>> to_hyperspy_roi(Circle(80, 40, 20), np.zeros((100, 100)), pixel_size=0.025)
    CircleROI(cx=2, cy=1, r=0.5, r_inner=0)
    """
    from ..roi import _image_axes

    hs = _hs()
    r = as_roi(roi, image, pixel_size=pixel_size)
    if image is None:
        raise LatticefitError("to_hyperspy_roi needs the image (its calibration)")
    if not hasattr(image, "axes_manager") and pixel_size is None and not isinstance(image, Micrograph):
        raise LatticefitError("to_hyperspy_roi of an array needs pixel_size=")
    (sy, oy), (sx, ox), _ = _image_axes(image, pixel_size)
    if isinstance(r, Rect):
        return hs.roi.RectangularROI(
            left=r.x * sx + ox, top=r.y * sy + oy, right=(r.x + r.w) * sx + ox, bottom=(r.y + r.h) * sy + oy
        )
    if isinstance(r, Circle):
        return hs.roi.CircleROI(cx=r.x * sx + ox, cy=r.y * sy + oy, r=r.r * sx)
    if isinstance(r, Mask):
        raise LatticefitError("a mask has no hyperspy ROI: use a PolygonROI (its vertices) instead")
    raise LatticefitError(f"cannot make a hyperspy ROI of {roi!r}")
