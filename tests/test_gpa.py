"""Known answers for geometric phase analysis (latticefit.gpa).

The lattices are drawn here with plain numpy (displaced cosines, Gaussian
columns at displaced positions), not with latticefit.synth.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from latticefit.errors import AnalysisError, InvalidDataError, LatticefitError
from latticefit.gpa import burgers_vector, strain_map
from latticefit.micrograph import Micrograph

PS = 0.02  # nm/px
A = 0.4  # nm
G = ((1 / A, 0.0), (0.0, 1 / A))


def _grid(n):
    y, x = np.mgrid[:n, :n] * PS
    return x, y


def cosine_lattice(n, ux=0.0, uy=0.0, *, noise=0.0, seed=0):
    """Two cosines displaced by the Eulerian field u(r): I(r) = f(r - u(r))."""
    x, y = _grid(n)
    img = np.cos(2 * np.pi * (x - ux) / A) + np.cos(2 * np.pi * (y - uy) / A)
    if noise:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return img


def column_lattice(n, displace, *, width_nm=0.05, noise=0.0, seed=0):
    """Gaussian atomic columns of a square lattice at X0 + displace(X0, Y0) (Lagrangian, nm)."""
    img = np.zeros((n, n))
    edge = n * PS
    g0 = np.arange(-2, int(edge / A) + 3) * A
    X0, Y0 = np.meshgrid(g0, g0)
    dx, dy = displace(X0, Y0)
    X, Y = X0 + dx, Y0 + dy
    r = int(np.ceil(5 * width_nm / PS))
    for cx, cy in zip(X.ravel() / PS, Y.ravel() / PS):
        i0, j0 = int(round(cy)), int(round(cx))
        ys, xs = slice(max(i0 - r, 0), min(i0 + r + 1, n)), slice(max(j0 - r, 0), min(j0 + r + 1, n))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            continue
        yy, xx = np.mgrid[ys, xs]
        img[ys, xs] += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * PS**2 / (2 * width_nm**2))
    if noise:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return img


def mg(img, ps=PS):
    return Micrograph(np.asarray(img, dtype=float), pixel_size_nm=(ps, ps), source="synthetic.tif")


# ---------------------------------------------------------------- perfect lattice
def test_perfect_lattice_noise_free_has_no_false_strain():
    sm = strain_map(mg(cosine_lattice(256)), g=G, sigma_nm=0.4)
    v = sm.valid
    for name in ("exx", "eyy", "exy", "rotation_rad", "dilatation"):
        assert np.abs(getattr(sm, name)[v]).max() < 2e-4, name
    # the g refinement stays on the true lattice
    assert np.allclose(sm.g_inv_nm, G, atol=1e-4)


def test_perfect_lattice_with_noise_is_zero_within_sigma_and_g_auto():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = strain_map(mg(cosine_lattice(320, noise=0.3, seed=3)), sigma_nm=0.3)
    # g chosen by measure_lattice: the two cosines, |g| = 2.5/nm
    assert sorted(np.linalg.norm(sm.g_inv_nm, axis=1).round(3)) == [2.5, 2.5]
    for name in ("exx", "eyy", "exy", "dilatation"):
        mean, se = sm.region_mean(name)
        assert abs(mean) < 4 * se + 1e-5, (name, mean, se)
        z = getattr(sm, name)[sm.valid] / getattr(sm, f"sigma_{name}")[sm.valid]
        assert 0.6 < z.std() < 1.5, (name, z.std())


# ---------------------------------------------------------------- known strains
@pytest.mark.parametrize("eps", [0.01, 0.02])
def test_isotropic_dilatation_step_in_columns(eps):
    n, x0 = 320, 160 * PS

    def displace(X0, Y0):
        right = X0 > x0
        return eps * np.where(right, X0 - x0, 0.0), eps * np.where(right, Y0 - n * PS / 2, 0.0)

    img = column_lattice(n, displace, noise=0.005, seed=1)
    sm = strain_map(mg(img), g=G, sigma_nm=0.3, reference=(0, 0, 130, n))
    right = (slice(80, 240), slice(215, 250))
    left = (slice(80, 240), slice(65, 105))
    assert np.median(sm.exx[right]) == pytest.approx(eps, rel=0.03)
    assert np.median(sm.eyy[right]) == pytest.approx(eps, rel=0.03)
    assert np.median(sm.dilatation[right]) == pytest.approx(2 * eps, rel=0.03)
    assert abs(np.median(sm.dilatation[left])) < 0.03 * eps
    assert abs(np.median(sm.exy[right])) < 0.03 * eps
    # the sigma map is honest about the noise in the flat part
    z = (sm.exx[right] - eps) / sm.sigma_exx[right]
    assert np.abs(np.median(z)) < 3


def test_shear_step_sign_and_size():
    gam, n = 0.02, 320
    _, y = _grid(n)
    img = cosine_lattice(n, ux=gam * np.maximum(y - n * PS / 2, 0.0))  # u_x = gamma (y - y0) below y0
    sm = strain_map(mg(img), g=G, sigma_nm=0.3, reference=(0, 0, n, n // 2 - 30))
    below = (slice(215, 255), slice(65, 255))
    assert np.median(sm.exy[below]) == pytest.approx(gam / 2, rel=0.01)
    assert np.median(sm.rotation_rad[below]) == pytest.approx(np.arctan2(-gam, 2.0), rel=0.01)
    assert abs(np.median(sm.exx[below])) < 1e-4 and abs(np.median(sm.eyy[below])) < 1e-4


def test_edge_dislocation_burgers_circuit():
    n, nu = 320, 0.3
    x, y = _grid(n)
    X, Y = x - n * PS / 2 + 0.013, y - n * PS / 2 + 0.007
    r2, th = X**2 + Y**2, np.arctan2(Y, X)
    b = A  # along x (Hirth & Lothe, isotropic elasticity)
    ux = b / (2 * np.pi) * (th + X * Y / (2 * (1 - nu) * r2))
    uy = -b / (2 * np.pi) * ((1 - 2 * nu) / (4 * (1 - nu)) * np.log(r2) + (X**2 - Y**2) / (4 * (1 - nu) * r2))
    sm = strain_map(mg(cosine_lattice(n, ux, uy, noise=0.1)), g=G, sigma_nm=0.3)
    c = n // 2
    for h in (50, 80):
        bv = burgers_vector(sm, c - h, c - h, c + h, c + h)
        assert np.linalg.norm(bv) == pytest.approx(b, rel=0.02)
        assert bv[0] == pytest.approx(b, rel=0.02) and abs(bv[1]) < 0.02 * b
    closed = burgers_vector(sm, 60, 60, 120, 120)  # a loop around no defect closes
    assert np.linalg.norm(closed) < 0.02 * b


def test_misset_g_is_refined_back():
    img = cosine_lattice(384, noise=0.2, seed=2)
    sm = strain_map(mg(img), g=((1.005 / A, 0.0), (0.0, 0.995 / A)), sigma_nm=0.3)
    # back to within 0.03 % (the noise of the mean phase gradient), from 0.5 %
    assert np.abs(sm.g_inv_nm - np.array(G)).max() < 3e-4 / A
    assert sm.to_dict()["g_refinement_shift_percent"] == pytest.approx([0.5, 0.5], abs=0.02)
    mean, se = sm.region_mean("exx")
    assert abs(mean) < 4 * se + 1e-5


def test_sigma_map_covers_the_true_error_95_percent():
    """40 noise realisations, z = (exx - 0) / sigma_exx at pixels 61 px apart in the raster (point spread 10 px)."""
    n, a, ps = 160, 0.3, 0.02
    y, x = np.mgrid[:n, :n] * ps
    clean = np.cos(2 * np.pi * x / a) + np.cos(2 * np.pi * (x + y) / a / np.sqrt(2) * np.sqrt(2))
    zs = []
    rng = np.random.default_rng(7)
    for _ in range(40):
        img = clean + rng.normal(0.0, 0.7, clean.shape)
        sm = strain_map(Micrograph(img, pixel_size_nm=(ps, ps)), g=((1 / a, 0), (1 / a, 1 / a)), sigma_nm=0.2)
        for name in ("exx", "eyy", "exy"):
            v = getattr(sm, name) / getattr(sm, f"sigma_{name}")
            zs.append(v[sm.valid].reshape(-1)[::61])
    z = np.concatenate(zs)
    cover = float(np.mean(np.abs(z) < 2))
    assert 0.92 < cover < 0.975, cover
    assert 0.9 < z.std() < 1.1


# ---------------------------------------------------------------- calibration
class _Affine:
    def __init__(self, m):
        self.matrix_nm_per_px = np.asarray(m, dtype=float)


def test_affine_calibration_is_used_for_the_strain_frame():
    """A uniaxial +1 % strain along x_nm, imaged with a pixel frame rotated by 30 degrees."""
    n, eps, ang = 320, 0.01, np.radians(30)
    c = PS * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    ii, jj = np.mgrid[:n, :n]  # rows (y_px), columns (x_px)
    xn = c[0, 0] * jj + c[0, 1] * ii
    yn = c[1, 0] * jj + c[1, 1] * ii
    xc = float(xn[n // 2, n // 2])
    # Eulerian displacement of a 1 % longer lattice along x_nm for x_nm > xc
    ux = eps / (1 + eps) * np.maximum(xn - xc, 0.0)
    img = np.cos(2 * np.pi * (xn - ux) / A) + np.cos(2 * np.pi * yn / A)
    ref = np.zeros((n, n), bool)
    ref[:, :] = xn < xc - 0.8
    sm = strain_map(
        Micrograph(img, pixel_size_nm=(PS, PS)), g=G @ np.eye(2), calibration=_Affine(c), sigma_nm=0.3, reference=ref
    )
    far = (xn > xc + 0.9) & sm.valid
    assert np.median(sm.exx[far]) == pytest.approx(eps, rel=0.03)
    assert abs(np.median(sm.eyy[far])) < 0.05 * eps
    assert np.allclose(sm.g_inv_nm, G, atol=2e-3)
    # without the calibration the same image gives the strain in the rotated pixel frame
    plain = strain_map(Micrograph(img, pixel_size_nm=(PS, PS)), g=G, sigma_nm=0.3, reference=ref)
    assert np.median(plain.exx[far]) < 0.9 * eps


def test_calibration_without_matrix_is_an_error():
    with pytest.raises(AnalysisError, match="matrix_nm_per_px"):
        strain_map(mg(cosine_lattice(256)), g=G, sigma_nm=0.3, calibration=object())


# ---------------------------------------------------------------- bad input
def test_blank_image_is_an_error_naming_the_file():
    with pytest.raises(InvalidDataError, match="synthetic.tif: image is blank"):
        strain_map(mg(np.full((128, 128), 3.0)), sigma_nm=0.3)


def test_noise_only_image_has_no_lattice():
    img = np.random.default_rng(0).normal(0, 1, (256, 256))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AnalysisError, match="no lattice"):
            strain_map(mg(img))
    with pytest.raises(AnalysisError, match="no lattice fringe at g1"):
        strain_map(mg(img), g=G, sigma_nm=0.4)


def test_collinear_g_is_an_error():
    with pytest.raises(AnalysisError, match="collinear"):
        strain_map(mg(cosine_lattice(256)), g=((2.5, 0), (5.0, 0.1)), sigma_nm=0.3)


def test_resolution_beyond_the_lattice_is_an_error():
    with pytest.raises(AnalysisError, match="finer than the lattice allows"):
        strain_map(mg(cosine_lattice(256)), g=G, sigma_nm=0.05)
    with pytest.raises(AnalysisError, match="too coarse"):
        strain_map(mg(cosine_lattice(256)), g=G, sigma_nm=2.0)


# ---------------------------------------------------------------- outputs
def test_save_npz_and_hspy_with_calibrated_axes(tmp_path):
    sm = strain_map(mg(cosine_lattice(256, noise=0.2)), g=G, sigma_nm=0.3)
    p = sm.save(tmp_path / "maps.npz")
    with np.load(p) as z:
        assert np.array_equal(z["exx"], sm.exx)
        meta = json.loads(str(z["summary_json"]))
    assert meta["schema_version"] == "latticefit.gpa/1"
    assert meta["resolution_sigma_nm"] == pytest.approx(0.3)
    s = sm.to_signal("exx")
    assert s.axes_manager.signal_axes[0].scale == pytest.approx(PS)
    assert s.axes_manager.signal_axes[0].units == "nm"
    import hyperspy.api as hs

    sm.save(tmp_path / "maps.hspy")
    back = hs.load(tmp_path / "maps.hspy")
    names = list(back.metadata.GPA.map_names)
    assert back.data.shape == (len(names), 256, 256)
    assert np.array_equal(back.data[names.index("dilatation")], sm.dilatation)
    assert back.axes_manager.signal_axes[1].units == "nm"
    with pytest.raises(LatticefitError, match="npz or .hspy"):
        sm.save(tmp_path / "maps.txt")


# ---------------------------------------------------------------- command line
def _write_hspy(tmp_path, img, name="lattice.hspy"):
    p = tmp_path / name
    Micrograph(np.asarray(img, dtype=np.float32), pixel_size_nm=(PS, PS)).to_signal().save(str(p))
    return p


def test_cli_gpa_writes_figure_maps_and_json(tmp_path, capsys):
    from latticefit.cli import main

    x, _ = _grid(256)
    img = cosine_lattice(256, ux=0.01 / 1.01 * np.maximum(x - 2.56, 0.0), noise=0.1)
    f = _write_hspy(tmp_path, img)
    out = tmp_path / "strain.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["gpa", str(f), "-o", str(out), "--resolution", "3A", "--reference", "0,0,120,256", "--json", "-"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["schema_version"] == "latticefit.gpa/1"
    assert d["resolution_sigma_nm"] == pytest.approx(0.3)
    assert set(d["maps_valid"]["exx"]) >= {"mean_percent", "sd_percent", "median_sigma_percent"}
    assert out.exists() and out.with_suffix(".npz").exists()
    with np.load(out.with_suffix(".npz")) as z:
        right = z["exx"][80:180, 180:195]
    assert np.median(right) == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("case", ["missing", "blank", "bad-g"])
def test_cli_gpa_bad_input_is_one_line_exit_2(tmp_path, capsys, case):
    from latticefit.cli import main

    if case == "missing":
        f = tmp_path / "nothere.hspy"
    elif case == "blank":
        f = _write_hspy(tmp_path, np.zeros((128, 128)), "blank.hspy")
    else:
        f = _write_hspy(tmp_path, cosine_lattice(128), "l.hspy")
    args = ["gpa", str(f), "-o", str(tmp_path / "s.png")] + (["--g", "0,9"] if case == "bad-g" else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and f.name in err[0], err


def test_numba_deformation_kernel_matches_numpy_reference():
    from latticefit.gpa import _kernels, _strain

    rng = np.random.default_rng(4)
    grads = [rng.normal(0, 0.02, (60, 70)).astype(np.float32) for _ in range(4)]
    g = np.array([[0.05, 0.01], [-0.01, 0.06]])
    c = np.array([[0.02, 0.001], [0.0005, 0.025]])
    ref = _strain.deformation(grads, g, c)
    fast = _kernels.deformation_maps(grads, g, c)
    for name, v in ref.items():
        np.testing.assert_allclose(fast[name], v, rtol=0, atol=2e-6, err_msg=name)


def test_numba_amplitude_kernels_match_numpy_reference():
    from latticefit.gpa import _kernels, _strain

    rng = np.random.default_rng(5)
    h1, h2 = ((rng.normal(size=(50, 64)) + 1j * rng.normal(size=(50, 64))).astype(np.complex64) for _ in range(2))
    h2[3, 4] = 0  # the 1e-30 floor
    g = np.array([[0.05, 0.01], [-0.01, 0.06]])
    c = np.array([[0.02, 0.001], [0.0005, 0.025]])
    coefs = _strain.strain_sigma_coefficients(g, c, [(1e-3, 2e-3), (3e-3, 1e-3)])
    fast = _kernels.amplitude_maps(h1, h2, coefs, [0.5, 0.7])
    for name, v in _strain.strain_sigmas(h1, h2, coefs).items():
        np.testing.assert_allclose(fast[f"sigma_{name}"], v, rtol=1e-6, err_msg=name)
    for n, (h, pv) in enumerate(((h1, 0.5), (h2, 0.7)), start=1):
        w = np.maximum(np.abs(h) ** 2, np.float32(1e-30))
        np.testing.assert_allclose(fast[f"amplitude_g{n}"], 2 * np.sqrt(w), rtol=1e-6)
        np.testing.assert_allclose(fast[f"sigma_phase_g{n}_rad"], np.sqrt(np.float32(pv) / w), rtol=1e-6)
    mask = rng.random(h1.shape) < 0.3
    gx, gy = (rng.normal(size=h1.shape).astype(np.float32) for _ in range(2))
    w = (np.abs(h1) ** 2)[mask].astype(np.float64)
    ref = ((gx[mask] * w).sum() / w.sum(), (gy[mask] * w).sum() / w.sum())
    np.testing.assert_allclose(_kernels.weighted_gradient_mean(gx, gy, h1, mask), ref, rtol=1e-6)
    np.testing.assert_allclose(_kernels.masked_amplitude(h1, mask), np.abs(h1[mask]), rtol=1e-6)
    mv, ms, n = _kernels.masked_mean_squares(gx, gy, mask)
    ref_v, ref_s = np.mean(gx[mask].astype(np.float64) ** 2), np.mean(gy[mask].astype(np.float64) ** 2)
    np.testing.assert_allclose((mv, ms, n), (ref_v, ref_s, mask.sum()), rtol=1e-12)
    mask[3, 4] = True  # the floored pixel
    ref_inv = np.mean(1.0 / np.maximum((np.abs(h2) ** 2)[mask].astype(np.float64), 1e-30))
    np.testing.assert_allclose(_kernels.masked_mean_inverse_power(h2, mask), ref_inv, rtol=1e-6)
    assert np.isnan(_kernels.masked_mean_inverse_power(h2, np.zeros_like(mask)))


def test_lazy_maps_equal_the_eager_ones_and_their_floor_moments():
    """The sigma, amplitude, phase and displacement maps read from a StrainMap are those of the eager
    ``_maps``; the floor's mean sigma^2 from the means of 1/|h|^2 is the mean of the sigma maps squared."""
    from latticefit.gpa import _api
    from latticefit.gpa._derived import LAZY_MAPS

    rng = np.random.default_rng(11)
    img = cosine_lattice(192) + rng.normal(0, 0.3, (192, 192))
    sm = strain_map(mg(img), g=G, sigma_nm=0.3)
    assert not sm.derived.cache  # nothing computed yet
    fields, g_px, c = sm.derived.fields, sm.g_px, sm.matrix_nm_per_px
    eager = _api._maps(fields, g_px, c, engine="numpy")
    for name in LAZY_MAPS:
        np.testing.assert_allclose(getattr(sm, name), eager[name], rtol=2e-5, atol=2e-6, err_msg=name)
    assert set(sm.derived.cache) == set(LAZY_MAPS)
    m = sm.reference_mask & sm.valid
    for name, ms in sm.derived.mean_sigma_squared(m).items():
        ref = np.mean(getattr(sm, f"sigma_{name}")[m].astype(np.float64) ** 2)
        assert ms == pytest.approx(ref, rel=1e-5), name


