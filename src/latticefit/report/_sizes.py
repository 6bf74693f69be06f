"""The Fig. 5 size figure: HAADF images with dot outlines above their size histograms.

:func:`build_size_figure` finds the particles of one or more HAADF images with
:func:`latticefit.particles.find_particles` (one population per file, or per
file and diameter range), and :func:`plot_size_figure` draws, for each
population side by side:

- the HAADF image with the particles drawn by
  :func:`latticefit.particles.plot_overlay` (segmentation outlines, dotted
  model-fit diameters; particles cut by the border, left out of the
  statistics, and unsplit clusters flagged) and a scale bar;
- the size histogram with Freedman-Diaconis bins, Poisson error bars, the
  Gaussian and log-normal fits, N, mean ± SD and the RSD with its bootstrap
  95 % interval (all from :func:`latticefit.sizestats.size_summary`).

Examples
--------
>>> from latticefit import synth
>>> mg, truth = synth.haadf_dots((512, 512), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=30, seed=1)
>>> fig = size_figure([mg], diameter_range_nm=[(3, 12)])  # doctest: +SKIP
>>> fig.save("fig5.pdf")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _plotstyle as ps
from .._format import format_uncertain
from ..micrograph import Micrograph, as_micrograph

#: version of the ``SizeFigure.to_dict`` JSON (``latticefit sizes``' OUT.json)
SIZES_SCHEMA_VERSION = 1

__all__ = [
    "SizePopulation",
    "SizeFigure",
    "build_size_figure",
    "plot_size_figure",
    "size_figure",
    "format_mean_sd",
    "format_rsd",
    "histogram_errors",
    "split_population",
    "summary_lines",
]


# =====================================================================  formatting
def format_mean_sd(mean: float, sd: float, unit: str = "nm") -> str:
    """``'6.98 ± 0.52 nm'``: mean ± SD, the SD with two significant digits.

    Examples
    --------
    >>> format_mean_sd(6.9812, 0.5234)
    '6.98 ± 0.52 nm'
    >>> format_mean_sd(4.0, float("nan"))
    '4.00 nm'
    """
    if mean is None or not np.isfinite(mean):
        return "n/a"
    if sd is None or not np.isfinite(sd) or sd <= 0:
        return f"{mean:.2f} {unit}"
    return format_uncertain(mean, sd, unit, err_digits=2)


def format_rsd(rsd: float, ci=None) -> str:
    """``'RSD = 7.5% (95% CI 6.4-8.8%)'``.

    Examples
    --------
    >>> format_rsd(7.512, (6.43, 8.81))
    'RSD = 7.5% (95% CI 6.4–8.8%)'
    """
    if rsd is None or not np.isfinite(rsd):
        return "RSD = n/a"
    text = f"RSD = {rsd:.1f}%"
    if ci is not None and len(ci) == 2 and all(v is not None and np.isfinite(v) for v in ci):
        text += f" (95% CI {ci[0]:.1f}–{ci[1]:.1f}%)"
    return text


def histogram_errors(d, edges, weights=None) -> np.ndarray:
    """Poisson 1-sigma error of each histogram bin: ``sqrt(n)``, or ``sqrt(sum w^2)`` for weighted counts."""
    d = np.asarray(d, float)
    if len(edges) < 2:
        return np.zeros(0)
    w2 = None if weights is None else np.asarray(weights, float) ** 2
    var, _ = np.histogram(d, bins=np.asarray(edges, float), weights=w2)
    return np.sqrt(var)


# =====================================================================  data
@dataclass
class SizePopulation:
    """One particle population: an image, its particles and their statistics.

    Attributes
    ----------
    name : str
        Label in the figure (file name, plus the diameter range when split).
    micrograph : Micrograph
    particles : ParticleResult
    diameter_range_nm : (float, float) or None
    """

    name: str
    micrograph: Micrograph
    particles: Any
    diameter_range_nm: tuple[float, float] | None = None

    @property
    def summary(self) -> dict:
        return self.particles.summary

    def used_mask(self) -> np.ndarray:
        """Rows of the particle table that enter the statistics (non-edge, fitted)."""
        t = self.particles.table
        if "in_statistics" in t:  # checked fits: rejected fits and unsplit clusters are left out too
            return t["in_statistics"].to_numpy(bool)
        use = ~t["edge"].to_numpy(bool)
        if "fit_ok" in t:
            use &= t["fit_ok"].to_numpy(bool)
        return use

    def used_diameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Diameters (nm) in the statistics and their weights (None unless edge-weighted)."""
        t = self.particles.table
        use = self.used_mask()
        d = t["diameter_nm"].to_numpy(float)[use]
        w = None
        if self.summary.get("weighted") and "ml_weight" in t:
            w = t["ml_weight"].to_numpy(float)[use]
        ok = np.isfinite(d) & (d > 0)
        return d[ok], (None if w is None else w[ok])

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "file": self.micrograph.source,
            "pixel_size_nm": self.micrograph.pixel_size_nm,
            "diameter_range_nm": self.diameter_range_nm,
            "n_detected": len(self.particles.table),
            "summary": self.summary,
        }


