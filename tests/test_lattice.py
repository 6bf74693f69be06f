"""latticefit.lattice: spots, sub-pixel refinement, honest errors, basis, region comparison, CLI."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from latticefit.cli import main
from latticefit.errors import CalibrationError, LatticefitWarning, RegionError
from latticefit.lattice import LatticeResult, compare_regions, measure_lattice, parse_d_range
from latticefit.micrograph import Micrograph
from latticefit.roi import Circle, Rect
from latticefit.synth import _core as synth


def _match(res, g_true, tol=0.02):
    """Row of res.spots matching the reflection g_true (either Friedel member), or None."""
    G = res.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy()
    if len(G) == 0:
        return None
    dist = np.minimum(np.linalg.norm(G - g_true, axis=1), np.linalg.norm(G + g_true, axis=1))
    j = int(np.argmin(dist))
    return j if dist[j] < tol * np.linalg.norm(g_true) else None


# ------------------------------------------------------------------ accuracy
def test_square_lattice_spacings_within_their_errors():
    mg, truth = synth.cubic_001(shape=(512, 512), rotation_deg=17.3, offset_px=(0.3, 0.6), noise_sigma=1.0, seed=3)
    res = measure_lattice(mg)
    assert isinstance(res, LatticeResult)
    for g, d in zip(truth.g_inv_nm, truth.d_angstrom):
        j = _match(res, g)
        assert j is not None
        row = res.spots.iloc[j]
        assert abs(row.d_angstrom - d) < 4 * row.d_err_angstrom
        assert row.d_err_angstrom < 2e-3 * d  # sub-pixel: far below a whole bin (~5 % here)
        assert row.order == 1
    b = res.basis
    assert b is not None and abs(b["angle_deg"] - 90.0) < 4 * b["angle_err_deg"]
    for dd, ee in zip(b["d_angstrom"], b["d_err_angstrom"]):
        assert abs(dd - 3.905) < 4 * ee
    # harmonics are recognised as such
    j2 = _match(res, 2 * truth.g_inv_nm[0])
    assert j2 is not None and res.spots.order.iat[j2] == 2
    # sorted by snr, strongest first, with the documented columns
    assert np.all(np.diff(res.spots.snr.to_numpy()) <= 0)
    for c in (
        "gx_inv_nm",
        "gy_inv_nm",
        "g_abs_inv_nm",
        "d_angstrom",
        "d_err_angstrom",
        "azimuth_deg",
        "azimuth_err_deg",
        "snr",
        "order",
        "cov_xx",
        "cov_xy",
        "cov_yy",
        "amplitude",
    ):
        assert c in res.spots.columns
    assert np.all((res.spots.azimuth_deg > -90.0001) & (res.spots.azimuth_deg <= 90.0001))


def test_errors_are_honest_over_a_monte_carlo():
    """40 noisy 128-px images: |d - d_true| / d_err behaves like a unit normal."""
    z = []
    rng = np.random.default_rng(11)
    for t in range(40):
        mg, truth = synth.cubic_001(
            shape=(128, 128),
            rotation_deg=float(rng.uniform(0, 90)),
            offset_px=tuple(rng.uniform(0, 1, 2)),
            noise_sigma=0.35,
            seed=100 + t,
        )
        res = measure_lattice(mg)
        for g, d in zip(truth.g_inv_nm, truth.d_angstrom):
            j = _match(res, g)
            if j is not None and res.spots.snr.iat[j] >= 5:
                z.append((res.spots.d_angstrom.iat[j] - d) / res.spots.d_err_angstrom.iat[j])
    z = np.array(z)
    assert len(z) >= 70
    cover = np.mean(np.abs(z) <= 2)
    assert 0.85 <= cover <= 1.0, cover
    assert 0.7 < np.sqrt(np.mean(z**2)) < 1.3
    assert abs(np.mean(z)) < 0.4


def test_hexagonal_net_gives_60_degrees():
    mg, truth = synth.perovskite_111(shape=(512, 512), rotation_deg=7.0, noise_sigma=0.5, seed=4)
    res = measure_lattice(mg, d_range_angstrom=(3, 6))
    assert len(res.spots) == 3
    assert np.allclose(res.spots.d_angstrom, 4.195, atol=5 * res.spots.d_err_angstrom.max())
    b = res.basis
    assert abs(b["angle_deg"] - 60.0) < 4 * b["angle_err_deg"] and b["angle_err_deg"] < 0.05
    assert len(res.angles) == 3
    for r in res.angles.itertuples():
        assert abs(r.angle_deg - 60.0) < 4 * r.angle_err_deg
    assert {b["g1_index"], b["g2_index"]} <= {0, 1, 2}


def test_disk_region_measures_its_own_lattice():
    mg, truth = synth.perovskite_111(
        shape=(384, 384), noise_sigma=0.3, seed=5, inclusions=[dict(x_px=192, y_px=192, radius_nm=2.5, mismatch=0.04)]
    )
    inc = truth.inclusions[0]
    res = measure_lattice(mg, roi=Circle(192, 192, 80), d_range_angstrom=(3, 6))
    assert res.roi["type"] == "circle" and res.info["refinement"] == "mask-least-squares"
    d_dot = np.asarray(inc["d_angstrom"])
    for g in np.asarray(inc["g_inv_nm"]):
        j = _match(res, g)
        assert j is not None
        row = res.spots.iloc[j]
        assert abs(row.d_angstrom - d_dot.mean()) < 4 * row.d_err_angstrom + 1e-4


def test_compare_regions_flags_the_dot_and_not_the_matrix():
    mg, truth = synth.perovskite_111(
        shape=(512, 512),
        noise_sigma=0.4,
        rotation_deg=12.0,
        seed=6,
        inclusions=[dict(x_px=380, y_px=380, radius_nm=2.0, mismatch=0.02)],
    )
    dot = Circle(380, 380, 70)
    m1, m2 = Rect(10, 10, 200, 200), Rect(10, 260, 200, 200)
    same = compare_regions(mg, m1, m2, d_range_angstrom=(3, 6), labels=("m1", "m2"))
    assert len(same.table) == 3
    assert not same.summary["significant"] and not same.table.significant.any()
    diff = compare_regions(mg, m1, dot, d_range_angstrom=(3, 6), labels=("matrix", "dot"))
    assert len(diff.table) >= 2 and diff.summary["significant"]
    assert abs(diff.summary["mean_rel_diff"] - 0.02) < 4 * diff.summary["mean_rel_diff_err"]
    d = diff.to_dict()
    assert d["labels"] == ["matrix", "dot"] and len(d["matches"]) == len(diff.table)
    json.dumps(d, default=float)


# ------------------------------------------------------------------ bad input
def test_blank_and_constant_images_give_no_spots_and_a_warning():
    for img in (np.zeros((128, 128)), np.full((100, 90), 7.0)):
        with pytest.warns(LatticefitWarning, match="blank|no significant"):
            res = measure_lattice(img, pixel_size=0.02)
        assert len(res.spots) == 0 and res.basis is None and len(res.angles) == 0
        d = res.to_dict()
        assert d["spots"] == [] and d["angles"] == [] and d["basis"] is None


@pytest.mark.parametrize("n,trials", [(256, 50), (1024, 50)])
def test_pure_noise_never_invents_spots(n, trials):
    rng = np.random.default_rng(n)
    found = 0
    for _ in range(trials):
        img = rng.standard_normal((n, n)).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatticefitWarning)
            found += len(measure_lattice(img, pixel_size=0.02).spots)
    assert found == 0


def test_region_and_calibration_errors():
    mg = Micrograph(np.random.default_rng(0).random((100, 100)), pixel_size_nm=(0.02, 0.02), source="a.dm4")
    with pytest.raises(RegionError, match="outside"):
        measure_lattice(mg, roi=Rect(80, 80, 50, 50))
    with pytest.raises(RegionError, match="smaller than the 32 px"):
        measure_lattice(mg, roi=Circle(50, 50, 10))
    with pytest.raises(RegionError, match="a.dm4"):
        measure_lattice(mg, roi=Circle(50, 50, 10))
    with pytest.raises(CalibrationError):
        measure_lattice(np.zeros((64, 64)))


def test_parse_d_range():
    assert parse_d_range("1-10A") == (1.0, 10.0)
    assert parse_d_range("0.2-0.5nm") == (2.0, 5.0)
    assert parse_d_range("2-") == (2.0, None)
    with pytest.raises(Exception, match="d-range"):
        parse_d_range("ten")


# ------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def synth_file(tmp_path_factory):
    mg, truth = synth.cubic_001(shape=(256, 256), rotation_deg=10.0, noise_sigma=0.5, seed=8)
    p = tmp_path_factory.mktemp("lat") / "square.hspy"
    mg.to_signal().save(p, overwrite=True)
    return p


def test_cli_json_contract(synth_file, capsys):
    assert main(["lattice", str(synth_file), "--json", "-", "--d-range", "1.5-5A"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out)
    assert d["file"] == str(synth_file) and len(d["pixel_size_nm"]) == 2 and d["roi"] is None
    assert len(d["spots"]) >= 4
    snr = [s["snr"] for s in d["spots"]]
    assert snr == sorted(snr, reverse=True)
    for s in d["spots"]:
        assert set(s) >= {"g_inv_nm", "d_angstrom", "d_err_angstrom", "azimuth_deg", "snr", "order"}
        assert len(s["g_inv_nm"]) == 2 and isinstance(s["order"], int)
    for a in d["angles"]:
        assert 0 <= a["angle_deg"] <= 90 and len(a["spots"]) == 2 and a["angle_err_deg"] > 0
    b = d["basis"]
    assert set(b) >= {"d_angstrom", "d_err_angstrom", "angle_deg", "angle_err_deg"}
    assert abs(b["angle_deg"] - 90) < 0.2 and all(abs(x - 3.905) < 0.01 for x in b["d_angstrom"])


def test_cli_table_and_region(synth_file, capsys):
    assert main(["lattice", str(synth_file), "--circle", "128,128,60"]) == 0
    out = capsys.readouterr().out
    assert "d (Å)" in out and "basis:" in out and "±" in out
    assert main(["lattice", str(synth_file), "--roi", "200,200,100,100"]) == 2
    err = capsys.readouterr().err
    assert "outside" in err and err.count("\n") == 1


def test_cli_noise_exits_2_and_still_writes_the_empty_json(tmp_path, capsys):
    p = tmp_path / "noise.hspy"
    Micrograph(np.random.default_rng(0).standard_normal((128, 128)), pixel_size_nm=(0.02, 0.02)).to_signal().save(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["lattice", str(p), "--json", "-"]) == 2  # nothing measured is not a success
    out = capsys.readouterr()
    d = json.loads(out.out)
    assert d["spots"] == [] and d["angles"] == [] and d["basis"] is None
    assert out.err.count("latticefit: error") == 1 and "noise.hspy" in out.err


# ------------------------------------------------------------------ real files
def test_real_srtio3_110_spacings_and_angle(realfile):
    from latticefit.io import load

    mg = load(realfile("lattice/test_ADF_cropped.hdf5"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = measure_lattice(mg, d_range_angstrom=(1.2, 6))
    sp = res.spots[res.spots.order == 1]
    d001 = sp[(sp.d_angstrom > 3.6) & (sp.d_angstrom < 4.2)].d_angstrom.to_numpy()
    d110 = sp[(sp.d_angstrom > 2.6) & (sp.d_angstrom < 2.9)].d_angstrom.to_numpy()
    assert len(d001) == 1 and len(d110) == 1
    assert abs(d001[0] / 3.905 - 1) < 0.01 and abs(d110[0] / 2.761 - 1) < 0.01
    i = sp.index[(sp.d_angstrom > 3.6) & (sp.d_angstrom < 4.2)][0]
    j = sp.index[(sp.d_angstrom > 2.6) & (sp.d_angstrom < 2.9)][0]
    az = res.spots.azimuth_deg
    ang = abs(az[i] - az[j]) % 180
    assert abs(min(ang, 180 - ang) - 90) < 0.3


def test_real_srtio3_001_ratio_survives_a_bad_calibration(realfile):
    from latticefit.io import load

    mg = load(realfile("lattice/Acquisition_18.emd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = measure_lattice(mg, d_range_angstrom=(2.5, 5))
    sp = res.spots[res.spots.order == 1]
    d100 = sp[sp.d_angstrom > 3.5].d_angstrom.to_numpy()
    d110 = sp[sp.d_angstrom < 3.5].d_angstrom.to_numpy()
    assert len(d100) == 2 and len(d110) == 2
    ratio = d100.mean() / d110.mean()
    assert abs(ratio / math.sqrt(2) - 1) < 0.003
