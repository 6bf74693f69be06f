"""Out-of-range arguments of the public functions are ParameterError (a ValueError) naming the parameter (#17)."""

from __future__ import annotations

import numpy as np
import pytest

from latticefit.errors import LatticefitError, ParameterError, check_param


@pytest.fixture(scope="module")
def lattice_image():
    from latticefit import synth

    mg, _truth = synth.perovskite_111(shape=(128, 128), noise_sigma=0.5, seed=1)
    return mg


@pytest.fixture(scope="module")
def dots_image():
    from latticefit import synth

    mg, _truth = synth.haadf_dots((128, 128), diameter_nm=4.0, n_particles=4, n_touching_pairs=0, seed=1)
    return mg


def _raises(name, call):
    with pytest.raises(ParameterError) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, LatticefitError)
    msg = str(info.value)
    assert name in msg and "must be" in msg and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize(
    ("name", "value", "range_text"),
    [
        ("max_spots", -3, ">= 1"),
        ("max_spots", 2.5, ">= 1"),
        ("p_false", 2, "in (0, 1)"),
        ("p_false", 0, "in (0, 1)"),
        ("window_bins", 0, ">= 1"),
        ("min_snr", float("nan"), ">= 0"),
        ("min_snr", -1, ">= 0"),
        ("workers", 1.5, "integer"),
    ],
)
def test_measure_lattice_refuses_out_of_range_values(lattice_image, name, value, range_text):
    from latticefit.lattice import measure_lattice

    msg = _raises(name, lambda: measure_lattice(lattice_image, systematic="none", **{name: value}))
    assert range_text in msg and repr(value) in msg


@pytest.mark.parametrize(("name", "value"), [("z_threshold", 0), ("match_tolerance", 1.5), ("match_tolerance", -0.1)])
def test_compare_regions_refuses_out_of_range_values(lattice_image, name, value):
    from latticefit.lattice import compare_regions

    _raises(name, lambda: compare_regions(lattice_image, (0, 0, 64, 64), (64, 64, 128, 128), **{name: value}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("background_scale_nm", -5),
        ("background_scale_nm", 0),
        ("false_alarms", 0),
        ("false_alarms", float("inf")),
        ("probe_sigma_nm", -0.1),
        ("n_boot", 0),
        ("seed", -1),
        ("seed", 0.5),
    ],
)
def test_find_particles_refuses_out_of_range_values(dots_image, name, value):
    from latticefit.particles import find_particles

    _raises(name, lambda: find_particles(dots_image, diameter_range_nm=(2, 8), **{name: value}))


def test_strain_map_refuses_a_non_positive_resolution(lattice_image):
    from latticefit.gpa import strain_map

    _raises("sigma_nm", lambda: strain_map(lattice_image, sigma_nm=-1.0))


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("max_index", {"max_index": 0}),
        ("max_index", {"max_index": 1000}),
        ("scale_range", {"scale_range": (1.2, 0.9)}),
        ("scale_range", {"scale_range": 5}),
        ("beam_energy_kv", {"beam_energy_kv": -300}),
        ("tol_d", {"tol_d": 0}),
        ("tol_angle_deg", {"tol_angle_deg": -1}),
        ("n_alternatives", {"n_alternatives": -2}),
    ],
)
def test_indexing_refuses_out_of_range_values(name, kw):
    from latticefit.crystal import index_spots

    g = np.array([[2.5608, 0.0], [0.0, 2.5608]])
    _raises(name, lambda: index_spots(g, phases=["SrTiO3"], **kw))


def test_calibrate_checks_its_indexing_arguments_before_measuring(lattice_image, monkeypatch):
    from latticefit.crystal import calibrate
    from latticefit.lattice import _measure

    monkeypatch.setattr(_measure, "measure_lattice", lambda *a, **k: pytest.fail("measured before the check"))
    _raises("max_index", lambda: calibrate(lattice_image, None, "SrTiO3", max_index=-1))


@pytest.mark.parametrize(("name", "kw"), [("n_boot", {"n_boot": 0}), ("seed", {"seed": -3}), ("level", {"level": 1})])
def test_size_statistics_refuse_out_of_range_values(name, kw):
    from latticefit.particles._sizestats import rsd_bootstrap_ci, size_summary

    d = [4.0, 4.2, 3.8, 4.1]
    _raises(name, lambda: rsd_bootstrap_ci(d, **kw))
    if name != "level":
        _raises(name, lambda: size_summary(d, **kw))


def test_a_fractional_frame_is_refused(lattice_image):
    from latticefit.micrograph import select_frame

    stack = np.stack([lattice_image.data, lattice_image.data])
    _raises("frame", lambda: select_frame(stack, 1.5))
    assert select_frame(stack, np.int64(1)) is not None and select_frame(stack, 1.0).shape == stack.shape[1:]


def test_check_param_passes_good_values_and_optional_none():
    assert check_param("x", np.float32(0.5), lo=0, hi=1) == 0.5
    assert check_param("n", 3.0, lo=1, integer=True) == 3 and isinstance(check_param("n", 3.0, integer=True), int)
    assert check_param("s", None, lo=0, optional=True) is None
    for bad in (None, True, "3", float("nan")):
        with pytest.raises(ParameterError, match="^x must be"):
            check_param("x", bad, lo=0)
