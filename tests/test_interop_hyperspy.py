"""Results as hyperspy signals and markers, on calibrated axes (issue 16)."""

from __future__ import annotations

import hyperspy.api as hs
import matplotlib
import numpy as np
import pytest

from latticefit import synth
from latticefit.interop import (
    add_markers,
    anomaly_signal,
    fft_signal,
    particle_markers,
    spot_markers,
    to_hyperspy_roi,
    to_signal,
)
from latticefit.lattice import measure_lattice
from latticefit.particles import find_particles
from latticefit.roi import Circle, Rect, as_roi

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def hrtem():
    mg, _ = synth.perovskite_111(shape=(256, 256), noise_sigma=0.2, seed=1)
    return mg


@pytest.fixture(scope="module")
def dots():
    mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.1, diameter_nm=5.0, n_particles=8, n_touching_pairs=1, seed=2)
    return mg, find_particles(mg, diameter_range_nm=(2, 10))


def _marker(markers, name):
    return next(m for m in markers if type(m).__name__ == name)


def test_spot_markers_sit_on_the_fft_maxima(hrtem):
    res = measure_lattice(hrtem, roi=Rect(0, 0, 200, 200), systematic="none")
    s = fft_signal(hrtem, roi=Rect(0, 0, 200, 200))
    ax, ay = s.axes_manager.signal_axes
    assert (ax.units, ay.units) == ("1/nm", "1/nm")
    assert ax.scale == pytest.approx(1 / (200 * 0.025))
    circles = _marker(spot_markers(res), "Circles")
    offs = circles.kwargs["offsets"]
    g = res.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy()
    np.testing.assert_allclose(offs, np.vstack([g, -g]))
    # each marker lies within one bin of the brightest pixel of its 5x5 neighbourhood
    for gx, gy in offs:
        i, j = int(round((gy - ay.offset) / ay.scale)), int(round((gx - ax.offset) / ax.scale))
        win = s.data[i - 2 : i + 3, j - 2 : j + 3]
        di, dj = np.unravel_index(np.argmax(win), win.shape)
        assert abs(di - 2) <= 1 and abs(dj - 2) <= 1


def test_to_signal_of_a_lattice_result_renders_with_markers(hrtem, tmp_path):
    res = measure_lattice(hrtem, roi=Circle(128, 128, 90), systematic="none")
    s = to_signal(res, hrtem)
    assert s.metadata.latticefit.roi.as_dictionary() == Circle(128, 128, 90).to_dict()
    assert set(s.metadata.Markers.keys()) == {"Circles", "Texts"}
    half = s.axes_manager[0].scale * s.axes_manager[0].size / 2
    assert half == pytest.approx(1.25 * res.spots.g_abs_inv_nm.max(), rel=0.05)  # zoomed on the spots
    s.plot(colorbar=False)
    out = tmp_path / "fft.png"
    s._plot.signal_plot.figure.savefig(out)
    assert out.stat().st_size > 1000


def test_particle_markers_follow_the_signal_axes(dots):
    mg, res = dots
    s = mg.to_signal()
    for a in s.axes_manager.signal_axes:
        a.offset = 5.0
    ms = particle_markers(res, s)
    circ = _marker(ms, "Circles")
    t = res.table[res.table.fit_ok]
    np.testing.assert_allclose(circ.kwargs["offsets"], np.column_stack([t.x_px * 0.1 + 5, t.y_px * 0.1 + 5]))
    np.testing.assert_allclose(circ.kwargs["sizes"], t.diameter_nm)  # diameter, in nm on a nm axis
    poly = _marker(ms, "Polygons")
    v = np.concatenate(poly.kwargs["verts"])
    assert v.min() >= 5.0 - 0.1 and v.max() <= 5.0 + 25.6
    assert len(_marker(ms, "Points").kwargs["offsets"]) == len(res.table)


def test_add_markers_to_a_plotted_signal_draws_them(dots):
    mg, res = dots
    s = mg.to_signal()
    s.plot(colorbar=False)
    n0 = len(s._plot.signal_plot.ax.collections)
    add_markers(s, res)
    assert len(s._plot.signal_plot.ax.collections) >= n0 + 3
    assert {"Polygons", "Circles", "Points"} <= set(s.metadata.Markers.keys())


def test_to_signal_of_particles_keeps_the_input_signal_untouched(dots):
    mg, res = dots
    s = mg.to_signal()
    out = to_signal(res, s)
    assert "Markers" in out.metadata and "Markers" not in s.metadata


def test_strain_map_and_anomaly_as_calibrated_signals():
    from latticefit.gpa import strain_map

    mg, _ = synth.cubic_001(shape=(256, 256), seed=0)
    sm = strain_map(mg, sigma_nm=0.4)
    s = to_signal(sm)
    ax, ay = s.axes_manager.signal_axes
    assert (ax.units, ax.scale) == ("nm", pytest.approx(mg.pixel_size_nm[1]))
    assert s.axes_manager.navigation_axes[0].name == "map"
    a = anomaly_signal(np.ones((10, 20)), (0.05, 0.04))
    assert a.axes_manager.signal_shape == (20, 10) and a.axes_manager[0].scale == 0.04


def test_to_hyperspy_roi_is_the_inverse_of_as_roi(hrtem):
    s = hrtem.to_signal()
    for a in s.axes_manager.signal_axes:
        a.offset = -1.0
    for r in (Rect(10, 20, 64, 80), Circle(100.5, 90.25, 40)):
        h = to_hyperspy_roi(r, s)
        assert isinstance(h, (hs.roi.RectangularROI, hs.roi.CircleROI))
        assert as_roi(h, s) == r
