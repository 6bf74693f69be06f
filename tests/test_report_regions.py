"""Fig. 4 report: the automatic regions on the sample data avoid every true dot (regression)."""

import json
from pathlib import Path

import numpy as np
import pytest

from latticefit import io
from latticefit.report._lattice_report import DOT_RADIUS_FRACTION, build_lattice_report

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _true_dots_hrtem_px():
    truth = json.loads((SAMPLE / "truth.json").read_text())["perovskite_111_hrtem.tif"]
    px = truth["pixel_size_nm"]
    px = float(px[1] if isinstance(px, (list, tuple)) else px)
    import pandas as pd

    t = pd.read_csv(SAMPLE / "perovskite_111_dots.csv")
    return t["x_hrtem_px"].to_numpy(), t["y_hrtem_px"].to_numpy(), t["diameter_nm"].to_numpy() / px / 2


def _square_overlaps_circle(rect, x, y, r):
    # nearest point of the square to the circle centre
    nx = np.clip(x, rect.x, rect.x + rect.w - 1)
    ny = np.clip(y, rect.y, rect.y + rect.h - 1)
    return np.hypot(nx - x, ny - y) < r


@pytest.fixture(scope="module")
def hrtem():
    return io.load(SAMPLE / "perovskite_111_hrtem.tif")


@pytest.mark.parametrize("haadf_kind", ["none", "same area", "other area"])
def test_auto_matrix_square_overlaps_no_true_dot(hrtem, haadf_kind):
    haadf = None if haadf_kind == "none" else io.load(SAMPLE / "perovskite_111_haadf.hspy")
    if haadf_kind == "other area":  # a different field of view: nothing mapped, the dots come from the HRTEM
        haadf = haadf.crop(0, 300, 0, 300)
    rep = build_lattice_report(hrtem, haadf)
    if haadf_kind == "other area":
        assert not rep.fov.agree and rep.anomaly is not None
    rect = rep.regions["matrix"].choice.roi
    xs, ys, rs = _true_dots_hrtem_px()
    for x, y, r in zip(xs, ys, rs):
        assert not _square_overlaps_circle(rect, x, y, r), (rect, x, y, r)
    # a large matrix region (the precision of the reference), not only the dot's diameter
    assert rect.w >= 250
    # the dot disk sits inside a true dot, at ~0.8 of its radius
    dot = rep.regions["dot"].choice.roi
    k = int(np.argmin(np.hypot(xs - dot.x, ys - dot.y)))
    assert np.hypot(xs[k] - dot.x, ys[k] - dot.y) + dot.r <= rs[k] + 8
    assert 0.6 * rs[k] <= dot.r <= 0.95 * rs[k]
    assert DOT_RADIUS_FRACTION == pytest.approx(0.8)
