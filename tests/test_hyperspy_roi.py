"""hyperspy ROIs in calibrated units as latticefit regions (issue 16)."""

from __future__ import annotations

import hyperspy.api as hs
import numpy as np
import pytest

from latticefit.errors import RegionError
from latticefit.micrograph import Micrograph
from latticefit.roi import Circle, Mask, Rect, as_roi, from_hyperspy_roi


@pytest.fixture
def signal():
    s = hs.signals.Signal2D(np.zeros((80, 100), np.float32))
    ax, ay = s.axes_manager.signal_axes
    ax.scale, ax.offset, ax.units = 0.05, 1.0, "nm"
    ay.scale, ay.offset, ay.units = 0.05, -0.5, "nm"
    return s


def test_rectangle_uses_scale_and_offset(signal):
    r = from_hyperspy_roi(hs.roi.RectangularROI(left=1.5, top=0.0, right=3.0, bottom=1.0), signal)
    assert r == Rect(x=10, y=10, w=30, h=20)


def test_units_other_than_nm_are_converted():
    s = hs.signals.Signal2D(np.zeros((64, 64), np.float32))
    for a in s.axes_manager.signal_axes:
        a.scale, a.units = 0.002, "µm"  # 2 nm/px
    c = as_roi(hs.roi.CircleROI(cx=0.064, cy=0.032, r=0.02), s)
    assert isinstance(c, Circle) and (c.x, c.y, c.r) == pytest.approx((32.0, 16.0, 10.0))


def test_micrograph_axes_start_at_zero_and_annulus_is_a_mask():
    mg = Micrograph(np.zeros((64, 64)), pixel_size_nm=(0.1, 0.1))
    ring = as_roi(hs.roi.CircleROI(cx=3.2, cy=3.2, r=2.0, r_inner=1.0), mg)
    assert isinstance(ring, Mask)
    area_px = np.pi * (20**2 - 10**2)
    assert abs(ring.mask((64, 64)).sum() - area_px) / area_px < 0.03
    assert not ring.mask((64, 64))[32, 32]  # the hole


def test_polygon_is_a_mask_of_the_right_area(signal):
    tri = hs.roi.PolygonROI([(1.0, -0.5), (3.0, -0.5), (1.0, 1.5)])  # legs of 40 px along x and y
    m = as_roi(tri, signal).mask((80, 100))
    assert 800 <= m.sum() <= 41 * 42 / 2  # the continuous area up to the pixels the edges touch
    assert m[1, 1] and not m[35, 35]


def test_hyperspy_roi_without_an_image_is_a_clear_error():
    with pytest.raises(RegionError, match="calibrated units"):
        as_roi(hs.roi.RectangularROI(0, 0, 1, 1))
    with pytest.raises(RegionError, match="calibrated"):
        as_roi(hs.roi.RectangularROI(0, 0, 1, 1), Micrograph(np.zeros((8, 8))))
