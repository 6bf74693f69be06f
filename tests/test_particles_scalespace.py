"""The streamed scale space (three planes held) finds what the whole stack finds (#17, bounded memory)."""

from __future__ import annotations

import numpy as np
import pytest

from latticefit.particles._scalespace import (
    half_maxima,
    half_maxima_ref,
    log_planes,
    log_stack_ref,
    next_check,
    next_check_ref,
    scan_scale_space,
    scan_stack_ref,
)


@pytest.fixture(scope="module")
def field():
    from latticefit import synth

    mg, _truth = synth.haadf_dots((200, 176), diameter_nm=3.0, n_particles=12, n_touching_pairs=2, seed=5)
    return mg.data - np.median(mg.data)


def test_log_planes_match_the_full_size_transform(field):
    sigmas = np.geomspace(1.5, 12.0, 8)
    ref = log_stack_ref(field, sigmas)
    got = np.stack(list(log_planes(field, sigmas)))
    scale = np.abs(ref).max()
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5 * scale


def test_streamed_maxima_offsets_and_single_scale_maxima_equal_the_whole_stack(field):
    sigmas = np.geomspace(1.5, 12.0, 8)
    L = log_stack_ref(field, sigmas)
    thr = 0.2 * np.abs(L).reshape(len(L), -1).max(axis=1)
    seen = []
    cand, offs, single = scan_scale_space(iter(L), len(L), lambda k, p: (seen.append(k), thr[k])[1], single_scale=True)
    rc, roffs, rsingle = scan_stack_ref(L, thr, single_scale=True)
    assert seen == list(range(len(L)))
    assert len(cand) > 5 and np.array_equal(cand, rc)
    for a, b in zip(offs, roffs):
        assert np.allclose(a, b)
    assert len(single) >= len(cand) and np.array_equal(single, rsingle)


@pytest.mark.parametrize("has_prev", [True, False])
def test_half_maxima_and_next_check_kernels_equal_their_references(has_prev):
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(size=(40, 37)).astype(np.float32) for _ in range(3))
    b[10, 10] = b[10, 11] = 9.0  # a plateau gives one point
    got = half_maxima(a, b, has_prev, 1.0)
    ref = half_maxima_ref(a, b, has_prev, 1.0)
    assert len(got) > 3 and np.array_equal(got, ref)
    i, j, v = got[:, 0].astype(np.int64), got[:, 1].astype(np.int64), got[:, 2]
    keep = next_check(c, i, j, v)
    assert 0 < keep.sum() < len(keep) or len(keep) < 3
    assert np.array_equal(keep, next_check_ref(c, i, j, v))


def test_find_particles_allocates_a_bounded_multiple_of_the_image():
    # issue 17: `particles` needed ~62x the float32 image (8192²: 15.9 GB) because the LoG stack held one
    # image per scale. Traced numpy allocations at 1024²: 45x before the streamed scale space, 19x after
    # (8192² by /usr/bin/time: 9.4x in resident memory, interpreter included).
    import tracemalloc
    import warnings

    from latticefit import synth
    from latticefit.particles import find_particles

    mg, _truth = synth.haadf_dots((1024, 1024), diameter_nm=7.0, n_particles=40, n_touching_pairs=2, seed=2)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = find_particles(mg)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.summary["n"] >= 30
    assert peak < 25 * mg.data.nbytes, peak / mg.data.nbytes


# ------------------------------------------------------------------ the pyramid (#13/#15 speed)
def test_one_octave_is_the_plain_streamed_scan(field):
    from latticefit.particles._pyramid import scan_octaves

    sigmas = np.geomspace(1.5, 5.5, 7)  # all below 6 px: one octave, full resolution
    thr = lambda k, p, d=1: 0.05 * float(np.abs(p).max())  # noqa: E731
    got = scan_octaves(field, sigmas, thr, single_scale=True)
    ref = scan_scale_space(log_planes(field, sigmas), len(sigmas), thr, single_scale=True)
    assert len(got[0]) > 5 and np.array_equal(got[0], ref[0])
    for a, b in zip(got[1], ref[1]):
        assert np.array_equal(a, b)
    assert np.array_equal(got[2][:, :4], ref[2]) and np.all(got[2][:, 4] == 1)


def test_octaves_find_the_full_resolution_maxima():
    """Dots of 8-60 px over sigma 2.5-40 px (four octaves): the same maxima as one full-resolution stack."""
    from latticefit.particles._pyramid import octave_factors, scan_octaves

    rng = np.random.default_rng(4)
    img = np.zeros((512, 512), np.float32)
    yy, xx = np.mgrid[:512, :512]
    centres = [(60 + 130 * (n // 4), 60 + 130 * (n % 4), r) for n, r in enumerate(np.geomspace(4, 30, 16))]
    for cy, cx, r in centres:
        img += np.sqrt(np.clip(r * r - (yy - cy) ** 2 - (xx - cx) ** 2, 0, None)) / r
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    sigmas = np.geomspace(2.5, 40.0, 16)
    assert len(set(octave_factors(sigmas))) == 4
    L = log_stack_ref(img, sigmas)
    thr = 0.3 * np.abs(L).max()
    ref, roffs, _ = scan_stack_ref(L, np.full(len(sigmas), thr))
    seen = []
    got, offs, single = scan_octaves(img, sigmas, lambda k, p, d: (seen.append(k), thr)[1], single_scale=True)
    assert seen == list(range(len(sigmas)))  # one threshold per scale, in order
    assert 14 <= len(ref) == len(got)
    ry, rx = ref[:, 1] + roffs[0], ref[:, 2] + roffs[1]
    gy, gx = got[:, 1] + offs[0], got[:, 2] + offs[1]
    for n in range(len(ref)):
        m = np.argmin(np.hypot(gy - ry[n], gx - rx[n]))
        s = sigmas[int(ref[n, 0])]
        assert np.hypot(gy[m] - ry[n], gx[m] - rx[n]) < 0.05 * s + 0.3
        assert abs(got[m, 0] + offs[2][m] - ref[n, 0] - roffs[2][n]) < 0.15
        assert abs(got[m, 3] / ref[n, 3] - 1) < 0.03
    assert single.shape[1] == 5 and set(single[:, 4]) == set(octave_factors(sigmas))


def test_near_top_with_one_pixel_is_the_3x3_maximum_filter():
    from scipy import ndimage as ndi

    from latticefit.particles._crowd import near_top

    rng = np.random.default_rng(0)
    tops = rng.random((61, 47)) > 0.97
    i, j = np.nonzero(np.ones_like(tops))
    got = near_top(tops, i, j, np.ones(i.size, int))
    assert np.array_equal(got, ndi.maximum_filter(tops, size=3)[i, j])
