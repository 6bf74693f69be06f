"""Shared look of latticefit's publication figures.

One place for what every figure shares: the colour-blind-safe Okabe-Ito
palette, journal column widths (85 mm single, 180 mm double), font sizes that
stay legible when the figure is printed at column width, calibrated scale
bars, panel letters, value ± uncertainty formatting, and writing a figure in
the requested format plus a 300-dpi PNG beside it.

Examples
--------
>>> format_uncertain(4.19512, 0.00312, "Å")
'4.195 ± 0.003 Å'
>>> format_uncertain(60.04, 0.21, "°")
'60.0 ± 0.2°'
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ._format import format_uncertain, round_to_uncertainty  # noqa: F401 - re-exported
from .errors import LatticefitError

__all__ = [
    "OKABE_ITO",
    "COLORS",
    "SINGLE_COLUMN_MM",
    "DOUBLE_COLUMN_MM",
    "MM_PER_INCH",
    "FIGURE_FORMATS",
    "mm_to_inch",
    "figure_style",
    "format_uncertain",
    "round_to_uncertainty",
    "add_scalebar",
    "scalebar_length_nm",
    "panel_label",
    "show_image",
    "note_box",
    "output_paths",
    "save_figure",
]

#: Okabe & Ito (2008) colour-blind-safe palette
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: the roles colours play in latticefit figures (all Okabe-Ito)
COLORS = {
    "matrix": OKABE_ITO["sky_blue"],
    "dot": OKABE_ITO["orange"],
    "g1": OKABE_ITO["yellow"],
    "g2": OKABE_ITO["sky_blue"],
    "spot": OKABE_ITO["bluish_green"],
    "angle": OKABE_ITO["reddish_purple"],
    "outline": OKABE_ITO["orange"],
    "edge": OKABE_ITO["reddish_purple"],
    "warning": OKABE_ITO["vermillion"],
    "hist": OKABE_ITO["blue"],
    "gauss": OKABE_ITO["vermillion"],
    "lognorm": OKABE_ITO["bluish_green"],
    "populations": [
        OKABE_ITO["blue"],
        OKABE_ITO["orange"],
        OKABE_ITO["bluish_green"],
        OKABE_ITO["reddish_purple"],
        OKABE_ITO["sky_blue"],
        OKABE_ITO["vermillion"],
    ],
}

SINGLE_COLUMN_MM = 85.0
DOUBLE_COLUMN_MM = 180.0
MM_PER_INCH = 25.4
#: formats a figure can be written in (a PNG is always written too)
FIGURE_FORMATS = ("pdf", "png", "svg")

# Font sizes in points: 7 pt is the usual journal minimum at print size.
_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 7.0,
    "axes.titlesize": 7.0,
    "axes.labelsize": 7.0,
    "xtick.labelsize": 6.0,
    "ytick.labelsize": 6.0,
    "legend.fontsize": 6.0,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.0,
    "savefig.dpi": 300,
    "figure.dpi": 100,
    "pdf.fonttype": 42,  # editable TrueType text in Illustrator
    "ps.fonttype": 42,
    "svg.fonttype": "none",  # text stays text in the SVG (searchable, editable)
    "image.interpolation": "nearest",
    "axes.prop_cycle": None,  # filled in below
}


def mm_to_inch(mm: float) -> float:
    """Millimetres to inches (matplotlib sizes figures in inches)."""
    return float(mm) / MM_PER_INCH


@contextlib.contextmanager
def figure_style():
    """Context manager applying latticefit's rcParams (fonts, line widths, Okabe-Ito colour cycle)."""
    import matplotlib as mpl
    from cycler import cycler

    rc = dict(_RC)
    rc["axes.prop_cycle"] = cycler(color=COLORS["populations"])
    with mpl.rc_context(rc):
        yield


