"""Results saved with provenance (.hspy/.json/.csv) and re-opened by latticefit.load_result (issue 16)."""

from __future__ import annotations

import hashlib
import json

import hyperspy.api as hs
import numpy as np
import pandas as pd
import pytest

import latticefit as lf
from latticefit.interop import load_result, provenance, save_result
from latticefit.lattice import compare_regions, measure_lattice
from latticefit.particles import find_particles
from latticefit.roi import Circle, Rect


@pytest.fixture(scope="module")
def hrtem_file(sample_data):
    return sample_data / "perovskite_111_hrtem.tif"


@pytest.fixture(scope="module")
def lattice(hrtem_file):
    mg = lf.load(hrtem_file)
    return mg, measure_lattice(mg, roi=Rect(0, 0, 256, 256))


def test_provenance_names_version_source_hash_calibration(lattice, hrtem_file):
    mg, res = lattice
    p = provenance(res, mg, parameters={"roi": [0, 0, 256, 256]})
    assert p["latticefit_version"] == lf.__version__
    assert p["source"]["sha256"] == hashlib.sha256(hrtem_file.read_bytes()).hexdigest()
    assert p["calibration"]["pixel_size_nm"] == [0.025, 0.025]
    assert p["parameters"] == {"roi": [0, 0, 256, 256]}
    json.dumps(p, allow_nan=False)


@pytest.mark.parametrize("ext", [".hspy", ".json"])
def test_lattice_result_round_trip(lattice, tmp_path, ext):
    mg, res = lattice
    back = lf.load_result(save_result(res, tmp_path / f"r{ext}", mg))
    assert back.kind == "lattice"
    pd.testing.assert_frame_equal(back.result.spots, res.spots, check_dtype=False)
    pd.testing.assert_frame_equal(back.result.angles, res.angles, check_dtype=False)
    assert back.result.basis["d_angstrom"] == pytest.approx(res.basis["d_angstrom"])
    assert back.result.roi == res.roi and back.result.pixel_size_nm == res.pixel_size_nm
    assert back.provenance["source"]["sha256"] is not None
    assert str(back.result).splitlines()[:-1] == str(res).splitlines()[:-1]  # not the budget line
    if ext == ".hspy":
        assert back.image.shape == mg.shape and back.image.pixel_size_nm == pytest.approx(mg.pixel_size_nm)
        md = back.signal.metadata.latticefit
        np.testing.assert_allclose(md.spots.d_angstrom, res.spots.d_angstrom)
        assert md.provenance.latticefit_version == lf.__version__
        assert "Rectangles" in back.signal.metadata.Markers  # the region, drawn by s.plot()


def test_comparison_and_particles_round_trip(tmp_path, sample_data):
    mg = lf.load(sample_data / "perovskite_111_hrtem.tif")
    cmp = compare_regions(mg, Rect(24, 484, 175, 175), Circle(337.5, 788.3, 87.9), labels=("matrix", "dot"))
    back = load_result(save_result(cmp, tmp_path / "c.hspy", mg))
    assert back.kind == "comparison" and back.result.labels == ("matrix", "dot")
    assert back.result.summary["mean_rel_diff"] == pytest.approx(cmp.summary["mean_rel_diff"])
    pd.testing.assert_frame_equal(back.result.table, cmp.table, check_dtype=False)
    hd = lf.load(sample_data / "pbs_dots_4nm_haadf.tif")
    pr = find_particles(hd)
    back = load_result(save_result(pr, tmp_path / "p.hspy", hd))
    assert back.kind == "particles"
    np.testing.assert_array_equal(back.result.labels, pr.labels)
    pd.testing.assert_frame_equal(back.result.table, pr.table, check_dtype=False)
    assert back.result.summary["rsd_percent"] == pytest.approx(pr.summary["rsd_percent"])
    assert {"Polygons", "Circles", "Points"} <= set(back.signal.metadata.Markers.keys())


