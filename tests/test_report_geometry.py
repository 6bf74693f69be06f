"""Fig. 4 report: number formatting, HAADF->HRTEM mapping, region choice, fringe drawing (no figure)."""

import math

import numpy as np
import pytest

from latticefit import Micrograph
from latticefit._plotstyle import format_uncertain, output_paths, round_to_uncertainty
from latticefit.errors import LatticefitError
from latticefit.report import (
    anomaly_map,
    check_fields_of_view,
    choose_dot_from_anomaly,
    choose_dot_from_particles,
    choose_matrix_region,
    fringe_phase,
    fringe_segments,
    haadf_to_hrtem_points,
    hkl_label,
)
from latticefit.roi import Circle, Rect
from latticefit.synth import _core as synth


@pytest.mark.parametrize(
    "value,err,unit,text",
    [
        (4.19512, 0.00312, "Å", "4.195 ± 0.003 Å"),
        (4.19512, 0.0121, "Å", "4.195 ± 0.012 Å"),  # leading 1: two digits
        (4.19512, 0.0096, "Å", "4.195 ± 0.010 Å"),  # rounding carries
        (60.04, 0.21, "°", "60.0 ± 0.2°"),
        (1234.0, 56.0, "", "1230 ± 60"),
        (7.04, float("nan"), "nm", "7.040 nm"),
        (7.04, None, "nm", "7.040 nm"),
    ],
)
def test_format_uncertain(value, err, unit, text):
    assert format_uncertain(value, err, unit) == text


def test_round_to_uncertainty_keeps_value_within_half_digit():
    rng = np.random.default_rng(0)
    for v, e in zip(rng.uniform(-100, 100, 200), 10 ** rng.uniform(-5, 1, 200)):
        vs, es = round_to_uncertainty(v, e)
        # the value is rounded at the last digit of the uncertainty, a step no larger than the uncertainty
        assert abs(float(vs) - v) <= 0.5 * float(es) + 1e-12
        assert 0.5 * e <= float(es) <= 1.6 * e  # the rounded uncertainty stays close to the real one


def test_output_paths_and_bad_extension(tmp_path):
    p = output_paths(tmp_path / "fig4.pdf")
    assert p["png"].name == "fig4.png" and p["json"].name == "fig4.json" and p["csv"].name == "fig4.csv"
    assert p["particles_csv"].name == "fig4_particles.csv"
    with pytest.raises(LatticefitError, match="pdf, .png or .svg"):
        output_paths(tmp_path / "fig4.jpg")


def test_hkl_label():
    assert hkl_label((0, 1, -1), mathtext=False) == "(01-1)"
    assert hkl_label((1, 0, -1)) == r"$(10\bar{1})$"
    assert hkl_label("(0 1 -1)", mathtext=False) == "(01-1)"
    assert hkl_label(None) == ""


# ------------------------------------------------------------------ fields of view
def test_fov_mapping_matches_synth_truth():
    hr, hd, truth = synth.fig4_pair(hrtem_shape=(256, 256), haadf_shape=(128, 128), hrtem_pixel_size_nm=0.05, seed=3)
    fov = check_fields_of_view(hr, hd)
    assert fov.agree and fov.scale_yx == (2.0, 2.0) and fov.message == ""
    x, y = haadf_to_hrtem_points(truth.dots["x_haadf_px"], truth.dots["y_haadf_px"], fov)
    np.testing.assert_allclose(x, truth.dots["x_hrtem_px"], atol=1e-9)
    np.testing.assert_allclose(y, truth.dots["y_hrtem_px"], atol=1e-9)