@dataclass
class SizeFigure:
    """The populations of a Fig. 5 size figure and the figure itself."""

    populations: list
    figure: Any = None
    notes: list = field(default_factory=list)

    def summary_table(self):
        """One row per population: N, mean, SD, RSD and its interval, fits (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for p in self.populations:
            s = p.summary
            ci = s.get("rsd_ci95_percent") or [None, None]
            g = s.get("gaussian") or {}
            ln = s.get("lognormal") or {}
            rows.append(
                {
                    "population": p.name,
                    "file": p.micrograph.source,
                    "diameter_min_nm": p.diameter_range_nm[0] if p.diameter_range_nm else None,
                    "diameter_max_nm": p.diameter_range_nm[1] if p.diameter_range_nm else None,
                    "n": s.get("n"),
                    "n_edge": s.get("n_edge"),
                    "mean_nm": s.get("mean_nm"),
                    "mean_err_nm": s.get("mean_err_nm"),
                    "median_nm": s.get("median_nm"),
                    "std_nm": s.get("std_nm"),
                    "rsd_percent": s.get("rsd_percent"),
                    "rsd_ci95_lo_percent": ci[0],
                    "rsd_ci95_hi_percent": ci[1],
                    "rsd_corrected_percent": s.get("rsd_corrected_percent"),
                    "gauss_mu_nm": g.get("mu_nm"),
                    "gauss_sigma_nm": g.get("sigma_nm"),
                    "lognorm_median_nm": ln.get("median_nm"),
                    "lognorm_sigma_log": ln.get("sigma_log"),
                }
            )
        return pd.DataFrame(rows)

    def particles_table(self):
        """Every particle of every population, with ``population`` and ``file`` columns."""
        import pandas as pd

        frames = []
        for p in self.populations:
            t = p.particles.table.copy()
            t.insert(0, "file", p.micrograph.source)
            t.insert(0, "population", p.name)
            t["in_statistics"] = p.used_mask()
            frames.append(t)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def to_dict(self) -> dict:
        return {
            "schema_version": SIZES_SCHEMA_VERSION,
            "populations": [p.to_dict() for p in self.populations],
            "notes": list(self.notes),
        }

    def save(self, out) -> list[Path]:
        """Write the figure (+ 300-dpi PNG), ``OUT.json``, ``OUT.csv`` (summary) and ``OUT_particles.csv``."""
        from ..serialize import OutputSet, dumps

        paths = ps.output_paths(out)
        if self.figure is None:
            plot_size_figure(self)
        with OutputSet() as outs:  # all files or none
            written = ps.save_figure(self.figure, paths["figure"], outputs=outs)
            outs.write_text(paths["json"], dumps(self.to_dict()) + "\n")
            outs.write_text(paths["csv"], self.summary_table().to_csv(index=False))
            outs.write_text(paths["particles_csv"], self.particles_table().to_csv(index=False))
        return written + [paths["json"], paths["csv"], paths["particles_csv"]]


def _population_name(mg: Micrograph, rng, n_ranges: int) -> str:
    base = Path(mg.source).name if mg.source else (mg.title or "image")
    if rng is not None and n_ranges > 1:
        return f"{base} ({rng[0]:g}–{rng[1]:g} nm)"
    return base


def build_size_figure(images, *, diameter_range_nm=None, names=None, pixel_size=None) -> SizeFigure:
    """Find and size the particles of each image (and diameter range): the populations of Fig. 5.

    Parameters
    ----------
    images : list of Micrograph, Signal2D or ndarray
        HAADF images (one population each, or one per diameter range).
    diameter_range_nm : (float, float) or list of them, optional
        Sizes searched by :func:`latticefit.particles.find_particles`; several
        ranges split every image into several populations (e.g. a 4 nm and a
        7 nm family in one field).
    names : list of str, optional
        Population labels (default: file name, plus the range when split).
    pixel_size : float or str, optional
        Overrides every image's calibration.

    Returns
    -------
    SizeFigure
        Without the figure; see :func:`plot_size_figure` / :func:`size_figure`.
    """
    from ..particles._pipeline import find_particles

    if diameter_range_nm is None:
        ranges = [None]
    elif np.ndim(diameter_range_nm) == 1:
        ranges = [tuple(float(v) for v in diameter_range_nm)]
    else:
        ranges = [tuple(float(v) for v in r) for r in diameter_range_nm]
    pops = []
    for mg in images:
        mg = as_micrograph(mg, pixel_size)
        mg.require_calibration()
        if len(ranges) == 1:
            res = find_particles(mg, diameter_range_nm=ranges[0])
            pops.append(SizePopulation(_population_name(mg, ranges[0], 1), mg, res, ranges[0]))
            continue
        # several populations in one field: one detection over the whole span, then each particle goes to
        # the population whose range holds its measured diameter
        span = (min(r[0] for r in ranges), max(r[1] for r in ranges))
        res = find_particles(mg, diameter_range_nm=span)
        for rng in ranges:
            pops.append(SizePopulation(_population_name(mg, rng, len(ranges)), mg, split_population(res, rng), rng))
    if names is not None:
        for p, n in zip(pops, names):
            p.name = str(n)
    return SizeFigure(pops)


def split_population(result, diameter_range_nm):
    """The particles of ``result`` whose measured diameter lies in ``[lo, hi)`` nm, with their own statistics.

    Returns a copy of the :class:`~latticefit.particles.ParticleResult` whose
    ``table`` holds those particles and whose ``summary`` is
    :func:`latticefit.sizestats.size_summary` of the non-edge, fitted ones.
    """
    import dataclasses

    from ..particles._sizestats import size_summary

    lo, hi = (float(v) for v in diameter_range_nm)
    t = result.table
    d = t["diameter_nm"].to_numpy(float)
    sub = t[(d >= lo) & (d < hi)].reset_index(drop=True)
    use = ~sub["edge"].to_numpy(bool)
    if "fit_ok" in sub:
        use &= sub["fit_ok"].to_numpy(bool)
    if "in_statistics" in sub:
        use = sub["in_statistics"].to_numpy(bool)
    err = sub["diameter_err_nm"].to_numpy(float)[use] if "diameter_err_nm" in sub else None
    weights = None
    if result.summary.get("weighted") and "ml_weight" in sub:
        weights = sub["ml_weight"].to_numpy(float)[use]
    stats = size_summary(
        sub["diameter_nm"].to_numpy(float)[use],
        err,
        weights=weights,
        n_excluded=int(sub["edge"].astype(bool).sum()),
        warn=False,
    )
    summary = {**result.summary, **stats, "population_range_nm": [lo, hi]}
    return dataclasses.replace(result, table=sub, summary=summary)


# =====================================================================  drawing
def _draw_population_image(ax, pop: SizePopulation, letter: str):
    """The HAADF with :func:`latticefit.particles.plot_overlay` outlines (segmentation outlines, dotted
    model-fit circles, edge-cut particles and unsplit clusters flagged) and a scale bar.
    """
    from ..particles._pipeline import plot_overlay

    plot_overlay(
        pop.particles, pop.micrograph, ax, circles=True, centres=False, scalebar=True, legend=False, linewidth=0.7
    )
    ps.panel_label(ax, letter, title=pop.name)


def _draw_histogram(ax, pop: SizePopulation, letter: str, color):
    from .._stats import lognormal_pdf, normal_pdf

    s = pop.summary
    d, w = pop.used_diameters()
    hist = s.get("histogram") or {}
    edges = np.asarray(hist.get("bin_edges_nm") or [], float)
    counts = np.asarray(hist.get("counts") or [], float)
    ax.set_xlabel("diameter (nm)")
    ax.set_ylabel("count" if not s.get("weighted") else "count (edge-weighted)")
    if edges.size >= 2 and counts.size:
        err = histogram_errors(d, edges, w)
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color=color,
            alpha=0.55,
            edgecolor=color,
            linewidth=0.6,
            label=r"data ± $\sqrt{n}$",
        )
        centers = 0.5 * (edges[:-1] + edges[1:])
        ax.errorbar(centers, counts, yerr=err, fmt="none", ecolor="black", elinewidth=0.6, capsize=1.2, capthick=0.6)
        span = edges[-1] - edges[0]
        x = np.linspace(max(edges[0] - 0.25 * span, 1e-3), edges[-1] + 0.25 * span, 300)
        area = float(np.sum(counts * np.diff(edges)))
        g = s.get("gaussian") or {}
        if g.get("sigma_nm") and np.isfinite(g["sigma_nm"]) and g["sigma_nm"] > 0:
            ax.plot(
                x,
                area * normal_pdf(x, g["mu_nm"], g["sigma_nm"]),
                color=ps.COLORS["gauss"],
                lw=1.0,
                label="Gaussian fit",
            )
        ln = s.get("lognormal") or {}
        if ln.get("sigma_log") and np.isfinite(ln["sigma_log"]) and ln["sigma_log"] > 0:
            ax.plot(
                x,
                area * lognormal_pdf(x, ln["sigma_log"], ln["median_nm"]),
                color=ps.COLORS["lognorm"],
                lw=1.0,
                ls="--",
                label="log-normal fit",
            )
        ax.set_xlim(x[0], x[-1])
        # headroom for the error bars and the fitted curves, plus a little for the stats text (top left)
        top = max(float(np.max(counts + err)), *(float(np.max(ln_.get_ydata())) for ln_ in ax.lines))
        ax.set_ylim(0, max(top * 1.22, 1.0))
    n_edge = s.get("n_edge") or 0
    lines = [
        f"N = {s.get('n', 0)}" + (f" (+{n_edge} at edge)" if n_edge else ""),
        "mean ± SD = " + format_mean_sd(s.get("mean_nm"), s.get("std_nm")),
        format_rsd(s.get("rsd_percent"), s.get("rsd_ci95_percent")),
    ]
    ax.text(
        0.02,
        0.97,
        "\n".join(lines),
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=6.2,
        gid=f"stats_{letter}",
        linespacing=1.25,
    )
    ax.text(
        -0.02, 1.02, f"({letter})", transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, fontweight="bold"
    )
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)
    if not s.get("weighted"):
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _shared_legend(fig, pops, ncol: int):
    """One legend for every panel, under the figure (the panels keep their room for the numbers)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=ps.COLORS["outline"], lw=1.0, label="particle outline"),
        Line2D([], [], color=ps.OKABE_ITO["sky_blue"], lw=1.0, label="model-fit diameter"),
    ]
    tables = [p.particles.table for p in pops]
    if any(t["edge"].astype(bool).any() for t in tables if len(t)):
        handles.append(Line2D([], [], color=ps.COLORS["edge"], lw=1.0, label="cut by border (excluded)"))
    if any(t["cluster_unsplit"].astype(bool).any() for t in tables if len(t) and "cluster_unsplit" in t):
        handles.append(
            Line2D([], [], color=ps.OKABE_ITO["vermillion"], lw=1.0, ls="--", label="unsplit cluster (excluded)")
        )
    if any((t["status"] == "rejected").any() for t in tables if len(t) and "status" in t):
        handles.append(
            Line2D(
                [], [], color=ps.OKABE_ITO["yellow"], lw=1.0, ls=":", marker="x", ms=3, label="rejected fit (excluded)"
            )
        )
    handles += [
        Patch(facecolor="0.6", edgecolor="0.4", label=r"histogram ± $\sqrt{n}$"),
        Line2D([], [], color=ps.COLORS["gauss"], lw=1.0, label="Gaussian fit"),
        Line2D([], [], color=ps.COLORS["lognorm"], lw=1.0, ls="--", label="log-normal fit"),
    ]
    n_leg = 2 if ncol == 1 else (3 if ncol == 2 else 4)
    fig.legend(handles=handles, loc="outside lower center", ncols=n_leg, frameon=False, handlelength=1.6)


