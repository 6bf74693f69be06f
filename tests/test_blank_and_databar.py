"""An FEI data bar is not image data; a blank image has nothing to find (and says so at once)."""

import numpy as np
import pytest

from latticefit import io
from latticefit.errors import LatticefitWarning
from latticefit.micrograph import Micrograph

HELIOS = "loaders/FEI-Helios-Ebeam-16bits.tif"


def test_fei_databar_rows_are_left_out(realfile):
    with pytest.warns(LatticefitWarning, match="FEI data bar .29 rows below the 442 scanned rows"):
        mg = io.load(realfile(HELIOS))
    assert mg.data.shape == (442, 512)
    assert mg.pixel_size_nm == pytest.approx((3372.4, 3372.4))


def test_the_databar_is_cropped_only_when_the_metadata_agree():
    import hyperspy.api as hs

    from latticefit.io._signals import databar_rows

    s = hs.signals.Signal2D(np.zeros((471, 512), np.float32))
    assert databar_rows(s) == 0  # no FEI metadata
    s.original_metadata.add_dictionary(
        {"fei_metadata": {"Image": {"ResolutionY": 442}, "PrivateFei": {"DatabarHeight": 29}}}
    )
    assert databar_rows(s) == 29
    s.original_metadata.set_item("fei_metadata.PrivateFei.DatabarHeight", 30)  # inconsistent: keep every row
    assert databar_rows(s) == 0


def test_blank_image_has_no_lattice():
    from latticefit.lattice._plausibility import is_featureless

    assert "blank" in is_featureless(np.zeros((128, 128)))
    assert "blank" in is_featureless(np.full((128, 128), 7.0))


def test_blank_reason():
    assert Micrograph(np.full((32, 32), 3.0), pixel_size_nm=(0.1, 0.1)).blank_reason() == (
        "the image is blank (every pixel is 3)"
    )
    assert Micrograph(np.random.default_rng(0).normal(size=(32, 32)), pixel_size_nm=(0.1, 0.1)).blank_reason() is None


def test_find_particles_on_a_blank_image_says_it_is_blank():
    from latticefit import find_particles

    mg = Micrograph(np.zeros((512, 512), np.float32), pixel_size_nm=(0.1, 0.1), source="blank.dm4")
    with pytest.warns(LatticefitWarning, match=r"blank.dm4: the image is blank \(every pixel is 0\): no particles"):
        res = find_particles(mg)
    assert len(res) == 0 and res.summary["n"] == 0


def test_particles_cli_on_the_blank_helios_field(realfile):
    import subprocess
    import sys

    code = "import sys; from latticefit.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "particles", str(realfile(HELIOS))], capture_output=True, text=True
    )
    assert "the image is blank (every pixel is 0): no particles found" in proc.stderr
    assert "data bar" in proc.stderr and "Traceback" not in proc.stderr
    assert "0 particles detected" in proc.stdout


def test_a_blank_image_skips_the_scale_space(monkeypatch):
    """Issue #15 early exit: nothing to find on a constant image, so no LoG plane is computed."""
    from latticefit import find_particles
    from latticefit.particles import _detect

    def fail(*a, **k):
        raise AssertionError("the scale space was scanned on a blank image")

    monkeypatch.setattr(_detect, "scan_octaves", fail)
    mg = Micrograph(np.full((1024, 1024), 5.0, np.float32), pixel_size_nm=(0.1, 0.1), source="blank.tif")
    with pytest.warns(LatticefitWarning, match="the image is blank"):
        res = find_particles(mg)
    assert len(res) == 0 and res.summary["n"] == 0
