"""Issue #11: ``--keep-unindexed`` exists on every command whose warnings offer it.

A synthetic [001] lattice with one extra fringe off the lattice (and its mixing products) has spots that the
fitted lattice drops with a warning that offers ``--keep-unindexed``. The commands that measure a lattice
either take that option or say why the dropped spots do not matter to them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latticefit import synth
from latticefit.cli import build_parser
from latticefit.lattice._steps import KEEP_UNINDEXED_HINT
from latticefit.micrograph import Micrograph


@pytest.fixture(scope="module")
def off_lattice_image():
    mg, _ = synth.cubic_001((256, 256), pixel_size_nm=0.02, noise_sigma=0.3)
    y, x = np.mgrid[:256, :256]
    data = mg.data + 0.8 * np.cos(2 * np.pi * (0.137 * x + 0.051 * y))
    return Micrograph(data.astype(np.float32), pixel_size_nm=(0.02, 0.02), source="extra.tif")


def _messages(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args, **kw)
    return [str(w.message) for w in caught]


def test_measure_lattice_offers_the_option(off_lattice_image):
    from latticefit.lattice import measure_lattice

    msgs = _messages(measure_lattice, off_lattice_image)
    assert any("on no lattice were dropped" in m and KEEP_UNINDEXED_HINT in m for m in msgs), msgs
    assert not any(
        "on no lattice were dropped" in m for m in _messages(measure_lattice, off_lattice_image, keep_unindexed=True)
    )


def test_every_lattice_command_takes_the_option():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    takes = {name for name, p in sub.choices.items() if any("--keep-unindexed" in a.option_strings for a in p._actions)}
    assert {"lattice", "index", "report", "batch", "gpa"} <= takes, takes


def test_gpa_auto_and_calibrate_do_not_offer_an_option_they_cannot_use(off_lattice_image):
    from latticefit.crystal import calibrate
    from latticefit.gpa import choose_reflections

    assert not any(
        KEEP_UNINDEXED_HINT in m or "were dropped" in m for m in _messages(choose_reflections, off_lattice_image)
    )
    msgs = _messages(calibrate, off_lattice_image, None, "SrTiO3", tiles=False)
    dropped = [m for m in msgs if "were dropped" in m]
    assert dropped and all("cannot calibrate it" in m and "--keep-unindexed" not in m for m in dropped), msgs
