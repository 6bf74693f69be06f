"""The live FFT region picker, driven headless through its widget callbacks (issue 16)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import hyperspy.api as hs  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.testing.widgets import click_and_drag  # noqa: E402

import latticefit as lf  # noqa: E402
from latticefit.interactive import RegionPicker, pick_regions  # noqa: E402
from latticefit.roi import Circle, Rect  # noqa: E402


def _key(picker, key):
    from matplotlib.backend_bases import KeyEvent

    picker.figure.canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", picker.figure.canvas, key))


@pytest.fixture(scope="module")
def hrtem_path(sample_data):
    return sample_data / "perovskite_111_hrtem.tif"


def test_drag_rectangle_then_disk_gives_the_comparison_and_replayable_code(hrtem_path, capsys):
    p = pick_regions(str(hrtem_path), labels=("matrix", "dot"), systematic="none")
    click_and_drag(p.selectors["rect"], start=(23.5, 483.5), end=(198.5, 658.5))
    assert p.regions == {"matrix": Rect(24, 484, 175, 175)}
    res = p.results["matrix"]
    assert round(res.basis["angle_deg"]) == 60
    text = p._text.get_text()
    assert "d = 4.19" in text and "angle = " in text and "1 SD" in text
    assert p.active == "dot"  # the first region set, the next drag is the dot
    _key(p, "d")
    assert p.shape == "disk" and p.selectors["disk"].active and not p.selectors["rect"].active
    click_and_drag(p.selectors["disk"], start=(250.0, 700.0), end=(425.0, 876.0))
    assert p.regions["dot"] == Circle(337.5, 788.0, 87.5)
    assert p.comparison is not None and len(p.comparison.table)
    assert "Δd/d" in p._text.get_text()
    # the printed code, run as a script, gives the same numbers
    code = p.code()
    assert capsys.readouterr().out.strip() == code
    assert "lf.load(" in code and "Rect(24, 484, 175, 175)" in code and "Circle(337.5, 788.0, 87.5)" in code
    ns: dict = {}
    exec(code.replace("print(", "(lambda *a: None)("), ns)
    np.testing.assert_allclose(ns["matrix"].spots.d_angstrom, p.results["matrix"].spots.d_angstrom)
    np.testing.assert_allclose(ns["dot"].spots.d_err_angstrom, p.results["dot"].spots.d_err_angstrom)
    assert ns["cmp"].summary["mean_rel_diff"] == p.comparison.summary["mean_rel_diff"]


def test_redrag_replaces_the_active_region_and_keys_choose_it(hrtem_path):
    p = RegionPicker(lf.load(hrtem_path), systematic="none")
    p.set_region(Rect(0, 0, 256, 256))
    p.set_region(Circle(600, 600, 100))
    _key(p, "1")
    assert p.active == "a"
    click_and_drag(p.selectors["rect"], start=(99.5, 99.5), end=(355.5, 355.5))
    assert p.regions["a"] == Rect(100, 100, 256, 256) and p.regions["b"] == Circle(600, 600, 100)
    assert p.comparison.a.roi == Rect(100, 100, 256, 256).to_dict()
    assert "image = lf.load(" in p.code(print_code=False)


def test_a_region_too_small_is_reported_not_raised(hrtem_path):
    p = RegionPicker(lf.load(hrtem_path), systematic="none")
    click_and_drag(p.selectors["rect"], start=(100.0, 100.0), end=(120.0, 120.0))
    assert p.regions == {} and "not used:" in p._text.get_text() and "32 px" in p._text.get_text()
    with pytest.raises(lf.LatticefitError, match="outside"):
        p.set_region(Rect(1000, 1000, 100, 100))


def test_hyperspy_rois_in_and_out(hrtem_path):
    s = lf.load(hrtem_path).to_signal()
    p = RegionPicker(s, systematic="none")
    p.set_region(hs.roi.RectangularROI(left=0.0, top=0.0, right=6.4, bottom=6.4))
    assert p.regions["a"] == Rect(0, 0, 256, 256)
    h = p.hyperspy_rois()["a"]
    assert (h.left, h.top, h.right, h.bottom) == pytest.approx((0.0, 0.0, 6.4, 6.4))
    assert "image = ...  # the image given to the picker" in p.code(print_code=False)


def test_picker_figure_renders(hrtem_path, tmp_path):
    p = RegionPicker(lf.load(hrtem_path), labels=("matrix", "dot"), systematic="none")
    p.set_region(Rect(24, 484, 175, 175))
    p.set_region(Circle(337.5, 788.3, 87.9))
    out = tmp_path / "picker.png"
    p.figure.savefig(out, dpi=80)
    assert out.stat().st_size > 10_000
