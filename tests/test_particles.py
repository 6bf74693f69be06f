"""HAADF particle analysis: kernels vs numpy references, the sphere model, detection/fit accuracy on synth fields."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from latticefit.errors import AnalysisError, LatticefitWarning
from latticefit.particles import (
    JSON_PARTICLE_KEYS,
    ParticleResult,
    estimate_background,
    estimate_noise_model,
    find_particles,
    plot_overlay,
    region_measures,
)
from latticefit.particles import _kernels as K
from latticefit.synth import _core as synth


# ------------------------------------------------------------------ helpers
def match(result, truth):
    """Greedy match of detections to truth within the true radius: (tp, fp, fn, truth_idx -> det_idx)."""
    t = truth.particles
    d = result.table
    if len(d) == 0:
        return 0, 0, len(t), {}
    tree = cKDTree(np.c_[d.x_px, d.y_px])
    pairs = {}
    used = set()
    dist, idx = tree.query(np.c_[t.x_px, t.y_px], k=min(3, len(d)))
    dist = np.atleast_2d(dist.T).T if dist.ndim == 1 else dist
    idx = np.atleast_2d(idx.T).T if idx.ndim == 1 else idx
    order = np.argsort(dist[:, 0])
    for ti in order:
        for dd, di in zip(dist[ti], idx[ti]):
            if dd < t.diameter_px.iloc[ti] / 2 and di not in used:
                pairs[ti] = int(di)
                used.add(int(di))
                break
    tp = len(pairs)
    return tp, len(d) - tp, len(t) - tp, pairs


@pytest.fixture(scope="module")
def field():
    mg, truth = synth.haadf_dots(
        (768, 768), pixel_size_nm=0.1, diameter_nm=7.0, rsd=0.08, n_particles=40, n_touching_pairs=5, dose=50.0, seed=11
    )
    res = find_particles(mg, diameter_range_nm=(3, 12))
    return mg, truth, res


# ------------------------------------------------------------------ kernels
def test_scale_space_maxima_matches_reference():
    rng = np.random.default_rng(0)
    stack = ndi_smooth(rng.normal(size=(5, 40, 50)))
    thr = np.full(5, 0.2)
    a = K.scale_space_maxima(stack, thr, 1)
    b = K.scale_space_maxima_ref(stack, thr, 1)
    assert len(a) > 5
    np.testing.assert_array_equal(a, b)


def ndi_smooth(x):
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(x, (0.8, 1.5, 1.5))


def test_scale_space_maxima_plateau_gives_one_point():
    stack = np.zeros((3, 9, 9))
    stack[1, 4, 4:6] = 1.0  # flat two-pixel plateau
    out = K.scale_space_maxima(stack, np.zeros(3), 0)
    assert len(out) == 1
    np.testing.assert_array_equal(out, K.scale_space_maxima_ref(stack, np.zeros(3), 0))


def test_prune_blobs_matches_reference():
    rng = np.random.default_rng(1)
    y, x = rng.uniform(0, 100, (2, 300))
    r = rng.uniform(2, 8, 300)
    s = rng.uniform(0, 1, 300)
    keep = K.prune_blobs(y, x, r, s, 0.4)
    np.testing.assert_array_equal(keep, K.prune_blobs_ref(y, x, r, s, 0.4))
    assert 10 < keep.sum() < 300


def test_prune_keeps_touching_pair_drops_rim_blob():
    y = np.array([50.0, 50.0, 50.0])
    x = np.array([40.0, 60.0, 49.0])  # two touching r=10 spheres and a small blob on the rim of the first
    r = np.array([10.0, 10.0, 3.0])
    keep = K.prune_blobs(y, x, r, np.array([3.0, 2.0, 1.0]), 0.4)
    assert keep.tolist() == [True, True, False]


def test_cluster_blob_replaced_by_its_touching_members():
    from latticefit.particles._crowd import split_cluster_blobs

    # a large-scale blob between two touching spheres outranks them; a single big blob with one small
    # blob inside (texture) stays
    y = np.array([50.0, 50.0, 50.0, 150.0, 152.0])
    x = np.array([50.0, 32.0, 68.0, 50.0, 55.0])
    r = np.array([35.0, 17.0, 17.0, 35.0, 12.0])
    s = np.array([10.0, 9.0, 9.0, 10.0, 6.0])
    keep0 = K.prune_blobs(y, x, r, s, 0.4)
    assert keep0.tolist() == [True, False, False, True, False]
    got = split_cluster_blobs(y, x, r, s, keep0, prune=K.prune_blobs, overlap=0.4)
    assert got.tolist() == [False, True, True, True, False]


def test_bin_image_and_paint_disks_match_reference():
    rng = np.random.default_rng(2)
    img = rng.normal(size=(37, 50)).astype(np.float32)
    np.testing.assert_allclose(
        K.bin_image(img, 3), img[:36, :48].reshape(12, 3, 16, 3).mean(axis=(1, 3)), rtol=1e-5, atol=1e-6
    )
    for dtype, f in ((np.float32, 2), (np.float64, 5), (bool, 4), (np.uint16, 17)):
        a = (rng.random((70, 53)) * 900).astype(dtype)
        np.testing.assert_array_equal(K.bin_image(a, f), K.bin_image_ref(a, f))  # the kernel's sums, to the bit
    y, x, r = np.array([5.0, 20.5]), np.array([7.0, 30.2]), np.array([3.0, 6.5])
    np.testing.assert_array_equal(K.paint_disks(30, 40, y, x, r), K.paint_disks_ref(30, 40, y, x, r))


def test_model_kernel_matches_numpy_and_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(0, 30, (2, 200))
    p = np.array([10.0, 0.1, -0.2, 0.7, -0.4, 0.3, 12.0, 14.0, 6.0, 50.0, 22.0, 18.0, 4.0, 30.0])
    s2 = 0.5**2 + 1 / 12
    v, J = K.evaluate_model(xs, ys, p, 2, 15.0, 15.0, False, s2, want_jac=True)
    np.testing.assert_allclose(v, K.sphere_model_ref(xs, ys, p, 2, 15.0, 15.0, False, s2), rtol=1e-10)
    for a in range(len(p)):
        h = 1e-5 * max(1.0, abs(p[a]))
        pp, pm = p.copy(), p.copy()
        pp[a] += h
        pm[a] -= h
        num = (
            K.evaluate_model(xs, ys, pp, 2, 15.0, 15.0, False, s2)[0]
            - K.evaluate_model(xs, ys, pm, 2, 15.0, 15.0, False, s2)[0]
        ) / (2 * h)
        # derivative tables vs the derivative of the interpolated table: equal to the table resolution
        np.testing.assert_allclose(J[:, a], num, atol=1e-2 * max(1.0, np.abs(num).max()))


@pytest.mark.parametrize("radius,sigma,tol", [(10.0, 1.0, 1e-3), (6.0, 0.5, 2e-3), (15.0, 0.5, 2e-3), (4.0, 1.5, 1e-3)])
def test_sphere_profile_matches_brute_force_pixel_integration(radius, sigma, tol):
    n = int(radius + 6)
    xx, yy = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    ref = K.sphere_profile_reference(xx.ravel(), yy.ravel(), radius, sigma, n_sub=16)
    s = math.sqrt(sigma**2 + 1 / 12) / radius
    model = radius * K.sphere_profile_table(np.hypot(xx, yy).ravel() / radius, s)
    assert np.abs(model - ref).max() < tol * ref.max()
    # total signal (volume of the sphere / pixel area) conserved
    assert abs(model.sum() - ref.sum()) < 1e-3 * ref.sum()
    assert abs(ref.sum() - 4 / 3 * np.pi * radius**3) < 2e-3 * ref.sum()


def test_sphere_profile_direct_limits():
    g = K.sphere_profile_direct([0.0, 0.6, 1.5], 0.01)
    np.testing.assert_allclose(g[:2], 2 * np.sqrt(1 - np.array([0.0, 0.6]) ** 2), rtol=1e-3)
    assert g[2] < 1e-8


def test_profile_table_cache_gives_the_built_table(tmp_path, monkeypatch):
    """The disk cache of the profile table (#15 start-up) returns what the quadrature builds; a bad file is rebuilt."""
    from latticefit.particles import _profile_kernels as P

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    rho, s = np.linspace(0.0, 4.0, 101), np.geomspace(0.006, 0.5, 5)
    built = P._build_table(rho, s, P._GL_X, P._GL_W)
    first = P.table_values(rho, s)  # builds and writes
    path = P._cache_path(rho, s)
    assert path.parent == tmp_path and path.is_file()
    np.testing.assert_array_equal(first, built)
    np.testing.assert_array_equal(P.table_values(rho, s), built)  # read back
    path.write_bytes(b"not a numpy file")
    np.testing.assert_array_equal(P.table_values(rho, s), built)
    assert P._cache_path(rho, s[:4]) != path  # other grids, other file
    t = P.ProfileTable(cache=False)
    np.testing.assert_array_equal(t.g, P.profile_table().g)


# ------------------------------------------------------------------ measurements
def test_region_measures_match_regionprops():
    from skimage.draw import ellipse
    from skimage.measure import regionprops_table

    for ang in (0.0, 0.4, -1.1):
        m = np.zeros((80, 90), bool)
        rr, cc = ellipse(40, 45, 25, 12, rotation=ang)
        m[rr, cc] = True
        ref = regionprops_table(
            m.astype(int),
            properties=(
                "area",
                "axis_major_length",
                "axis_minor_length",
                "orientation",
                "perimeter",
                "feret_diameter_max",
            ),
        )
        r = region_measures(m)
        assert r["area"] == ref["area"][0]
        assert r["axis_major_length"] == pytest.approx(ref["axis_major_length"][0], rel=1e-9)
        assert r["axis_minor_length"] == pytest.approx(ref["axis_minor_length"][0], rel=1e-9)
        assert r["orientation"] == pytest.approx(ref["orientation"][0], abs=1e-9)
        assert r["perimeter"] == pytest.approx(ref["perimeter"][0], rel=0.08)
        assert r["feret_max"] == pytest.approx(ref["feret_diameter_max"][0], abs=1.5)
        assert 23.0 <= r["feret_min"] <= 26.0
        assert 0.9 < r["solidity"] <= 1.0


def test_region_measure_kernel_matches_numpy_reference(field):
    from latticefit.particles._pipeline import _measure_regions, _measure_regions_ref

    mg, truth, res = field
    n = int(res.labels.max())
    a = _measure_regions(res.labels, mg.data, n + 2)  # two absent labels give NaN rows
    b = _measure_regions_ref(res.labels, mg.data, n + 2)
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.isnan(a.iloc[-1]["area"])


# ------------------------------------------------------------------ background / noise
def test_background_on_gradient_with_particles():
    # tilted, wavy background (a thickness variation) under 30 bright spheres
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:384, :384].astype(float)
    clean = 100.0 + 0.08 * xx + 8.0 * np.cos(2 * np.pi * yy / 1500.0)
    img = clean.copy()
    pts = rng.uniform(20, 364, (30, 2))
    for y, x in pts:
        img += 20.0 * K.sphere_profile_table(np.hypot(xx - x, yy - y).ravel() / 25.0, 0.05).reshape(img.shape)
    img = rng.poisson(img).astype(np.float32)
    bg = estimate_background(img, 100)
    far = np.ones(img.shape, bool)
    for y, x in pts:
        far &= (xx - x) ** 2 + (yy - y) ** 2 > 35.0**2
    err = (bg - clean)[far]
    # particle wings below the 2-sigma mask level leave a small positive bias (the fits use their own plane)
    assert abs(err.mean()) < 0.03 * clean.mean() and np.abs(err).max() < 0.08 * clean.mean()
    # the gradient is followed up to the borders
    slope = np.polyfit(xx[far], err, 1)[0]
    assert abs(slope) < 0.1 * 0.08


