"""Fig. 4 report: publication fonts, blank images, indexing of a miscalibrated image."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latticefit import Micrograph
from latticefit import _plotstyle as ps  # noqa: E402
from latticefit.cli import main  # noqa: E402
from latticefit.report import build_lattice_report  # noqa: E402
from latticefit.synth import _core as synth  # noqa: E402


@pytest.mark.parametrize("ext", ["pdf", "svg"])
def test_saved_figures_keep_text_as_text(tmp_path, ext):
    # the figure is drawn in the style context but saved outside it (as LatticeReport.save does)
    with ps.figure_style():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.set_title("d = 4.195 ± 0.003 Å")
    ps.save_figure(fig, tmp_path / f"f.{ext}")
    plt.close(fig)
    raw = (tmp_path / f"f.{ext}").read_bytes()
    if ext == "pdf":
        assert (b"/FontFile2" in raw or b"/TrueType" in raw) and b"/Type3" not in raw
    else:
        assert b"<text" in raw
    assert (tmp_path / "f.png").exists()


def _blank_hspy(path, value):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.full((192, 192), value, np.float32))
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 0.02, "nm"
    s.save(path, overwrite=True)


@pytest.mark.parametrize("value", [0.0, 7.0])
def test_cli_report_on_blank_image_warns_instead_of_crashing(tmp_path, capsys, value):
    f = tmp_path / "blank.hspy"
    _blank_hspy(f, value)
    rc = main(["report", str(f), "-o", str(tmp_path / "x.pdf")])
    err = capsys.readouterr().err
    assert "unexpected" not in err
    assert rc == 2, err  # nothing measured: not a success (issue 17), but the outputs are written
    assert err.count("latticefit: error") == 1 and "blank.hspy" in err and "nothing measured" in err
    data = json.loads((tmp_path / "x.json").read_text())
    assert all(len(r["lattice"]["spots"]) == 0 for r in data["regions"].values())
    assert any("blank" in n or "no lattice" in n for n in data["notes"])


def test_miscalibrated_image_is_indexed_with_a_free_scale_and_says_so():
    mg, truth = synth.cubic_001(shape=(256, 256), pixel_size_nm=0.04, noise_sigma=0.3, seed=1)
    wrong = Micrograph(data=mg.data, pixel_size_nm=(0.04 * 1.05, 0.04 * 1.05), source="miscal.tif")
    kw = dict(roi_matrix=(0, 0, 128, 128), roi_dot=(190, 190, 60), phases=["SrTiO3"])
    with pytest.warns(Warning, match=r"matched 0/\d+ spots at the file calibration.*k = 0\.95"):
        rep = build_lattice_report(wrong, **kw)
    assert rep.regions["matrix"].hkl, "the free-scale retry indexes the spots"
    assert rep.regions["matrix"].indexing.free_scale
    assert abs(rep.regions["matrix"].indexing.scale_factor - 1 / 1.05) < 0.01
    assert any("free scale" in n for n in rep.notes)
