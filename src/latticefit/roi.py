"""Regions of interest: rectangles, circles (a dot is a disk) and boolean masks.

Coordinates are pixels, x to the right and y down, as in the displayed image.

Examples
--------
>>> import numpy as np
>>> r = Circle(x=50, y=40, r=20)
>>> r.bounds((100, 100))
(20, 61, 30, 71)
>>> bool(r.mask((100, 100)).sum() > 1200)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .errors import RegionError

__all__ = ["Rect", "Circle", "Mask", "ROI", "as_roi", "from_hyperspy_roi", "parse_rect", "parse_circle", "extract"]


@dataclass(frozen=True)
class Rect:
    """Rectangle with top-left corner (x, y), width w and height h, in pixels."""

    x: int
    y: int
    w: int
    h: int

    def bounds(self, shape) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) slice bounds, checked against the image ``shape``."""
        H, W = shape
        y0, y1, x0, x1 = int(self.y), int(self.y + self.h), int(self.x), int(self.x + self.w)
        if self.w <= 0 or self.h <= 0:
            raise RegionError(f"rectangle {self.describe()} has no area")
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            raise RegionError(f"rectangle {self.describe()} lies outside the {W}x{H} image")
        return y0, y1, x0, x1

    def mask(self, shape) -> np.ndarray:
        y0, y1, x0, x1 = self.bounds(shape)
        m = np.zeros(shape, bool)
        m[y0:y1, x0:x1] = True
        return m

    def describe(self) -> str:
        return f"x={self.x},y={self.y},w={self.w},h={self.h}"

    def to_dict(self) -> dict:
        return {"type": "rect", "x": int(self.x), "y": int(self.y), "w": int(self.w), "h": int(self.h)}

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) centre in pixels."""
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)


@dataclass(frozen=True)
class Circle:
    """Disk of radius r centred on (x, y), in pixels."""

    x: float
    y: float
    r: float

    def bounds(self, shape) -> tuple[int, int, int, int]:
        H, W = shape
        if self.r <= 0:
            raise RegionError(f"circle {self.describe()} has no area")
        y0, y1 = int(np.floor(self.y - self.r)), int(np.ceil(self.y + self.r)) + 1
        x0, x1 = int(np.floor(self.x - self.r)), int(np.ceil(self.x + self.r)) + 1
        if x0 < 0 or y0 < 0 or x1 > W + 1 or y1 > H + 1:
            raise RegionError(f"circle {self.describe()} lies outside the {W}x{H} image")
        return max(y0, 0), min(y1, H), max(x0, 0), min(x1, W)

    def mask(self, shape) -> np.ndarray:
        self.bounds(shape)
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        return (yy - self.y) ** 2 + (xx - self.x) ** 2 <= self.r**2

    def describe(self) -> str:
        return f"x={self.x:g},y={self.y:g},r={self.r:g}"

    def to_dict(self) -> dict:
        return {"type": "circle", "x": float(self.x), "y": float(self.y), "r": float(self.r)}

    @property
    def center(self) -> tuple[float, float]:
        return (float(self.x), float(self.y))


@dataclass(frozen=True, eq=False)
class Mask:
    """Arbitrary boolean mask of the image's shape."""

    mask_array: np.ndarray

    def bounds(self, shape) -> tuple[int, int, int, int]:
        m = np.asarray(self.mask_array, bool)
        if m.shape != tuple(shape):
            raise RegionError(f"mask of shape {m.shape} does not match the image {tuple(shape)}")
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            raise RegionError("mask selects no pixel")
        return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1

    def mask(self, shape) -> np.ndarray:
        self.bounds(shape)
        return np.asarray(self.mask_array, bool)

    def describe(self) -> str:
        return f"mask of {int(np.count_nonzero(self.mask_array))} px"

    def to_dict(self) -> dict:
        y0, y1, x0, x1 = self.bounds(np.shape(self.mask_array))
        return {"type": "mask", "n_pixels": int(np.count_nonzero(self.mask_array)), "bbox": [x0, y0, x1 - x0, y1 - y0]}

    @property
    def center(self) -> tuple[float, float]:
        ys, xs = np.nonzero(self.mask_array)
        return (float(xs.mean()), float(ys.mean()))


ROI = Union[Rect, Circle, Mask]


