"""NaN/inf regions of a file are masked, not median-filled (#17: a dots image with a NaN band gave 1
particle of 1.66 nm instead of ~21 of 6.9 nm)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latticefit import synth
from latticefit.micrograph import Micrograph


def _with_band(mg, rows):
    data = mg.data.copy()
    data[rows[0] : rows[1], :] = np.nan
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = Micrograph(data, pixel_size_nm=mg.pixel_size_nm, source="band.tif")
    assert any("masked" in str(x.message) for x in w)
    return out


@pytest.mark.parametrize(("band", "seed"), [((300, 380), 4), ((100, 600), 4)])
def test_dots_with_a_nan_band_are_counted_and_sized_as_without_it(band, seed):
    from latticefit.particles import find_particles

    mg, truth = synth.haadf_dots((768, 768), diameter_nm=7.0, n_particles=30, n_touching_pairs=0, seed=seed)
    t = truth.particles
    half = t.diameter_px / 2 + 1
    clear = ~((t.y_px + half > band[0]) & (t.y_px - half < band[1])) & ~t.edge
    res = find_particles(_with_band(mg, band), diameter_range_nm=(3, 12))
    s = res.summary
    assert abs(s["n"] - int(clear.sum())) <= 1, (s["n"], int(clear.sum()))
    assert s["mean_nm"] == pytest.approx(float(t.diameter_nm[clear].mean()), abs=0.15)
    assert s["n_fit_failed"] <= 1
    used = res.table[res.table["status"] == "ok"]
    assert not ((used["y_px"] > band[0]) & (used["y_px"] < band[1])).any()  # nothing found in the band
    assert res.settings["invalid_fraction"] == pytest.approx((band[1] - band[0]) / 768)
    assert any("NaN" in n and "masked" in n for n in s["notes"])


def test_lattice_with_a_nan_band_keeps_its_spacings_and_says_what_was_masked():
    from latticefit.lattice import measure_lattice

    mg, truth = synth.perovskite_111(shape=(512, 512), noise_sigma=0.5, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = measure_lattice(_with_band(mg, (200, 260)), d_range_angstrom=(3, 6))
    sp = res.spots
    assert len(sp) == 3  # the band's edges add no spots
    for d, err in zip(sp["d_angstrom"], sp["d_err_angstrom"]):
        assert abs(d - truth.d_angstrom[0]) < 3 * err, (d, err)
    assert res.info["refinement"] == "mask-least-squares"
    assert any("11.7 %" in n and "masked" in n for n in res.warnings)


def test_invalid_mask_follows_crops_and_copies():
    data = np.ones((64, 64), np.float32)
    data[10:20, 30:40] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mg = Micrograph(data, pixel_size_nm=(0.1, 0.1))
    assert mg.invalid_mask.sum() == 100 and np.isfinite(mg.data).all()
    assert mg.with_pixel_size(0.2).invalid_mask.sum() == 100
    assert mg.crop(0, 15, 0, 64).invalid_mask.sum() == 50
    assert mg.crop(30, 64, 0, 64).invalid_mask is None
    assert Micrograph(np.ones((8, 8))).invalid_mask is None
