"""Affine lattice calibration: recovery within sigma, JSON round trip, --calibration on every command."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from latticefit.cli import main
from latticefit.crystal import Calibration, as_calibration, calibrate, get_phase, load_calibration
from latticefit.errors import CalibrationError
from latticefit.lattice import compare_regions, measure_lattice
from latticefit.micrograph import Micrograph, as_micrograph
from latticefit.roi import Rect

A_STO = 0.3905  # nm


def pixel_matrix(p_nm, kx, ky, shear_deg):
    """Upper-triangular pixel-to-nm matrix: x step (p kx, 0), y step leaning by ``shear_deg`` towards +x."""
    s = math.radians(shear_deg)
    return np.array([[p_nm * kx, p_nm * ky * math.sin(s)], [0.0, p_nm * ky * math.cos(s)]])


def affine_cubic(shape, A, *, rotation_deg=16.0, noise=0.5, seed=0, a_nm=A_STO):
    """A cubic [001] lattice (a = a_nm) imaged through the pixel matrix ``A``: pixel (x, y) sits at A @ (x, y) nm."""
    rng = np.random.default_rng(seed)
    H, W = shape
    y, x = np.mgrid[0:H, 0:W].astype(float)
    X, Y = A[0, 0] * x + A[0, 1] * y, A[1, 0] * x + A[1, 1] * y
    t = math.radians(rotation_deg)
    R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    img = np.zeros(shape)
    for h, k, amp in [(1, 0, 1.0), (0, 1, 1.0), (1, 1, 0.6), (1, -1, 0.6), (2, 0, 0.3), (0, 2, 0.3)]:
        g = R @ np.array([h, k]) / a_nm
        img += amp * np.cos(2 * np.pi * (g[0] * X + g[1] * Y) + rng.uniform(0, 2 * np.pi))
    return img + noise * rng.standard_normal(shape)


@pytest.fixture(scope="module")
def distorted():
    A = pixel_matrix(0.02, 1.02, 0.985, 1.2)
    mg = Micrograph(affine_cubic((256, 256), A, noise=2.0, seed=3), pixel_size_nm=(0.02, 0.02), source="synthetic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(mg, None, "SrTiO3", affine=True, tiles=False)
    return A, mg, cal


def test_known_distortion_recovered_within_sigma(distorted):
    A, _, cal = distorted
    assert cal.model == "affine" and cal.n_spots >= 4
    kx, ky = cal.scale_factor_yx[1], cal.scale_factor_yx[0]
    ekx, eky = cal.scale_factor_yx_err[1], cal.scale_factor_yx_err[0]
    assert 0 < ekx < 2e-3 and 0 < eky < 2e-3 and 0 < cal.shear_err_deg < 0.1
    assert abs(kx - 1.02) < 4 * ekx
    assert abs(ky - 0.985) < 4 * eky
    assert abs(cal.shear_deg - 1.2) < 4 * cal.shear_err_deg
    assert abs(cal.anisotropy_percent - 100 * (1.02 / 0.985 - 1)) < 4 * cal.anisotropy_err_percent
    err = cal.matrix_err_nm_per_px
    assert np.all(np.abs(cal.matrix_nm_per_px - A)[[0, 0, 1], [0, 1, 1]] < 4 * err[[0, 0, 1], [0, 1, 1]])
    # residual per reflection after correction: small, with a z-score
    res = cal.residuals
    assert len(res) == cal.n_spots and np.all(np.abs(res["residual_percent"]) < 0.3)
    assert np.all(np.isfinite(res["z"])) and np.all(np.abs(res["z"]) < 4.5)
    assert "anisotropy" in str(cal) and "same magnification" in str(cal)


def test_corrected_lattice_and_sheared_pixels_in_the_engine(distorted):
    A, mg, cal = distorted
    raw = measure_lattice(mg)
    d1, d2 = raw.basis["d_angstrom"]
    assert abs(d1 / d2 - 1) > 0.01  # the anisotropy shows in the file calibration
    fixed = measure_lattice(cal.apply(mg))
    first = fixed.spots[fixed.spots["order"] == 1]
    d100 = first[np.isclose(first["d_angstrom"], 3.905, rtol=0.01)]
    assert len(d100) == 2
    assert np.all(np.abs(d100["d_angstrom"] / 3.905 - 1) < 5e-4)
    assert abs(fixed.basis["angle_deg"] - 90) < 4 * fixed.basis["angle_err_deg"] + 0.02
    # the truth matrix itself (non-square, sheared pixels) gives the true lattice: g maps with A^-T
    exact = measure_lattice(Micrograph(mg.data, affine_nm_per_px=A))
    assert exact.pixel_size_nm == pytest.approx((math.hypot(*A[:, 1]), A[0, 0]))
    for d, e in zip(exact.basis["d_angstrom"], exact.basis["d_err_angstrom"]):
        assert abs(d - 3.905) < 4 * e
    assert abs(exact.basis["angle_deg"] - 90) < 4 * exact.basis["angle_err_deg"]


def test_calibration_uncertainty_is_propagated(distorted):
    _, mg, cal = distorted
    res = measure_lattice(cal.apply(mg))
    s = res.spots
    assert {"d_err_measurement_angstrom", "d_err_calibration_angstrom"} <= set(s.columns)
    assert np.all(s["d_err_calibration_angstrom"] > 0)
    assert np.allclose(s["d_err_angstrom"], np.hypot(s["d_err_measurement_angstrom"], s["d_err_calibration_angstrom"]))
    # a spot along x carries the relative error of k_x
    k = int(np.argmin(np.abs(np.abs(s["azimuth_deg"]) - 16.0) + 10 * (s["order"] != 1)))
    rel = s["d_err_calibration_angstrom"].iat[k] / s["d_angstrom"].iat[k]
    assert 0.2 * cal.scale_factor_yx_err[1] < rel < 2 * max(cal.scale_factor_yx_err)
    assert res.info["calibration"]["validity"].startswith("valid for images taken at the same magnification")


def test_json_round_trip(distorted, tmp_path):
    _, mg, cal = distorted
    f = tmp_path / "cal.json"
    cal.to_json(f)
    d = json.loads(f.read_text())
    assert d["schema_version"] == 1 and d["kind"] == "latticefit.calibration"
    assert "same magnification" in d["validity"] and d["latticefit_version"] and d["created_utc"]
    assert d["reference"]["phase"] == "SrTiO3" and d["file"] == "synthetic"
    back = load_calibration(f)
    assert np.allclose(back.matrix_nm_per_px, cal.matrix_nm_per_px, rtol=0, atol=1e-15)
    assert np.allclose(back.matrix_cov, cal.matrix_cov, rtol=1e-12, atol=0)
    assert back.shear_deg == pytest.approx(cal.shear_deg) and back.model == "affine"
    assert back.residuals is not None and len(back.residuals) == len(cal.residuals)
    assert back.file == str(f)
    assert np.allclose(back.apply(mg).affine_nm_per_px, cal.apply(mg).affine_nm_per_px)
    assert as_calibration(d).shear_deg == pytest.approx(cal.shear_deg)
    # a micrograph made with calibration= carries it
    m2 = as_micrograph(mg.data, pixel_size=0.02, calibration=str(f))
    assert np.allclose(m2.affine_nm_per_px, cal.matrix_nm_per_px)


@pytest.mark.parametrize(
    "content,what",
    [
        ("{not json", "not JSON"),
        ('{"schema_version": 1, "kind": "latticefit.calibration"}', "missing key"),
        ('{"schema_version": 99, "matrix_nm_per_px": [[1, 0], [0, 1]]}', "schema_version"),
        ("[1, 2]", "not a latticefit calibration"),
    ],
)
def test_bad_calibration_json_is_one_line_naming_the_file(tmp_path, content, what, capsys):
    f = tmp_path / "bad cal.json"
    f.write_text(content)
    with pytest.raises(CalibrationError) as e:
        load_calibration(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and what in msg and "\n" not in msg
    img = tmp_path / "img.tif"
    _write_tif(img, np.random.default_rng(0).random((64, 64)), 0.02)
    assert main(["lattice", str(img), "--calibration", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and "Traceback" not in err[0]


def test_missing_calibration_file(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "nope.json")


# ------------------------------------------------------------------ CLI
def _write_tif(path, data, p_nm):
    import tifffile

    tifffile.imwrite(
        path, np.asarray(data, np.float32), imagej=True, resolution=(1 / p_nm, 1 / p_nm), metadata={"unit": "nm"}
    )
    return path


def _stretch_x_calibration(path, p_nm, kx=1.02):
    cal = Calibration(
        (p_nm, p_nm * kx),
        (1e-6, 1e-6),
        0.5 * (1 + kx),
        1e-4,
        (1.0, kx),
        (1e-4, 1e-4),
        (p_nm, p_nm),
        get_phase("SrTiO3"),
        (0, 0, 1),
        True,
        6,
        source="reference.tif",
    )
    cal.to_json(path)
    return cal


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    from latticefit.synth import _core as synth

    d = tmp_path_factory.mktemp("calcli")
    # an axis-aligned square lattice: (100) along x, (010) along y
    lat = affine_cubic((256, 256), np.diag([0.02, 0.02]), rotation_deg=0.0, noise=0.5, seed=1)
    _write_tif(d / "lattice.tif", lat, 0.02)
    dots, _ = synth.haadf_dots(
        (256, 256), pixel_size_nm=0.2, diameter_nm=6.0, n_particles=8, n_touching_pairs=0, seed=5
    )
    _write_tif(d / "dots.tif", dots.data, 0.2)
    _stretch_x_calibration(d / "cal_lattice.json", 0.02)
    _stretch_x_calibration(d / "cal_dots.json", 0.2)
    return d


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_lattice_and_index_with_calibration(cli_files, capsys):
    f = str(cli_files / "lattice.tif")
    cal = str(cli_files / "cal_lattice.json")
    base = _run_json(capsys, ["lattice", f, "--json", "-"])
    corr = _run_json(capsys, ["lattice", f, "--json", "-", "--calibration", cal])

    def d_along(rec, axis):
        best = max(
            rec["spots"],
            key=lambda s: (
                abs(s["g_inv_nm"][axis]) / np.hypot(*s["g_inv_nm"])
                if abs(np.hypot(*s["g_inv_nm"]) - 1 / A_STO) < 0.05 / A_STO
                else -1
            ),
        )
        return best["d_angstrom"]

    assert d_along(corr, 0) / d_along(base, 0) == pytest.approx(1.02, abs=2e-4)  # x stretched by 2 %
    assert d_along(corr, 1) / d_along(base, 1) == pytest.approx(1.0, abs=2e-4)
    assert corr["method"]["calibration"]["file"] == cal
    assert main(["lattice", f, "--calibration", cal]) == 0
    out = capsys.readouterr().out
    assert "calibration: " in out and "same magnification" in out
    idx = _run_json(capsys, ["index", f, "--phase", "SrTiO3", "--json", "-", "--calibration", cal])
    assert idx["calibration"]["reference_phase"] == "SrTiO3"


def test_cli_particles_and_sizes_with_calibration(cli_files, capsys, tmp_path):
    f = str(cli_files / "dots.tif")
    cal = str(cli_files / "cal_dots.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = _run_json(capsys, ["particles", f, "--json", "-"])
        corr = _run_json(capsys, ["particles", f, "--json", "-", "--calibration", cal])
    assert len(base["particles"]) == len(corr["particles"]) > 3
    ratios = []
    for p in corr["particles"]:  # the same particle (same pixel position) in both runs
        q = min(base["particles"], key=lambda q: math.hypot(q["x_px"] - p["x_px"], q["y_px"] - p["y_px"]))
        assert math.hypot(q["x_px"] - p["x_px"], q["y_px"] - p["y_px"]) < 0.5
        ratios.append(p["diameter_nm"] / q["diameter_nm"])
    # the pixel area scales by det A = 1.02 (single fits move a little: the nm defaults change with the scale)
    assert np.median(ratios) == pytest.approx(math.sqrt(1.02), rel=1e-3)
    near = np.abs(np.array(ratios) / math.sqrt(1.02) - 1) < 6e-3
    assert near.mean() >= 0.75 and np.all(np.abs(np.array(ratios) / math.sqrt(1.02) - 1) < 0.02)
    assert main(["sizes", f, "-o", str(tmp_path / "s.png"), "--calibration", cal]) == 0
    assert "calibration: " in capsys.readouterr().out


def test_cli_batch_and_report_with_calibration(cli_files, capsys, tmp_path):
    import pandas as pd

    from latticefit.io import load

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "lattice.tif").write_bytes((cli_files / "lattice.tif").read_bytes())
    cal = str(cli_files / "cal_lattice.json")
    out1 = tmp_path / "o1"
    assert (
        main(["batch", str(folder), "-o", str(out1), "--mode", "lattice", "--jobs", "1", "-q", "--calibration", cal])
        == 0
    )
    s1 = pd.read_csv(out1 / "spots.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s0 = measure_lattice(load(folder / "lattice.tif")).spots  # the same file without calibration
    # the largest spacing is (100) along x: stretched by 2 %
    assert s1["d_angstrom"].max() / s0["d_angstrom"].max() == pytest.approx(1.02, abs=3e-4)
    assert (
        main(
            [
                "report",
                str(cli_files / "lattice.tif"),
                "--roi-matrix",
                "0,0,128,256",
                "--roi-dot",
                "192,128,48",
                "-o",
                str(tmp_path / "r.png"),
                "--calibration",
                cal,
            ]
        )
        == 0
    )
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["calibration"]["file"] == cal
    assert any("same magnification" in n for n in rec["notes"])


def test_cli_calibrate_writes_json(cli_files, capsys, tmp_path):
    out = tmp_path / "c.json"
    assert main(["calibrate", str(cli_files / "lattice.tif"), "--phase", "SrTiO3", "--tiles", "2", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "anisotropy" in text and "shear" in text and "non-linear distortion" in text
    cal = load_calibration(out)
    assert np.isfinite(cal.nonlinear_rms_percent) and cal.nonlinear["n_tiles"] == 4
    assert abs(cal.anisotropy_percent) < 5 * cal.anisotropy_err_percent + 0.01


# ------------------------------------------------------------------ self-calibration
def test_compare_regions_calibrate_on_matrix():
    A = pixel_matrix(0.02, 1.03, 0.99, 0.8)
    mg = Micrograph(affine_cubic((256, 384), A, noise=1.0, seed=7), pixel_size_nm=(0.02, 0.02))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_regions(
            mg,
            Rect(0, 0, 192, 256),
            Rect(192, 0, 192, 256),
            calibrate_on="matrix",
            phase="SrTiO3",
            labels=("matrix", "dot"),
        )
    assert cmp.calibration is not None and cmp.calibration.model == "affine"
    b = cmp.b.basis
    for d, e in zip(b["d_angstrom"], b["d_err_angstrom"]):
        assert abs(d - 3.905) < 4 * e + 3.905 * 2e-4
    assert abs(cmp.summary["mean_rel_diff"]) < 4 * cmp.summary["mean_rel_diff_err"]
    assert "calibration" in cmp.to_dict()


# ------------------------------------------------------------------ real data
def test_half_field_cross_validation_on_acquisition_18(realdata):
    f = realdata / "lattice" / "Acquisition_18.emd"
    if not f.exists():
        pytest.skip(f"{f} not found")
    from latticefit.io import load

    mg = load(f)
    H, W = mg.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(mg, Rect(0, 0, W // 2, H), "SrTiO3", zone_axis=(0, 0, 1), affine=True, tiles=False)
        other = measure_lattice(cal.apply(mg), roi=Rect(W // 2, 0, W // 2, H))
    assert cal.scale_factor < 0.97  # the file's calibration is ~5 % off
    d1, d2 = other.basis["d_angstrom"]
    assert abs(0.5 * (d1 + d2) / 3.905 - 1) < 1e-3  # a within 0.1 % on the half not used to calibrate
    s = other.spots
    first = s[(s["order"] == 1) & np.isclose(s["d_angstrom"], 3.905, rtol=0.01)]
    assert len(first) == 2  # (100) and (010)
    d100, d010 = first["d_angstrom"].to_numpy()
    assert abs(d100 / d010 - 1) < 2e-3
