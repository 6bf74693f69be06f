"""Internal calibration against a known phase and lattice mismatch in absolute Å."""

from __future__ import annotations

import numpy as np
import pytest

from latticefit.crystal import Calibration, fit_pixel_scale, get_phase
from latticefit.micrograph import Micrograph


def test_fit_pixel_scale_isotropic_with_errors():
    rng = np.random.default_rng(0)
    gc = np.array([[2.56, 0.0], [0.0, 2.56], [2.56, 2.56], [2.56, -2.56], [5.12, 0], [0, 5.12]])
    t = np.radians(16.0)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    sig = 0.004
    ks = []
    for _ in range(200):
        go = 0.952 * gc @ R.T + sig * rng.standard_normal(gc.shape)
        ks.append(fit_pixel_scale(go, gc, sigma_inv_nm=np.full((6, 2), sig)))
    k = np.array([r["k"] for r in ks])
    err = np.array([r["k_err"] for r in ks])
    assert k.mean() == pytest.approx(0.952, abs=3e-4)
    # the reported error matches the scatter of repeated fits (within 25 %)
    assert np.median(err) == pytest.approx(k.std(), rel=0.25)
    assert ks[0]["rotation_deg"] == pytest.approx(16.0, abs=0.5)


def test_fit_pixel_scale_anisotropic():
    gc = np.array([[2.0, 0.3], [-0.4, 2.1], [1.6, 2.4], [2.4, -1.8]])
    go = gc * np.array([1.03, 0.97])  # x stretched, y compressed
    r = fit_pixel_scale(go, gc, anisotropic=True)
    assert r["k_yx"][0] == pytest.approx(0.97, abs=1e-6) and r["k_yx"][1] == pytest.approx(1.03, abs=1e-6)
    assert r["k"] == pytest.approx(1.0, abs=1e-6)
    iso = fit_pixel_scale(go, gc)
    assert iso["chi2_reduced"] > r["chi2_reduced"]


def test_calibration_apply_same_and_other_magnification():
    cal = Calibration(
        (0.019, 0.0191),
        (1e-5, 1e-5),
        0.9525,
        1e-3,
        (0.95, 0.955),
        (1e-3, 1e-3),
        (0.02, 0.02),
        get_phase("SrTiO3"),
        (0, 0, 1),
        True,
        6,
    )
    same = cal.apply(Micrograph(np.zeros((40, 40)), pixel_size_nm=(0.02, 0.02)))
    assert same.pixel_size_nm == (0.019, 0.0191)
    other = cal.apply(Micrograph(np.zeros((40, 40)), pixel_size_nm=(0.05, 0.05)))
    assert other.pixel_size_nm == pytest.approx((0.05 * 0.95, 0.05 * 0.955))
    bare = cal.apply(np.zeros((40, 40)))
    assert bare.pixel_size_nm == (0.019, 0.0191)
    d = cal.to_dict()
    assert d["phase"] == "SrTiO3" and d["scale_factor"] == 0.9525 and d["zone_axis"] == [0, 0, 1]
    assert "SrTiO3" in cal.describe()