def test_numba_phase_kernels_match_numpy_reference():
    from latticefit.gpa import _kernels, _strain

    rng = np.random.default_rng(7)
    for shape in ((5, 6), (97, 130)):
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        phase = 2.9 * xx + 0.7 * yy + 0.3 * rng.normal(size=shape)
        h = ((1 + 0.1 * rng.normal(size=shape)) * np.exp(1j * phase)).astype(np.complex64)
        res = (0.013, -0.021)
        for a, b in zip(_kernels.phase_gradient_from_angle(np.angle(h), res), _strain.phase_gradient(h, res)):
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
        d = np.abs(_kernels.wrapped_phase_from_angle(np.angle(h), res) - _strain.wrapped_phase(h, res))
        assert np.minimum(d, 2 * np.pi - d).max() < 1e-5


def test_numba_and_numpy_engines_give_the_same_maps():
    from types import SimpleNamespace

    from latticefit.gpa import _api

    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[:64, :80]
    fields = [
        SimpleNamespace(
            h=((1 + 0.1 * rng.normal(size=xx.shape)) * np.exp(1j * (0.01 * k * xx + 0.02 * yy))).astype(np.complex64),
            k0_px=(0.1, 0.05 * k),
            grad_var_base=(1e-3, 2e-3),
            phase_var_base=0.2 * k,
        )
        for k in (1, 2)
    ]
    for f in fields:
        f.theta = np.angle(f.h)
    g_px, c = np.array([[0.1, 0.003], [0.002, 0.1]]), np.array([[0.02, 0.0], [0.0, 0.021]])
    a = _api._maps(fields, g_px, c, engine="numba")
    b = _api._maps(fields, g_px, c, engine="numpy")
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=2e-6, err_msg=k)