def plot_size_figure(fig_data: SizeFigure, *, width_mm: float | None = None):
    """Draw the Fig. 5 figure (stored in ``fig_data.figure`` and returned).

    One column per population: image on top, histogram below. Width: one
    journal column (85 mm) for one population, two columns (180 mm) otherwise.
    """
    import matplotlib.pyplot as plt

    pops = fig_data.populations
    n = len(pops)
    ncol = min(n, 4) if n else 1
    nrow_blocks = max(1, math.ceil(n / ncol))
    if width_mm is None:
        width_mm = ps.SINGLE_COLUMN_MM if n <= 1 else ps.DOUBLE_COLUMN_MM
    letters = "abcdefghijklmnopqrstuvwxyz"
    with ps.figure_style():
        w_in = ps.mm_to_inch(width_mm)
        col_w = w_in / ncol
        aspects = [p.micrograph.shape[0] / p.micrograph.shape[1] for p in pops] or [1.0]
        img_h = col_w * max(aspects)
        hist_h = col_w * (0.62 if ncol == 1 else 0.78)
        fig = plt.figure(
            figsize=(w_in, nrow_blocks * (img_h + hist_h) + (0.55 if ncol == 1 else 0.4)), layout="constrained"
        )
        gs = fig.add_gridspec(2 * nrow_blocks, ncol, height_ratios=[img_h, hist_h] * nrow_blocks)
        cols = ps.COLORS["populations"]
        for i, pop in enumerate(pops):
            r, c = divmod(i, ncol)
            ax_img = fig.add_subplot(gs[2 * r, c])
            ax_h = fig.add_subplot(gs[2 * r + 1, c])
            color = cols[i % len(cols)]
            # letters row by row: the images of a block first, then their histograms
            first = 2 * ncol * r
            n_in_row = min(ncol, n - ncol * r)
            _draw_population_image(ax_img, pop, letters[(first + c) % 26])
            _draw_histogram(ax_h, pop, letters[(first + n_in_row + c) % 26], color)
        if not pops:
            ax = fig.add_subplot(gs[0, 0])
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no image", ha="center", va="center")
        else:
            _shared_legend(fig, pops, ncol)
            _clear_stats_text(fig)
    fig_data.figure = fig
    return fig


