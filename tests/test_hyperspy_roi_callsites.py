"""hyperspy ROIs in calibrated units accepted by measure_lattice, compare_regions, find_particles and the
lattice report (issue 16)."""

from __future__ import annotations

import hyperspy.api as hs
import numpy as np
import pytest

from latticefit import synth
from latticefit.lattice import compare_regions, measure_lattice
from latticefit.particles import find_particles
from latticefit.roi import Circle, Rect


@pytest.fixture(scope="module")
def hrtem():
    mg, truth = synth.perovskite_111(
        shape=(384, 384), noise_sigma=0.3, seed=3, inclusions=[dict(x_px=280, y_px=280, radius_nm=2.5, mismatch=0.03)]
    )
    s = mg.to_signal()
    for a in s.axes_manager.signal_axes:
        a.offset = 1.0  # a signal whose axes do not start at 0 (a crop of a larger one)
    return mg, s


def test_measure_lattice_rectangular_roi_equals_pixel_rect(hrtem):
    mg, s = hrtem
    p = mg.pixel_size_nm[1]
    roi = hs.roi.RectangularROI(left=1.0 + 10 * p, top=1.0 + 20 * p, right=1.0 + 170 * p, bottom=1.0 + 180 * p)
    a = measure_lattice(s, roi=roi, systematic="none")
    b = measure_lattice(mg, roi=Rect(10, 20, 160, 160), systematic="none")
    assert a.roi == b.roi == Rect(10, 20, 160, 160).to_dict()
    np.testing.assert_allclose(a.spots.d_angstrom, b.spots.d_angstrom)


def test_measure_lattice_circle_roi_on_an_array_with_pixel_size(hrtem):
    mg, _ = hrtem
    p = mg.pixel_size_nm[1]
    a = measure_lattice(
        mg.data, pixel_size=p, roi=hs.roi.CircleROI(cx=280 * p, cy=280 * p, r=60 * p), systematic="none"
    )
    assert a.roi == Circle(280, 280, 60).to_dict()


def test_compare_regions_with_hyperspy_rois(hrtem):
    mg, s = hrtem
    p = mg.pixel_size_nm[1]
    ra = hs.roi.RectangularROI(left=1.0, top=1.0, right=1.0 + 180 * p, bottom=1.0 + 180 * p)
    rb = hs.roi.CircleROI(cx=1.0 + 280 * p, cy=1.0 + 280 * p, r=60 * p)
    c1 = compare_regions(s, ra, rb, systematic="none")
    c2 = compare_regions(mg, Rect(0, 0, 180, 180), Circle(280, 280, 60), systematic="none")
    assert c1.a.roi == c2.a.roi and c1.b.roi == c2.b.roi
    assert c1.summary["mean_rel_diff"] == pytest.approx(c2.summary["mean_rel_diff"])
    assert c1.summary["mean_rel_diff"] == pytest.approx(0.03, abs=0.01)


@pytest.fixture(scope="module")
def haadf():
    mg, truth = synth.haadf_dots(
        (384, 384), pixel_size_nm=0.1, diameter_nm=6.0, n_particles=14, n_touching_pairs=1, seed=4
    )
    return mg, truth


def test_find_particles_rectangular_roi_keeps_full_image_positions(haadf):
    mg, _ = haadf
    full = find_particles(mg, diameter_range_nm=(3, 10))
    s = mg.to_signal()
    roi = hs.roi.RectangularROI(left=0.0, top=0.0, right=20.0, bottom=38.4)  # nm: the left 200 px
    part = find_particles(s, roi=roi, diameter_range_nm=(3, 10))
    assert part.settings["roi"] == Rect(0, 0, 200, 384).to_dict()
    assert part.labels.shape == mg.shape
    t = part.table
    assert len(t) and (t.x_px < 200).all()
    # every particle wholly inside the region is found at the same place as in the whole image
    inner = full.table[(full.table.x_px + full.table.diameter_nm / 0.2 < 199) & ~full.table.edge]
    for x, y, d in zip(inner.x_px, inner.y_px, inner.diameter_nm):
        k = np.argmin(np.hypot(t.x_px - x, t.y_px - y))
        assert np.hypot(t.x_px[k] - x, t.y_px[k] - y) < 0.5 and t.diameter_nm[k] == pytest.approx(d, rel=0.02)
        assert part.labels[int(round(t.y_px[k])), int(round(t.x_px[k]))] == t.label[k]


def test_find_particles_circle_roi_flags_cut_particles(haadf):
    mg, _ = haadf
    roi = hs.roi.CircleROI(cx=19.2, cy=19.2, r=12.0)
    res = find_particles(mg.to_signal(), roi=roi, diameter_range_nm=(3, 10))
    t = res.table
    dist = np.hypot(t.x_px - 192, t.y_px - 192)
    assert (dist <= 120.5).all()
    cut = dist + t.diameter_nm.fillna(0) / 0.2 > 120
    assert t.edge[cut].all()
    assert res.summary["n"] == int((~t.edge & t.fit_ok).sum())
    assert set(np.unique(res.labels)) == {0, *t.label}


def test_lattice_report_takes_hyperspy_rois(hrtem):
    from latticefit.report import build_lattice_report

    mg, s = hrtem
    p = mg.pixel_size_nm[1]
    rep = build_lattice_report(
        s,
        roi_matrix=hs.roi.RectangularROI(left=1.0, top=1.0, right=1.0 + 180 * p, bottom=1.0 + 180 * p),
        roi_dot=hs.roi.CircleROI(cx=1.0 + 280 * p, cy=1.0 + 280 * p, r=60 * p),
    )
    assert rep.regions["matrix"].lattice.roi == Rect(0, 0, 180, 180).to_dict()
    assert rep.regions["dot"].lattice.roi == Circle(280, 280, 60).to_dict()


def test_polygon_roi_is_measured_as_a_mask(hrtem):
    mg, s = hrtem
    p = mg.pixel_size_nm[1]
    verts = [(1.0 + x * p, 1.0 + y * p) for x, y in ((150, 150), (380, 150), (380, 380))]  # a triangle
    a = measure_lattice(s, roi=hs.roi.PolygonROI(verts), systematic="none")
    assert a.roi["type"] == "mask" and a.info["refinement"] == "mask-least-squares"
    assert abs(a.roi["n_pixels"] - 230 * 230 / 2) < 2 * 230 * 2
    assert round(a.basis["angle_deg"]) == 60


def test_strain_map_reference_takes_a_hyperspy_roi():
    from latticefit.gpa import strain_map

    mg, _ = synth.cubic_001(shape=(256, 256), seed=0)
    s = mg.to_signal()
    p = mg.pixel_size_nm[1]
    sm = strain_map(
        s, sigma_nm=0.4, reference=hs.roi.RectangularROI(left=40 * p, top=40 * p, right=140 * p, bottom=140 * p)
    )
    assert sm.reference == Rect(40, 40, 100, 100).to_dict()