def test_region_mean_standard_error_is_calibrated():
    """z = (mean over a disc outside the reference) / SE over noise realisations is ~N(0, 1)."""
    n = 256
    clean = cosine_lattice(n)
    yy, xx = np.mgrid[:n, :n]
    rr = np.hypot(xx - 130, yy - 125)
    disc, ref = rr < 18, rr > 30
    rng = np.random.default_rng(9)
    z = []
    for _ in range(30):
        sm = strain_map(mg(clean + rng.normal(0, 0.5, clean.shape)), g=G, sigma_nm=0.3, reference=ref)
        for name in ("exx", "dilatation"):
            m, se = sm.region_mean(name, disc)
            z.append(m / se)
    z = np.asarray(z)
    assert 0.7 < z.std() < 1.35, z.std()
    assert abs(z.mean()) < 0.5


def _dot_image(n, r_nm, eps, noise, seed):
    """Gaussian columns; inside a disc the lattice is (1 + eps) larger, outside u = eps R^2 r / |r|^2 (continuous)."""
    c = n * PS / 2 + 0.011

    def displace(X0, Y0):
        dx, dy = X0 - c, Y0 - c
        r2 = np.maximum(dx**2 + dy**2, 1e-12)
        f = np.where(r2 < r_nm**2, eps, eps * r_nm**2 / r2)
        return f * dx, f * dy

    return column_lattice(n, displace, noise=noise, seed=seed), c / PS


