"""The parametric bootstrap of the final fits (issue 13): when it runs, what it changes, and what not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latticefit.particles import _bootstrap_errors as B
from latticefit.particles._noise import NoiseModel

COUNTS = NoiseModel(sigma=4.5, counts=True, gain=5.0, offset=0.0, quantum=5.0)


def _table(n=40, rel_err=0.07):
    d = np.full(n, 4.0)
    return pd.DataFrame(
        {
            "x_px": np.arange(n, dtype=float) * 10,
            "y_px": np.full(n, 20.0),
            "diameter_nm": d,
            "diameter_err_nm": rel_err * d,
            "x_err_px": np.full(n, 0.2),
            "y_err_px": np.full(n, 0.2),
            "fit_ok": np.ones(n, bool),
            "fit_group": np.arange(n),
            "in_statistics": np.ones(n, bool),
            "error_scale": np.ones(n),
        }
    )


@pytest.mark.parametrize("factors, want", [((1.2, 1.1, 400), (1.2, 1.1)), ((0.8, 0.9, 400), (1.0, 1.0))])
def test_factors_scale_the_errors_but_never_shrink_them(monkeypatch, factors, want):
    monkeypatch.setattr(B, "bootstrap_error_factors", lambda *a, **k: factors)
    t = _table()
    out, rec = B.with_bootstrap_errors(t, np.zeros((64, 64)), COUNTS, 0.3, 0.8)
    assert rec.applied and rec.diameter_factor == factors[0] and rec.n_fits == 400
    np.testing.assert_allclose(out.diameter_err_nm, want[0] * t.diameter_err_nm)
    np.testing.assert_allclose(out.x_err_px, want[1] * t.x_err_px)
    np.testing.assert_allclose(t.diameter_err_nm, 0.28)  # the input is not modified
    assert (out.error_scale == 1.0).all()  # the sqrt(chi2_red) scale stays what it is


@pytest.mark.parametrize(
    "table, noise, reason",
    [
        (_table(rel_err=0.01), COUNTS, "relative diameter error 1.00 % < 2 %"),
        (_table(n=5), COUNTS, "fewer than 10 particles in the statistics"),
        (_table(), NoiseModel(4.5, False, 0.0, 20.0, None), "not a counting image"),
    ],
)
def test_the_bootstrap_does_not_run_where_it_cannot_measure(monkeypatch, table, noise, reason):
    def fail(*a, **k):
        raise AssertionError("bootstrap ran")

    monkeypatch.setattr(B, "bootstrap_error_factors", fail)
    out, rec = B.with_bootstrap_errors(table, np.zeros((64, 64)), noise, 0.3, 0.8)
    assert not rec.applied and rec.reason.startswith(reason)
    assert out is table
    assert rec.to_dict()["diameter_factor"] is None  # NaN is written as null


def test_the_factor_of_isolated_5px_dots_at_20_counts_matches_their_scatter():
    """Dots rendered by the fit's own model, so the truth is exact: the bootstrap factor of one noise
    realisation against the scatter of fits to 10 independent realisations of the same dots."""
    from latticefit.particles import _kernels as K
    from latticefit.particles._fit import _fit_all_groups, _model_values
    from latticefit.particles._groupfit import _prepared, _unpack

    rng = np.random.default_rng(5)
    n_side, step = 16, 16
    yy, xx = np.mgrid[0:n_side, 0:n_side] * step + 12.0
    x, y = xx.ravel() + rng.uniform(-0.5, 0.5, xx.size), yy.ravel() + rng.uniform(-0.5, 0.5, xx.size)
    r = rng.normal(2.5, 0.2, x.size)
    group = np.arange(x.size)
    members = [np.array([i]) for i in group]
    img = np.full((n_side * step + 24,) * 2, 100.0)
    prep, bsz = _prepared(img, x, y, r, group, members, 0.3, None)
    assert (bsz == 1).all()
    s2 = (0.3 / bsz) ** 2 + 1 / 12
    params = prep["params"].copy()
    for g in range(len(members)):
        o = prep["par_off"][g]
        x0, y0, _b = prep["origin"][g]
        params[o : o + K.N_BACKGROUND] = [100.0] + [0.0] * (K.N_BACKGROUND - 1)
        params[o + K.N_BACKGROUND : o + K.N_BACKGROUND + 4] = [x[g] - x0, y[g] - y0, r[g], 100.0]
    model = _model_values(prep, params, s2)
    for g in range(len(members)):  # the noise-free image: each window's model (the windows do not overlap)
        a, b = prep["pix_off"][g], prep["pix_off"][g + 1]
        x0, y0, _b = prep["origin"][g]
        img[y0 + prep["ys"][a:b].astype(int), x0 + prep["xs"][a:b].astype(int)] = model[a:b]
    dev, err = [], []
    for _ in range(10):  # independent realisations, fitted as the pipeline fits them, against the truth
        p = dict(prep, data=rng.poisson(model / 5.0) * 5.0, params=params.copy())
        fit, _ = _unpack(p, members, _fit_all_groups(p, COUNTS, s2, bsz), x, y, r, COUNTS, bsz, group, 0.3)
        dev.append(fit.r[fit.ok] - r[fit.ok])
        err.append(fit.r_err[fit.ok])
    truth_factor = B._rms_ratio(np.concatenate(dev), np.concatenate(err))
    noisy = rng.poisson(img / 5.0) * 5.0
    p = _prepared(noisy, x, y, r, group, members, 0.3, None)[0]
    fit, _ = _unpack(p, members, _fit_all_groups(p, COUNTS, s2, bsz), x, y, r, COUNTS, bsz, group, 0.3)
    fd, _fp, n = B.bootstrap_error_factors(noisy, fit.x, fit.y, fit.r, group, fit.ok, COUNTS, 0.3)
    assert n > 400
    assert truth_factor > 1.02  # the Fisher errors of such dots are small
    assert abs(fd - truth_factor) < 0.08, (fd, truth_factor)
