"""The GPA figure: the image, exx, eyy, exy, rotation, dilatation and the sigma of the dilatation."""

from __future__ import annotations

import numpy as np

from .. import _plotstyle as ps

__all__ = ["display_range", "plot_strain_map"]

#: the colour range is at least this many median sigmas, so that pure noise looks like noise
RANGE_SIGMAS = 3.0


def display_range(values: np.ndarray, sigma: np.ndarray, valid: np.ndarray) -> float:
    """Half-width of a colour range centred on 0: ``max(3 median sigma, 99th percentile of |value|)``.

    The percentile is taken over the well-measured pixels only (sigma at most
    3 x its median), so that phase singularities where the fringe amplitude
    vanishes (a dot rim, a dislocation core) do not wash out the rest of the map.
    """
    s = sigma[valid]
    if s.size == 0:
        return 1.0
    med = float(np.median(s))
    good = valid & (sigma <= 3.0 * med)
    v = np.abs(values[good])
    lim = max(RANGE_SIGMAS * med, float(np.percentile(v, 99.0)) if v.size else 0.0)
    return lim if lim > 0 else 1.0


def _scalebar_below(ax, pixel_size_nm: float, width_px: int):
    """A nm scale bar under the image (outside the data), left-aligned."""
    length_nm = ps.scalebar_length_nm(width_px * pixel_size_nm, 0.3)
    frac = length_nm / (width_px * pixel_size_nm)
    ax.plot(
        [0.0, frac],
        [-0.035, -0.035],
        transform=ax.transAxes,
        color="black",
        lw=2.0,
        clip_on=False,
        solid_capstyle="butt",
    )
    label = f"{length_nm:g} nm"
    ax.text(frac + 0.03, -0.035, label, transform=ax.transAxes, ha="left", va="center", fontsize=6.5, clip_on=False)


def _map_panel(fig, ax, cax, data, valid, lim, cmap, label, letter, pixel_size_nm):
    import matplotlib as mpl

    cm = mpl.colormaps[cmap].copy()
    cm.set_bad("0.82")
    shown = np.ma.masked_where(~valid, data)
    im = ax.imshow(shown, cmap=cm, vmin=-lim if cmap != "viridis" else 0.0, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    cb = fig.colorbar(im, cax=cax)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6)
    ps.panel_label(ax, letter, dark_background=False)
    _scalebar_below(ax, pixel_size_nm, data.shape[1])
    return im


def _layout(plt, width_in: float, aspect: float):
    """2 x 4 cells: a square-ish image with its colourbar to the right, room for the scale bar below."""
    cell_w = width_in / 4.0
    img_w = 0.56 * cell_w
    img_h = img_w * aspect
    top, below, gap = 0.08, 0.28, 0.12  # inches: above each image, under it (scale bar), between rows
    height = 2 * (top + img_h + below) + gap
    fig = plt.figure(figsize=(width_in, height))
    axes, caxes = [], []
    for i in range(8):
        row, col = divmod(i, 4)
        x0 = col * cell_w + 0.03 * cell_w
        y0 = height - (row + 1) * (top + img_h + below) - row * gap + below
        axes.append(fig.add_axes([x0 / width_in, y0 / height, img_w / width_in, img_h / height]))
        caxes.append(
            fig.add_axes(
                [(x0 + img_w + 0.03 * cell_w) / width_in, y0 / height, 0.045 * cell_w / width_in, img_h / height]
            )
        )
    axes[7].set_position([(3 * cell_w) / width_in, 0.02, cell_w / width_in, 0.5 - 0.04])
    caxes[7].axis("off")
    return axes, caxes, fig


def plot_strain_map(result, *, width_mm: float = ps.DOUBLE_COLUMN_MM, title: str | None = None):
    """Draw a :class:`StrainMap`: image with reference region, 5 strain maps and sigma(dilatation), and notes.

    Strain maps are in %, rotation in mrad, on a diverging colormap centred on
    0 whose half-range is at least 3 median sigmas (pure noise looks like
    noise, not like strain); pixels within 4 point-spread sigmas of the
    edges (not valid) are grey. The scale bars sit under the panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    r = result
    px = r.pixel_size_nm[1]
    with ps.figure_style():
        ny, nx = r.shape
        w = ps.mm_to_inch(width_mm)
        axes, caxes, fig = _layout(plt, w, ny / nx)
        # (a) image and the reference region
        if r.image is not None:
            ps.show_image(axes[0], r.image, scalebar=False)
        axes[0].contour(r.reference_mask, levels=[0.5], colors=[ps.COLORS.get("matrix", "#0072B2")], linewidths=0.8)
        axes[0].contour(r.valid, levels=[0.5], colors=["0.6"], linewidths=0.6, linestyles="dashed")
        ps.panel_label(axes[0], "a")
        _scalebar_below(axes[0], px, nx)
        v = r.valid
        lim_e = max(display_range(getattr(r, n), getattr(r, f"sigma_{n}"), v) for n in ("exx", "eyy"))
        lim_s = display_range(r.exy, r.sigma_exy, v)
        panels = [
            ("exx", 100.0, lim_e * 100, r"$\varepsilon_{xx}$ (%)"),
            ("eyy", 100.0, lim_e * 100, r"$\varepsilon_{yy}$ (%)"),
            ("exy", 100.0, lim_s * 100, r"$\varepsilon_{xy}$ (%)"),
            ("rotation_rad", 1e3, display_range(r.rotation_rad, r.sigma_rotation_rad, v) * 1e3, "rotation (mrad)"),
            (
                "dilatation",
                100.0,
                display_range(r.dilatation, r.sigma_dilatation, v) * 100,
                r"dilatation $\varepsilon_{xx}+\varepsilon_{yy}$ (%)",
            ),
        ]
        for i, (name, k, lim, label) in enumerate(panels, start=1):
            _map_panel(fig, axes[i], caxes[i], getattr(r, name) * k, v, lim, "RdBu_r", label, "bcdef"[i - 1], px)
        sd = r.sigma_dilatation * 100
        smax = min(float(np.percentile(sd[v], 99)), 4.0 * float(np.median(sd[v]))) if v.any() else 1.0
        _map_panel(fig, axes[6], caxes[6], sd, v, smax, "viridis", r"$\sigma$ of dilatation (%, 1 SD)", "g", px)
        axes[7].axis("off")
        caxes[0].axis("off")
        d = r.to_dict()
        st = d["maps_valid"]
        lines = [
            title or (str(r.source) if r.source else "GPA"),
            f"d(g1) = {d['d_angstrom'][0]:.4f} Å, d(g2) = {d['d_angstrom'][1]:.4f} Å",
            f"resolution σ {r.sigma_nm:.3g} nm (FWHM {r.resolution_fwhm_nm:.3g} nm)",
            "valid pixels: mean, SD; median σ",
        ]
        for key in ("exx", "eyy", "exy", "dilatation"):
            lines.append(
                f"  {key}: {st[key]['mean_percent']:+.3f}, {st[key]['sd_percent']:.3f}; "
                f"{st[key]['median_sigma_percent']:.3f} %"
            )
        lines.append(
            f"  rotation: {st['rotation']['mean_mrad']:+.2f}, {st['rotation']['sd_mrad']:.2f}; "
            f"{st['rotation']['median_sigma_mrad']:.2f} mrad"
        )
        lines.append("σ: 1 SD per pixel, Fisher propagation")
        lines.append("  of the measured noise")
        lines.append("blue: reference; grey: edge (4 σ)")
        axes[7].text(0.02, 0.98, "\n".join(lines), transform=axes[7].transAxes, ha="left", va="top", fontsize=5.6)
    return fig