@pytest.mark.parametrize("eps, noise, expect", [(0.01, 0.02, True), (0.0005, 0.05, False)])
def test_dot_contrast_significant_for_1_percent_not_for_noise(eps, noise, expect):
    from latticefit.gpa import disc_masks, region_contrast

    n, r_nm = 400, 1.8
    img, c_px = _dot_image(n, r_nm, eps, noise, seed=5)
    r_px = r_nm / PS
    inside, ring = disc_masks((n, n), c_px, c_px, r_px, outer=(1.6, 2.4))
    sm = strain_map(mg(img), g=G, sigma_nm=0.3, reference=ring)
    rc = region_contrast(sm, inside, ring)
    assert rc.significant is expect, rc.line()
    if expect:
        # the core (r < 0.6 R, 3 point-spread sigmas from the rim) carries the full 2 eps dilatation
        assert rc.difference == pytest.approx(2 * eps, rel=0.05), rc.line()
    assert rc.to_dict()["test"].startswith("two-sided z-test")


def test_cli_gpa_dot_contrast_in_json(tmp_path, capsys):
    from latticefit.cli import main

    img, c = _dot_image(300, 1.2, 0.01, 0.02, seed=6)
    f = _write_hspy(tmp_path, img, "dot.hspy")
    rc = main(
        ["gpa", str(f), "-o", str(tmp_path / "d.png"), "--resolution", "0.26nm", "--dot", f"{c},{c},60", "--json", "-"]
    )
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    dil = d["dot"]["contrasts"][0]
    assert dil["map_name"] == "dilatation" and dil["significant"]
    assert dil["difference"] == pytest.approx(0.02, rel=0.1)