def test_fov_mismatch_is_reported():
    a = Micrograph(np.zeros((512, 512)), pixel_size_nm=(0.02, 0.02))
    b = Micrograph(np.zeros((128, 128)), pixel_size_nm=(0.1, 0.1))  # 12.8 nm vs 10.24 nm
    fov = check_fields_of_view(a, b)
    assert not fov.agree and "differs" in fov.message and "25%" in fov.message
    with pytest.raises(LatticefitError):
        haadf_to_hrtem_points([1.0], [1.0], fov)
    c = Micrograph(np.zeros((128, 128)))
    assert "no pixel size" in check_fields_of_view(a, c).message


# ------------------------------------------------------------------ region choice
def test_choose_dot_from_particles_skips_edge_and_outside():
    x, y, d = [10.0, 100.0, 200.0], [10.0, 100.0, 120.0], [60.0, 40.0, 50.0]
    c = choose_dot_from_particles(x, y, d, (256, 256), edge=[False, False, True])
    assert c == Circle(100.0, 100.0, 20.0)  # the first is cut by the border, the third is an edge particle
    assert choose_dot_from_particles([5.0], [5.0], [40.0], (256, 256)) is None


def test_matrix_region_avoids_dots():
    H = W = 400
    yy, xx = np.ogrid[:H, :W]
    dots = [(100, 100, 40), (300, 120, 40), (120, 300, 40)]
    excl = np.zeros((H, W), bool)
    for cx, cy, r in dots:
        excl |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    rect = choose_matrix_region((H, W), excl, side_px=100)
    assert rect.w == rect.h >= 64
    assert not np.any(rect.mask((H, W)) & excl)
    assert 0 <= rect.x and rect.x + rect.w <= W and 0 <= rect.y and rect.y + rect.h <= H
    # no dots: the centre
    assert choose_matrix_region((H, W), None, side_px=100) == Rect(150, 150, 100, 100)


def test_anomaly_map_finds_a_dot_without_haadf():
    incl = [{"x_px": 330.0, "y_px": 170.0, "radius_nm": 2.0, "mismatch": 0.0024, "contrast": 1.3}]
    mg, truth = synth.perovskite_111(shape=(512, 512), pixel_size_nm=0.025, noise_sigma=0.3, inclusions=incl, seed=2)
    g_px = np.asarray(truth.g_inv_nm) * 0.025
    score = anomaly_map(mg.data, g_px, smooth_px=0.8 / 0.025)
    c, peak = choose_dot_from_anomaly(score)
    assert c is not None and peak > 3.5
    assert math.hypot(c.x - 330, c.y - 170) < 30  # within a quarter of the 80 px radius
    # a perfect lattice has no dot
    mg0, _ = synth.perovskite_111(shape=(512, 512), pixel_size_nm=0.025, noise_sigma=0.3, seed=2)
    c0, peak0 = choose_dot_from_anomaly(anomaly_map(mg0.data, g_px, smooth_px=0.8 / 0.025))
    assert peak0 < peak


# ------------------------------------------------------------------ fringes
def test_fringe_lines_sit_on_fringe_maxima():
    py = px = 0.02
    g = np.array([1.8, -1.1])  # 1/nm
    phi0 = 0.7
    yy, xx = np.mgrid[:128, :160]
    img = np.cos(2 * np.pi * (g[0] * xx * px + g[1] * yy * py) + phi0)
    phase = fringe_phase(img, g, (py, px))
    assert abs((phase - phi0 + np.pi) % (2 * np.pi) - np.pi) < 0.02
    segs = fringe_segments(g, phase, (py, px), (80, 64), n_lines=5, half_length_px=15)
    assert segs.shape == (5, 2, 2)
    for s in segs:
        for x, y in s:  # every end point lies on a maximum: g.r + phi0/2pi is an integer
            t = g[0] * x * px + g[1] * y * py + phi0 / (2 * np.pi)
            assert abs(t - round(t)) < 0.01
    # consecutive lines are one spacing d = 1/|g| apart
    feet = segs.mean(axis=1) * np.array([px, py])
    np.testing.assert_allclose(np.diff(feet @ (g / np.hypot(*g))), 1 / np.hypot(*g), rtol=1e-9)
