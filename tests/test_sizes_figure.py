"""Fig. 5 size figure: formatting, the figure's labels carry the measured statistics, files, CLI."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latticefit.cli import main
from latticefit.report import format_mean_sd, format_rsd, histogram_errors, size_figure
from latticefit.synth import _core as synth

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


def test_format_mean_sd_and_rsd():
    assert format_mean_sd(6.9812, 0.5234) == "6.98 ± 0.52 nm"
    assert format_mean_sd(3.9871, 0.0312) == "3.987 ± 0.031 nm"
    assert format_mean_sd(12.34, 1.234) == "12.3 ± 1.2 nm"
    assert format_mean_sd(4.0, float("nan")) == "4.00 nm"
    assert format_rsd(7.512, (6.43, 8.81)) == "RSD = 7.5% (95% CI 6.4–8.8%)"
    assert format_rsd(7.512, (None, None)) == "RSD = 7.5%"


def test_histogram_errors_are_poisson():
    d = np.array([1.0, 1.1, 1.2, 2.5, 2.6, 3.9])
    edges = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(histogram_errors(d, edges), np.sqrt([3, 2, 1]))
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 3.0])
    np.testing.assert_allclose(histogram_errors(d, edges, w), np.sqrt([6, 2, 9]))


@pytest.fixture(scope="module")
def two_populations():
    a, ta = synth.haadf_dots(
        (320, 320), pixel_size_nm=0.1, diameter_nm=4.0, rsd=0.08, n_particles=22, n_touching_pairs=2, seed=11
    )
    b, tb = synth.haadf_dots(
        (320, 320), pixel_size_nm=0.15, diameter_nm=7.0, rsd=0.08, n_particles=14, n_touching_pairs=2, seed=12
    )
    a.source, b.source = "dots4.tif", "dots7.tif"
    fig = size_figure([a, b], diameter_range_nm=(2, 12))
    return fig, (ta, tb)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_figure_labels_carry_the_measured_statistics(two_populations):
    fd, truths = two_populations
    texts = "\n".join(_texts(fd.figure))
    for pop, truth in zip(fd.populations, truths):
        s = pop.summary
        assert s["n"] >= 10
        assert f"N = {s['n']}" in texts
        assert format_mean_sd(s["mean_nm"], s["std_nm"]) in texts
        assert format_rsd(s["rsd_percent"], s["rsd_ci95_percent"]) in texts
        inner = truth.particles[~truth.particles["edge"]]
        assert abs(s["mean_nm"] - inner["diameter_nm"].mean()) < 0.08 * inner["diameter_nm"].mean()
    # panel letters a-d, the populations' names as titles, scale bars on the images
    assert {"(a) dots4.tif", "(b) dots7.tif", "(c)", "(d)"} <= set(_texts(fd.figure))
    from matplotlib_scalebar.scalebar import ScaleBar

    n_bars = sum(isinstance(a, ScaleBar) for ax in fd.figure.axes for a in ax.artists)
    assert n_bars == 2
    # histogram bars = the Freedman-Diaconis counts of the summary
    ax_h = [ax for ax in fd.figure.axes if ax.get_xlabel() == "diameter (nm)"][0]
    heights = [p.get_height() for p in ax_h.patches]
    assert heights == pytest.approx(fd.populations[0].summary["histogram"]["counts"])


def test_save_writes_vector_png_and_data(two_populations, tmp_path):
    fd, _ = two_populations
    written = fd.save(tmp_path / "fig5.svg")
    names = {p.name for p in written}
    assert names == {"fig5.svg", "fig5.png", "fig5.json", "fig5.csv", "fig5_particles.csv"}
    svg = (tmp_path / "fig5.svg").read_text()
    s0 = fd.populations[0].summary
    assert f"N = {s0['n']}" in svg  # text stays text (svg.fonttype none)
    from matplotlib.image import imread

    png = imread(tmp_path / "fig5.png")
    assert png.shape[1] == pytest.approx(180 / 25.4 * 300, rel=0.02)  # 180 mm at 300 dpi
    data = json.loads((tmp_path / "fig5.json").read_text())
    assert [p["summary"]["n"] for p in data["populations"]] == [p.summary["n"] for p in fd.populations]
    summ = pd.read_csv(tmp_path / "fig5.csv")
    assert list(summ["n"]) == [p.summary["n"] for p in fd.populations]
    parts = pd.read_csv(tmp_path / "fig5_particles.csv")
    assert len(parts) == sum(len(p.particles.table) for p in fd.populations)
    assert parts["in_statistics"].sum() == sum(p.summary["n"] for p in fd.populations)


def test_cli_sizes_on_sample_data(tmp_path, capsys):
    out = tmp_path / "fig5.pdf"
    rc = main(["sizes", str(SAMPLE_DATA / "pbs_dots_7nm_haadf.hspy"), "--diameter-range", "3,12", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert re.search(r"pbs_dots_7nm_haadf\.hspy: N = \d+", printed) and "RSD = " in printed
    for name in ("fig5.pdf", "fig5.png", "fig5.json", "fig5.csv", "fig5_particles.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "fig5.pdf").read_bytes()[:5] == b"%PDF-"
    truth = pd.read_csv(SAMPLE_DATA / "pbs_dots_7nm_haadf.particles.csv")
    mean = json.loads((tmp_path / "fig5.json").read_text())["populations"][0]["summary"]["mean_nm"]
    assert abs(mean - truth.loc[~truth["edge"], "diameter_nm"].mean()) < 0.3


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["sizes", "does_not_exist.dm4", "-o", "x.pdf"], "does_not_exist.dm4"),
        (["sizes", str(SAMPLE_DATA / "pbs_dots_4nm_haadf.tif"), "-o", "x.jpg"], ".pdf, .png or .svg"),
    ],
)
def test_cli_sizes_bad_input_is_one_line(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latticefit: error:") and msg in err and "\n" not in err


@pytest.mark.realdata
def test_cli_sizes_on_real_dm4(realfile, tmp_path, capsys):
    f = realfile("particles/JEOL HAADF Image.dm4")
    assert main(["sizes", str(f), "-o", str(tmp_path / "jeol.png")]) == 0
    data = json.loads((tmp_path / "jeol.json").read_text())
    assert data["populations"][0]["summary"]["n"] >= 5
    assert (tmp_path / "jeol.png").stat().st_size > 10_000


def test_two_populations_in_one_field_are_split_by_measured_diameter():
    from latticefit.synth import haadf_particles_image

    rng = np.random.default_rng(7)
    g = 80 + np.arange(5) * 100.0  # 5 x 5 grid, 10 nm apart, 4 nm clear of the border
    xx, yy = np.meshgrid(g, g)
    x, y = xx.ravel() + rng.uniform(-5, 5, 25), yy.ravel() + rng.uniform(-5, 5, 25)
    small = np.arange(25) % 2 == 0
    d = np.where(small, rng.normal(4.0, 0.3, 25), rng.normal(8.0, 0.5, 25))
    mg = haadf_particles_image((560, 560), x, y, d, pixel_size_nm=0.1, seed=1)
    fd = size_figure([mg], diameter_range_nm=[(2, 6), (6, 12)])
    (a, b) = fd.populations
    assert "2–6 nm" in a.name and "6–12 nm" in b.name
    assert a.summary["n"] == small.sum() and b.summary["n"] == (~small).sum()
    assert a.summary["mean_nm"] == pytest.approx(d[small].mean(), abs=0.15)
    assert b.summary["mean_nm"] == pytest.approx(d[~small].mean(), abs=0.25)
    assert (a.particles.table["diameter_nm"] < 6).all() and (b.particles.table["diameter_nm"] >= 6).all()
    texts = "\n".join(_texts(fd.figure))
    assert format_rsd(b.summary["rsd_percent"], b.summary["rsd_ci95_percent"]) in texts


def _text_clear_of_data(ax) -> bool:
    """Whether no bar, error bar or curve under a histogram's N / mean / RSD text reaches into it."""
    from latticefit.report._sizes import _data_top_under

    fig = ax.figure
    fig.draw_without_rendering()
    text = next(t for t in ax.texts if (t.get_gid() or "").startswith("stats_"))
    box = text.get_window_extent()
    x0, x1 = (box.transformed(ax.transData.inverted()).x0, box.transformed(ax.transData.inverted()).x1)
    bottom = box.transformed(ax.transAxes.inverted()).y0
    return _data_top_under(ax, x0, x1) < bottom * ax.get_ylim()[1]


@pytest.mark.parametrize("seed", [5, 21])
def test_stats_text_is_never_covered_by_the_histogram(seed):
    """A small population with a broad spread (the JEOL field: 20 dots, RSD 29 %): the Poisson error bars of
    the central bins reached into the RSD line at the old fixed 22 % headroom."""
    mg, _ = synth.haadf_dots(
        (256, 256), pixel_size_nm=0.5, diameter_nm=10.0, rsd=0.3, n_particles=22, min_gap_nm=1.0, seed=seed
    )
    mg.source = "broad.tif"
    fd = size_figure([mg], diameter_range_nm=(3, 25))
    hist_axes = [ax for ax in fd.figure.axes if any((t.get_gid() or "").startswith("stats_") for t in ax.texts)]
    assert hist_axes and all(_text_clear_of_data(ax) for ax in hist_axes)


def test_stats_text_clear_in_the_two_population_figure(two_populations):
    fd, _ = two_populations
    hist_axes = [ax for ax in fd.figure.axes if any((t.get_gid() or "").startswith("stats_") for t in ax.texts)]
    assert len(hist_axes) == 2 and all(_text_clear_of_data(ax) for ax in hist_axes)