# --------------------------------------------------------------------- drawing
#: scale-bar lengths (nm): always in nm, never switched to pm or µm
SCALEBAR_LENGTHS_NM = (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def scalebar_length_nm(field_nm: float, fraction: float = 0.25) -> float:
    """The longest of :data:`SCALEBAR_LENGTHS_NM` not above ``fraction`` of the field (nm).

    Examples
    --------
    >>> scalebar_length_nm(3.0)
    0.5
    >>> scalebar_length_nm(25.6)
    5
    """
    target = fraction * float(field_nm)
    fits = [v for v in SCALEBAR_LENGTHS_NM if v <= target]
    return fits[-1] if fits else SCALEBAR_LENGTHS_NM[0]


def add_scalebar(
    ax,
    pixel_size_nm: float,
    *,
    color: str = "white",
    location: str = "lower right",
    length_fraction: float = 0.25,
    bbox_to_anchor=None,
):
    """Add a calibrated scale bar (matplotlib-scalebar) in nm, on a semi-transparent box, to an image in pixels."""
    from matplotlib_scalebar.scalebar import ScaleBar

    x0, x1 = ax.get_xlim()
    field_nm = abs(x1 - x0) * float(pixel_size_nm)
    length = scalebar_length_nm(field_nm, length_fraction)
    dark = color == "white"
    sb = ScaleBar(
        float(pixel_size_nm),
        units="nm",
        dimension="si-length",
        location=location,
        color=color,
        box_color="black" if dark else "white",
        box_alpha=0.45,
        frameon=True,
        fixed_value=length,
        fixed_units="nm",
        width_fraction=0.025,
        scale_loc="top",
        border_pad=0.4,
        pad=0.3,
        sep=2,
        font_properties={"size": 7, "weight": "bold"},
        **({"bbox_to_anchor": bbox_to_anchor, "bbox_transform": ax.transAxes} if bbox_to_anchor else {}),
    )
    ax.add_artist(sb)
    return sb


def panel_label(ax, letter: str, *, dark_background: bool = True, title: str | None = None):
    """Bold panel letter ``(a)`` in the top-left corner, optionally followed by a short title."""
    text = f"({letter})" if title is None else f"({letter}) {title}"
    color = "white" if dark_background else "black"
    bbox = dict(boxstyle="square,pad=0.15", fc="black" if dark_background else "white", alpha=0.55, lw=0)
    return ax.text(
        0.02,
        0.98,
        text,
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=7.5,
        fontweight="bold",
        color=color,
        bbox=bbox,
        zorder=20,
    )


def display_limits(data: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    """Robust display range (percentiles) of an image."""
    finite = np.asarray(data)[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(finite, [lo, hi])
    if b <= a:
        b = a + 1.0
    return float(a), float(b)


def show_image(
    ax,
    data: np.ndarray,
    *,
    pixel_size_nm: float | None = None,
    cmap: str = "gray",
    scalebar: bool = True,
    extent=None,
    scalebar_location: str = "lower right",
):
    """Show a micrograph in pixel coordinates with robust contrast, no ticks, and a scale bar."""
    vmin, vmax = display_limits(data)
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper", extent=extent, interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    if scalebar and pixel_size_nm:
        add_scalebar(ax, pixel_size_nm, location=scalebar_location)
    return im


def note_box(ax, text: str, *, color: str | None = None, loc: str = "bottom"):
    """A warning/note printed inside an axes (e.g. field-of-view mismatch)."""
    color = color or COLORS["warning"]
    y, va = (0.02, "bottom") if loc == "bottom" else (0.5, "center")
    return ax.text(
        0.5,
        y,
        text,
        transform=ax.transAxes,
        ha="center",
        va=va,
        fontsize=6.5,
        color="white",
        wrap=True,
        zorder=30,
        bbox=dict(boxstyle="round,pad=0.3", fc=color, alpha=0.85, lw=0),
    )


# --------------------------------------------------------------------- output
def output_paths(out) -> dict[str, Path]:
    """The files written beside a figure ``OUT.ext``: figure, png, json, csv, particles csv.

    Raises
    ------
    LatticefitError
        When the extension is not one of pdf, png, svg.
    """
    out = Path(out)
    ext = out.suffix.lower().lstrip(".")
    if ext not in FIGURE_FORMATS:
        raise LatticefitError(
            f"output {out}: figure format must be .pdf, .png or .svg, got {out.suffix or 'no extension'!r}"
        )
    stem = out.with_suffix("")
    return {
        "figure": out,
        "png": stem.with_suffix(".png"),
        "json": stem.with_suffix(".json"),
        "csv": stem.with_suffix(".csv"),
        "particles_csv": stem.parent / f"{stem.name}_particles.csv",
    }


def save_figure(fig, out, *, dpi: int = 300, outputs=None) -> list[Path]:
    """Write ``fig`` to ``out`` (pdf/svg/png) and always a ``dpi`` PNG beside it.

    ``outputs`` (a :class:`latticefit.serialize.OutputSet`) stages the files so that they appear with the
    rest of the set; without it the figures are written atomically on their own.

    Returns
    -------
    list of Path
        The files written (the requested one first).
    """
    from .serialize import OutputSet

    paths = output_paths(out)
    own = outputs is None
    outputs = OutputSet() if own else outputs
    written = [paths["figure"]] + ([paths["png"]] if paths["png"] != paths["figure"] else [])
    # the font settings (pdf.fonttype=42: TrueType, svg.fonttype='none': real <text>) are read at save time,
    # so the figure is written inside the style context
    try:
        staged = [outputs.stage(p) for p in written]
        with figure_style(), _without_ligatures(fig), _laid_out_once(fig):
            for path in staged:
                _save_one(fig, path, dpi)
    except BaseException:
        if own:
            outputs.abort()
        raise
    if own:
        outputs.commit()
    return written


#: zlib level of the figure PNGs: level 1 writes a 300-dpi page 3-5x faster than the default 6, and a
#: rendered micrograph page compresses no better at 6 (measured: 3.4 MB at 1, 4.5 MB at 6)
PNG_COMPRESS_LEVEL = 1


def _save_one(fig, path: Path, dpi: int) -> None:
    if path.suffix.lower() == ".png":
        fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
        return
    with _native_images(fig, dpi):
        fig.savefig(path, dpi=dpi)


def _shown_smaller(im, dpi: int) -> bool:
    """Whether ``im`` has more pixels across its visible part than its axes has at ``dpi`` (it would be shrunk)."""
    ax = im.axes
    nx = im.get_array().shape[1]
    x0, x1 = sorted(im.get_extent()[:2])
    lo, hi = sorted(ax.get_xlim())
    visible = max(0.0, min(x1, hi) - max(x0, lo)) / max(x1 - x0, 1e-300)
    shown_px = ax.get_position().width * ax.figure.get_figwidth() * dpi
    return nx * visible >= shown_px


@contextlib.contextmanager
def _native_images(fig, dpi: int):
    """Images that a ``dpi`` render would shrink go into a PDF/SVG at their own pixels, not resampled.

    ``interpolation='none'``: a 4k micrograph shown 60 mm wide is one raster layer of 4096² pixels, not a
    300-dpi resampling of it; text and lines stay vector. Images shown larger than their pixels (a cropped
    FFT) keep the ``dpi`` resampling, so that a viewer that smooths small images still shows crisp pixels.
    """
    images = [im for ax in fig.axes for im in ax.get_images() if _shown_smaller(im, dpi)]
    saved = [im.get_interpolation() for im in images]
    for im in images:
        im.set_interpolation("none")
    try:
        yield
    finally:
        for im, interp in zip(images, saved):
            im.set_interpolation(interp)


#: dpi at which a figure's layout is solved before it is written (with unhinted text extents): the layout a PDF's
#: own draw solves (and the PNG reused), without drawing the figure for it
LAYOUT_DPI = 72


@contextlib.contextmanager
def _laid_out_once(fig):
    """Solve ``fig``'s layout once and draw every format with those positions.

    Without this, each ``savefig`` of a figure with a layout engine draws the figure twice (a draw that only
    solves the layout, then the real one), and solves the layout again for each format.
    """
    engine = fig.get_layout_engine()
    if engine is None or not fig.axes:
        yield
        return
    import matplotlib as mpl

    shown_dpi = fig.dpi
    try:
        fig.dpi = LAYOUT_DPI
        with mpl.rc_context({"text.hinting": "no_hinting"}):  # unhinted extents, as the PDF renderer's
            engine.execute(fig)
    finally:
        fig.dpi = shown_dpi
    # no engine at all (None), not the 'none' placeholder: with any engine, savefig draws once more for the
    # layout; but None means the rc's engine when figure.autolayout or figure.constrained_layout.use is set
    rc_engine = mpl.rcParams["figure.autolayout"] or mpl.rcParams["figure.constrained_layout.use"]
    fig.set_layout_engine("none" if rc_engine else None)
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


@contextlib.contextmanager
def _without_ligatures(fig):
    """Texts set without the fi/fl ligatures while the figure is written.

    A ligature is a second glyph set of its font in a PDF (one more TrueType subset embedded per font, the
    costliest part of writing the PDF); separate letters also keep the PDF's text searchable as typed.
    """
    from matplotlib.text import Text

    cells = [c.get_text() for ax in fig.axes for tab in ax.tables for c in tab.get_celld().values()]
    texts = [t for t in fig.findobj(Text) + cells if hasattr(t, "set_fontfeatures")]  # matplotlib >= 3.11
    saved = [t.get_fontfeatures() for t in texts]
    for t, features in zip(texts, saved):
        t.set_fontfeatures(tuple(features or ()) + ("-liga",))
    try:
        yield
    finally:
        for t, features in zip(texts, saved):
            t.set_fontfeatures(features)
