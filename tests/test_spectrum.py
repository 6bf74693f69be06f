"""latticefit.spectrum: Moisan decomposition, calibrated axes, windows and regions."""

from __future__ import annotations

import numpy as np
import pytest

from latticefit.errors import LatticefitError, RegionError
from latticefit.micrograph import Micrograph
from latticefit.roi import Circle, Mask, Rect
from latticefit.spectrum import Spectrum, frequency_axes, periodic_smooth_decomposition, power_spectrum
from latticefit.synth import _core as synth


def _periodic_laplacian(s):
    return np.roll(s, 1, 0) + np.roll(s, -1, 0) + np.roll(s, 1, 1) + np.roll(s, -1, 1) - 4 * s


@pytest.mark.parametrize("shape", [(40, 56), (37, 51)])
def test_moisan_periodic_plus_smooth_is_the_image(shape):
    rng = np.random.default_rng(0)
    u = rng.random(shape) + np.add.outer(np.linspace(0, 5, shape[0]), np.linspace(0, 3, shape[1]))
    p, s = periodic_smooth_decomposition(u)
    np.testing.assert_allclose(p + s, u, atol=1e-12)
    assert abs(s.mean()) < 1e-12
    # the smooth component solves  Laplacian_per(s) = v  (the boundary image)
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    np.testing.assert_allclose(_periodic_laplacian(s), v, atol=1e-10)


def test_moisan_removes_the_edge_cross():
    # a ramp is maximally non-periodic: its raw spectrum is a bright cross along the axes
    u = np.add.outer(np.arange(64.0), 2 * np.arange(64.0))
    raw = np.abs(np.fft.fft2(u - u.mean())) ** 2
    p, s = periodic_smooth_decomposition(u)
    per = np.abs(np.fft.fft2(p - p.mean())) ** 2
    axis = np.zeros((64, 64), bool)
    axis[0, 1:] = axis[1:, 0] = True
    assert per[axis].sum() < 1e-3 * raw[axis].sum()
    # the smooth component carries the cross: its spectrum falls off like 1/|k|^2 away from DC
    S = np.abs(np.fft.fft2(s)) ** 2
    assert S[0, 2] > 10 * S[0, 16]


def test_power_spectrum_matches_moisan_periodic_component():
    rng = np.random.default_rng(1)
    u = rng.random((48, 40)).astype(np.float32) + np.arange(40, dtype=np.float32)[None, :] * 0.1
    spec = power_spectrum(u, pixel_size=0.1)
    p, _ = periodic_smooth_decomposition(u)
    ref = np.abs(np.fft.fft2(p - p.mean())) ** 2
    np.testing.assert_allclose(spec.power, np.fft.fftshift(ref).astype(np.float32), rtol=2e-3, atol=1e-3 * ref.max())


@pytest.mark.parametrize("n", [8, 9])
def test_axes_have_their_zero_at_n_over_2(n):
    gy, gx = frequency_axes((n, n + 1), (0.1, 0.2))
    assert gy[n // 2] == 0 and gx[(n + 1) // 2] == 0
    assert np.allclose(np.diff(gy), 1 / (n * 0.1)) and np.allclose(np.diff(gx), 1 / ((n + 1) * 0.2))


@pytest.mark.parametrize("n", [63, 64])
def test_a_fringe_lands_on_its_frequency_in_1_per_nm(n):
    # 16 periods across the image: an exact bin
    ps = 0.05
    x = np.arange(n)
    g_true = 16 / (n * ps)
    img = np.cos(2 * np.pi * g_true * ps * x)[None, :] * np.ones((n, 1))
    spec = power_spectrum(img, pixel_size=ps, window=None)
    iy, ix = np.unravel_index(np.argmax(spec.power), spec.power.shape)
    assert spec.gy_inv_nm[iy] == 0
    assert np.isclose(abs(spec.gx_inv_nm[ix]), g_true)
    l, r, b, t = spec.extent_inv_nm
    assert l < spec.gx_inv_nm[0] < spec.gx_inv_nm[-1] < r and t < spec.gy_inv_nm[0] < spec.gy_inv_nm[-1] < b


def test_spectrum_of_a_synthetic_lattice_peaks_at_its_reflections():
    mg, truth = synth.cubic_001(shape=(256, 256), rotation_deg=20.0, seed=0)
    spec = power_spectrum(mg)
    assert isinstance(spec, Spectrum) and spec.power.shape == (256, 256) and spec.power.dtype == np.float32
    g = truth.g_inv_nm[0]
    ix = np.argmin(np.abs(spec.gx_inv_nm - g[0]))
    iy = np.argmin(np.abs(spec.gy_inv_nm - g[1]))
    blk = spec.power[iy - 1 : iy + 2, ix - 1 : ix + 2]
    assert blk.max() > 1e3 * np.median(spec.power)
    # Friedel symmetry of the displayed power
    jx = np.argmin(np.abs(spec.gx_inv_nm + g[0]))
    jy = np.argmin(np.abs(spec.gy_inv_nm + g[1]))
    assert np.isclose(spec.power[jy - 1 : jy + 2, jx - 1 : jx + 2].max(), blk.max(), rtol=1e-3)


@pytest.mark.parametrize("window", ["periodic", "hann", "tukey", None])
def test_windows_and_regions(window):
    mg, _ = synth.cubic_001(shape=(200, 240), seed=1)
    s_rect = power_spectrum(mg, roi=Rect(10, 20, 100, 64), window=window)
    assert s_rect.power.shape == (64, 100) and s_rect.roi["type"] == "rect"
    s_disk = power_spectrum(mg, roi=Circle(120, 100, 40), window=window)
    assert s_disk.power.shape == (81, 81)
    m = np.zeros(mg.shape, bool)
    m[50:150, 60:160] = True
    s_mask = power_spectrum(mg, roi=Mask(m), window=window)
    assert s_mask.power.shape == (100, 100) and s_mask.roi["type"] == "mask"
    assert np.all(np.isfinite(s_disk.power)) and s_disk.power.max() > 0


def test_disk_region_only_sees_its_pixels():
    # lattice only inside the disk; outside a different, strong fringe that must not leak in
    n = 128
    yy, xx = np.mgrid[:n, :n]
    inside = (xx - 64) ** 2 + (yy - 64) ** 2 <= 30**2
    img = np.where(inside, np.cos(2 * np.pi * 0.2 * xx), 5 * np.cos(2 * np.pi * 0.3 * yy))
    spec = power_spectrum(Micrograph(img, pixel_size_nm=(1.0, 1.0)), roi=Circle(64, 64, 30))
    gy, gx = spec.gy_inv_nm, spec.gx_inv_nm
    iy, ix = np.unravel_index(np.argmax(spec.power), spec.power.shape)
    assert abs(abs(gx[ix]) - 0.2) < 0.02 and abs(gy[iy]) < 0.02


def test_region_errors_name_the_problem():
    mg = Micrograph(np.zeros((64, 64)), pixel_size_nm=(0.1, 0.1), source="x.dm4")
    with pytest.raises(RegionError, match="outside"):
        power_spectrum(mg, roi=Rect(40, 40, 40, 40))
    with pytest.raises(RegionError, match="smaller than the 32 px"):
        power_spectrum(mg, roi=Circle(30, 30, 8))
    with pytest.raises(LatticefitError, match="window"):
        power_spectrum(mg, window="kaiser")