def test_csv_keeps_a_provenance_line(lattice, tmp_path):
    mg, res = lattice
    out = save_result(res, tmp_path / "spots.csv", mg)
    assert out.read_text().startswith("# latticefit-provenance {")
    back = load_result(out)
    np.testing.assert_allclose(back.result.d_angstrom, res.spots.d_angstrom)
    assert back.provenance["kind"] == "lattice"
    assert len(pd.read_csv(out, comment="#")) == len(res.spots)


def test_errors_are_one_line(lattice, tmp_path):
    mg, res = lattice
    with pytest.raises(lf.LatticefitError, match="pass image="):
        save_result(res, tmp_path / "r.hspy")
    with pytest.raises(lf.LatticefitError, match=r"\.hspy, \.zspy, \.json or \.csv"):
        save_result(res, tmp_path / "r.txt", mg)
    hs.signals.Signal2D(np.zeros((8, 8))).save(tmp_path / "plain.hspy")
    with pytest.raises(lf.LatticefitError, match="not a latticefit result"):
        load_result(tmp_path / "plain.hspy")


def test_real_file_hyperspy_roi_measure_save_reopen(realfile, tmp_path):
    path = realfile("lattice/test_ADF_cropped.hdf5")
    s = hs.load(str(path), file_format="HSPY")
    mg = lf.load(path)
    roi = hs.roi.RectangularROI(left=0.0, top=0.0, right=2.5, bottom=2.5)  # in the file's units (nm)
    res = measure_lattice(s, roi=roi)
    assert res.roi == Rect(0, 0, 268, 268).to_dict()
    d = sorted(res.spots.d_angstrom[res.spots.order == 1])
    assert any(abs(v - 3.905) < 0.05 for v in d)  # SrTiO3 (001), calibration within ~0.6 %
    back = load_result(save_result(res, tmp_path / "real.hspy", mg))
    assert back.provenance["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_allclose(back.result.spots.d_angstrom, res.spots.d_angstrom)


def test_cli_json_and_report_json_carry_a_provenance_block(hrtem_file, tmp_path, capsys):
    from latticefit.cli import main

    assert main(["lattice", str(hrtem_file), "--roi", "0,0,256,256", "--json", str(tmp_path / "l.json")]) == 0
    p = json.loads((tmp_path / "l.json").read_text())["provenance"]
    assert p["kind"] == "lattice" and p["parameters"]["roi"]["w"] == 256
    assert p["source"]["sha256"] == hashlib.sha256(hrtem_file.read_bytes()).hexdigest()
    haadf = hrtem_file.with_name("pbs_dots_4nm_haadf.tif")
    assert main(["particles", str(haadf), "--json", str(tmp_path / "p.json")]) == 0
    p = json.loads((tmp_path / "p.json").read_text())["provenance"]
    assert p["kind"] == "particles" and p["source"]["sha256"] == hashlib.sha256(haadf.read_bytes()).hexdigest()


def test_report_json_provenance(hrtem_file, tmp_path):
    from latticefit.report import build_lattice_report

    rep = build_lattice_report(
        lf.load(hrtem_file), roi_matrix=Rect(24, 484, 175, 175), roi_dot=Circle(337.5, 788.3, 87.9)
    )
    rep.save(tmp_path / "fig4.png")
    d = json.loads((tmp_path / "fig4.json").read_text())
    p = d["provenance"]
    assert p["kind"] == "lattice_report" and p["source"]["sha256"]
    assert p["parameters"]["regions"]["matrix"]["roi"] == Rect(24, 484, 175, 175).to_dict()
    assert p["calibration"]["pixel_size_nm"] == [0.025, 0.025]


def test_zspy_round_trip_or_a_clear_error(lattice, tmp_path):
    mg, res = lattice
    try:
        import zarr  # noqa: F401
    except ImportError:
        with pytest.raises(lf.LatticefitError, match="zarr"):
            save_result(res, tmp_path / "r.zspy", mg)
        return
    back = load_result(save_result(res, tmp_path / "r.zspy", mg))
    np.testing.assert_allclose(back.result.spots.d_angstrom, res.spots.d_angstrom)