def _data_top_under(ax, x0: float, x1: float) -> float:
    """The highest bar, error bar or curve of a histogram panel between data x0 and x1."""
    tops = [0.0]
    for p in ax.patches:
        bx, bw = p.get_x(), p.get_width()
        if bx < x1 and bx + bw > x0:
            tops.append(p.get_y() + p.get_height())
    for coll in ax.collections:  # the error bars' vertical segments
        for seg in coll.get_segments():
            if len(seg) and x0 <= float(np.mean(seg[:, 0])) <= x1:
                tops.append(float(np.max(seg[:, 1])))
    for ln in ax.lines:
        xd, yd = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
        sel = (xd >= x0) & (xd <= x1)
        if sel.any():
            tops.append(float(np.max(yd[sel])))
    return max(tops)


def _clear_stats_text(fig, margin: float = 0.03):
    """Raise each histogram's y limit until no bar, error bar or curve runs into its N / mean / RSD text.

    The text's height in axes units is known only after the layout, so the figure is laid out once
    (no pixels rendered) and the limits set from the measured text boxes.
    """
    fig.draw_without_rendering()
    for ax in fig.axes:
        texts = [t for t in ax.texts if (t.get_gid() or "").startswith("stats_")]
        if not texts or not ax.patches:
            continue
        extent = texts[0].get_window_extent()
        box = extent.transformed(ax.transData.inverted())
        bottom = extent.transformed(ax.transAxes.inverted()).y0
        top = _data_top_under(ax, box.x0, box.x1)
        lo, hi = ax.get_ylim()
        if bottom - margin > 0.3 and top > (bottom - margin) * hi:
            ax.set_ylim(lo, top / (bottom - margin))


def size_figure(images, *, diameter_range_nm=None, names=None, pixel_size=None, width_mm=None) -> SizeFigure:
    """:func:`build_size_figure` followed by :func:`plot_size_figure`."""
    fd = build_size_figure(images, diameter_range_nm=diameter_range_nm, names=names, pixel_size=pixel_size)
    plot_size_figure(fd, width_mm=width_mm)
    return fd


def summary_lines(fig_data: SizeFigure) -> list[str]:
    """One line per population for the terminal."""
    out = []
    for p in fig_data.populations:
        s = p.summary
        n_edge = s.get("n_edge") or 0
        out.append(
            f"{p.name}: N = {s.get('n', 0)}"
            + (f" (+{n_edge} at edge)" if n_edge else "")
            + f", mean ± SD = {format_mean_sd(s.get('mean_nm'), s.get('std_nm'))}, "
            + format_rsd(s.get("rsd_percent"), s.get("rsd_ci95_percent"))
        )
    return out
