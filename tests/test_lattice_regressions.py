"""Regression tests for defects found in acceptance testing of latticefit.lattice."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from latticefit.cli import main
from latticefit.errors import LatticefitError
from latticefit.lattice import compare_regions, measure_lattice, parse_d_range
from latticefit.micrograph import Micrograph
from latticefit.roi import Rect
from latticefit.synth import _core as synth


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _no_repeated_indices(res):
    keys = set()
    for h, k in zip(res.spots.n1, res.spots.n2):
        key = (int(h), int(k)) if (h > 0 or (h == 0 and k > 0)) else (-int(h), -int(k))
        assert key not in keys, f"reflection {key} reported twice"
        keys.add(key)


# ------------------------------------------------------------------ 1. Friedel mates across the +-90 deg wrap
@pytest.mark.parametrize("rot", [-0.3, 0.0, 0.4])
def test_reflection_at_the_azimuth_wrap_is_reported_once(rot):
    # a square net whose (0,1) reflection sits at ~ +-90 deg azimuth (either side of the wrap after noise)
    mg, truth = synth.lattice_image(
        shape=(256, 256), pixel_size_nm=0.02, a_nm=0.4, rotation_deg=rot, noise_sigma=0.5, seed=11
    )
    res = _quiet(measure_lattice, mg, d_range_angstrom=(2.5, 6))
    az = res.spots.azimuth_deg.to_numpy()
    assert np.sum(np.abs(np.abs(az) - 90) < 2) == 1
    _no_repeated_indices(res)
    b = res.basis
    assert abs(b["angle_deg"] - 90) < 4 * b["angle_err_deg"] + 0.05
    assert all(abs(d - 4.0) < 4 * e + 0.005 for d, e in zip(b["d_angstrom"], b["d_err_angstrom"]))


def test_split_reflection_indices_are_dropped_once():
    from latticefit.lattice._basis import drop_duplicate_indices, reduce_basis

    # a reflection split in two across the wrap indexes as (-1, 1) and (1, -1): the weaker copy goes
    hk = np.array([[1, 0], [0, 1], [-1, 1], [1, -1], [-2, 2], [2, -2]])
    snr = np.array([200.0, 170, 135, 103, 44, 42])
    dup = drop_duplicate_indices(hk, np.ones(6, bool), snr)
    assert dup.tolist() == [False, False, False, True, False, True]
    # a (100)+(110) basis of a square net (45 deg) reduces to (100)+(010) (90 deg); a hexagonal pair stays
    r1, r2, T = reduce_basis(np.array([0.0, 2.75]), np.array([2.75, 2.75]))
    assert abs(r1 @ r2) < 1e-9 and np.isclose(np.linalg.norm(r1), 2.75) and np.isclose(np.linalg.norm(r2), 2.75)
    assert round(abs(np.linalg.det(T))) == 1
    h1, h2 = np.array([1.0, 0.0]), np.array([0.5, np.sqrt(3) / 2])
    r1, r2, T = reduce_basis(h1, h2)
    assert np.array_equal(T, np.eye(2, dtype=int))


def test_basis_is_the_reduced_pair_of_a_square_net():
    mg, truth = synth.cubic_001(shape=(256, 256), rotation_deg=0.3, noise_sigma=0.3, seed=4)
    res = _quiet(measure_lattice, mg)
    _no_repeated_indices(res)
    d100 = 3.905
    assert abs(res.basis["angle_deg"] - 90) < 0.5
    assert all(abs(d - d100) < 0.03 for d in res.basis["d_angstrom"])
    assert res.basis["g1_index"] is not None and res.basis["g2_index"] is not None


def test_real_pto_gives_the_square_perovskite_basis(realfile):
    from latticefit.io import load

    mg = load(realfile("lattice/Cropped_PTO-SRO_Aligned.hspy"))
    res = _quiet(measure_lattice, mg)
    _no_repeated_indices(res)
    b = res.basis
    # (100)-type d ~ 3.56-3.7 Å in this (mis-scaled) file, (110)-type ~ 2.55-2.6 Å: the reduced basis is the
    # two (100)-type reflections at ~90 deg (a 45 deg basis (100)+(110) indexes the same net but is not reduced)
    assert abs(b["angle_deg"] - 90) < 2.0
    assert all(3.5 < d < 3.75 for d in b["d_angstrom"])
    first = res.spots[res.spots.order == 1]
    assert ((first.d_angstrom > 2.5) & (first.d_angstrom < 2.65)).sum() == 2  # (110) and (1-10), once each
    assert ((first.d_angstrom > 3.55) & (first.d_angstrom < 3.7)).sum() == 2  # (100) and (010), once each
    # the image is non-linearly distorted (supercrystal domains): chi2/dof is large and flagged,
    # and the basis errors are scaled by it
    assert b["chi2"] / b["dof"] > 10
    assert any("deviate from a perfect lattice" in w for w in res.warnings)
    assert 0.01 < b["angle_err_deg"] < 2.0


# ------------------------------------------------------------------ 2. small regions
def test_small_region_does_not_mislabel_harmonics():
    mg, _ = synth.perovskite_111(shape=(512, 512), pixel_size_nm=0.025, noise_sigma=0.3, seed=5)
    # 64 px hold ~3.8 periods of the 4.195 Å fringes: too few to measure, and a 2.1 Å spot may be a harmonic
    res = _quiet(measure_lattice, mg, roi=Rect(0, 0, 64, 64))
    assert res.basis is None
    assert all(d < 3 for d in res.spots.d_angstrom)  # the under-resolved fundamentals are dropped
    assert any("fewer than" in w for w in res.warnings)
    if len(res.spots):
        assert res.spots.n1.isna().all()  # never hk (0, 0)
        assert all(s["n1"] is None for s in res.to_dict()["spots"])
        assert any("harmonic" in w for w in res.warnings)
    # 96 px (~5.7 periods): the full hexagonal net, fundamentals and harmonics recognised
    res = _quiet(measure_lattice, mg, roi=Rect(0, 0, 96, 96))
    assert res.basis is not None and abs(res.basis["angle_deg"] - 60) < 1
    assert set(res.spots.order) <= {1, 2}
    first = res.spots[(res.spots.order == 1) & (res.spots.d_angstrom > 3)]
    assert len(first) == 3 and all(abs(d - 4.195) < 0.06 for d in first.d_angstrom)


def test_single_family_has_no_indices():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:256, :256]
    data = np.cos(2 * np.pi * (xx * np.cos(0.3) + yy * np.sin(0.3)) * 0.02 / 0.4) + rng.normal(0, 0.5, (256, 256))
    res = _quiet(measure_lattice, data, pixel_size=0.02)
    assert len(res.spots) == 1 and res.basis is None
    assert abs(res.spots.d_angstrom[0] - 4.0) < 4 * res.spots.d_err_angstrom[0]
    assert res.spots.n1.isna().all() and res.to_dict()["spots"][0]["n1"] is None
    assert "(0,0)" not in res.table()
    json.dumps(res.to_dict())


# ------------------------------------------------------------------ 3. comparison with a distorted lattice
def _sheared_square(shear=0.004, seed=6):
    """Square net with a quadratic (non-linear) scan distortion: x -> x + shear * y^2 / H."""
    mg, _ = synth.lattice_image(
        shape=(512, 512), pixel_size_nm=0.02, a_nm=0.4, noise_sigma=0.3, rotation_deg=20.0, seed=seed
    )
    from scipy.ndimage import map_coordinates

    yy, xx = np.mgrid[:512, :512].astype(float)
    data = map_coordinates(mg.data, [yy, xx + shear * yy**2 / 512 * 20], order=3, mode="reflect")
    return Micrograph(data=data.astype(np.float32), pixel_size_nm=(0.02, 0.02), source="sheared.tif")


def test_compare_regions_inflates_errors_by_the_lattice_misfit():
    mg = _sheared_square()
    a, b = Rect(0, 0, 256, 512), Rect(256, 0, 256, 512)
    cmp = _quiet(compare_regions, mg, a, b, labels=("left", "right"))
    chi = [r.basis["chi2"] / r.basis["dof"] for r in (cmp.a, cmp.b)]
    assert max(chi) > 3  # the distortion is visible in the lattice fits
    t = cmp.table
    raw = (t.d_b_angstrom / t.d_a_angstrom) * np.hypot(
        t.d_a_err_angstrom / t.d_a_angstrom, t.d_b_err_angstrom / t.d_b_angstrom
    )
    assert np.all(t.rel_diff_err.to_numpy() > 1.2 * raw.to_numpy())
    assert any("chi2/dof" in w for w in cmp.warnings)
    assert cmp.to_dict()["warnings"] == cmp.warnings


def test_compare_regions_keeps_errors_of_a_perfect_lattice():
    mg, _ = synth.cubic_001(shape=(256, 256), rotation_deg=10.0, noise_sigma=0.5, seed=8)
    cmp = _quiet(compare_regions, mg, Rect(0, 0, 128, 256), Rect(128, 0, 128, 256))
    t = cmp.table
    raw = (t.d_b_angstrom / t.d_a_angstrom) * np.hypot(
        t.d_a_err_angstrom / t.d_a_angstrom, t.d_b_err_angstrom / t.d_b_angstrom
    )
    np.testing.assert_allclose(t.rel_diff_err, raw, rtol=1e-9)
    assert not any("chi2/dof" in w for w in cmp.warnings)


# ------------------------------------------------------------------ 4. one range syntax
@pytest.mark.parametrize("text", ["3-5A", "3-5 Å", "0.3-0.5nm", "3,5", "3:5", "3 - 5 A", "300-500pm"])
def test_parse_d_range_accepts_every_syntax(text):
    lo, hi = parse_d_range(text)
    assert lo == pytest.approx(3.0) and hi == pytest.approx(5.0)


@pytest.mark.parametrize("text", ["5-3A", "5,3", "-3-5", "3,-5", "0-5", "3:3", "x", "3-5-7", "3,5:7"])
def test_parse_d_range_rejects_bad_ranges_in_one_line(text):
    with pytest.raises(LatticefitError) as e:
        parse_d_range(text)
    assert "\n" not in str(e.value) and "d-range" in str(e.value)


def test_cli_lattice_and_index_share_the_range_syntax(tmp_path, capsys):
    mg, _ = synth.cubic_001(shape=(128, 128), rotation_deg=10.0, noise_sigma=0.3, seed=1)
    p = tmp_path / "sq.hspy"
    mg.to_signal().save(p, overwrite=True)
    for text in ("3-5A", "3,5", "0.3-0.5nm"):
        assert main(["lattice", str(p), "--d-range", text, "--json", "-"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert all(3 <= s["d_angstrom"] <= 5 for s in out["spots"]) and out["spots"]
    from latticefit.cli._common import d_range_arg  # the one parser lattice, index and report use

    assert d_range_arg("3-5A") == d_range_arg("3,5") == (3.0, 5.0)
    with pytest.raises(SystemExit):  # index uses the same parser
        main(["index", str(p), "--d-range", "5-3"])
    assert "reversed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lattice", str(p), "--d-range", "5-3"])
    assert "reversed" in capsys.readouterr().err


# ------------------------------------------------------------------ 5. wording
def test_cli_header_is_height_by_width_and_keep_unindexed_flag(tmp_path, capsys):
    mg, _ = synth.cubic_001(shape=(120, 200), rotation_deg=10.0, noise_sigma=0.3, seed=1)
    p = tmp_path / "rect.hspy"
    mg.to_signal().save(p, overwrite=True)
    assert main(["lattice", str(p), "--keep-unindexed"]) == 0
    out = capsys.readouterr().out
    assert "120 x 200 px (height x width)" in out.splitlines()[0]
