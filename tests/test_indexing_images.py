"""End to end: synthetic and real images -> measure_lattice -> indexing, calibration, mismatch, CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from latticefit.cli import main
from latticefit.crystal import calibrate, index_lattice, mismatch, same_zone_axis
from latticefit.lattice import measure_lattice
from latticefit.roi import Circle, Rect
from latticefit.synth import _core as synth


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _families(spots):
    return {tuple(sorted(np.abs(r))) for r in spots[["h", "k", "l"]].to_numpy()}


@pytest.mark.parametrize("rotation", [23.0, -71.5])
def test_synth_perovskite_111_image(rotation):
    mg, truth = synth.perovskite_111(shape=(512, 512), noise_sigma=0.5, seed=1, rotation_deg=rotation)
    res = index_lattice(measure_lattice(mg))
    b = res.best
    assert b.phase.name == "MAPbBr3" and b.zone_axis == (1, 1, 1)
    assert (b.spots.status == "allowed").all()
    first = b.spots[np.isclose(b.spots.d_calc_angstrom, 4.1953, atol=1e-3)]
    assert len(first) == 3 and _families(first) == {(0, 1, 1)}
    assert np.allclose(first.d_angstrom, 4.195, atol=0.005)
    # every spot's label reproduces its observed d within 0.1 %
    assert np.all(np.abs(b.spots.residual_angstrom / b.spots.d_calc_angstrom) < 1e-3)


def test_synth_rocksalt_111_image_is_220():
    mg, truth = synth.rocksalt_111(shape=(512, 512), noise_sigma=0.5, seed=2, rotation_deg=-11.0)
    res = index_lattice(measure_lattice(mg), ["MAPbBr3", "PbS"])
    b = res.best
    assert b.phase.name == "PbS" and b.zone_axis == (1, 1, 1)
    first = b.spots[np.isclose(b.spots.d_angstrom, 2.10, atol=0.01)]
    assert len(first) == 3
    assert _families(first) == {(0, 2, 2)}
    assert np.allclose(first.d_calc_angstrom, 2.0987, atol=1e-4)


def test_synth_perovskite_spots_indexed_as_pbs_flag_110():
    mg, _ = synth.perovskite_111(shape=(512, 512), noise_sigma=0.5, seed=4, rotation_deg=5.0)
    res = index_lattice(measure_lattice(mg, d_range_angstrom=(3, 6)), ["PbS"])
    b = res.best
    assert b.phase.name == "PbS" and b.n_matched == 0 and b.n_extinct == 3
    for why in b.spots.extinction_reason:
        assert "extinct in PbS Fm-3m: F-centring requires h,k,l all even or all odd" in why
    assert _families(b.spots) == {(0, 1, 1)}


def test_synth_rocksalt_001_image():
    # rock salt along [001]: Pb+S columns on a square net of spacing a/2 -> {200}, {220}, ...
    mg, _ = synth.lattice_image(
        (512, 512),
        pixel_size_nm=0.02,
        a_nm=0.5936 / 2,
        rotation_deg=52.0,
        column_sigma_nm=0.05,
        noise_sigma=0.5,
        seed=3,
    )
    res = index_lattice(measure_lattice(mg))
    b = res.best
    assert b.phase.name == "PbS" and b.zone_axis == (0, 0, 1) and b.n_matched == b.n_spots
    assert all(h % 2 == 0 and k % 2 == 0 and l % 2 == 0 for h, k, l in b.spots[["h", "k", "l"]].to_numpy())
    assert (0, 2, 2) in _families(b.spots) and (0, 0, 2) in _families(b.spots)
    # MAPbBr3 (same a within 0.05 %) explains the spots too but misses its (100) and (110)
    assert res.alternatives[0].phase.name == "MAPbBr3" and res.alternatives[0].score > b.score + 10


@pytest.mark.parametrize("rotation", [0.0, 33.0])
def test_synth_cubic_001_image(rotation):
    mg, _ = synth.cubic_001(shape=(512, 512), noise_sigma=0.5, seed=1, rotation_deg=rotation)
    b = index_lattice(measure_lattice(mg)).best
    assert b.phase.name == "SrTiO3" and b.zone_axis == (0, 0, 1)
    assert b.n_matched == b.n_spots and b.scale_factor == pytest.approx(1.0, abs=1e-3)


def test_calibrate_recovers_pixel_size_isotropic_and_anisotropic():
    mg, _ = synth.cubic_001(shape=(512, 512), pixel_size_nm=0.02, noise_sigma=0.5, seed=2, rotation_deg=16)
    cal = calibrate(mg.with_pixel_size(0.021), None, "SrTiO3")
    assert cal.zone_axis == (0, 0, 1) and cal.n_spots >= 6
    assert cal.scale_factor == pytest.approx(0.02 / 0.021, rel=5e-4)
    assert abs(cal.pixel_size_nm[0] - 0.02) < 4 * cal.pixel_size_err_nm[0] + 2e-6
    fixed = cal.apply(mg.with_pixel_size(0.021))
    assert fixed.pixel_size_nm == pytest.approx((0.02, 0.02), rel=5e-4)
    cal2 = calibrate(mg.with_pixel_size((0.021, 0.0205)), None, "SrTiO3", anisotropic=True, zone_axis=(0, 0, 1))
    assert cal2.pixel_size_nm == pytest.approx((0.02, 0.02), rel=5e-4)
    assert cal2.scale_factor_yx == pytest.approx((0.02 / 0.021, 0.02 / 0.0205), rel=5e-4)


def test_mismatch_dot_vs_matrix_absolute_and_ratio_errors():
    mg, _ = synth.perovskite_111(
        shape=(768, 768),
        pixel_size_nm=0.025,
        noise_sigma=0.5,
        seed=3,
        rotation_deg=10,
        inclusions=[dict(x_px=540, y_px=540, radius_nm=3.5, mismatch=0.0024)],
    )
    m = mismatch(mg.with_pixel_size(0.026), Rect(20, 20, 300, 300), Circle(540, 540, 120), "MAPbBr3")
    assert m.calibration.scale_factor == pytest.approx(0.025 / 0.026, rel=5e-4)
    s = m.spots[np.isclose(m.spots.ref_d_angstrom, 4.195, atol=0.01)]
    assert len(s) == 3
    # absolute d of the dot: 4.195 * 1.0024 = 4.2053 Å, within the stated total errors
    z = (s.d_angstrom - 4.19527 * 1.0024) / s.d_err_angstrom
    assert np.all(np.abs(z) < 4)
    # calibration error is part of the absolute error but cancels in the mismatch
    assert np.all(s.d_err_angstrom >= s.d_err_measurement_angstrom)
    w = 1 / s.mismatch_err_percent**2
    mean = float(np.sum(w * s.mismatch_percent) / np.sum(w))
    err = float(1 / np.sqrt(np.sum(w)))
    assert abs(mean - 0.24) < 4 * err and err < 0.1
    assert "mismatch" in str(m)
    assert json.loads(json.dumps(m.to_dict(), default=float))["calibration"]["phase"] == "MAPbBr3"


def test_cli_index_and_phases(tmp_path, capsys):
    import tifffile

    mg, _ = synth.perovskite_111(shape=(512, 512), pixel_size_nm=0.025, noise_sigma=0.5, seed=5, rotation_deg=12)
    f = tmp_path / "perov.tif"
    tifffile.imwrite(f, mg.data, imagej=True, resolution=(1 / 0.025, 1 / 0.025), metadata={"unit": "nm"})
    assert main(["index", str(f), "--phase", "MAPbBr3", "--phase", "PbS", "--json", "-"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["phase"] == "MAPbBr3" and rec["zone_axis"] == [1, 1, 1]
    assert {"pixel_size_nm", "spots", "scale_factor", "scale_factor_err", "alternatives"} <= set(rec)
    s0 = rec["spots"][0]
    assert {"g_inv_nm", "d_angstrom", "hkl", "phase", "residual_angstrom", "extinct_in"} <= set(s0)
    assert any("PbS" in s["extinct_in"] for s in rec["spots"])
    assert main(["index", str(f), "--phase", "PbS", "--roi", "0,0,256,256"]) == 0
    out = capsys.readouterr().out
    assert "PbS Fm-3m" in out and "F-centring" in out
    out_json = tmp_path / "idx.json"
    assert main(["index", str(f), "--phase", "MAPbBr3", "--zone", "1,1,1", "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["zone_axis"] == [1, 1, 1]
    assert main(["index", str(f), "--phase", "nope"]) == 2
    assert "unknown phase" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing.tif")]) == 2
    assert main(["phases"]) == 0
    out = capsys.readouterr().out
    assert "MAPbBr3" in out and "P63mc" in out
    assert main(["phases", "--json"]) == 0
    lst = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in lst} >= {"PbS", "SrTiO3", "CdSe-wz"}


@pytest.mark.realdata
def test_real_srtio3_110_adf(realfile):
    from latticefit.io import load

    mg = load(realfile("lattice/test_ADF_cropped.hdf5"))
    res = index_lattice(measure_lattice(mg))
    b = res.best
    assert b.phase.name == "SrTiO3" and same_zone_axis(b.phase, (1, 1, 0), b.zone_axis)
    assert b.n_matched >= 4 and b.scale_factor == pytest.approx(1.0, abs=0.01)


@pytest.mark.realdata
def test_real_srtio3_001_with_free_scale(realfile, capsys):
    f = realfile("lattice/Acquisition_18.emd")
    assert main(["index", str(f), "--free-scale", "--json", "-"]) == 0  # whole library
    rec = json.loads(capsys.readouterr().out)
    assert rec["phase"] == "SrTiO3" and rec["zone_axis"] == [0, 0, 1]
    k = rec["scale_factor"]
    assert 0.93 < k < 0.97 and 0 < rec["scale_factor_err"] < 0.01  # the file's calibration is ~5 % off
    # a recovered: every (h00) and (hh0) spot, rescaled, within 0.5 % of 3.905 Å on average
    a = [k * s["d_angstrom"] * np.sqrt(sum(v * v for v in s["hkl"])) for s in rec["spots"] if s["hkl"]]
    assert np.mean(a) == pytest.approx(3.905, rel=0.005)


def test_calibrate_errors_are_one_line():
    from latticefit.errors import AnalysisError, CalibrationError

    mg, _ = synth.cubic_001(shape=(256, 256), noise_sigma=0.3, seed=1)
    with pytest.raises(AnalysisError, match="cannot be indexed as CdSe-wz"):
        calibrate(mg, None, "CdSe-wz", zone_axis=(0, 0, 1))
    with pytest.raises(CalibrationError, match="pixel size"):
        calibrate(mg.data, None, "SrTiO3")