def parse_rect(text: str) -> Rect:
    """Parse ``"X,Y,W,H"`` (pixels) into a :class:`Rect`."""
    try:
        vals = [int(round(float(v))) for v in str(text).split(",")]
    except ValueError:
        raise RegionError(f"cannot read a rectangle from {text!r}: expected X,Y,W,H in pixels") from None
    if len(vals) != 4:
        raise RegionError(f"cannot read a rectangle from {text!r}: expected X,Y,W,H in pixels")
    return Rect(*vals)


def parse_circle(text: str) -> Circle:
    """Parse ``"X,Y,R"`` (pixels) into a :class:`Circle`."""
    try:
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise RegionError(f"cannot read a circle from {text!r}: expected X,Y,R in pixels") from None
    if len(vals) != 3:
        raise RegionError(f"cannot read a circle from {text!r}: expected X,Y,R in pixels")
    return Circle(*vals)


_HYPERSPY_ROIS = ("RectangularROI", "CircleROI", "PolygonROI")


def _is_hyperspy_roi(roi) -> bool:
    return type(roi).__name__ in _HYPERSPY_ROIS and type(roi).__module__.startswith("hyperspy")


def _image_axes(image, pixel_size=None):
    """((scale, offset) along y, (scale, offset) along x) of a Signal2D (in its axes' own units, which are
    the units its ROIs are drawn in) or of a Micrograph or array (nm, axes starting at 0; ``pixel_size``
    overrides a Micrograph's and calibrates an array), and the image shape.
    """
    am = getattr(image, "axes_manager", None)
    if am is not None:
        ax, ay = am.signal_axes[0], am.signal_axes[1]
        return (float(ay.scale), float(ay.offset)), (float(ax.scale), float(ax.offset)), am.signal_shape[::-1]
    if pixel_size is not None:
        from .units import pixel_size_pair_nm

        py, px = pixel_size_pair_nm(pixel_size)
        return (py, 0.0), (px, 0.0), tuple(np.shape(getattr(image, "data", image)))[-2:]
    ps = getattr(image, "pixel_size_nm", None)
    if ps is None:
        raise RegionError(
            "a hyperspy ROI is in calibrated units: pass a calibrated image "
            "(the Signal2D or Micrograph it was drawn on)"
        )
    return (float(ps[0]), 0.0), (float(ps[1]), 0.0), image.shape


def from_hyperspy_roi(roi, image, *, pixel_size=None) -> ROI:
    """A hyperspy ``RectangularROI``, ``CircleROI`` or ``PolygonROI`` as a latticefit region in pixels.

    The ROI's coordinates are in the calibrated units of the signal it was drawn on; ``image`` (that
    Signal2D, or a Micrograph, whose axes start at 0) converts them with its scale and offset. A circle
    with an inner radius (an annulus) and a polygon become boolean masks.

    Parameters
    ----------
    roi : hyperspy.roi.RectangularROI, CircleROI or PolygonROI
        The region, in calibrated units.
    image : hyperspy Signal2D, Micrograph or array
        The image the region refers to.
    pixel_size : float, str or (float, float), optional
        Pixel size (nm for a bare number) of a Micrograph or array ``image`` (a Signal2D's ROIs are in its
        own axes' units and use its own scale and offset).

    Returns
    -------
    Rect, Circle or Mask

    Examples
    --------
    >>> import hyperspy.api as hs, numpy as np
    >>> s = hs.signals.Signal2D(np.zeros((100, 120)))
    >>> for a in s.axes_manager.signal_axes:
    ...     a.scale, a.units = 0.02, "nm"
    >>> from_hyperspy_roi(hs.roi.RectangularROI(left=0.2, top=0.4, right=1.2, bottom=1.0), s)
    Rect(x=10, y=20, w=50, h=30)
    >>> from_hyperspy_roi(hs.roi.CircleROI(cx=1.0, cy=1.0, r=0.4), s)
    Circle(x=50.0, y=50.0, r=20.0)
    """
    (sy, oy), (sx, ox), shape = _image_axes(image, pixel_size)
    kind = type(roi).__name__
    if kind == "RectangularROI":
        x0, x1 = (float(roi.left) - ox) / sx, (float(roi.right) - ox) / sx
        y0, y1 = (float(roi.top) - oy) / sy, (float(roi.bottom) - oy) / sy
        return Rect(
            int(round(min(x0, x1))), int(round(min(y0, y1))), int(round(abs(x1 - x0))), int(round(abs(y1 - y0)))
        )
    if kind == "CircleROI":
        cx, cy = (float(roi.cx) - ox) / sx, (float(roi.cy) - oy) / sy
        r, r_inner = float(roi.r), float(getattr(roi, "r_inner", 0.0) or 0.0)
        if abs(sx - sy) <= 1e-6 * sx and r_inner == 0.0:
            return Circle(cx, cy, r / sx)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        rho2 = ((xx - cx) * sx) ** 2 + ((yy - cy) * sy) ** 2
        return Mask((rho2 <= r * r) & (rho2 >= r_inner * r_inner))
    if kind == "PolygonROI":
        from skimage.draw import polygon2mask

        verts = np.asarray(roi.vertices, dtype=float)
        if verts.ndim != 2 or len(verts) < 3:
            raise RegionError("a polygon ROI needs at least 3 vertices")
        rc = np.column_stack([(verts[:, 1] - oy) / sy, (verts[:, 0] - ox) / sx])
        return Mask(polygon2mask(tuple(int(v) for v in shape), rc))
    raise RegionError(f"cannot use a hyperspy {kind} as a region: give a RectangularROI, CircleROI or PolygonROI")