def test_noise_model_detects_scaled_counts():
    mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.1, n_particles=5, n_touching_pairs=0, dose=50, seed=1)
    nm = estimate_noise_model(mg.data)
    assert nm.counts and nm.gain == pytest.approx(2.0)  # background 100 / dose 50
    g = estimate_noise_model(np.random.default_rng(0).normal(100, 3, (256, 256)).astype(np.float32))
    assert not g.counts and g.sigma == pytest.approx(3.0, rel=0.1)


# ------------------------------------------------------------------ accuracy on synth
def test_isolated_dot_fits_are_accurate_and_errors_honest():
    zs = []
    for seed in range(3):
        mg, truth = synth.haadf_dots(
            (512, 512),
            pixel_size_nm=0.1,
            diameter_nm=5.0,
            rsd=0.1,
            n_particles=8,
            n_touching_pairs=0,
            allow_edge=False,
            dose=100,
            seed=seed,
        )
        res = find_particles(mg, diameter_range_nm=(2, 10))
        tp, fp, fn, pairs = match(res, truth)
        assert fp == 0 and fn == 0
        for ti, di in pairs.items():
            row = res.table.iloc[di]
            true_d = truth.particles.diameter_nm.iloc[ti]
            assert row.fit_ok
            assert abs(row.diameter_nm - true_d) < 0.03 * true_d
            assert abs(row.x_px - truth.particles.x_px.iloc[ti]) < 0.5
            zs.append((row.diameter_nm - true_d) / row.diameter_err_nm)
    zs = np.array(zs)
    assert np.mean(np.abs(zs) < 3) > 0.9
    assert 0.5 < np.std(zs) < 1.6


