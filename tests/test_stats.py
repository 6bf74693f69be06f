"""latticefit._stats against scipy.stats (which the command paths no longer import)."""

import numpy as np
import pytest

from latticefit import _stats

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 100, 140, 141, 400, 2000, 20000])
def test_kolmogorov_sf_matches_kstwo(n):
    d = np.linspace(0.0005, 0.9995, 160)
    ours = np.array([_stats.kolmogorov_sf(n, float(x)) for x in d])
    np.testing.assert_allclose(ours, stats.kstwo.sf(d, n), rtol=1e-9, atol=1e-12)


def test_kolmogorov_sf_edges():
    assert _stats.kolmogorov_sf(10, 0.0) == 1.0
    assert _stats.kolmogorov_sf(10, 1.0) == 0.0
    assert np.isnan(_stats.kolmogorov_sf(10, float("nan")))


@pytest.mark.parametrize("n", [5, 40, 300])
def test_ks_one_sample_matches_kstest(n):
    rng = np.random.default_rng(n)
    x = rng.lognormal(1.6, 0.2, n)
    mine = _stats.ks_one_sample(x, lambda v: _stats.normal_cdf(v, 5.0, 1.0))
    ref = stats.kstest(x, "norm", args=(5.0, 1.0))
    assert mine.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert mine.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    mine = _stats.ks_one_sample(x, lambda v: _stats.lognormal_cdf(v, 0.2, np.exp(1.6)))
    ref = stats.kstest(x, "lognorm", args=(0.2, 0.0, np.exp(1.6)))
    assert mine.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert mine.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_densities_and_tails_match_scipy():
    x = np.linspace(-3.0, 12.0, 301)
    np.testing.assert_allclose(_stats.normal_pdf(x, 4.0, 1.5), stats.norm.pdf(x, 4.0, 1.5), rtol=1e-12)
    np.testing.assert_allclose(_stats.normal_cdf(x, 4.0, 1.5), stats.norm.cdf(x, 4.0, 1.5), rtol=1e-12)
    np.testing.assert_allclose(
        _stats.lognormal_pdf(x, 0.3, 5.0), stats.lognorm.pdf(x, 0.3, scale=5.0), rtol=1e-12, atol=1e-300
    )
    np.testing.assert_allclose(_stats.lognormal_cdf(x, 0.3, 5.0), stats.lognorm.cdf(x, 0.3, scale=5.0), rtol=1e-12)
    for chi2, dof in [(0.5, 1), (12.3, 7), (80.0, 40), (400.0, 200)]:
        assert _stats.chi2_sf(chi2, dof) == pytest.approx(stats.chi2.sf(chi2, dof), rel=1e-10)


def test_size_fits_equal_scipy_ml_fits():
    from latticefit.particles._sizestats import fit_gaussian, fit_lognormal

    d = np.random.default_rng(3).lognormal(1.5, 0.3, 200)
    mu, sd = stats.norm.fit(d)
    g = fit_gaussian(d)
    assert g["mu_nm"] == pytest.approx(mu, rel=1e-12) and g["sigma_nm"] == pytest.approx(sd, rel=1e-12)
    shape, _, scale = stats.lognorm.fit(d, floc=0)
    ln = fit_lognormal(d)
    assert ln["sigma_log"] == pytest.approx(shape, rel=1e-6) and ln["median_nm"] == pytest.approx(scale, rel=1e-6)


def test_command_path_does_not_import_scipy_stats():
    import subprocess
    import sys

    code = (
        "import sys; from latticefit import find_particles, synth; from latticefit.spectrum import power_spectrum;"
        "mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.1, n_particles=8, n_touching_pairs=0, dose=50, seed=1);"
        "r = find_particles(mg); s = r.summary; power_spectrum(mg, window='hann');"
        'assert len(r) > 0 and s["n_in_statistics"] > 0, s;'
        "print('scipy.stats' in sys.modules, 'scipy.optimize' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"], out


@pytest.mark.parametrize("n", [1, 2, 3, 8, 101, 1024])
def test_spectrum_windows_equal_scipy_signal(n):
    from scipy.signal import windows

    from latticefit.spectrum import _periodic_window

    np.testing.assert_allclose(_periodic_window(n, "hann"), windows.hann(n, sym=False), atol=1e-14)
    np.testing.assert_allclose(_periodic_window(n, "tukey"), windows.tukey(n, 0.25, sym=False), atol=1e-14)