def as_roi(roi, image=None, *, pixel_size=None) -> ROI | None:
    """Any region as a latticefit :class:`Rect`, :class:`Circle` or :class:`Mask` in pixels.

    Accepts a Rect/Circle/Mask, a boolean array, a dict from ``to_dict()``, a 4-/3-tuple, or a hyperspy
    ``RectangularROI``/``CircleROI``/``PolygonROI`` in calibrated units, which needs ``image`` (the Signal2D,
    Micrograph or array it was drawn on; ``pixel_size`` for an array, see :func:`from_hyperspy_roi`).

    Examples
    --------
    >>> import hyperspy.api as hs, numpy as np
    >>> as_roi((10, 20, 64, 32))
    Rect(x=10, y=20, w=64, h=32)
    >>> as_roi(hs.roi.CircleROI(cx=2.0, cy=1.0, r=0.5), np.zeros((100, 100)), pixel_size=0.025)
    Circle(x=80.0, y=40.0, r=20.0)
    """
    if roi is None or isinstance(roi, (Rect, Circle, Mask)):
        return roi
    if _is_hyperspy_roi(roi):
        if image is None:
            raise RegionError("a hyperspy ROI is in calibrated units: pass the image it was drawn on")
        return from_hyperspy_roi(roi, image, pixel_size=pixel_size)
    if isinstance(roi, dict):
        t = roi.get("type")
        if t == "rect":
            return Rect(roi["x"], roi["y"], roi["w"], roi["h"])
        if t == "circle":
            return Circle(roi["x"], roi["y"], roi["r"])
        raise RegionError(f"unknown region {roi!r}")
    arr = np.asarray(roi)
    if arr.dtype == bool and arr.ndim == 2:
        return Mask(arr)
    if arr.ndim == 1 and arr.size == 4:
        return Rect(*[int(v) for v in arr])
    if arr.ndim == 1 and arr.size == 3:
        return Circle(*[float(v) for v in arr])
    raise RegionError(f"cannot use {roi!r} as a region: give Rect(x, y, w, h), Circle(x, y, r) or a boolean mask")


def extract(data: np.ndarray, roi, *, min_size: int = 32):
    """Cut a region out of ``data``.

    Returns
    -------
    sub : ndarray
        ``data`` inside the region's bounding box.
    weight : ndarray of bool or None
        Mask of the region inside ``sub`` (None for a rectangle or no roi).
    offset : (int, int)
        (y0, x0) of ``sub`` in ``data``.

    Raises
    ------
    RegionError
        If the region lies outside the image or its box is smaller than ``min_size`` px.
    """
    roi = as_roi(roi)
    if roi is None:
        sub, weight, off = data, None, (0, 0)
    else:
        y0, y1, x0, x1 = roi.bounds(data.shape)
        sub = data[y0:y1, x0:x1]
        weight = None if isinstance(roi, Rect) else roi.mask(data.shape)[y0:y1, x0:x1]
        off = (y0, x0)
    if min(sub.shape) < min_size:
        what = "image" if roi is None else f"region {roi.describe()}"
        raise RegionError(f"{what} is {sub.shape[1]}x{sub.shape[0]} px, smaller than the {min_size} px needed")
    return sub, weight, off