def test_detection_f1_bias_and_rsd_on_field(field):
    mg, truth, res = field
    tp, fp, fn, pairs = match(res, truth)
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert f1 >= 0.97
    t = truth.particles
    inner = [ti for ti in pairs if not t.edge.iloc[ti]]
    d_fit = res.table.diameter_nm.to_numpy()[[pairs[ti] for ti in inner]]
    d_true = t.diameter_nm.to_numpy()[inner]
    assert abs(d_fit.mean() / d_true.mean() - 1) < 0.01
    s = res.summary
    true_rsd = 100 * d_true.std(ddof=1) / d_true.mean()
    assert abs(s["rsd_percent"] - true_rsd) < 1.0
    assert s["rsd_ci95_percent"][0] < s["rsd_percent"] < s["rsd_ci95_percent"][1]
    # the mask (outline at 20 % of the local peak) gives an ECD within a few % of the model-fit diameter
    assert abs(s["ecd_mean_nm"] / s["mean_nm"] - 1) < 0.05


def test_touching_pairs_are_split(field):
    mg, truth, res = field
    t = truth.particles
    tp, fp, fn, pairs = match(res, truth)
    touching = np.nonzero(t.touching.to_numpy())[0]
    assert len(touching) == 10
    assert all(ti in pairs for ti in touching)
    labels = {int(res.table.label.iloc[pairs[ti]]) for ti in touching}
    assert len(labels) == len(touching)  # each particle of a pair has its own label
    for ti in touching:
        lab = res.table.label.iloc[pairs[ti]]
        y, x = int(round(t.y_px.iloc[ti])), int(round(t.x_px.iloc[ti]))
        assert res.labels[y, x] == lab


