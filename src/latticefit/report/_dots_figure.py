"""The per-dot figure of ``latticefit report --all-dots``: the strain map and Δd/d of every dot.

(a) The GPA mean in-plane strain ``(exx + eyy) / 2`` (%, the dilatation over two: what Δd/d of an isotropic
expansion is) on a diverging colormap centred on 0 whose half-range is at least 3 median sigmas, so that
pure noise looks like noise; the matrix reference region (blue) and every dot (orange, numbered as in the
table; dashed: not measured) are outlined; the scale bar sits under the map, outside the data.
(b) Each measured dot's Δd/d (FFT fit, dot − matrix, ± 1σ) against its diameter, with the population mean
± 1 SE band, and the GPA strain of the same dots (core minus a matrix ring, ± 1 SE) for comparison.
"""

from __future__ import annotations

import numpy as np

from .. import _plotstyle as ps

__all__ = ["plot_dot_statistics"]


def _strain_panel(fig, ax, cax, stats_) -> None:
    """(a): the mean in-plane strain map with the matrix region and the dots."""
    import matplotlib as mpl
    from matplotlib.patches import Circle as CirclePatch
    from matplotlib.patches import Rectangle

    from ..gpa._plot import _scalebar_below, display_range

    sm = stats_.strain
    data, sigma, valid = 50.0 * sm.dilatation, 50.0 * sm.sigma_dilatation, sm.valid
    lim = display_range(data, sigma, valid)
    cmap = mpl.colormaps["RdBu_r"].copy()
    cmap.set_bad("0.82")
    im = ax.imshow(np.ma.masked_where(~valid, data), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    cb = fig.colorbar(im, cax=cax)
    cb.set_label(r"GPA $(\varepsilon_{xx}+\varepsilon_{yy})/2$ (%)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    m = stats_.matrix_roi
    if m is not None and hasattr(m, "w"):
        ax.add_patch(Rectangle((m.x - 0.5, m.y - 0.5), m.w, m.h, fill=False, ec=ps.COLORS["matrix"], lw=1.0))
    for r in stats_.table.itertuples():
        measured = r.status == "measured"
        ax.add_patch(
            CirclePatch(
                (r.x_px, r.y_px), r.radius_px, fill=False, ec=ps.COLORS["dot"], lw=0.9, ls="-" if measured else "--"
            )
        )
        ax.text(r.x_px, r.y_px, str(r.dot), color="black", fontsize=5.5, ha="center", va="center")
    ps.panel_label(ax, "a", dark_background=False)
    _scalebar_below(ax, float(sm.pixel_size_nm[1]), data.shape[1])


def _dots_panel(ax, stats_) -> None:
    """(b): Δd/d (FFT fit) and GPA strain of each measured dot against its diameter."""
    t = stats_.table[stats_.table["status"] == "measured"]
    s = stats_.summary
    if s.get("n"):
        m, se = s["mean_rel_diff_percent"], s["se_percent"]
        ax.axhspan(m - se, m + se, color="0.85", lw=0, label=f"mean ± 1 SE ({m:+.2f} ± {se:.2f} %)")
        ax.axhline(m, color="0.4", lw=0.8)
    ax.axhline(0.0, color="k", lw=0.6, ls=":")
    ax.errorbar(
        t["diameter_nm"],
        t["rel_diff_percent"],
        yerr=t["rel_diff_err_percent"],
        fmt="o",
        ms=3,
        lw=0.8,
        capsize=1.5,
        color=ps.COLORS["dot"],
        label="Δd/d, FFT fit (± 1σ)",
    )
    g = t[np.isfinite(t["gpa_strain_percent"].to_numpy(float))]
    changed = g["gpa_fringe_changed"].to_numpy(bool)
    for sel, marker, color, label in (
        (~changed, "s", ps.COLORS["matrix"], "GPA strain, core − ring (± 1 SE)"),
        (changed, "x", "0.55", "GPA, fringe changed: not a strain (± 1 SE)"),
    ):
        if sel.any():
            ax.errorbar(
                g["diameter_nm"][sel],
                g["gpa_strain_percent"][sel],
                yerr=g["gpa_strain_err_percent"][sel],
                fmt=marker,
                ms=3,
                mfc="none",
                lw=0.7,
                capsize=1.5,
                color=color,
                label=label,
            )
    ax.set_xlabel("dot diameter (nm)")
    ax.set_ylabel("dot − matrix (%)")
    ax.legend(fontsize=6, frameon=False, loc="best")
    ax.set_title(f"N = {s.get('n', 0)}: " + ("significant" if s.get("significant") else "not significant"), fontsize=7)


def plot_dot_statistics(stats_, *, width_mm: float | None = None):
    """Figure of :class:`~latticefit.report.DotStatistics`: the strain map (when GPA ran) and Δd/d per dot.

    Parameters
    ----------
    stats_ : DotStatistics
    width_mm : float, optional
        Figure width (default: a single column, 85 mm, without a strain map; two columns, 180 mm, with one).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from latticefit.report import measure_dots
    >>> from latticefit.synth import perovskite_111
    >>> mg, _ = perovskite_111((512, 512), pixel_size_nm=0.025, seed=1)
    >>> st = measure_dots(mg, dots=[(150, 150, 80), (360, 360, 80)], gpa=True)
    >>> fig = plot_dot_statistics(st)
    >>> sorted(a.get_label() for a in fig.axes if a.get_label()), round(fig.get_figwidth() * 25.4)
    (['dots', 'strain map'], 180)
    """
    with ps.figure_style():
        import matplotlib.pyplot as plt

        if stats_.strain is None:
            w = ps.mm_to_inch(width_mm or ps.SINGLE_COLUMN_MM)
            fig, ax = plt.subplots(figsize=(w, 0.7 * w), constrained_layout=True)
            ax.set_label("dots")
            _dots_panel(ax, stats_)
            return fig
        w = ps.mm_to_inch(width_mm or ps.DOUBLE_COLUMN_MM)
        ny, nx = stats_.strain.shape
        img_w = 0.40 * w
        img_h = img_w * ny / nx
        h = img_h + 0.45
        fig = plt.figure(figsize=(w, h))
        bottom = 0.30 / h  # room for the scale bar under the map
        ax_map = fig.add_axes([0.02, bottom, img_w / w, img_h / h], label="strain map")
        cax = fig.add_axes([0.02 + img_w / w + 0.01, bottom, 0.015, img_h / h])
        ax_dots = fig.add_axes([0.60, bottom + 0.04, 0.38, img_h / h - 0.10], label="dots")
        _strain_panel(fig, ax_map, cax, stats_)
        _dots_panel(ax_dots, stats_)
        ps.panel_label(ax_dots, "b", dark_background=False)
        return fig
