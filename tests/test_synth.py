"""Tests of latticefit.synth: the ground truth must describe the image exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from latticefit.errors import InvalidDataError, LatticefitError
from latticefit.serialize import dumps
from latticefit.synth import _core as synth

# ----------------------------------------------------------------------------- references


def direct_gaussian_sum(shape, truth, *, reach=12):
    """Pure-numpy reference: sum of Gaussian columns over lattice points near the image."""
    h, w = shape
    py, px = truth.pixel_size_nm
    ox, oy = truth.origin_px
    yy, xx = np.mgrid[0:h, 0:w]
    X, Y = (xx - ox) * px, (yy - oy) * py
    A = np.array([truth.a1_nm, truth.a2_nm]).T
    corners = np.array([[X.min(), Y.min()], [X.max(), Y.min()], [X.min(), Y.max()], [X.max(), Y.max()]])
    frac = np.linalg.solve(A, corners.T)
    lo, hi = np.floor(frac.min(axis=1)) - reach, np.ceil(frac.max(axis=1)) + reach
    s2 = 2 * truth.column_sigma_nm**2
    out = np.zeros(shape)
    for i in range(int(lo[0]), int(hi[0]) + 1):
        for j in range(int(lo[1]), int(hi[1]) + 1):
            for u, v, wgt in truth.basis:
                p = (i + u) * truth.a1_nm + (j + v) * truth.a2_nm
                out += wgt * np.exp(-((X - p[0]) ** 2 + (Y - p[1]) ** 2) / s2)
    return out


def brute_sphere_means(shape, xc, yc, d_nm, px, n_sub=48):
    """Pure-numpy reference: pixel-area mean of the chord by dense supersampling in both directions."""
    h, w = shape
    sub = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    ys = (np.arange(h)[:, None] + sub[None, :]).ravel()
    xs = (np.arange(w)[:, None] + sub[None, :]).ravel()
    r2 = ((xs[None, :] - xc) ** 2 + (ys[:, None] - yc) ** 2) * px**2
    t = 2 * np.sqrt(np.maximum((d_nm / 2) ** 2 - r2, 0))
    return t.reshape(h, n_sub, w, n_sub).mean(axis=(1, 3))


# ----------------------------------------------------------------------------- lattice images


def test_lattice_matches_direct_gaussian_sum():
    mg, t = synth.perovskite_111(
        (72, 60), pixel_size_nm=0.03, rotation_deg=17.0, offset_px=(10.3, 20.7), contrast=2.0, background=5.0
    )
    s = t._series
    f = (mg.data.astype(np.float64) - 5.0) / 2.0 * s.p2v + s.c0
    ref = direct_gaussian_sum(mg.shape, t)
    assert np.abs(f - ref).max() < 2e-6 * ref.max()


def test_lattice_calibration_and_metadata():
    mg, t = synth.lattice_image((64, 80), pixel_size_nm=(0.021, 0.02))
    assert mg.shape == (64, 80) and mg.data.dtype == np.float32
    assert mg.pixel_size_nm == (0.021, 0.02) == t.pixel_size_nm
    assert mg.mode == "HRTEM" and mg.beam_energy_kv == 300.0 and mg.source == "synth:lattice_image"
    assert synth.perovskite_111((32, 32))[0].source == "synth:perovskite_111"


def test_contrast_background_and_noise_definitions():
    # noise-free: mean = background, peak-to-valley = contrast (fine sampling, commensurate window)
    mg, t = synth.cubic_001((400, 400), a_nm=0.4, pixel_size_nm=0.004, contrast=3.0, background=10.0)
    assert abs(mg.data.mean() - 10.0) < 1e-4
    assert abs(np.ptp(mg.data) - 3.0) < 1e-3
    clean = mg.data.astype(np.float64)
    noisy, _ = synth.cubic_001(
        (400, 400), a_nm=0.4, pixel_size_nm=0.004, contrast=3.0, background=10.0, noise_sigma=0.5, seed=3
    )
    assert abs(np.std(noisy.data - clean) - 0.5) < 0.01
    # Poisson: background == dose gives integer counts with variance = mean
    pm, _ = synth.cubic_001(
        (400, 400), a_nm=0.4, pixel_size_nm=0.004, contrast=30.0, background=100.0, dose=100.0, seed=3
    )
    assert np.array_equal(pm.data, np.round(pm.data))
    expected = clean * 10.0  # same pattern scaled to background 100, contrast 30
    resid = (pm.data - expected) / np.sqrt(expected)
    assert abs(resid.mean()) < 0.01 and abs(resid.std() - 1.0) < 0.01


def test_dark_columns_with_negative_contrast():
    bright, _ = synth.cubic_001((64, 64), contrast=1.0, background=2.0)
    dark, _ = synth.cubic_001((64, 64), contrast=-1.0, background=2.0)
    np.testing.assert_allclose(bright.data - 2.0, -(dark.data - 2.0), atol=1e-6)
    assert dark.data[0, 0] == dark.data.min()  # the origin column is the darkest point


def test_determinism():
    a, _ = synth.perovskite_111((128, 128), noise_sigma=0.3, seed=7)
    b, _ = synth.perovskite_111((128, 128), noise_sigma=0.3, seed=7)
    c, _ = synth.perovskite_111((128, 128), noise_sigma=0.3, seed=8)
    assert np.array_equal(a.data, b.data) and not np.array_equal(a.data, c.data)
    p, tp = synth.haadf_dots((256, 256), diameter_nm=4.0, n_particles=15, n_touching_pairs=3, seed=5)
    q, tq = synth.haadf_dots((256, 256), diameter_nm=4.0, n_particles=15, n_touching_pairs=3, seed=5)
    r, tr = synth.haadf_dots((256, 256), diameter_nm=4.0, n_particles=15, n_touching_pairs=3, seed=6)
    assert np.array_equal(p.data, q.data) and tp.particles.equals(tq.particles)
    assert not np.array_equal(p.data, r.data)


@pytest.mark.parametrize("rotation_deg", [0.0, 23.0, -71.5])
def test_fft_peak_sits_at_truth_g(rotation_deg):
    n, ps = 256, 0.02
    mg, t = synth.lattice_image(
        (n, n), pixel_size_nm=ps, a_nm=0.43, b_nm=0.37, gamma_deg=80.0, rotation_deg=rotation_deg, offset_px=(3.2, 7.9)
    )
    win = np.outer(np.hanning(n), np.hanning(n))
    F = np.abs(np.fft.fft2((mg.data - mg.data.mean()) * win))
    freqs = np.fft.fftfreq(n, d=ps)
    for g in t.g_inv_nm:
        # bin of truth g (numpy: axis 0 is y, axis 1 is x)
        ix, iy = int(round(g[0] * n * ps)) % n, int(round(g[1] * n * ps)) % n
        sl = np.ix_([(iy + d) % n for d in range(-3, 4)], [(ix + d) % n for d in range(-3, 4)])
        sub = F[sl]
        jy, jx = np.unravel_index(np.argmax(sub), sub.shape)
        fx, fy = freqs[(ix + jx - 3) % n], freqs[(iy + jy - 3) % n]
        assert abs(fx - g[0]) <= 1.0 / (n * ps) and abs(fy - g[1]) <= 1.0 / (n * ps)


def test_rotation_convention_a1_from_x_towards_y():
    _, t = synth.lattice_image((32, 32), a_nm=0.4, rotation_deg=30.0)
    np.testing.assert_allclose(t.a1_nm, [0.4 * math.cos(math.pi / 6), 0.4 * math.sin(math.pi / 6)])
    assert np.dot(t.a1_nm, t.b1_inv_nm) == pytest.approx(1.0) and abs(np.dot(t.a1_nm, t.b2_inv_nm)) < 1e-12
    # moving by a1 from the origin column lands on a column of the same value
    mg, t = synth.lattice_image((200, 200), pixel_size_nm=0.01, a_nm=0.5, rotation_deg=30.0, offset_px=(50, 40))
    y1 = 40 + t.a1_nm[1] / 0.01
    assert y1 > 40  # +y is down: a1 at +30 degrees points down-right
    assert abs(mg.data[40, 50] - mg.data.max()) < 1e-5


def test_perovskite_111_six_spots_at_60_degrees():
    _, t = synth.perovskite_111((64, 64), rotation_deg=10.0)
    np.testing.assert_allclose(t.d_angstrom, 5.933 / math.sqrt(2), rtol=1e-12)
    assert len(t.g_inv_nm) == 3 and t.angle_deg == pytest.approx(60.0)
    np.testing.assert_allclose(np.diff(t.azimuth_deg), [60.0, 60.0], atol=1e-9)
    assert sorted(t.labels) == sorted(["(1 0 -1)", "(0 1 -1)", "(-1 1 0)"])
    refl = t.reflections(1.0 / 0.3)
    first = refl[np.isclose(refl.d_angstrom, 4.19526, atol=1e-4)]
    assert len(first) == 6
    az = np.sort(first.azimuth_deg.to_numpy())
    np.testing.assert_allclose(np.diff(az), 60.0, atol=1e-9)
    assert refl.d_angstrom.max() == pytest.approx(4.195264, abs=1e-6)
    # every listed label is a zone-[111] reflection: h + k + l = 0
    for lab in refl.label:
        assert sum(int(v) for v in lab.strip("()").split()) == 0


def test_rocksalt_111_has_no_110_spot():
    _, t = synth.rocksalt_111((64, 64))
    refl = t.reflections(1.0 / 0.15)
    assert not np.any((refl.d_angstrom > 3.0) & (refl.d_angstrom < 5.0))
    np.testing.assert_allclose(t.d_angstrom, 5.936 / (2 * math.sqrt(2)), rtol=1e-12)
    assert refl.d_angstrom.max() == pytest.approx(2.0987, abs=1e-4)
    for lab in refl.label:  # Fm-3m: h, k, l all even in this zone
        assert all(int(v) % 2 == 0 for v in lab.strip("()").split())


def test_cubic_001_100_and_110():
    _, t = synth.cubic_001((64, 64), a_nm=0.3905)
    np.testing.assert_allclose(t.d_angstrom, 3.905)
    assert t.angle_deg == pytest.approx(90.0) and t.labels == ["(1 0 0)", "(0 1 0)"]
    r = t.reflections(1 / 0.25, half=True)
    assert r.label.tolist() == ["(1 0 0)", "(0 1 0)", "(1 1 0)", "(-1 1 0)"]
    np.testing.assert_allclose(r.d_angstrom[2:], 3.905 / math.sqrt(2))
    assert r.amplitude.iloc[:2].min() > r.amplitude.iloc[2:].max()


def test_first_order_of_rectangular_and_oblique_nets():
    _, t = synth.lattice_image((32, 32), a_nm=0.4, b_nm=0.55)
    assert sorted(t.d_angstrom.tolist()) == pytest.approx([4.0, 5.5])
    _, t = synth.lattice_image((32, 32), a_nm=0.4, b_nm=0.4, gamma_deg=60.0)  # hexagonal, 60 degree setting
    assert len(t.g_inv_nm) == 3 and t.angle_deg == pytest.approx(60.0)
    np.testing.assert_allclose(t.d_angstrom, 4.0 * math.sqrt(3) / 2)


def test_basis_extinction_moves_first_order():
    # two identical columns at (0,0) and (1/2,1/2): a centred square net, {10} and {01} vanish
    _, t = synth.lattice_image((32, 32), a_nm=0.4, basis=((0, 0, 1.0), (0.5, 0.5, 1.0)))
    np.testing.assert_allclose(t.d_angstrom, 4.0 / math.sqrt(2))
    assert sorted(t.hk) == [(-1, 1), (1, 1)]


def test_reflection_amplitudes_match_image_fourier_coefficients():
    n, ps = 200, 0.01
    mg, t = synth.cubic_001((n, n), a_nm=0.4, pixel_size_nm=ps, contrast=2.0, offset_px=(0, 0))  # 5 cells
    F = np.fft.fft2(mg.data.astype(np.float64)) / n**2
    for _, r in t.reflections(6.0, half=True).iterrows():
        ix, iy = int(round(r.gx_inv_nm * n * ps)) % n, int(round(r.gy_inv_nm * n * ps)) % n
        assert 2 * abs(F[iy, ix]) == pytest.approx(r.amplitude, rel=1e-5)


def test_inclusion_lattice_and_truth():
    kw = dict(pixel_size_nm=0.02, a_nm=0.4, column_sigma_nm=0.05, rotation_deg=5.0, offset_px=(1.3, 2.1))
    inc = {"x_px": 100.4, "y_px": 90.2, "radius_nm": 1.0, "mismatch": 0.01}
    mg, t = synth.lattice_image((200, 200), inclusions=[inc], **kw)
    plain, _ = synth.lattice_image((200, 200), **kw)
    ti = t.inclusions[0]
    np.testing.assert_allclose(ti["d_angstrom"], np.asarray(t.d_angstrom) * 1.01, rtol=1e-12)
    np.testing.assert_allclose(ti["g_inv_nm"], np.asarray(t.g_inv_nm) / 1.01, rtol=1e-12)
    yy, xx = np.mgrid[0:200, 0:200]
    r = np.hypot(xx - 100.4, yy - 90.2) * 0.02
    assert np.array_equal(mg.data[r > 1.0], plain.data[r > 1.0])
    # inside: the scaled net drawn from the inclusion origin
    scaled, _ = synth.lattice_image((200, 200), **{**kw, "a_nm": 0.404, "offset_px": tuple(ti["origin_px"])})
    np.testing.assert_allclose(mg.data[r <= 1.0], scaled.data[r <= 1.0], atol=2e-6)
    # coherent at the centre: the inclusion origin is a matrix lattice point
    d = (np.array(ti["origin_px"]) - np.array([1.3, 2.1])) * 0.02
    frac = np.linalg.solve(np.array([t.a1_nm, t.a2_nm]).T, d)
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-9)


def test_inclusion_options_and_errors():
    mg, t = synth.lattice_image(
        (100, 100),
        inclusions=[
            {
                "x_px": 50,
                "y_px": 50,
                "radius_nm": 0.5,
                "mismatch": -0.02,
                "rotation_deg": 30.0,
                "contrast": 2.0,
                "edge_nm": 0.1,
            }
        ],
    )
    assert t.inclusions[0]["rotation_deg"] == 30.0 and t.inclusions[0]["mismatch"] == -0.02
    with pytest.raises(InvalidDataError):
        synth.lattice_image((32, 32), inclusions=[{"x_px": 5, "y_px": 5}])


def test_lattice_bad_input_is_one_line_error():
    for kw in (
        dict(a_nm=-1),
        dict(gamma_deg=180),
        dict(basis=()),
        dict(dose=10, contrast=50, background=1),
        dict(basis=((0, 0, 1), (0.0, 0.0, -1))),
    ):
        with pytest.raises(LatticefitError) as e:
            synth.lattice_image((32, 32), **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(LatticefitError):
        synth.lattice_image((1, 32))


def test_truth_serialises():
    _, t = synth.perovskite_111((64, 64), inclusions=[{"x_px": 30, "y_px": 30, "radius_nm": 0.5, "mismatch": 0.0024}])
    d = json.loads(dumps(t))
    assert d["d_angstrom"][0] == pytest.approx(4.195264, abs=1e-6)
    assert d["inclusions"][0]["d_angstrom"][0] == pytest.approx(4.195264 * 1.0024, abs=1e-6)
    _, pt = synth.haadf_dots((128, 128), diameter_nm=3.0, n_particles=10, n_touching_pairs=1)
    d = json.loads(dumps(pt))
    assert len(d["particles"]) == 10 and isinstance(d["particles"][0]["edge"], bool)


def test_large_image_float32_agrees():
    a, _ = synth.perovskite_111((300, 300), dtype=np.float32)
    b, _ = synth.perovskite_111((300, 300))
    np.testing.assert_allclose(a.data, b.data, atol=2e-4)


# ----------------------------------------------------------------------------- HAADF particles


def test_sphere_thickness_against_brute_force():
    got = synth.sphere_thickness_image((24, 26), [12.3], [10.7], [1.7], pixel_size_nm=0.1)
    ref = brute_sphere_means((24, 26), 12.3, 10.7, 1.7, 0.1)
    assert np.abs(got - ref).max() < 3e-3 * ref.max()
    assert got.sum() == pytest.approx(ref.sum(), rel=1e-4)


@pytest.mark.parametrize("d_nm", [1.4, 4.0, 7.3])
def test_single_particle_integrated_intensity_is_sphere_volume(d_nm):
    n, ps, bg, pc = 128, 0.1, 20.0, 1.5
    mg = synth.haadf_particles_image(
        (n, n),
        [63.37],
        [60.81],
        [d_nm],
        pixel_size_nm=ps,
        reference_diameter_nm=5.0,
        background=bg,
        gradient=0.0,
        particle_contrast=pc,
        probe_sigma_nm=0.15,
        dose=None,
    )
    excess = (mg.data.astype(np.float64) - bg).sum() * ps * ps
    expected = bg * pc / 5.0 * math.pi * d_nm**3 / 6.0
    assert excess == pytest.approx(expected, rel=1e-4)
    # peak (no blur) = chord through the centre
    mg0 = synth.haadf_particles_image(
        (n, n),
        [64.0],
        [64.0],
        [d_nm],
        pixel_size_nm=ps,
        reference_diameter_nm=d_nm,
        background=bg,
        gradient=0.0,
        particle_contrast=pc,
        probe_sigma_nm=0,
        dose=None,
    )
    assert mg0.data.max() - bg == pytest.approx(bg * pc, rel=2e-3)


def test_haadf_truth_geometry():
    shape, ps = (512, 640), 0.1
    mg, t = synth.haadf_dots(
        shape, pixel_size_nm=ps, diameter_nm=4.0, rsd=0.08, n_particles=70, n_touching_pairs=6, seed=11
    )
    p = t.particles
    assert mg.shape == shape and mg.pixel_size_nm == (0.1, 0.1) and mg.mode == "HAADF" and mg.title == "HAADF"
    assert len(p) == 70 and int(p.touching.sum()) == 12
    assert p.diameter_nm.mean() == pytest.approx(4.0, rel=0.04)
    assert p.diameter_nm.std() / p.diameter_nm.mean() == pytest.approx(0.08, rel=0.3)
    assert p.x_px.between(-0.5, shape[1] - 0.5).all() and p.y_px.between(-0.5, shape[0] - 0.5).all()
    xy = p[["x_px", "y_px"]].to_numpy() * ps
    R = p.diameter_nm.to_numpy() / 2
    gap = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) - R[:, None] - R[None, :]
    np.fill_diagonal(gap, np.inf)
    pair = p.pair.to_numpy()
    for k in range(6):
        i, j = np.flatnonzero(pair == k)
        assert 0.0 <= gap[i, j] <= 0.3 and gap[i, j] == pytest.approx(p.gap_nm[i])
        assert not p.edge[i] and not p.edge[j]
    same_pair = (pair[:, None] == pair[None, :]) & (pair[:, None] >= 0)
    assert gap[~same_pair].min() >= 1.0 - 1e-9  # everyone else keeps the minimum gap
    # edge flag: the disk crosses the image border
    Rpx = R / ps
    crosses = (
        (p.x_px - Rpx < -0.5)
        | (p.x_px + Rpx > shape[1] - 0.5)
        | (p.y_px - Rpx < -0.5)
        | (p.y_px + Rpx > shape[0] - 0.5)
    )
    assert (p.edge == crosses).all() and p.edge.sum() > 0
    _, t2 = synth.haadf_dots(shape, diameter_nm=4.0, n_particles=60, n_touching_pairs=2, allow_edge=False, seed=2)
    assert not t2.particles.edge.any()


def test_haadf_particles_are_bright_where_truth_says():
    mg, t = synth.haadf_dots(
        (256, 256),
        diameter_nm=5.0,
        n_particles=12,
        n_touching_pairs=2,
        seed=4,
        dose=None,
        gradient=0.0,
        background=100.0,
    )
    for _, r in t.particles.iterrows():
        x, y = int(round(r.x_px)), int(round(r.y_px))
        if 0 <= x < 256 and 0 <= y < 256:
            assert mg.data[y, x] > 100.0 + 0.5 * 100.0 * r.diameter_nm / 5.0


def test_haadf_background_gradient_and_dose():
    mg, t = synth.haadf_dots(
        (256, 256),
        n_particles=0,
        n_touching_pairs=0,
        background=100.0,
        gradient=0.3,
        dose=None,
        probe_sigma_nm=0.0,
        seed=1,
    )
    assert mg.data.mean() == pytest.approx(100.0, rel=1e-5)
    assert np.ptp(mg.data) == pytest.approx(30.0, rel=1e-4)
    noisy, _ = synth.haadf_dots(
        (256, 256), n_particles=0, n_touching_pairs=0, background=100.0, gradient=0.0, dose=25.0, seed=1
    )
    assert np.all(noisy.data % 4 == 0)  # gain background / dose = 4 counts per electron
    assert noisy.data.std() == pytest.approx(100.0 / 5.0, rel=0.02)
    counts, _ = synth.haadf_dots(
        (64, 64), n_particles=3, n_touching_pairs=1, diameter_nm=2.0, background=50.0, dose=50.0
    )
    assert np.array_equal(counts.data, counts.data.astype(np.uint16))


def test_haadf_lognormal_and_errors():
    _, t = synth.haadf_dots(
        (512, 512), diameter_nm=3.0, rsd=0.1, n_particles=80, n_touching_pairs=0, distribution="lognormal", seed=3
    )
    assert t.particles.diameter_nm.min() > 0
    with pytest.raises(InvalidDataError, match="crowded"):
        synth.haadf_dots((64, 64), diameter_nm=5.0, n_particles=80, n_touching_pairs=0)
    with pytest.raises(InvalidDataError):
        synth.haadf_dots((64, 64), n_particles=3, n_touching_pairs=2)
    with pytest.raises(InvalidDataError):
        synth.haadf_dots((64, 64), distribution="gamma")


# ----------------------------------------------------------------------------- Fig. 4 pair


def test_fig4_pair_same_dots_in_both_images():
    hr, hd, t = synth.fig4_pair(hrtem_shape=(400, 400), hrtem_pixel_size_nm=0.05, haadf_shape=(200, 200), seed=2)
    assert hd.pixel_size_nm == (0.1, 0.1) and t.field_nm == (20.0, 20.0)
    assert hr.mode == "HRTEM" and hd.mode == "HAADF"
    dots = t.dots
    assert len(dots) == 4 and dots.d_angstrom.iloc[0] == pytest.approx(5.933 / math.sqrt(2) * 1.0024, rel=1e-12)
    assert dots.d_angstrom.iloc[0] == pytest.approx(4.205, abs=0.001)
    np.testing.assert_allclose((dots.x_hrtem_px + 0.5) * 0.05, dots.x_nm)
    np.testing.assert_allclose((dots.y_haadf_px + 0.5) * 0.1, dots.y_nm)
    np.testing.assert_allclose(t.particles.particles.x_px, dots.x_haadf_px)
    np.testing.assert_allclose([i["x_px"] for i in t.lattice.inclusions], dots.x_hrtem_px)
    for _, r in dots.iterrows():  # the HAADF dot is bright at its centre
        assert hd.data[int(round(r.y_haadf_px)), int(round(r.x_haadf_px))] > 1.8 * np.median(hd.data)


# ----------------------------------------------------------------------------- sample_data

SAMPLE_FILES = {
    "perovskite_111_hrtem.tif": (0.025, (1024, 1024)),
    "perovskite_111_haadf.hspy": (0.05, (512, 512)),
    "pbs_dots_4nm_haadf.tif": (0.1, (512, 512)),
    "pbs_dots_7nm_haadf.hspy": (0.1, (768, 768)),
}


def test_sample_data_files_exist_and_are_small(sample_data):
    for name in SAMPLE_FILES:
        assert (sample_data / name).is_file(), f"sample_data/{name} missing: run python scripts/make_sample_data.py"
    assert (sample_data / "README.md").is_file() and (sample_data / "truth.json").is_file()
    total = sum(f.stat().st_size for f in sample_data.rglob("*") if f.is_file())
    assert total <= 5 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(SAMPLE_FILES))
def test_sample_data_loads_with_stated_calibration(sample_data, name):
    from latticefit.io import load

    px, shape = SAMPLE_FILES[name]
    mg = load(sample_data / name)
    truth = json.loads((sample_data / "truth.json").read_text())[name]
    assert mg.shape == shape == tuple(truth["shape"])
    assert mg.pixel_size_nm == pytest.approx((px, px), rel=1e-6)
    assert tuple(truth["pixel_size_nm"]) == pytest.approx((px, px), rel=1e-12)
    assert mg.original_dtype == "uint16"
    if name.endswith(".hspy"):
        assert mg.mode == "HAADF" and mg.beam_energy_kv == 300.0


def test_sample_data_truth_matches_the_stated_cases(sample_data):
    import pandas as pd

    truth = json.loads((sample_data / "truth.json").read_text())
    lat = truth["perovskite_111_hrtem.tif"]["lattice"]
    np.testing.assert_allclose(lat["d_angstrom"], 5.933 / math.sqrt(2), rtol=1e-12)
    assert len(lat["inclusions"]) == 4
    for inc in lat["inclusions"]:
        np.testing.assert_allclose(inc["d_angstrom"], 5.933 / math.sqrt(2) * 1.0024, rtol=1e-12)
    for name, d in (("pbs_dots_4nm_haadf", 4.0), ("pbs_dots_7nm_haadf", 7.0)):
        p = pd.read_csv(sample_data / f"{name}.particles.csv")
        assert p.diameter_nm.mean() == pytest.approx(d, rel=0.02)
        assert 0.06 < p.diameter_nm.std() / p.diameter_nm.mean() < 0.09
        assert p.touching.sum() >= 4 and p.edge.sum() >= 4


def test_sample_data_regenerates_identically(sample_data, tmp_path):
    """The README's regeneration recipe reproduces the stored pixels (HAADF field; no BLAS involved)."""
    import tifffile

    truth = json.loads((sample_data / "truth.json").read_text())["pbs_dots_4nm_haadf.tif"]
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in truth["generator"].items() if k != "function"}
    mg, _ = synth.haadf_dots(**kw)
    stored = tifffile.imread(sample_data / "pbs_dots_4nm_haadf.tif")
    assert np.array_equal(mg.data.astype(np.uint16), stored)