def test_edge_flags(field):
    mg, truth, res = field
    t = truth.particles
    tp, fp, fn, pairs = match(res, truth)
    assert t.edge.sum() > 0
    for ti, di in pairs.items():
        assert bool(res.table.edge.iloc[di]) == bool(t.edge.iloc[ti])
    assert res.summary["n_edge"] == int(res.table.edge.sum())
    assert res.summary["n"] == int(((~res.table.edge) & res.table.fit_ok).sum())


def test_miles_lantuejoul_weights(field):
    mg, truth, res = field
    res2 = find_particles(mg, diameter_range_nm=(3, 12), edge_correction="miles-lantuejoul")
    w = res2.table.ml_weight.to_numpy()
    inner = ~res2.table.edge.to_numpy()
    assert np.all(w[inner] >= 1.0) and np.all(np.isnan(w[~inner]))
    assert res2.summary["weighted"] and abs(res2.summary["mean_nm"] - res.summary["mean_nm"]) < 0.1


def test_dtype_robust_uint16_vs_float32():
    mg, truth = synth.haadf_dots(
        (384, 384),
        pixel_size_nm=0.1,
        diameter_nm=6.0,
        n_particles=10,
        n_touching_pairs=1,
        background=50.0,
        dose=50.0,
        seed=5,
    )
    counts = mg.data.astype(np.uint16)
    assert np.array_equal(counts.astype(np.float32), mg.data)
    a = find_particles(counts, pixel_size=0.1, diameter_range_nm=(2, 12))
    b = find_particles(mg.data.astype(np.float32), pixel_size=0.1, diameter_range_nm=(2, 12))
    assert len(a.table) == len(b.table) > 5
    np.testing.assert_allclose(a.table.diameter_nm, b.table.diameter_nm, rtol=1e-9)
    # float scaled data (no counts): same particles, same sizes within the errors
    c = find_particles(mg.data / 1000.0, pixel_size=0.1, diameter_range_nm=(2, 12))
    assert len(c.table) == len(a.table)
    np.testing.assert_allclose(c.table.diameter_nm, a.table.diameter_nm, atol=3 * a.table.diameter_err_nm.max())


