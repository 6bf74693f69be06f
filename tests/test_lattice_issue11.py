"""Issue #11, points 1-4: the finest lattice, further lattices, recall and plausibility.

Regression tests on the committed abTEM multislice fixtures (truth from the
structure, ``tests/data/multislice/truth.json``) and on the real files beside
the project (skipped when absent).
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import latticefit
from latticefit import synth
from latticefit.cli import main
from latticefit.lattice import _basis as lb
from latticefit.lattice import _plausibility as lp
from latticefit.lattice import measure_lattice
from latticefit.roi import Circle, Rect

DATA = Path(__file__).resolve().parent / "data" / "multislice"
TRUTH = json.loads((DATA / "truth.json").read_text())


def _measure(mg, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure_lattice(mg, **kw)


def _fixture(name):
    return latticefit.load(DATA / name)


@functools.cache
def _measured(path) -> latticefit.lattice.LatticeResult:
    """``measure_lattice(load(path), systematic="none")``, measured once: several tests read the same result."""
    return _measure(latticefit.load(path), systematic="none")


# ------------------------------------------------------------------ 1. the finest lattice
def test_harmonics_stronger_than_the_fundamental_do_not_win():
    a, b = np.array([2.38, 0.0]), np.array([1.19, 2.061])  # a hexagonal net, |a| = |b|
    G = np.array([2 * a, 2 * b, 2 * (b - a), a + b, 2 * a - b, a, b, b - a, 3 * a])
    snr = np.array([215.0, 214, 213, 138, 136, 32, 31, 30, 100])
    i, j, sign, _, ok = lb.find_basis(G, snr, np.full(len(G), 0.02))
    assert ok.all()
    area = abs(np.cross(G[i], sign * G[j]))
    assert area == pytest.approx(abs(np.cross(a, b)), rel=1e-9), "the primitive cell, not a sub-lattice"


@pytest.mark.parametrize("name", ["mapbbr3_111_hrtem.tif", "mapbbr3_111_pbs_dot_hrtem.tif"])
def test_perovskite_111_multislice_gives_three_110_at_60_degrees(name):
    res = _measured(DATA / name)
    d110 = TRUTH["images"][name]["families"]["MAPbBr3"][0]["d_angstrom"]
    b = res.basis
    assert all(d == pytest.approx(d110, rel=5e-4) for d in b["d_angstrom"])
    assert b["angle_deg"] == pytest.approx(60.0, abs=0.01)
    s = res.spots
    first = s[(s.lattice == 0) & (np.abs(s.d_angstrom - d110) < 4 * s.d_err_angstrom + 5e-4 * d110)]
    assert len(first) == 3 and set(first.order) == {1}
    az = np.sort(first.azimuth_deg.to_numpy() % 180)
    assert np.allclose(np.diff(az), 60, atol=4 * first.azimuth_err_deg.max() + 0.01)
    assert (s.lattice == 0).sum() >= 30, "the {211}, {220}, ... are harmonics of the {110} net"


@pytest.mark.parametrize("name", ["srtio3_110_bf.tif", "srtio3_110_haadf.tif"])
def test_srtio3_110_multislice_gives_001_at_3905(name):
    res = _measured(DATA / name)
    s = res.spots
    hit = s[(np.abs(s.d_angstrom - 3.905) < 0.02) & (s.lattice == 0)]
    assert len(hit) == 1 and int(hit.order.iloc[0]) == 1
    assert hit.d_angstrom.iloc[0] == pytest.approx(3.905, rel=5e-4)
    assert any(d == pytest.approx(3.905, rel=5e-4) for d in res.basis["d_angstrom"])


def test_real_srtio3_110_adf_gives_001(realfile):
    res = _measured(realfile("lattice/test_ADF_cropped.hdf5"))
    s = res.spots[res.spots.lattice == 0]
    hit = s[np.abs(s.d_angstrom - 3.905) < 0.04]  # the file's calibration is ~0.6 % off
    assert len(hit) == 1 and int(hit.order.iloc[0]) == 1
    assert res.basis["angle_deg"] == pytest.approx(90, abs=0.5)


def test_real_srtio3_110_abf_gives_001(realfile):
    res = _measured(realfile("lattice/test_ABF_cropped.hdf5"))
    s = res.spots[res.spots.lattice == 0]
    assert len(s[np.abs(s.d_angstrom - 3.905) < 0.04]) == 1


def test_report_labels_the_110_pair_on_the_111_fixture():
    from latticefit.report import build_lattice_report

    mg = _fixture("mapbbr3_111_hrtem.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = build_lattice_report(
            mg, roi_matrix=Rect(0, 0, 256, 256), roi_dot=Circle(384, 384, 100), phases=["MAPbBr3"]
        )
    reg = rep.regions["matrix"]
    rows = [r for r in reg.drawn_rows() if r is not None]
    assert len(rows) == 2
    for r in rows:
        assert reg.lattice.spots.d_angstrom.iat[r] == pytest.approx(4.195, abs=0.03)


# ------------------------------------------------------------------ 2. further lattices
def test_a_mismatched_rotated_dot_is_a_second_lattice():
    mg, _ = synth.perovskite_111(
        shape=(512, 512),
        noise_sigma=0.3,
        seed=2,
        inclusions=[{"x_px": 256, "y_px": 256, "radius_nm": 4.5, "mismatch": 0.04, "rotation_deg": 8}],
    )
    res = _measure(mg, systematic="none")
    assert len(res.lattices) == 2 and res.lattices[0].index == 0
    dot = res.lattices[1]
    assert dot.n_spots >= 3 and dot.angle_deg == pytest.approx(60, abs=0.5)
    assert all(d == pytest.approx(4.195 * 1.04, rel=0.01) for d in dot.d_angstrom)
    assert set(res.spots.lattice.iloc[dot.spots]) == {1}
    d = res.to_dict()
    assert d["schema_version"] == 3 and len(d["lattices"]) == 2 and d["lattices"][1]["n_spots"] == dot.n_spots
    assert "lattice 1:" in str(res)


def test_one_crystal_gives_no_further_lattice():
    for name in ("mapbbr3_111_hrtem.tif", "srtio3_110_haadf.tif", "mapbbr3_001_hrtem.tif"):
        res = _measured(DATA / name)
        assert len(res.lattices) == 1, name


def test_real_stem_noise_makes_no_further_lattice(realfile):
    for rel in ("lattice/Acquisition_18.emd", "lattice/test_ADF_cropped.hdf5"):
        res = _measured(realfile(rel))
        assert len(res.lattices) == 1, rel


@pytest.mark.parametrize("cmd", ["lattice", "index", "report", "batch"])
def test_keep_unindexed_on_every_command_that_mentions_it(cmd, capsys):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    assert "--keep-unindexed" in capsys.readouterr().out


# ------------------------------------------------------------------ 3. recall, and noise stays empty
def test_recall_of_visible_families_on_the_multislice_set():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_recall", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lattice_recall.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n_vis = n_found = 0
    for name, t in TRUTH["images"].items():
        mg = _fixture(name)
        vis = bench.visible_families(mg.data.astype(float), t)
        res = _measured(DATA / name)
        G = res.spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        found, _ = bench.score(
            G, vis, bench.truth_reflections(t), 1 / (mg.data.shape[1] * t["pixel_size_x_nm"]), TRUTH["d_min_angstrom"]
        )
        n_vis += len(vis)
        n_found += found
    assert n_vis >= 80 and n_found / n_vis >= 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_gives_no_spot_with_64_candidates(seed):
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 5, (256, 256))
    res = _measure(img, pixel_size=0.02, systematic="none", max_spots=64)
    assert len(res.spots) == 0 and len(res.lattices) == 0


# ------------------------------------------------------------------ 4. plausibility
def test_blank_haadf_gives_no_lattice(realfile):
    mg = latticefit.load(realfile("loaders/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"), signal="HAADF")
    res = _measure(mg, systematic="none")
    assert len(res.spots) == 0 and res.basis is None
    assert len(res.rejected_spots) and all("blank" in r for r in res.rejected_spots.reason)
    assert any("blank" in w for w in res.warnings)


def test_rod_edge_streak_is_not_a_lattice(realfile):
    mg = latticefit.load(realfile("loaders/128x128-TEM_search.emi"))
    res = _measure(mg, systematic="none")
    assert not (np.abs(res.spots.d_angstrom - 801.5) < 5).any()
    assert res.basis is None
    rej = res.rejected_spots
    assert (np.abs(rej.d_angstrom - 801.5) < 5).any()
    assert any("streak" in r for r in rej.reason)


def test_spots_beyond_the_information_limit_are_refused_on_real_srtio3(realfile):
    mg = latticefit.load(realfile("lattice/test_ADF_cropped.hdf5"))
    res = _measure(mg, systematic="none", keep_unindexed=True)
    assert res.spots.d_angstrom.min() > 0.6, "no spot below the information limit is reported or indexed"
    rej = res.rejected_spots
    assert ((rej.d_angstrom > 0.28) & (rej.d_angstrom < 0.6)).sum() >= 2
    assert res.info["information_limit_angstrom"] == pytest.approx(0.83, abs=0.1)


def test_beam_energy_limit():
    assert lp.beam_limit_angstrom(80.0) == pytest.approx(0.597, abs=1e-3)
    G = np.array([[2.5, 0.0], [0.0, 20.0]])  # 4 Å and 0.5 Å
    reasons, notes = lp.check_spots(G, G * 0.01, np.ones((256, 129)), (256, 256), (0.01, 0.01), beam_energy_kv=80.0)
    assert reasons[0] is None and "information limit" in reasons[1] and notes


def test_scan_lines_on_the_axes_only_are_refused_in_stem():
    G = np.array([[2.0, 0.0], [0.0, 3.0]])
    f = G * 0.02
    P = np.ones((128, 65))
    reasons, _ = lp.check_spots(G, f, P, (128, 128), (0.02, 0.02), mode="HAADF")
    assert all(r and "scan-line" in r for r in reasons)
    reasons, _ = lp.check_spots(G, f, P, (128, 128), (0.02, 0.02), mode="TEM")
    assert reasons == [None, None]
    G2 = np.vstack([G, [[1.5, 1.5]]])  # a spot off the axes: a lattice aligned with the scan, kept
    reasons, _ = lp.check_spots(G2, G2 * 0.02, P, (128, 128), (0.02, 0.02), mode="HAADF")
    assert reasons == [None, None, None]


def test_spacing_limits():
    G = np.array([[0.01, 0.0], [30.0, 0.0]])  # 100 nm; 0.33 Å at 0.02 nm/px is a 1.7 px period
    reasons, _ = lp.check_spots(G, G * 0.02, np.ones((64, 33)), (64, 64), (0.02, 0.02))
    assert "50 nm" in reasons[0] and "2 px" in reasons[1]


def test_report_text_lists_further_lattices():
    from latticefit.report import build_lattice_report
    from latticefit.report import lattice_report_lines as summary_lines

    mg, _ = synth.perovskite_111(
        shape=(512, 512),
        noise_sigma=0.3,
        seed=2,
        inclusions=[{"x_px": 256, "y_px": 256, "radius_nm": 4.5, "mismatch": 0.04, "rotation_deg": 8}],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = build_lattice_report(mg, roi_matrix=Rect(56, 56, 400, 400), roi_dot=Circle(256, 256, 150))
    lines = summary_lines(rep)
    assert any("further lattice 1:" in ln for ln in lines)


def test_spectral_information_limit_is_where_the_signal_meets_the_noise_floor():
    from latticefit.spectrum import half_plane_power

    rng = np.random.default_rng(0)
    n = 256
    F = np.fft.fft2(rng.normal(size=(n, n)))
    F[np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]) > 0.2] = 0  # signal up to 0.2 cycles/px
    img = np.real(np.fft.ifft2(F)) * 10 + rng.normal(size=(n, n))
    P, _ = half_plane_power(img, None, "periodic")
    assert lp.spectral_floor_limit(P, (n, n), (0.01, 0.01)) == pytest.approx(20.0, rel=0.08)  # 1/nm
    # a spectrum still falling at the Nyquist border has no measurable floor
    smooth = np.real(
        np.fft.ifft2(
            np.fft.fft2(rng.normal(size=(n, n)))
            / (1 + 30 * np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])) ** 2
        )
    )
    assert lp.spectral_floor_limit(half_plane_power(smooth, None, "periodic")[0], (n, n), (0.01, 0.01)) is None


def test_small_regions_refuse_scan_noise_beyond_the_whole_image_limit(realfile):
    """test_ADF: periodic scan noise at 0.31-0.60 Å showed as 'spots' in every 128 px square (issue #11)."""
    from latticefit import io, measure_lattice
    from latticefit.roi import Rect

    mg = io.load(realfile("lattice/test_ADF_cropped.hdf5"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = measure_lattice(mg, systematic="none")
        limit = whole.info["information_limit_angstrom"]
        assert 0.7 < limit < 1.0
        for x, y in [(0, 0), (100, 100), (200, 200), (250, 50)]:
            r = measure_lattice(mg, roi=Rect(x, y, 128, 128), systematic="none")
            assert (r.spots["d_angstrom"] > limit / 1.1).all(), r.spots["d_angstrom"].min()
            assert any("whole image's information limit" in n for n in r.notes)
            assert (r.rejected_spots["d_angstrom"] < limit / 1.1).sum() >= 5
