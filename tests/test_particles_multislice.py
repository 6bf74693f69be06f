"""latticefit.particles on abTEM multislice HAADF-STEM images of PbS dots whose diameters are known.

The fixtures (``tests/data/multislice_particles/``, made by ``scripts/make_haadf_particle_fixtures.py`` in a
separate abTEM environment; nothing is simulated here) are noiseless PRISM HAADF intensities of randomly
oriented rock-salt PbS spheres cut from atoms (4.0 and 7.0 nm) on a 2 nm amorphous carbon film: physics that
latticefit did not write. The intensity is the fraction of the probe that reaches the detector; the tests
turn it into counts as ``Poisson(DOSE * intensity + DARK)`` with a seed per noise realisation.

What is checked, per image:

- every true dot is found exactly once and is in the statistics, nothing else is (the two 4 nm dots 0.5 nm
  apart in ``cell_b`` are not merged or flagged as a cluster);
- the mean fitted diameter over the noise seeds lies in what an atom-cut sphere can honestly claim (see
  ``test_diameter_bias`` for the interval and the measured bias), and within ``MAX_BIAS`` of 2R;
- the stated errors: z = (d_fit - mean over seeds) / diameter_err_nm over ``N_SEEDS`` noise seeds, per dot.
  SD(z) <= 1.6 (not overconfident) passes; SD(z) >= 0.6 does not (strict xfail, see
  ``test_stated_errors_match_the_noise_scatter``): on these atomic-resolution images the stated error also
  carries the lattice misfit of the sphere model, which does not change between noise seeds.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import latticefit
from latticefit.particles import find_particles

DATA = Path(__file__).resolve().parent / "data" / "multislice_particles"
TRUTH = json.loads((DATA / "truth.json").read_text())
IMAGES = TRUTH["images"]

#: electrons per probe position (e.g. 50 pA for 32 us): the carbon film gives ~1.7 counts/px (+ DARK), the
#: centre of a 4 nm dot 62-77 counts/px and of the 7 nm dot 113 (3 x 3 means), i.e. a per-pixel SNR
#: (peak - background) / sqrt(peak) of 8 at the 4 nm dots and 10 at the 7 nm dot
DOSE = 1.0e4
#: mean dark counts per pixel added before the Poisson draw
DARK = 2.0
#: noise seeds per image (the z-score SD of one dot is then known to ~1/sqrt(2 N) = 11 %)
N_SEEDS = 40
#: largest |mean fitted diameter / 2R - 1| accepted whatever the atom-cut interval says
MAX_BIAS = 0.02
SD_Z_BAND = (0.6, 1.6)


def _intensity(name):
    mg = latticefit.load(DATA / name)
    return np.asarray(mg.data, float), mg.pixel_size_nm


def _counts(intensity, seed, dose=DOSE):
    return np.random.default_rng(seed).poisson(dose * intensity + DARK).astype(np.float64)


def _rows_at(table, dot, radius_px):
    """Rows of the table whose centre lies within ``radius_px`` of the true centre."""
    d = np.hypot(table.x_px.to_numpy() - dot["x_px"], table.y_px.to_numpy() - dot["y_px"])
    return table[d < radius_px]


def _run_all():
    """find_particles on N_SEEDS noise realisations of each image: {name: [(seed, table), ...]}."""
    out = {}
    for k, name in enumerate(sorted(IMAGES)):
        intensity, (py, px) = _intensity(name)
        tabs = []
        for s in range(N_SEEDS):
            seed = 1000 * (k + 1) + s
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = find_particles(_counts(intensity, seed), pixel_size=px, diameter_range_nm=(2, 10), n_boot=200)
            tabs.append((seed, res.table))
        out[name] = tabs
    return out


@pytest.fixture(scope="module")
def runs():
    return _run_all()


def test_fixture_files_and_calibration():
    files = [p for p in DATA.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 3 * 1024 * 1024
    assert {p.name for p in files if p.suffix == ".tif"} == set(IMAGES)
    assert TRUTH["schema_version"] == 1
    for name, t in IMAGES.items():
        intensity, (py, px) = _intensity(name)
        assert intensity.shape == tuple(t["shape"])
        assert px == pytest.approx(t["pixel_size_nm"], rel=1e-6) and py == pytest.approx(t["pixel_size_nm"], rel=1e-6)
        assert 0 < intensity.min() and intensity.max() < 1, "a fraction of the probe"
        for dot in t["dots"]:
            r = dot["diameter_nm"] / 2 / px
            assert min(dot["x_px"], dot["y_px"]) - r >= 1.0 / px - 1e-6, "dot >= 1 nm from the border"
            assert max(dot["x_px"], dot["y_px"]) + r <= t["shape"][0] - 1.0 / px + 1e-6


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_dot_found_once_and_nothing_else(runs, name):
    t = IMAGES[name]
    px = t["pixel_size_nm"]
    for seed, tab in runs[name]:
        stats = tab[tab.in_statistics]
        for dot in t["dots"]:
            r_px = dot["diameter_nm"] / 2 / px
            near = _rows_at(tab, dot, 0.5 * r_px)
            assert len(near) == 1, f"seed {seed}: dot at ({dot['x_px']}, {dot['y_px']}) found {len(near)} times"
            row = near.iloc[0]
            assert row.in_statistics, f"seed {seed}: dot {dot['diameter_nm']} nm is {row.status} ({row.reject_reason})"
        assert len(stats) == len(t["dots"]), f"seed {seed}: {len(stats)} particles in the statistics"


def _diameters(runs, name):
    """(n_dots, N_SEEDS) fitted diameters and stated errors of the row matched to each true dot."""
    t = IMAGES[name]
    px = t["pixel_size_nm"]
    d = np.full((len(t["dots"]), N_SEEDS), np.nan)
    e = np.full_like(d, np.nan)
    for j, (_, tab) in enumerate(runs[name]):
        for i, dot in enumerate(t["dots"]):
            near = _rows_at(tab[tab.in_statistics], dot, 0.5 * dot["diameter_nm"] / 2 / px)
            if len(near) == 1:
                d[i, j], e[i, j] = near.diameter_nm.iloc[0], near.diameter_err_nm.iloc[0]
    return d, e


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_diameter_bias(runs, name):
    """The mean fit lies between the two honest diameters of an atom-cut sphere, within 2 stated errors.

    A sphere cut from atoms (every atom whose centre lies within R) has no edge at exactly R: its outermost
    atom centres lie at ``max_atom_radius_nm`` <= R (1.991 nm for R = 2 nm, 3.499 nm for R = 3.5 nm), and
    the bulk-density sphere holding the same number of atoms has the diameter ``d_V`` >= 2R
    (``diameter_volume_equivalent_nm``: 4.028 and 7.021 nm). Any diameter in [2 max_atom_radius, d_V]
    (-0.45..+0.7 % of 2R at 4 nm, -0.03..+0.3 % at 7 nm) is an honest size of the dot; the fit's own 1-sigma
    error (mean stated ``diameter_err_nm``, which here includes the lattice misfit) widens it by 2 sigma.

    Measured (DOSE 1e4, 40 seeds; latticefit at commit 148b2db): 7.0 nm dot 7.023 nm (+0.33 % vs 2R,
    +0.03 % vs d_V); the four 4.0 nm dots (four orientations) 3.973-3.986 nm (-0.68..-0.35 % vs 2R,
    -1.4..-1.0 % vs d_V, i.e. within 0.01 nm of 2 max_atom_radius = 3.982 nm). The same atoms in an
    incoherent linear model (Z^1.7-weighted Gaussians, no multislice) give 3.969-3.980 nm for the 4 nm dots
    and 7.019 nm for the 7 nm dot, so the -0.5 % at 4 nm comes from the atom-cut edge and the estimator,
    not from HAADF channelling or thickness non-linearity.
    """
    d, e = _diameters(runs, name)
    for i, dot in enumerate(IMAGES[name]["dots"]):
        assert np.isfinite(d[i]).all()
        mean, err = d[i].mean(), e[i].mean()
        bias = mean / dot["diameter_nm"] - 1
        assert abs(bias) <= MAX_BIAS, f"{dot['diameter_nm']} nm dot: mean {mean:.4f} nm, bias {100 * bias:+.2f} %"
        lo, hi = 2 * dot["max_atom_radius_nm"] - 2 * err, dot["diameter_volume_equivalent_nm"] + 2 * err
        assert lo <= mean <= hi, f"{dot['diameter_nm']} nm dot: mean {mean:.4f} nm outside [{lo:.4f}, {hi:.4f}]"


def _sd_z(runs, name):
    d, e = _diameters(runs, name)
    return [float(np.std((d[i] - d[i].mean()) / e[i], ddof=1)) for i in range(len(d))]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_stated_errors_not_overconfident(runs, name):
    sd = _sd_z(runs, name)
    assert max(sd) <= SD_Z_BAND[1], f"SD(z) per dot {np.round(sd, 2)}"


@pytest.mark.xfail(
    strict=True,
    reason="finding: on atomic-resolution HAADF the stated diameter error includes the sphere model's lattice "
    "misfit (sqrt(chi2_red) scaling, or the residual variance when the noise model is not counts), which is "
    "the same in every noise realisation: SD(z) over seeds is 0.2-0.7 at 1e4 e/probe, ~0.1 at 1e5 (it is "
    "~1 at 1e3); the noise-only error is not reported",
)
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_stated_errors_match_the_noise_scatter(runs, name):
    sd = _sd_z(runs, name)
    assert min(sd) >= SD_Z_BAND[0], f"SD(z) per dot {np.round(sd, 2)}"
