"""Foundation: units, Micrograph, ROI, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latticefit import Micrograph, as_micrograph
from latticefit.errors import (
    CalibrationError,
    DataShapeError,
    InvalidDataError,
    LatticefitError,
    RegionError,
    UnitError,
)
from latticefit.roi import Circle, Mask, Rect, extract, parse_circle, parse_rect
from latticefit.units import is_empty_unit, parse_length_nm, pixel_size_pair_nm, unit_to_nm

UNIT_TABLE = [
    ("m", 1e9),
    ("um", 1e3),
    ("µm", 1e3),
    ("\u03bcm", 1e3),
    ("nm", 1.0),
    ("n_m", 1.0),
    ("NM", 1.0),
    ("A", 0.1),
    ("Å", 0.1),
    ("\u212b", 0.1),
    ("angstrom", 0.1),
    ("pm", 1e-3),
    ("mm", 1e6),
]


@pytest.mark.parametrize("unit,factor", UNIT_TABLE)
def test_unit_table(unit, factor):
    assert unit_to_nm(unit) == pytest.approx(factor)


@pytest.mark.parametrize("unit", ["", None, "<undefined>", " "])
def test_empty_units(unit):
    assert is_empty_unit(unit)
    with pytest.raises(UnitError):
        unit_to_nm(unit)


def test_unknown_unit_is_one_line_error():
    with pytest.raises(UnitError, match="unknown length unit 'furlong'"):
        unit_to_nm("furlong")


@pytest.mark.parametrize(
    "text,nm",
    [
        ("0.021nm", 0.021),
        ("0.21A", 0.021),
        ("0.21 Å", 0.021),
        ("21pm", 0.021),
        ("0.021", 0.021),
        ("2.1e-11m", 0.021),
        ("0.000021um", 0.021),
        (0.5, 0.5),
    ],
)
def test_parse_length(text, nm):
    assert parse_length_nm(text) == pytest.approx(nm)


@pytest.mark.parametrize("bad", ["abc", "-1nm", "0", "1 furlong", "nm", ""])
def test_parse_length_rejects(bad):
    with pytest.raises(CalibrationError):
        parse_length_nm(bad)


@given(
    value=st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
    unit=st.sampled_from([u for u, _ in UNIT_TABLE]),
    space=st.sampled_from(["", " ", "  "]),
)
def test_parse_length_roundtrip(value, unit, space):
    text = f"{value!r}{space}{unit}"
    assert parse_length_nm(text) == pytest.approx(value * unit_to_nm(unit), rel=1e-12)


@given(st.text(max_size=12))
def test_parse_length_never_crashes(text):
    try:
        v = parse_length_nm(text)
    except CalibrationError:
        return
    assert v > 0 and np.isfinite(v)


def test_pixel_size_pair():
    assert pixel_size_pair_nm(("2A", "1nm")) == pytest.approx((0.2, 1.0))
    assert pixel_size_pair_nm(0.1) == (0.1, 0.1)
    with pytest.raises(CalibrationError):
        pixel_size_pair_nm((1, 2, 3))


def test_micrograph_float32_and_calibration():
    mg = Micrograph(np.arange(64 * 32, dtype=np.uint16).reshape(64, 32), pixel_size_nm=(0.2, 0.1), source="a.dm4")
    assert mg.data.dtype == np.float32 and mg.data.flags.c_contiguous
    assert mg.shape == (64, 32) and mg.pixel_size_nm == (0.2, 0.1)
    assert mg.original_dtype == "uint16"
    s = mg.summary()
    assert s["shape"] == [64, 32] and s["pixel_size_nm"] == [0.2, 0.1]


def test_micrograph_errors_name_the_file():
    with pytest.raises(InvalidDataError, match=r"^x\.dm3: every pixel is NaN"):
        Micrograph(np.full((8, 8), np.nan), source="x.dm3")
    with pytest.raises(DataShapeError, match="x.tif"):
        Micrograph(np.zeros((2, 3, 4)), source="x.tif")
    with pytest.raises(CalibrationError):
        Micrograph(np.zeros((8, 8)), pixel_size_nm=(0, 1))


def test_partial_nan_is_filled_with_warning():
    a = np.ones((16, 16))
    a[3, 4] = np.nan
    with pytest.warns(UserWarning, match="1 NaN"):
        mg = Micrograph(a)
    assert np.isfinite(mg.data).all() and mg.n_invalid_pixels == 1


def test_as_micrograph_frames():
    stack = np.stack([np.full((8, 8), i, float) for i in range(3)])
    with pytest.raises(DataShapeError, match="frame="):
        as_micrograph(stack, 0.1)
    assert as_micrograph(stack, 0.1, frame="mean").data.mean() == pytest.approx(1.0)
    assert as_micrograph(stack, 0.1, frame="sum").data.mean() == pytest.approx(3.0)
    assert as_micrograph(stack, 0.1, frame=-1).data.mean() == pytest.approx(2.0)
    with pytest.raises(DataShapeError, match="out of range"):
        as_micrograph(stack, 0.1, frame=5)
    with pytest.raises(DataShapeError, match="1-D"):
        as_micrograph(np.zeros(10), 0.1)
    with pytest.raises(DataShapeError, match="4-D"):
        as_micrograph(np.zeros((2, 2, 8, 8)), 0.1)


def test_uncalibrated_requires_pixel_size():
    mg = as_micrograph(np.zeros((8, 8)))
    assert not mg.calibrated
    with pytest.raises(CalibrationError, match="--pixel-size"):
        mg.require_calibration()


def test_signal_roundtrip():
    rng = np.random.default_rng(0)
    mg = Micrograph(rng.random((20, 30)), pixel_size_nm=(0.02, 0.03), title="HAADF", mode="HAADF", beam_energy_kv=300.0)
    s = mg.to_signal()
    assert s.axes_manager.signal_axes[0].scale == pytest.approx(0.03)
    assert s.axes_manager.signal_axes[1].scale == pytest.approx(0.02)
    back = Micrograph.from_signal(s)
    np.testing.assert_array_equal(back.data, mg.data)
    assert back.pixel_size_nm == pytest.approx((0.02, 0.03))
    assert back.beam_energy_kv == 300.0 and back.mode == "HAADF" and back.title == "HAADF"
    assert as_micrograph(s, pixel_size="1A").pixel_size_nm == (0.1, 0.1)


def test_signal_in_angstrom_is_normalised():
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.zeros((10, 10)))
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 2.0, "Å"
    assert as_micrograph(s).pixel_size_nm == pytest.approx((0.2, 0.2))
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 0.5, ""
    with pytest.warns(UserWarning, match="assuming nm"):
        assert as_micrograph(s).pixel_size_nm == pytest.approx((0.5, 0.5))


def test_roi_shapes():
    shape = (100, 120)
    assert Rect(10, 20, 40, 30).bounds(shape) == (20, 50, 10, 50)
    assert Rect(10, 20, 40, 30).mask(shape).sum() == 1200
    c = Circle(60, 50, 20)
    assert abs(c.mask(shape).sum() - np.pi * 400) < 60
    with pytest.raises(RegionError, match="outside"):
        Rect(100, 0, 40, 40).bounds(shape)
    with pytest.raises(RegionError, match="outside"):
        Circle(5, 5, 20).bounds(shape)
    sub, w, off = extract(np.zeros(shape), c)
    assert off == (30, 40) and w.shape == sub.shape and w.sum() == c.mask(shape).sum()
    with pytest.raises(RegionError, match="smaller than the 32 px"):
        extract(np.zeros(shape), Rect(0, 0, 20, 20))
    m = Mask(c.mask(shape))
    assert m.bounds(shape) == c.bounds(shape)
    assert parse_rect("1,2,3,4") == Rect(1, 2, 3, 4) and parse_circle("1,2,3.5") == Circle(1, 2, 3.5)
    with pytest.raises(RegionError):
        parse_rect("1,2,3")


def test_errors_are_one_line():
    e = LatticefitError("bad\nthing  here", source="f.dm4")
    assert str(e) == "f.dm4: bad thing here"