# ------------------------------------------------------------------ bad input
def test_blank_and_noise_give_empty_result():
    for img in (np.full((256, 256), 100.0), np.random.default_rng(0).poisson(100, (256, 256)).astype(np.float32)):
        with pytest.warns(LatticefitWarning, match="no particles"):
            res = find_particles(img, pixel_size=0.1, diameter_range_nm=(2, 8))
        assert len(res.table) == 0 and res.summary["n"] == 0
        assert res.summary["mean_nm"] is None and res.summary["rsd_percent"] is None
        assert res.labels.shape == img.shape and res.labels.max() == 0
        d = json.loads(json.dumps(_jsonable(res)))
        assert d["particles"] == [] and d["summary"]["n"] == 0
        from latticefit.particles import summary_lines

        assert "0 particles detected" in summary_lines(res)[0]


def _jsonable(res):
    from latticefit.serialize import to_jsonable

    return to_jsonable(res.to_dict())


def test_unresolvable_range_is_an_error():
    img = np.zeros((128, 128))
    with pytest.raises(AnalysisError, match="3 px"):
        find_particles(img, pixel_size=1.0, diameter_range_nm=(2, 10))
    with pytest.raises(AnalysisError, match="half the image"):
        find_particles(img, pixel_size=0.1, diameter_range_nm=(9, 20))


def test_range_parsing_and_default_range():
    from latticefit.particles._pipeline import _parse_range, default_diameter_range_nm

    assert _parse_range("2-15nm", None) == (2.0, 15.0)
    assert _parse_range("20-150A", None) == pytest.approx((2.0, 15.0))
    with pytest.raises(AnalysisError, match="lower bound"):  # reversed ranges are a user error
        _parse_range((15, 2), None)
    lo, hi = default_diameter_range_nm((512, 1024), 0.1)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(12.8)


# ------------------------------------------------------------------ result object, plotting, CLI
def test_result_serialises_and_plots(field, tmp_path):
    import matplotlib.pyplot as plt

    mg, truth, res = field
    assert isinstance(res, ParticleResult)
    d = _jsonable(res)
    assert set(JSON_PARTICLE_KEYS) <= set(d["particles"][0])
    res.to_csv(tmp_path / "p.csv")
    import pandas as pd

    back = pd.read_csv(tmp_path / "p.csv")
    assert len(back) == len(res.table) and "diameter_err_nm" in back
    fig, ax = plt.subplots()
    plot_overlay(res, mg, ax=ax)
    fig.savefig(tmp_path / "o.png")
    plt.close(fig)
    assert (tmp_path / "o.png").stat().st_size > 5000


