"""Size statistics on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latticefit.errors import LatticefitWarning
from latticefit.particles import (
    corrected_rsd,
    corrected_rsd_sensitivity,
    fd_histogram,
    fit_gaussian,
    fit_lognormal,
    intrinsic_sd,
    miles_lantuejoul_weights,
    rsd_bootstrap_ci,
    size_summary,
    weighted_mean_sd,
)


def test_summary_of_normal_population():
    rng = np.random.default_rng(0)
    d = rng.normal(7.0, 0.56, 500)  # RSD 8 %
    s = size_summary(d, np.full(500, 0.05))
    assert s["n"] == 500 and s["n_edge"] == 0
    assert s["mean_nm"] == pytest.approx(7.0, abs=0.06)
    assert s["rsd_percent"] == pytest.approx(8.0, abs=0.6)
    lo, hi = s["rsd_ci95_percent"]
    assert lo < 8.0 < hi and hi - lo < 2.0
    assert s["gaussian"]["mu_nm"] == pytest.approx(s["mean_nm"])
    assert sum(s["histogram"]["counts"]) == 500


def test_bootstrap_ci_coverage():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(40):
        d = rng.normal(4.0, 0.3, 120)  # true RSD 7.5 %
        lo, hi = rsd_bootstrap_ci(d, n_boot=400, seed=0)
        hits += lo < 7.5 < hi
    assert hits >= 33  # nominal 95 %: >= 33/40 is well within binomial scatter


def test_bootstrap_is_seeded():
    d = np.random.default_rng(2).normal(5, 0.4, 50)
    assert rsd_bootstrap_ci(d, seed=3) == rsd_bootstrap_ci(d, seed=3)


def test_corrected_rsd_removes_measurement_noise():
    rng = np.random.default_rng(4)
    true = rng.normal(7.0, 0.35, 4000)  # RSD 5 %
    err = np.full(4000, 0.42)  # 6 % per particle
    meas = true + rng.normal(0, 0.42, 4000)
    s = size_summary(meas, err)
    assert s["rsd_percent"] == pytest.approx(math.hypot(5.0, 6.0), abs=0.3)
    assert s["rsd_corrected_percent"] == pytest.approx(5.0, abs=0.4)


def test_corrected_rsd_says_how_much_it_rests_on_the_stated_errors():
    """Noise as large as the spread (7 % against 8 %): errors stated 10 % small move the corrected RSD by about
    the sensitivity, and the summary says so; with 1 % noise the errors hardly matter and no note is added."""
    rng = np.random.default_rng(11)
    true = rng.normal(4.0, 0.32, 5000)
    err = np.full(5000, 0.28)
    meas = true + rng.normal(0.0, err)
    sens = corrected_rsd_sensitivity(meas, err)
    honest = corrected_rsd(1.0, meas, err)[0]
    optimistic = corrected_rsd(1.0, meas, err / 1.1)[0]  # Fisher errors 10 % small at low SNR
    assert honest == pytest.approx(8.0, abs=0.3) and 0.3 < optimistic - honest < 1.5 * sens
    s = size_summary(meas, err)
    assert s["rsd_corrected_sensitivity_pp"] == pytest.approx(sens)
    assert any("±10 % in the stated errors" in n for n in s["notes"])
    quiet = size_summary(true + rng.normal(0.0, 0.04, 5000), np.full(5000, 0.04))
    assert quiet["rsd_corrected_sensitivity_pp"] < 0.02 and not any("stated errors" in n for n in quiet["notes"])
    assert size_summary([], warn=False)["rsd_corrected_sensitivity_pp"] is None


def test_intrinsic_sd_with_unequal_errors_and_an_overstated_tail():
    """REML recovers the true SD under unequal honest errors, and when a tenth of the errors are stated 2x too
    large (the linearised errors of poorly determined 5 px raft dots), where the moment formula does not."""
    rng = np.random.default_rng(7)
    n = 6000
    true = rng.normal(4.0, 0.32, n)  # RSD 8 %
    err = np.where(rng.random(n) < 0.9, rng.uniform(0.08, 0.2, n), rng.uniform(0.4, 1.2, n))
    meas = true + rng.normal(0.0, err)
    assert intrinsic_sd(meas, err) == pytest.approx(0.32, abs=0.015)
    stated = np.where(err > 0.3, 2.0 * err, err)
    moments = math.sqrt(max(meas.var(ddof=1) - np.mean(stated**2), 0.0))
    assert moments < 0.25  # the tail's overstated variance removed from everyone's
    assert intrinsic_sd(meas, stated) == pytest.approx(0.32, abs=0.03)
    rc, note = corrected_rsd(100 * meas.std(ddof=1) / meas.mean(), meas, stated)
    assert rc == pytest.approx(8.0, abs=0.8) and note is None


def test_intrinsic_sd_equal_weights_change_nothing():
    rng = np.random.default_rng(8)
    d, e = rng.normal(7.0, 0.5, 300), rng.uniform(0.1, 0.3, 300)
    assert intrinsic_sd(d, e, np.full(300, 0.37)) == pytest.approx(intrinsic_sd(d, e), rel=1e-6)
    assert math.isnan(intrinsic_sd([7.0], [0.1]))


def test_corrected_rsd_clips_at_zero_with_note():
    val, note = corrected_rsd(3.0, [5.0, 5.0], [0.5, 0.5])
    assert val == 0.0 and "clipped" in note
    s = size_summary([5.0, 5.1, 4.9], [0.5, 0.5, 0.5])
    assert s["rsd_corrected_percent"] == 0.0 and any("clipped" in n for n in s["notes"])


def test_lognormal_fit_recovers_parameters():
    rng = np.random.default_rng(5)
    d = rng.lognormal(np.log(4.0), 0.1, 3000)
    f = fit_lognormal(d)
    assert f["median_nm"] == pytest.approx(4.0, rel=0.01) and f["sigma_log"] == pytest.approx(0.1, rel=0.05)
    g = fit_gaussian(d)
    assert g["mu_nm"] == pytest.approx(4.0 * math.exp(0.005), rel=0.01)


def test_fd_histogram_edges_and_counts():
    rng = np.random.default_rng(6)
    d = rng.normal(7, 0.5, 400)
    h = fd_histogram(d)
    edges = np.array(h["bin_edges_nm"])
    iqr = np.subtract(*np.percentile(d, [75, 25]))
    assert h["bin_width_nm"] == pytest.approx(2 * iqr / 400 ** (1 / 3), rel=0.15)
    assert edges[0] <= d.min() and edges[-1] >= d.max() and sum(h["counts"]) == 400


def test_weighted_statistics_and_ml_weights():
    m, s = weighted_mean_sd([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert (m, s) == pytest.approx((2.0, 1.0))
    w = miles_lantuejoul_weights([10, 0], [10, 0], (100, 100))
    assert w[0] == pytest.approx(10000 / 8100) and w[1] == 1.0
    s = size_summary([4.0, 6.0], weights=[1.0, 3.0])
    assert s["mean_nm"] == pytest.approx(5.5) and s["weighted"]


def test_empty_summary_warns_and_is_null():
    with pytest.warns(LatticefitWarning):
        s = size_summary([])
    assert s["n"] == 0 and s["mean_nm"] is None and s["rsd_ci95_percent"] == [None, None]
    s = size_summary([np.nan, -1.0], warn=False)
    assert s["n"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_intrinsic_sd_fisher_scoring_equals_a_bounded_minimisation(seed):
    """The Fisher-scoring REML of ``intrinsic_sd`` against ``scipy.optimize.minimize_scalar`` of the same
    restricted likelihood (the command path does not import scipy.optimize; the test does)."""
    from scipy import optimize

    from latticefit.particles._sizestats import _reml_nll

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    err = rng.uniform(0.05, 1.0, n) * rng.choice([1.0, 3.0], n, p=[0.9, 0.1])
    d = rng.normal(5.0, rng.uniform(0.0, 0.6), n) + rng.normal(0.0, err)
    c = rng.uniform(0.5, 2.0, n) if seed % 2 else None
    cn = np.ones(n) if c is None else c * n / c.sum()
    best = optimize.minimize_scalar(
        _reml_nll, bounds=(0.0, 4 * np.var(d)), args=(d, err**2, cn), method="bounded", options={"xatol": 1e-12}
    )
    tau2 = best.x if _reml_nll(0.0, d, err**2, cn) > best.fun else 0.0
    assert intrinsic_sd(d, err, c) == pytest.approx(math.sqrt(tau2), rel=1e-5, abs=1e-6)
