"""Every numba kernel of latticefit.lattice._kernels against its numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from latticefit.lattice import _kernels as K


@pytest.mark.parametrize("shape", [(32, 48), (33, 47), (64, 64)])
def test_periodic_power_matches_reference(shape):
    rng = np.random.default_rng(0)
    u = rng.random(shape) + np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * 0.05
    M, N = shape
    U = np.fft.rfft2(u)
    A = np.fft.fft(u[-1, :] - u[0, :])
    B = np.fft.fft(u[:, -1] - u[:, 0])
    got = K.periodic_power_nb(U, A, B, M, N)
    ref = K.periodic_power_ref(U, A, B, M, N)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * ref.max())


def test_ring_median_matches_reference():
    rng = np.random.default_rng(1)
    P = rng.exponential(size=(50, 26))
    ring = rng.integers(-1, 12, size=P.shape)
    np.testing.assert_allclose(K.ring_median_nb(P, ring, 13), K.ring_median_ref(P, ring, 13), equal_nan=True)
    np.testing.assert_allclose(K.ring_median_nb(P, ring, 13, 30), K.ring_median_ref(P, ring, 13, 30), equal_nan=True)


@pytest.mark.parametrize("radius", [1, 2])
def test_local_maxima_matches_reference(radius):
    rng = np.random.default_rng(2)
    R = rng.random((40, 21))
    valid = rng.random(R.shape) > 0.2
    got = K.local_maxima_nb(R, valid, 0.5, radius)
    ref = K.local_maxima_ref(R, valid, 0.5, radius)
    assert sorted(zip(*got)) == sorted(zip(*ref))
    assert len(got[0]) > 3


@pytest.mark.parametrize("n", [7, 64, 1000])
def test_dirichlet_and_derivatives_match_direct_sums(n):
    rng = np.random.default_rng(3)
    k = np.arange(-10, 11, dtype=np.int64) + int(rng.integers(0, n))
    for f in (float(rng.random()), k[10] / n + 1e-9, k[10] / n + 3e-4 / n, -0.3137):
        got = K.dirichlet_nb(f, k, n)
        ref = K.dirichlet_ref(f, k, n)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9 * np.abs(b).max())
        np.testing.assert_allclose(
            K.dirichlet_matrix_nb(np.array([f]), k, n)[0], ref[0], rtol=1e-8, atol=1e-9 * np.abs(ref[0]).max()
        )


@pytest.mark.parametrize("n", [7, 64, 1000, 4096])
def test_dirichlet_matrix_closed_form_holds_on_and_near_the_bins(n):
    """The closed-form ratio and the sines near a bin (|1 - e^{2 pi i u}| <= 1e-2) meet without a seam."""
    k = np.arange(-12, 13, dtype=np.int64) + n // 3
    near = np.array([0.0, 1e-12, 1e-9, 3e-4 / n, 1.59e-3, 1.5915e-3, 1.6e-3, 0.01, 0.4 / n])
    fs = np.concatenate([k[12] / n + near, k[12] / n - near, np.random.default_rng(5).random(8) - 0.5])
    got = K.dirichlet_matrix_nb(fs, k, n)
    for f, row in zip(fs, got):
        ref = K.dirichlet_ref(f, k, n)[0]
        np.testing.assert_allclose(row, ref, rtol=1e-9, atol=1e-10 * n)


def test_tone_sum_window_matches_reference():
    rng = np.random.default_rng(4)
    ky = np.arange(10, 31, dtype=np.int64)
    kx = np.arange(-5, 16, dtype=np.int64)
    wy = rng.random(ky.size) > 0.1
    wx = rng.random(kx.size) > 0.1
    fy, fx = rng.random(3) * 0.5, rng.random(3) * 0.5 - 0.25
    amp = rng.normal(size=3) + 1j * rng.normal(size=3)
    got = K.tone_sum_window_nb(fy, fx, amp, ky, kx, 64, 48, wy, wx)
    ref = K.tone_sum_window_ref(fy, fx, amp, ky, kx, 64, 48, wy, wx)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def _tone_window(M, N, g, alpha, K_=8, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:M, :N]
    img = 2 * abs(alpha) * np.cos(2 * np.pi * (g[1] * xx + g[0] * yy) + np.angle(alpha))
    img = img + noise * rng.standard_normal(img.shape)
    X = np.fft.fft2(img)
    ky0, kx0 = int(round(g[0] * M)), int(round(g[1] * N))
    ky = np.arange(ky0 - K_, ky0 + K_ + 1, dtype=np.int64)
    kx = np.arange(kx0 - K_, kx0 + K_ + 1, dtype=np.int64)
    Y = X[np.ix_(ky % M, kx % N)]
    # remove the conjugate tone's leakage exactly
    Sy = K.dirichlet_ref(-g[0], ky, M)[0]
    Sx = K.dirichlet_ref(-g[1], kx, N)[0]
    Y = Y - np.conj(alpha) * np.outer(Sy, Sx)
    return Y, ky, kx, ky0, kx0


def test_window_ml_recovers_a_noiseless_tone_exactly():
    M, N = 48, 64
    g = (0.1731, 0.2213)
    alpha = 0.7 * np.exp(0.4j)
    Y, ky, kx, ky0, kx0 = _tone_window(M, N, g, alpha)
    wy = np.ones(ky.size, bool)
    wx = np.ones(kx.size, bool)
    gy, gx, al, J, it, ok = K.refine_tone_window_nb(Y, ky, kx, wy, wx, M, N, ky0 / M, kx0 / N, 30)
    assert ok
    assert abs(gy - g[0]) < 1e-9 and abs(gx - g[1]) < 1e-9
    assert abs(al - alpha) < 1e-7


def test_window_ml_matches_reference_optimiser_on_noisy_data():
    M, N = 40, 44
    g = (0.2062, -0.1419)
    Y, ky, kx, ky0, kx0 = _tone_window(M, N, g, 0.5 + 0.2j, noise=1.0, seed=5)
    wy = (ky % M > 1) & (ky % M < M - 1)
    wx = (kx % N > 1) & (kx % N < N - 1)
    got = K.refine_tone_window_nb(Y, ky, kx, wy, wx, M, N, ky0 / M, kx0 / N, 50)
    ref = K.refine_tone_window_ref(Y, ky, kx, wy, wx, M, N, ky0 / M, kx0 / N)
    assert abs(got[0] - ref[0]) * M < 1e-5 and abs(got[1] - ref[1]) * N < 1e-5
    assert abs(got[2] - ref[2]) < 1e-4 * abs(ref[2])
    assert got[3] >= ref[3] * (1 - 1e-9)


def test_pixel_fit_matches_scipy_least_squares():
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[:41, :41]
    m = (xx - 20) ** 2 + (yy - 20) ** 2 <= 20**2
    xi, yi = xx[m].astype(np.int64), yy[m].astype(np.int64)
    xc, yc = 20.3, 19.8
    g = (0.1234, -0.0871)
    R = 0.3 + 0.8 * np.cos(2 * np.pi * (g[0] * (xi - xc) + g[1] * (yi - yc)) + 0.6) + 0.5 * rng.standard_normal(xi.size)
    gx, gy, a, b, c, JTJ, rss, ok = K.fit_tone_pixels_nb(R, xi, yi, xc, yc, 0.12, -0.09, 30)
    ref = K.fit_tone_pixels_ref(R, xi, yi, xc, yc, 0.12, -0.09)
    assert ok
    np.testing.assert_allclose([gx, gy, a, b, c], ref, rtol=1e-6, atol=1e-8)
