"""Issue #14: an embedded dot that changes the fringes is not called different from the matrix by its bias.

abTEM multislice images of PbS (Fm-3m, +0.05 % vs the matrix) embedded in a 10 nm MAPbBr3 slab: the FFT Δd/d of
the dot read -0.52 % (z = -3.8, [111]) and -0.80 % (z = -2.6, [001]) with the noise and image-systematic errors
alone. The dot's reflections change amplitude family by family (PbS has no {100}, {110}, {210}): the fringe
change is recognised and the 1 % projection systematic is added. Without a dot, the same region is unchanged.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from latticefit.io import load
from latticefit.report import measure_dots
from latticefit.report._projection import FRINGE_CHANGE_LN, fringe_change

MULTISLICE = Path(__file__).parent / "data" / "multislice"


def _dots(name, **kw):
    p = MULTISLICE / name
    if not p.exists():
        pytest.skip(f"multislice fixture {name} missing (scripts/make_multislice_fixtures.py makes it)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure_dots(load(p), dots=[(256, 256, 90)], gpa=False, **kw)


@pytest.mark.parametrize("name", ["mapbbr3_001_pbs_dot_hrtem.tif", "mapbbr3_111_pbs_dot_hrtem.tif"])
def test_a_matched_embedded_dot_is_not_called_different(name):
    st = _dots(name)
    row = st.table.iloc[0]
    assert row.fringe_change_rms_ln > FRINGE_CHANGE_LN and row.projection_err_percent == 1.0, row.to_dict()
    assert not st.summary["significant"], st.verdict()
    assert abs(st.summary["mean_rel_diff_percent"] - 0.0506) < 2 * st.summary["se_percent"]
    assert "change the fringes" in " ".join(st.notes) and "biases its FFT spacing" in row.note


@pytest.mark.parametrize("name", ["mapbbr3_001_hrtem.tif", "mapbbr3_111_hrtem.tif"])
def test_the_same_region_without_a_dot_keeps_its_statistical_error(name):
    st = _dots(name)
    row = st.table.iloc[0]
    assert row.fringe_change_rms_ln < 0.15 and row.projection_err_percent == 0.0, row.to_dict()
    assert row.rel_diff_err_percent < 0.1 and not st.summary["significant"]


def test_fringe_change_ignores_a_common_contrast_change():
    t = pd.DataFrame({"spot_a": [0, 1, 2, 3], "spot_b": [0, 1, 2, 3]})
    a = pd.DataFrame({"amplitude": [1.0, 2.0, 4.0, 3.0]})
    assert fringe_change(t, a, a.assign(amplitude=a.amplitude * 0.3)) == pytest.approx(0.0, abs=1e-12)
    assert fringe_change(t, a, a.assign(amplitude=[0.3, 2.0, 4.0, 9.0])) > FRINGE_CHANGE_LN
    assert fringe_change(t.head(2), a, a) != fringe_change(t.head(2), a, a)  # NaN: fewer than 3 reflections
