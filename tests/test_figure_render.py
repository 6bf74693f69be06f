"""How the publication figures are written (latticefit._plotstyle.save_figure): one layout, one draw per
format, images at their own pixels in the PDF, text that stays text."""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from latticefit import _plotstyle as ps  # noqa: E402


@pytest.fixture
def figure():
    """A small figure like the reports': a large image shown small, a small one shown large, text, a table."""
    with ps.figure_style():
        fig = plt.figure(figsize=(3.0, 2.0), layout="constrained")
        ax_big, ax_small = fig.subplots(1, 2)
        rng = np.random.default_rng(0)
        ps.show_image(ax_big, rng.normal(size=(1024, 1024)), pixel_size_nm=0.02)
        ps.show_image(ax_small, rng.normal(size=(16, 16)), pixel_size_nm=0.02, scalebar=False)
        ax_big.set_title("significant fluctuation", fontweight="bold")
        ax_small.set_xlabel(r"$g_x$ (1/nm) of a field")
        ax_small.table(cellText=[["reflection", "fine"]], bbox=[0, -0.6, 1, 0.3])
    yield fig
    plt.close(fig)


def _pdf_images(raw: bytes) -> list[tuple[int, int]]:
    sizes = []
    for m in re.finditer(rb"<<(.*?)>>\s*stream", raw, re.S):
        d = m.group(1)
        if b"/Subtype /Image" in d:
            w, h = re.search(rb"/Width (\d+)", d), re.search(rb"/Height (\d+)", d)
            sizes.append((int(w.group(1)), int(h.group(1))))
    return sizes


def test_pdf_images_at_their_own_pixels_and_text_is_vector(figure, tmp_path):
    written = ps.save_figure(figure, tmp_path / "f.pdf")
    assert [p.name for p in written] == ["f.pdf", "f.png"]
    raw = (tmp_path / "f.pdf").read_bytes()
    sizes = _pdf_images(raw)
    # the 1024 px image shown ~35 mm wide is one raster layer of its own 1024x1024 pixels (not resampled to
    # 300 dpi); the 16 px image shown larger is resampled (crisp pixels in viewers that smooth images)
    assert (1024, 1024) in sizes and len(sizes) == 2
    assert all(w > 16 for w, _ in sizes)
    # text is text: TrueType (Type 42) fonts, no Type 3 glyph drawings, no rasterised page
    assert b"/FontFile2" in raw and b"/Type3" not in raw
    subsets = set(re.findall(rb"/BaseFont /([A-Z]{6}\+[\w-]+)", raw))  # a Type 0 font and its CID font
    fonts = sorted(name.split(b"+")[1] for name in subsets)
    assert b"DejaVuSans-Bold" in fonts and b"DejaVuSans" in fonts
    # one embedded subset per font file: no second glyph set for the fi/fl ligatures
    assert len(fonts) == len(set(fonts)), fonts


def test_one_layout_and_one_draw_per_format(figure, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    engine = figure.get_layout_engine()
    calls = {"draw": 0, "layout": 0}
    draw, execute = Figure.draw, type(engine).execute

    def counting_draw(self, renderer):
        calls["draw"] += 1
        return draw(self, renderer)

    def counting_execute(self, fig):
        calls["layout"] += 1
        return execute(self, fig)

    monkeypatch.setattr(Figure, "draw", counting_draw)
    monkeypatch.setattr(type(engine), "execute", counting_execute)
    ps.save_figure(figure, tmp_path / "f.svg")
    assert calls == {"draw": 2, "layout": 1}  # SVG + PNG, from one layout solve
    assert figure.get_layout_engine() is engine  # the figure keeps its layout engine
    assert (tmp_path / "f.svg").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0


def test_png_only_is_drawn_once(figure, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    n = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, r: (n.append(1), draw(self, r))[1])
    assert [p.name for p in ps.save_figure(figure, tmp_path / "f.png")] == ["f.png"]
    assert len(n) == 1


def test_saving_leaves_the_figure_as_it_was(figure, tmp_path):
    from matplotlib.text import Text

    before = [(t, t.get_fontfeatures() if hasattr(t, "get_fontfeatures") else None) for t in figure.findobj(Text)]
    dpi, positions = figure.dpi, [ax.get_position().bounds for ax in figure.axes]
    ps.save_figure(figure, tmp_path / "f.pdf")
    after = [(t, t.get_fontfeatures() if hasattr(t, "get_fontfeatures") else None) for t in figure.findobj(Text)]
    assert before == after
    assert figure.dpi == dpi
    assert [ax.get_position().bounds for ax in figure.axes] != positions  # laid out (the layout is kept)
    images = [im.get_interpolation() for ax in figure.axes for im in ax.get_images()]
    assert images == ["antialiased", "antialiased"]


def test_svg_text_stays_text(figure, tmp_path):
    ps.save_figure(figure, tmp_path / "f.svg")
    svg = (tmp_path / "f.svg").read_text()
    assert "significant fluctuation" in svg and "<image" in svg


def test_png_is_300_dpi(figure, tmp_path):
    from PIL import Image

    ps.save_figure(figure, tmp_path / "f.pdf")
    with Image.open(tmp_path / "f.png") as im:
        assert im.size == (900, 600)
        assert round(im.info["dpi"][0]) == 300