def test_cli_json_contract_csv_overlay(tmp_path, capsys):
    import tifffile

    from latticefit.cli import main

    mg, truth = synth.haadf_dots(
        (320, 320), pixel_size_nm=0.1, diameter_nm=5.0, n_particles=8, n_touching_pairs=1, seed=2
    )
    path = tmp_path / "dots.tif"
    tifffile.imwrite(path, mg.data)
    rc = main(
        [
            "particles",
            str(path),
            "--pixel-size",
            "0.1nm",
            "--diameter-range",
            "2-10nm",
            "--json",
            "-",
            "--csv",
            str(tmp_path / "p.csv"),
            "--overlay",
            str(tmp_path / "o.png"),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"].endswith("dots.tif") and out["pixel_size_nm"] == [0.1, 0.1]
    p = out["particles"][0]
    for key, typ in (
        ("x_px", float),
        ("y_px", float),
        ("diameter_nm", float),
        ("diameter_err_nm", float),
        ("ecd_nm", float),
        ("feret_max_nm", float),
        ("feret_min_nm", float),
        ("edge", bool),
    ):
        assert isinstance(p[key], typ), key
    s = out["summary"]
    for key in ("n", "n_edge"):
        assert isinstance(s[key], int)
    for key in ("mean_nm", "median_nm", "std_nm", "rsd_percent", "rsd_corrected_percent"):
        assert isinstance(s[key], float)
    assert len(s["rsd_ci95_percent"]) == 2
    assert (tmp_path / "p.csv").exists() and (tmp_path / "o.png").stat().st_size > 5000
    # human summary by default
    rc = main(["particles", str(path), "--pixel-size", "0.1", "--diameter-range", "2-10nm"])
    assert rc == 0 and "RSD" in capsys.readouterr().out
    # unresolvable range: one error line, exit 2
    rc = main(["particles", str(path), "--pixel-size", "1nm", "--diameter-range", "1-10nm"])
    err = capsys.readouterr().err
    assert rc == 2 and "3 px" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ real files
@pytest.mark.realdata
def test_real_jeol_dm4(realfile, realdata):

    from latticefit import io

    res = find_particles(io.load(realfile("particles/JEOL HAADF Image.dm4")))
    assert 14 <= len(res.table) <= 24
    assert 7.0 < res.summary["median_nm"] < 14.0
    assert res.table.fit_ok.mean() > 0.8


@pytest.mark.realdata
def test_real_emi_touching_pair_split(realfile, realdata):

    from latticefit import io

    res = find_particles(io.load(realfile("particles/03_Scanning Preview.emi"), frame="mean"))
    t = res.table
    assert 15 <= len(t) <= 28
    # the bright dumbbell in the middle (x 50-80, y 25-75 px) is split into two particles
    inside = t[(t.x_px > 50) & (t.x_px < 80) & (t.y_px > 25) & (t.y_px < 75)]
    assert len(inside) == 2 and inside.label.nunique() == 2
    assert 4.0 < res.summary["median_nm"] < 9.0


@pytest.mark.realdata
def test_real_velox_emd_bright_dots(realfile, realdata):

    from latticefit import io

    # low-mag Velox view (5.3 nm/px) with very uneven contrast: the user gives the range of the dots
    res = find_particles(io.load(realfile("particles/EMDReader_Image_FEI.emd")), diameter_range_nm="20-120nm")
    t = res.table
    # every bright (saturating) dot is found, isolated or sitting on a larger, fainter blob, and sized 35-65 nm
    bright = [(28, 90), (255, 122), (257, 261), (502, 155), (486, 205), (15, 275), (45, 340), (39, 346), (52, 332)]
    for x, y in bright:
        dist = np.hypot(t.x_px - x, t.y_px - y)
        row = t.iloc[int(np.argmin(dist))]
        assert dist.min() < 5 and row.fit_ok and not row.edge
        assert 35 < row.diameter_nm < 65 and row.peak_height > 10000
    # the fainter dot at (445, 462) too (about 95 nm)
    dist = np.hypot(t.x_px - 445, t.y_px - 462)
    assert dist.min() < 5 and 80 < t.diameter_nm.iloc[int(np.argmin(dist))] < 110


def test_fit_recovers_sphere_on_curved_background():
    # the patch background is a quadratic surface: a curved background (a real support, or the
    # low-frequency synth background over a patch a few diameters wide) does not bias the radius
    t = K.profile_table()
    yy, xx = np.mgrid[:40, :44].astype(float)
    xs, ys = xx.ravel(), yy.ravel()
    xc, yc = 21.5, 19.5
    s2 = 0.4**2 + 1 / 12
    truth = np.array([100.0, 0.3, -0.2, 6.0, -3.0, 4.0, 22.3, 18.8, 8.7, 60.0])
    data, _ = K.evaluate_model(xs, ys, truth, 1, xc, yc, False, s2)
    p0 = truth.copy()
    p0[1:6] = 0.0
    p0[6:] = [22.0, 19.5, 8.0, 50.0]
    one = np.array([0, len(xs)], np.int64)
    out, F, msq, chi2, nit, conv = K.fit_groups(
        xs,
        ys,
        data,
        np.ones(len(xs)),
        one,
        p0,
        np.array([0, len(p0)], np.int64),
        np.array([1], np.int64),
        np.array([xc]),
        np.array([yc]),
        False,
        np.array([s2]),
        t.packed,
        t.params,
        100,
        0.3,
        1e4,
    )
    assert conv[0]
    np.testing.assert_allclose(out[6:], truth[6:], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[:6], truth[:6], rtol=1e-3, atol=1e-3)


def test_particle_cut_by_corner_is_detected_and_outlined():
    # a dot cut by the bottom-right corner: the reflect-padded LoG sees it merged with its mirror
    # images as one larger blob centred in the corner, whose sphere fit fails; it is still a particle
    # (edge, excluded from the statistics) and gets a region for the overlay
    mg = synth.haadf_particles_image(
        (512, 512), [495.0, 200.0], [483.0, 250.0], [4.4, 4.0], pixel_size_nm=0.1, dose=50.0, seed=2
    )
    res = find_particles(mg, diameter_range_nm=(3, 12))
    t = res.table
    near = t[np.hypot(t.x_px - 495, t.y_px - 483) < 15]
    assert len(near) == 1 and bool(near.edge.iloc[0])
    assert (res.labels == near.label.iloc[0]).sum() > 0.5 * np.pi * 22**2
    assert res.summary["n"] == 1 and abs(res.summary["mean_nm"] - 4.0) < 0.1


# --- input validation (acceptance-test regressions) -------------------------------------------


def test_default_range_never_sizes_atomic_columns():
    from latticefit.errors import AnalysisError
    from latticefit.particles import default_diameter_range_nm

    assert default_diameter_range_nm((512, 512), 0.1) == pytest.approx((1.0, 12.8))
    with pytest.raises(AnalysisError, match="too small for the default diameter range"):
        default_diameter_range_nm((224, 1312), 0.015)  # an atomic-resolution HAADF: 3.4 nm field


@pytest.mark.parametrize("bad", ["12-2nm", "3-3nm", (5, 2)])
def test_reversed_or_empty_diameter_range_is_an_error(bad):
    from latticefit.errors import AnalysisError
    from latticefit.particles._pipeline import _parse_range

    with pytest.raises(AnalysisError, match="lower bound"):
        _parse_range(bad, "f.tif")


def test_comma_range_is_accepted():
    from latticefit.particles._pipeline import _parse_range

    assert _parse_range("2,12", None) == (2.0, 12.0)
    assert _parse_range("2-12nm", None) == (2.0, 12.0)


@pytest.mark.parametrize("kw", [{"probe_sigma_nm": -1.0}, {"probe_sigma_nm": 0.0}, {"false_alarms": -1.0}])
def test_non_positive_parameters_are_errors(kw):
    from latticefit.errors import ParameterError
    from latticefit.particles import find_particles

    with pytest.raises(ParameterError, match="must be a number > 0"):
        find_particles(np.ones((64, 64), np.float32), pixel_size=0.1, diameter_range_nm=(1, 3), **kw)


def test_label_areas_kernel_matches_reference():
    from latticefit.particles._region_kernels import label_areas, label_areas_ref

    rng = np.random.default_rng(3)
    lab = rng.integers(-1, 9, size=(37, 53)).astype(np.int32)
    np.testing.assert_array_equal(label_areas(lab, 7), label_areas_ref(lab, 7))
    assert label_areas(np.zeros((4, 4), np.int32), 0).size == 0


def test_a_group_that_did_not_converge_is_refitted_without_its_runaway_member():
    # one member of a joint fit that runs off (on the real Velox view a faint halo detection diverged to 1e7
    # px) stops its group from converging, and every member's fit fails with it: the group is fitted again
    # with the members whose own checks failed each in a group of its own
    from dataclasses import replace

    from latticefit.particles import _groupfit as G
    from latticefit.particles._hidden import render_spheres
    from latticefit.particles._noise import NoiseModel

    rng = np.random.default_rng(1)
    x, y, r = np.array([30.0, 43.0, 52.0]), np.array([30.0, 31.0, 38.0]), np.array([6.0, 6.0, 3.0])
    img = rng.poisson(20 + render_spheres((64, 72), x[:2], y[:2], r[:2], np.array([200.0, 210.0]), np.full(2, 0.8)))
    noise = NoiseModel(sigma=math.sqrt(20.0), counts=True, gain=1.0, offset=0.0, quantum=1.0)
    group = np.zeros(3, int)
    fit, sol, loose = G._joint_fit(img.astype(float), x, y, r, group, [np.arange(3)], noise, 0.8, None)
    assert fit.ok.tolist() == [True, True, False]  # the third seed sits on the background: its own checks fail
    assert loose.tolist() == [True, True, False]
    # the same fit as if the solver had not converged (what the runaway member does to its group)
    stuck = replace(sol, conv=np.zeros(1, bool))
    failed = replace(fit, ok=np.zeros(3, bool))
    out = G._salvage_groups(img.astype(float), x, y, r, failed, [np.arange(3)], stuck, loose, noise, None)
    assert out.ok.tolist() == [True, True, False]
    assert out.group[0] == out.group[1] != out.group[2]  # the two dots stay one joint fit, the seed alone
    np.testing.assert_allclose(out.r[:2], [6.0, 6.0], atol=0.15)
    # nothing to salvage: every member failed its own checks, or the group converged
    assert not G._salvage_groups(
        img.astype(float), x, y, r, failed, [np.arange(3)], stuck, np.zeros(3, bool), noise, None
    ).ok.any()
    assert G._salvage_groups(img.astype(float), x, y, r, fit, [np.arange(3)], sol, loose, noise, None) is fit


def test_prepare_patches_kernel_matches_its_numpy_reference():
    # the numba kernel that cuts, weights and starts every group's patch against the numpy reference, on
    # groups of one and three dots, a neighbour reaching into a window, invalid pixels, a dot on the image
    # border and a dark centre pixel (the start height then comes from the disc's central quarter)
    from latticefit.particles import _fit as F
    from latticefit.particles._hidden import render_spheres

    rng = np.random.default_rng(3)
    x = np.array([30.0, 47.0, 58.0, 52.5, 90.0, 3.0, 110.0])
    y = np.array([22.0, 40.0, 41.0, 51.0, 30.0, 60.0, 70.0])
    r = np.array([6.0, 5.0, 5.5, 5.0, 8.0, 4.0, 6.5])
    h = np.array([150.0, 120.0, 130.0, 110.0, 200.0, 90.0, 100.0])
    img = rng.poisson(30 + render_spheres((80, 128), x, y, r, h, np.full(7, 0.8))).astype(np.float32)
    img[70, 110] = 0.0  # a dark centre pixel
    invalid = np.zeros(img.shape, bool)
    invalid[18:21, 24:27] = True
    group = np.array([0, 1, 1, 1, 2, 3, 4])
    members = [np.flatnonzero(group == g) for g in range(5)]
    b = np.array([1, 1, 2, 1, 1])
    for inv in (None, invalid):
        a = F._prepare_groups(img, x, y, r, group, members, 0.8, b, 0.0, inv)
        ref = F._prepare_groups_ref(img, x, y, r, group, members, 0.8, b, 0.0, inv)
        assert a["origin"] == ref["origin"]
        for key in ("xs", "ys", "data", "wts", "pix_off", "params", "par_off", "npart", "xc", "yc"):
            np.testing.assert_allclose(np.asarray(a[key], float), np.asarray(ref[key], float), rtol=1e-12, err_msg=key)
        assert (a["wts"] == 0).any()  # neighbours and invalid blocks are masked


def test_a_raft_is_fitted_in_compact_groups_of_touching_neighbours():
    """A 30 x 30 raft of touching 5 px dots is one touching component, fitted in groups of at most 8.

    Cut in raster order (the former rule), a group was eight dots along one band of rows, up to 151 px wide
    here (29 spacings); cut at medians, each group spans at most three dot spacings.
    """
    from latticefit.particles._grouping import union_groups

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:30, 0:30] * 5.2
    x, y = xx.ravel() + rng.normal(0, 0.3, 900), yy.ravel() + rng.normal(0, 0.3, 900)
    group = union_groups(x, y, np.full(900, 2.5), 1.15)
    sizes = np.bincount(group)
    assert sizes.max() <= 8 and sizes.min() >= 4
    spans = [max(np.ptp(x[group == g]), np.ptp(y[group == g])) for g in range(len(sizes))]
    assert max(spans) < 3.5 * 5.2, max(spans)  # raster order: 151 px
