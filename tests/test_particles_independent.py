"""Particle sizing on a raft from the independent field generator of ``benchmarks/bench_particles_independent.py``
(its own sphere projection, exact pixel box, scipy blur; no code shared with ``latticefit.synth``)."""

import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from latticefit.micrograph import Micrograph
from latticefit.particles import find_particles


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_particles_independent.py"
    spec = importlib.util.spec_from_file_location("bench_particles_independent", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclass looks itself up there
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.parametrize("seed", [1, 3])
def test_raft_dots_beside_other_groups_keep_their_size_and_honest_errors(seed):
    """160 dots of 7 nm grown into rafts with 0.1-0.3 nm gaps (0.1 nm/px, 50 counts/px background).

    Fitted alone beside a dot of another group (the neighbour masks of the first fits reach its LoG radius,
    not its fitted one), raft dots came out up to 1.1 % small with chi2_red 5-8: SD(z) 1.23 / 1.28 on these
    seeds and |error| up to 1.1 %. The refit of such groups (``_refits.polished``) gives 0.94-1.07 and
    at most 0.5 %.
    """
    from scipy.spatial import cKDTree

    bench = _bench()
    kind = bench.Kind("raft", 7.0, 0.1, 1024, 160, gap_nm=(0.1, 0.3))
    img, tx, ty, td = bench.field(seed, kind)
    res = find_particles(Micrograph(data=img, pixel_size_nm=(0.1, 0.1)), diameter_range_nm=(3.5, 14.0))
    st = res.table[res.table["in_statistics"]]
    x, y, d, err = (st[c].to_numpy() for c in ("x_px", "y_px", "diameter_nm", "diameter_err_nm"))
    f1, bias, _rsd_err, sdz, _cov, _z = bench.score(x, y, d, err, None, tx, ty, td, img.shape, 0.1)
    dist, idx = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([x, y]))
    assert f1 == 1.0 and np.all(dist < 0.5 * td[idx] / 0.1) and abs(bias) < 0.1
    assert np.max(np.abs(d / td[idx] - 1)) < 0.006
    assert sdz < 1.15, sdz


@functools.cache
def _small_raft(seed):
    """750 dots of 4 nm at 0.8 nm/px (5 px) grown into a raft with 0.1-0.5 nm (sub-pixel) gaps, 20 counts/px."""
    bench = _bench()
    kind = bench.Kind("raft", 4.0, 0.8, 256, 750, bg=20.0, blur_nm=0.24, gap_nm=(0.1, 0.5))
    img, tx, ty, td = bench.field(seed, kind)
    res = find_particles(Micrograph(data=img, pixel_size_nm=(0.8, 0.8)), diameter_range_nm=(2.4, 8.0))
    st = res.table[res.table["in_statistics"]]
    x, y, d, err = (st[c].to_numpy() for c in ("x_px", "y_px", "diameter_nm", "diameter_err_nm"))
    return res, bench.score(x, y, d, err, float(res.summary["rsd_corrected_percent"]), tx, ty, td, img.shape, 0.8)


@pytest.mark.parametrize("seed", [1, 2])
def test_small_raft_rsd_corrected_by_likelihood_not_moments(seed):
    """The noise-corrected RSD of a 5 px raft within 0.5 pp of the true dots' RSD.

    The tenth of the dots with the largest errors have linearised errors 1.5-2x their actual scatter; the moment
    formula ``sqrt(RSD² - mean((e/d)²))`` removed that much too and came out 2.3 / 3.9 pp low on these seeds.
    The REML estimate (:func:`latticefit.particles.intrinsic_sd`): -0.04 / +0.05 pp.
    """
    _res, (_f1, _bias, rsd_err, sdz, _cov, _z) = _small_raft(seed)
    assert abs(rsd_err) < 0.5, rsd_err
    assert 0.85 < sdz < 1.15, sdz


@pytest.mark.parametrize("seed", [1])
def test_small_raft_failed_joint_fits_retried_alone(seed):
    """Failed joint fits of 5 px raft dots fitted again one by one (``_refits.retried``): F1 >= 0.98.

    Before: F1 0.972 on this seed (0.974 on seed 3; a tenth of the joint fits failed, dots plain to the eye
    had no fit); after 0.984 (0.982); with the raft cut into compact fit groups (``_grouping``) 0.988 (0.993).
    Seed 1's field is the RSD test's (cached).
    """
    res, (f1, _bias, _rsd_err, _sdz, _cov, _z) = _small_raft(seed)
    assert res.settings["n_retried"] > 0
    assert f1 >= 0.98, f1
