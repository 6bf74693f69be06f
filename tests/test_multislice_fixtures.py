"""The committed abTEM multislice fixtures load with their calibration and their truth is consistent.

These tests check the fixtures themselves (files, calibration, the structure-derived
truth), not latticefit's lattice results on them. The fixtures are made by
``scripts/make_multislice_fixtures.py`` in a separate abTEM environment; nothing is
simulated here.
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

import latticefit

DATA = Path(__file__).resolve().parent / "data" / "multislice"
TRUTH = json.loads((DATA / "truth.json").read_text())
IMAGES = TRUTH["images"]
LATTICE_A = {"MAPbBr3": 5.933, "SrTiO3": 3.905}
ZONES = {"[001]": (0, 0, 1), "[111]": (1, 1, 1), "[110]": (1, 1, 0)}


def test_truth_header_and_size_budget():
    assert TRUTH["schema_version"] == 1
    assert TRUTH["d_min_angstrom"] > 0 and TRUTH["visible_ratio"] == 5.0
    files = [p for p in DATA.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 6 * 1024 * 1024
    tifs = {p.name for p in files if p.suffix == ".tif"}
    assert tifs == set(IMAGES), "every image has a truth entry and every entry an image"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_fixture_loads_with_its_calibration(name):
    t = IMAGES[name]
    mg = latticefit.load(DATA / name)
    assert mg.data.shape == tuple(t["shape"])
    py, px = mg.pixel_size_nm
    assert px == pytest.approx(t["pixel_size_x_nm"], rel=1e-6)
    assert py == pytest.approx(t["pixel_size_y_nm"], rel=1e-6)
    assert mg.data.min() >= 0 and np.array_equal(mg.data, np.round(mg.data)), "Poisson counts"
    assert float(mg.data.mean()) == pytest.approx(t["mean_counts_per_pixel"], rel=1e-4)
    assert (DATA / name).stat().st_size == t["bytes"]


def _families(t):
    yield from t["families"].items()


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_truth_reflections_follow_from_the_structure(name):
    t = IMAGES[name]
    u = np.array(ZONES[t["zone_axis"]])
    for phase, fams in _families(t):
        a = LATTICE_A.get(phase) or t["dot"]["a_angstrom"]
        ds = [f["d_angstrom"] for f in fams]
        assert ds == sorted(ds, reverse=True) and min(ds) >= TRUTH["d_min_angstrom"] - 1e-6
        for f in fams:
            for m in f["members"]:
                h = np.array(m["hkl"])
                assert h @ u == 0, "member lies in the zone"
                assert sorted(np.abs(h), reverse=True) == f["hkl_rep"]
                assert a / math.sqrt(h @ h) == pytest.approx(f["d_angstrom"], abs=1e-4)
                assert math.hypot(m["gx_inv_nm"], m["gy_inv_nm"]) == pytest.approx(10 / f["d_angstrom"], rel=1e-4)
            if phase == "PbS":  # rock salt: h, k, l unmixed
                parity = {x % 2 for x in f["hkl_rep"]}
                assert f["kinematically_allowed"] == (len(parity) == 1)
            else:  # primitive perovskite: no extinctions
                assert f["kinematically_allowed"]


def test_perovskite_111_has_six_110_at_60_degrees():
    for t in IMAGES.values():
        if t["zone_axis"] != "[111]":
            continue
        fam = t["families"]["MAPbBr3"][0]
        assert fam["family"] == "{110}" and fam["d_angstrom"] == pytest.approx(4.1953, abs=1e-4)
        az = sorted(m["azimuth_deg"] % 360 for m in fam["members"])
        assert len(az) == 6 and np.allclose(np.diff(az), 60, atol=1e-3)
        assert t["first_order_angles"]["MAPbBr3"]["within_first_family_deg"][0] == pytest.approx(60)
        if "PbS" in t["families"]:
            pbs = {f["family"]: f for f in t["families"]["PbS"]}
            assert not pbs["{110}"]["kinematically_allowed"] and pbs["{220}"]["kinematically_allowed"]


def test_srtio3_110_has_001_at_3905():
    found = [t for t in IMAGES.values() if t["zone_axis"] == "[110]"]
    for t in found:
        fam = {f["family"]: f for f in t["families"]["SrTiO3"]}["{100}"]
        assert fam["d_angstrom"] == pytest.approx(3.905) and fam["kinematically_allowed"]
        assert sorted(map(tuple, (m["hkl"] for m in fam["members"]))) == [(0, 0, -1), (0, 0, 1)]


@pytest.mark.parametrize("name", sorted(n for n, t in IMAGES.items() if "dot" in t))
def test_dot_geometry_is_inside_the_field(name):
    t = IMAGES[name]
    d = t["dot"]
    ny, nx = t["shape"]
    r = d["diameter_px"] / 2
    assert r < d["centre_x_px"] < nx - 1 - r and r < d["centre_y_px"] < ny - 1 - r
    assert d["centre_x_nm"] == pytest.approx(d["centre_x_px"] * t["pixel_size_x_nm"], rel=1e-6)
    assert d["diameter_px"] * t["pixel_size_x_nm"] == pytest.approx(d["diameter_nm"], rel=1e-6)
    assert 0 < d["depth_from_exit_surface_nm"] - d["diameter_nm"] / 2 < t["thickness_nm"]
    assert d["mismatch_percent"] == pytest.approx(100 * (d["a_angstrom"] / 5.933 - 1), abs=1e-3)


def _hann_ratio(img, px_nm, gx, gy, r_bg=(5.0, 9.0)):
    w = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
    A = np.abs(np.fft.fftshift(np.fft.fft2((img - img.mean()) * w)))
    ny, nx = A.shape
    u, v = nx // 2 + gx * nx * px_nm, ny // 2 + gy * ny * px_nm
    yy, xx = np.mgrid[0:ny, 0:nx]
    r2 = (xx - u) ** 2 + (yy - v) ** 2
    return A[r2 <= 4].max(), A[(r2 >= r_bg[0] ** 2) & (r2 <= r_bg[1] ** 2)]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_recorded_visibility_matches_the_committed_pixels(name):
    """The truth's strongest family stands far above its local background in these very pixels."""
    t = IMAGES[name]
    img = latticefit.load(DATA / name).data.astype(np.float64)
    for phase, vis in t["fft_visibility"].items():
        fams = {f["family"]: f for f in t["families"][phase]}
        assert {v["family"] for v in vis} == set(fams)
        best = max(vis, key=lambda v: max(r or 0 for r in v["peak_over_background"]))
        i = int(np.argmax([r or 0 for r in best["peak_over_background"]]))
        m = fams[best["family"]]["members"][i]
        peak, ring = _hann_ratio(img, t["pixel_size_x_nm"], m["gx_inv_nm"], m["gy_inv_nm"])
        # annulus median without exclusions can only be >= a little above the recorded one
        assert peak / np.median(ring) == pytest.approx(best["peak_over_background"][i], rel=0.5)
        assert peak / np.median(ring) >= TRUTH["visible_ratio"]


def test_friedel_pairs_have_equal_recorded_visibility():
    for t in IMAGES.values():
        for phase, vis in t["fft_visibility"].items():
            fams = {f["family"]: f for f in t["families"][phase]}
            for v in vis:
                hkls = [tuple(m["hkl"]) for m in fams[v["family"]]["members"]]
                for (i, h1), (j, h2) in combinations(enumerate(hkls), 2):
                    if h1 == tuple(-x for x in h2) and v["peak_over_background"][i] is not None:
                        assert v["peak_over_background"][i] == pytest.approx(v["peak_over_background"][j], rel=0.02)
