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
