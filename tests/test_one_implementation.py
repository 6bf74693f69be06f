"""One implementation per concept (issue #10 point 4), each with a property test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latticefit._plotstyle import format_uncertain, round_to_uncertainty
from latticefit.crystal import PHASE_LIBRARY, as_phase, is_cif_path
from latticefit.lattice import parse_d_range


@given(
    st.text(min_size=0, max_size=30).filter(lambda s: "\x00" not in s), st.sampled_from([".cif", ".CIF", ".Cif", ""])
)
def test_cif_or_phase_name_is_decided_by_the_extension_only(stem, ext):
    assert is_cif_path(stem + ext) == (ext != "" or stem.lower().endswith(".cif"))


@pytest.mark.parametrize("name", sorted(PHASE_LIBRARY))
def test_every_library_phase_resolves_by_name_and_is_idempotent(name):
    ph = as_phase(name)
    assert as_phase(ph) is ph
    assert as_phase(name.lower()).name == ph.name


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.floats(min_value=1e-6, max_value=1e5, allow_nan=False)
)
def test_value_pm_error_is_rounded_to_the_uncertainty(value, err):
    v, e = round_to_uncertainty(value, err)
    # the error keeps 1-2 significant digits and the value is rounded at the same decimal place
    digits = e.replace("-", "").replace(".", "").lstrip("0")
    if "." not in e:  # "100": trailing zeros of an integer are not significant
        digits = digits.rstrip("0") or "0"
    assert 1 <= len(digits) <= 2
    dec_e = len(e.split(".")[1]) if "." in e else 0
    dec_v = len(v.split(".")[1]) if "." in v else 0
    assert dec_e == dec_v
    unit = 10.0**-dec_e if dec_e else 10.0 ** (len(e) - len(e.rstrip("0")))  # the error's last digit
    assert abs(float(v) - value) <= 0.5 * unit * (1 + 1e-9) + 1e-9 * abs(value)
    assert abs(float(e) - err) <= 0.5 * unit * (1 + 1e-9)
    assert "±" in format_uncertain(value, err)


@given(
    st.floats(min_value=0.3, max_value=50),
    st.floats(min_value=0.3, max_value=50),
    st.sampled_from(["{a},{b}", "{a}-{b}A", "{a}-{b}", "{a},{b}A"]),
)
def test_d_range_grammar(a, b, form):
    lo, hi = sorted((round(a, 3), round(b, 3)))
    if math.isclose(lo, hi):
        return
    assert parse_d_range(form.format(a=lo, b=hi)) == pytest.approx((lo, hi))


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), st.floats(min_value=1e-5, max_value=9.0, allow_nan=False)
)
def test_two_digit_errors_keep_two_significant_digits_and_the_value_the_same_place(value, err):
    from latticefit._format import format_two_digit

    v, e = format_two_digit(value, err).split(" ± ")
    digits = e.replace(".", "").lstrip("0")
    assert 1 <= len(digits) <= 2  # 2, or 1 after a carry to a round number (0.996 -> 1.0)
    decimals = len(e.split(".")[1]) if "." in e else 0
    assert (len(v.split(".")[1]) if "." in v else 0) == decimals  # the value is rounded at the error's place
    half_unit = 0.5 * 10.0**-decimals
    assert abs(float(e) - err) <= 1.000001 * half_unit
    assert abs(float(v) - value) <= 1.000001 * half_unit + 1e-9 * abs(value)


def test_every_value_pm_error_in_the_package_goes_through_one_formatter():
    """No module formats ``± {e:.Nf}`` by hand: the tables, figures and summaries call latticefit._format."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "latticefit"
    hand = re.compile(r"log10\(.*\n[^\n]*±")
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py") if hand.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=2**31 - 1),
    st.floats(min_value=0.0, max_value=0.01),
)
def test_spot_matching_recovers_a_permuted_sign_flipped_copy(n, seed, jitter):
    """One greedy matcher (lattice._match) serves compare_regions and the error-budget tiles."""
    import numpy as np
    import pandas as pd

    from latticefit.lattice._compare import match_reflections
    from latticefit.lattice._match import match_greedy
    from latticefit.lattice._systematic import _match

    rng = np.random.default_rng(seed)
    ang = np.linspace(0, np.pi, n, endpoint=False) + rng.uniform(0, np.pi)  # >= 22.5 deg apart, mod pi
    g_ref = np.c_[np.cos(ang), np.sin(ang)] * rng.uniform(2.0, 6.0, (n, 1))
    perm = rng.permutation(n)
    flips = rng.choice([-1.0, 1.0], n)
    g = flips[:, None] * g_ref[perm] * (1 + jitter)
    index, sign = match_greedy(g_ref, g, 0.05)
    assert np.array_equal(perm[index], np.arange(n))
    assert np.array_equal(sign, flips[index])
    assert np.array_equal(_match(g_ref, g, 0.05)[0], index)
    cols = ["gx_inv_nm", "gy_inv_nm"]
    pairs = match_reflections(pd.DataFrame(g_ref, columns=cols), pd.DataFrame(g, columns=cols), 0.05)
    assert pairs == [(i, int(j)) for i, j in enumerate(index)]
