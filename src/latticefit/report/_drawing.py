"""Part of :mod:`_lattice_report` (see its docstring): drawing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .. import _plotstyle as ps
from ..micrograph import Micrograph
from ..roi import Circle, Rect
from ._fringes import _basis_angle, fringe_phase, fringe_segments, hkl_label, plain_text

if TYPE_CHECKING:  # annotations only: the report module imports this one
    from ._lattice_report import LatticeReport, RegionResult

# =====================================================================  drawing
_ROLE_TITLE = {"matrix": "matrix", "dot": "dot"}


def _region_title(reg: RegionResult) -> str:
    if reg.role == "dot" and reg.choice.method == "fallback":
        return "region B"
    return _ROLE_TITLE.get(reg.role, reg.role)


def _draw_roi(ax, roi, color, label=None, *, offset=(0.0, 0.0), lw=1.2):
    from matplotlib.patches import Circle as CirclePatch
    from matplotlib.patches import Rectangle

    ox, oy = offset
    if isinstance(roi, Rect):
        patch = Rectangle((roi.x - 0.5 - ox, roi.y - 0.5 - oy), roi.w, roi.h, fill=False, ec=color, lw=lw)
        x0, y0, y1 = roi.x - ox, roi.y - oy, roi.y + roi.h - oy
    elif isinstance(roi, Circle):
        patch = CirclePatch((roi.x - ox, roi.y - oy), roi.r, fill=False, ec=color, lw=lw)
        x0, y0, y1 = roi.x - roi.r - ox, roi.y - roi.r - oy, roi.y + roi.r - oy
    else:
        b = roi.bounds(roi.mask_array.shape)
        patch = Rectangle(
            (b[2] - 0.5 - ox, b[0] - 0.5 - oy), b[3] - b[2], b[1] - b[0], fill=False, ec=color, lw=lw, ls="--"
        )
        x0, y0, y1 = b[2] - ox, b[0] - oy, b[1] - oy
    ax.add_patch(patch)
    if label:
        H = abs(ax.get_ylim()[0] - ax.get_ylim()[1])
        # above the region, or below it when it touches the top of the image
        above = y0 > 0.06 * H
        ax.text(
            x0,
            y0 - 0.01 * H if above else y1 + 0.01 * H,
            label,
            color=color,
            fontsize=6.5,
            fontweight="bold",
            ha="left",
            va="bottom" if above else "top",
            bbox=_dark_box(),
            zorder=21,
        )
    return patch


def _dark_box(pad: float = 0.15) -> dict:
    """Semi-transparent dark box behind a label on an image (keeps the text real text in PDF/SVG,
    which a path-effect outline would turn into paths).
    """
    return dict(boxstyle=f"square,pad={pad}", fc="black", alpha=0.6, lw=0)


def _draw_overview(ax, report: LatticeReport, colors):
    hr = report.hrtem
    ps.show_image(ax, hr.data, pixel_size_nm=hr.pixel_size_nm[1])
    for role, reg in report.regions.items():
        _draw_roi(ax, reg.choice.roi, colors[role], _region_title(reg))
    ps.panel_label(ax, "a", title=_mode_title(hr))


def _mode_title(mg: Micrograph) -> str:
    """Panel title from the acquisition mode: 'HAADF', 'STEM', 'HRTEM' (TEM, or no mode: the HRTEM input) or 'image'."""
    mode = str(mg.mode or "").upper()
    if not mode:  # no mode in the metadata: the detector name often is the title (e.g. 'HAADF', 'ADF')
        title = str(mg.title or "").upper().replace("-", " ").replace("_", " ").split()
        mode = next((w for w in title if w in ("HAADF", "ADF", "STEM")), "")
    if "HAADF" in mode or "ADF" in mode:
        return "HAADF"
    if "STEM" in mode:
        return "STEM"
    if mode in ("", "TEM", "HRTEM", "CTEM"):
        return "HRTEM"
    return "image"


def _draw_haadf(ax, report: LatticeReport, colors):
    ha = report.haadf
    if ha is None:
        ax.set_axis_off()
        if report.anomaly is not None:
            ax.set_axis_on()
            im = ax.imshow(report.anomaly, cmap="cividis", vmin=0, origin="upper")
            ax.set_xticks([])
            ax.set_yticks([])
            for role, reg in report.regions.items():
                _draw_roi(ax, reg.choice.roi, colors[role])
            ps.add_scalebar(ax, report.hrtem.pixel_size_nm[1])
            cb = ax.figure.colorbar(im, ax=ax, fraction=0.04, pad=0.01)
            cb.set_label("anomaly |z|", fontsize=6)
            cb.ax.tick_params(labelsize=5.5)
            ps.panel_label(ax, "b", title="no HAADF: HRTEM anomaly map")
        else:
            ax.text(0.5, 0.5, "(b) no HAADF given", transform=ax.transAxes, ha="center", va="center")
        return
    parts = report.haadf_particles
    if parts is not None:
        from ..particles._pipeline import plot_overlay

        plot_overlay(parts, ha, ax, circles=True, centres=False, scalebar=True, legend=False, linewidth=0.7)
    else:
        ps.show_image(ax, ha.data, pixel_size_nm=ha.pixel_size_nm[1] if ha.pixel_size_nm else None)
    if report.fov is not None and report.fov.agree:
        sy, sx = report.fov.scale_yx
        for role, reg in report.regions.items():
            roi = reg.choice.roi
            if isinstance(roi, Circle):
                mapped = Circle((roi.x + 0.5) / sx - 0.5, (roi.y + 0.5) / sy - 0.5, roi.r / sx)
            elif isinstance(roi, Rect):
                mapped = Rect(
                    int(round(roi.x / sx)),
                    int(round(roi.y / sy)),
                    max(1, int(round(roi.w / sx))),
                    max(1, int(round(roi.h / sy))),
                )
            else:
                continue
            _draw_roi(ax, mapped, colors[role], lw=0.9)
    elif report.fov is not None:
        ps.note_box(ax, "different field of view from the HRTEM:\nnot the same area, regions not mapped", loc="center")
    n = len(parts.table) if parts is not None else 0
    ps.panel_label(ax, "b", title=f"HAADF ({n} dots)" if parts is not None else "HAADF")


def _region_image(hr: Micrograph, roi):
    from ..roi import extract

    sub, weight, (y0, x0) = extract(hr.data, roi, min_size=1)
    return sub, (x0, y0)


def _draw_region(ax, report: LatticeReport, reg: RegionResult, letter: str, colors):
    hr = report.hrtem
    sub, (x0, y0) = _region_image(hr, reg.choice.roi)
    ps.show_image(ax, sub, pixel_size_nm=hr.pixel_size_nm[1], scalebar_location="upper right")
    for sp in ax.spines.values():
        sp.set_edgecolor(colors[reg.role])
        sp.set_linewidth(1.5)
    if isinstance(reg.choice.roi, Circle):
        _draw_roi(ax, reg.choice.roi, colors[reg.role], offset=(x0, y0), lw=0.8)
    rows = reg.drawn_rows()
    labels = []
    if rows is not None:
        spots = reg.lattice.spots
        h, w = sub.shape
        centers = [(0.3 * w, 0.34 * h), (0.7 * w, 0.56 * h)]  # clear of the labels at the bottom
        for k, row in enumerate(rows):
            if row is None:
                continue
            g = spots.iloc[row][["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
            phase = fringe_phase(sub, g, hr.pixel_matrix_nm)
            segs = fringe_segments(g, phase, hr.pixel_matrix_nm, centers[k], n_lines=5, half_length_px=0.13 * min(h, w))
            col = colors[f"g{k + 1}"]
            for s in segs:
                ax.plot(s[:, 0], s[:, 1], color=col, lw=0.9, solid_capstyle="butt")
            labels.append((reg.d_label(row, symbol_index=k + 1), col))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    for i, (text, col) in enumerate(labels):
        ax.text(
            0.02,
            0.02 + 0.1 * (len(labels) - 1 - i),
            text,
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            color=col,
            fontsize=6.2,
            fontweight="bold",
            bbox=_dark_box(),
            zorder=25,
            gid=f"d_label_{reg.role}_{i + 1}",
        )
    ps.panel_label(ax, letter, title=_region_title(reg))
    return labels


def _draw_fft(ax, report: LatticeReport, reg: RegionResult, letter: str, colors):
    """An FFT panel: the region's log power spectrum, every spot circled and labelled, the basis angle arc."""
    spots = reg.lattice.spots
    g_all = (
        np.hypot(spots["gx_inv_nm"].to_numpy(float), spots["gy_inv_nm"].to_numpy(float)) if len(spots) else np.array([])
    )
    rows = reg.drawn_rows()
    basis_g = [g_all[r] for r in (rows or ()) if r is not None]
    gmax = 1.6 * (max(basis_g) if basis_g else (g_all.max() if g_all.size else 5.0))
    _fft_image(ax, reg.spectrum, gmax)
    sign = _display_signs(spots, rows)
    for i in range(len(spots)):
        _fft_spot(ax, report, reg, i, sign[i], rows, gmax, colors)
    ang, ang_err = _basis_angle(reg.lattice, rows)
    if rows is not None and rows[1] is not None and np.isfinite(ang):
        _fft_angle(ax, reg, spots, sign, rows, 0.45 * min(basis_g), (ang, ang_err), colors)
    ps.panel_label(ax, letter, title=f"FFT {_region_title(reg)}")
    return ang, ang_err


def _fft_image(ax, spec, gmax: float) -> None:
    """The log power spectrum within |g| <= gmax (y down, as in the image), contrast from that crop."""
    logp = np.asarray(spec.log_power, float)
    gx, gy = np.asarray(spec.gx_inv_nm), np.asarray(spec.gy_inv_nm)
    sel_y = np.abs(gy) <= gmax
    sel_x = np.abs(gx) <= gmax
    crop = logp[np.ix_(sel_y, sel_x)] if sel_y.any() and sel_x.any() else logp
    lo, hi = np.percentile(crop, [50, 99.8])
    ax.imshow(
        logp, cmap="magma", vmin=lo, vmax=hi, extent=spec.extent_inv_nm, origin="upper", interpolation="antialiased"
    )
    ax.set_xlim(-gmax, gmax)
    ax.set_ylim(gmax, -gmax)  # y down, as in the image
    ax.set_xlabel(r"$g_x$ (1/nm)", labelpad=1)
    ax.set_ylabel(r"$g_y$ (1/nm)", labelpad=1)
    ax.tick_params(direction="out", pad=1)
    step = _nice_step(gmax)
    ticks = np.arange(-np.floor(gmax / step) * step, gmax + 1e-9, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)


def _fft_spot(ax, report, reg, i: int, sign: int, rows, gmax: float, colors) -> None:
    """Spot ``i`` and its Friedel mate (dotted) circled; labelled with its hkl, g1/g2 or its table row."""
    from matplotlib.patches import Circle as CirclePatch

    spots = reg.lattice.spots
    gxi, gyi = sign * spots["gx_inv_nm"].iat[i], sign * spots["gy_inv_nm"].iat[i]
    if np.hypot(gxi, gyi) > gmax:
        return
    rad = 0.07 * gmax
    is_basis = rows is not None and i in rows
    col = colors[f"g{rows.index(i) + 1}"] if is_basis else colors["spot"]
    for sgn in (1, -1):
        ls = "-" if sgn == 1 else ":"
        ax.add_patch(CirclePatch((sgn * gxi, sgn * gyi), rad, fill=False, ec=col, lw=0.9 if is_basis else 0.6, ls=ls))
    hkl = reg.hkl.get(i)
    row_a = _matrix_row(report, reg.role, i)
    if not (is_basis or hkl is not None or row_a is not None):
        return
    if hkl is not None:
        lab = hkl_label(tuple(sign * v for v in hkl))
    elif is_basis:
        lab = f"$g_{rows.index(i) + 1}$"
    else:  # the table's row label of this reflection
        lab = f"#{row_a}"
    u = np.array([gxi, gyi]) / np.hypot(gxi, gyi)
    # beside the spot, but kept inside the panel (a label at the edge would be cut)
    tx = float(np.clip(gxi + u[0] * 2.3 * rad, -0.82 * gmax, 0.82 * gmax))
    ty = float(np.clip(gyi + u[1] * 2.3 * rad, -0.85 * gmax, 0.7 * gmax))  # clear of the angle text
    ax.text(tx, ty, lab, color=col, fontsize=6, ha="center", va="center", bbox=_dark_box(0.1), zorder=25)


def _fft_angle(ax, reg, spots, sign, rows, r_arc: float, angle, colors) -> None:
    """The arc between the two drawn basis spots and the angle ± its 1σ under the panel."""
    from matplotlib.patches import Arc

    ang, ang_err = angle
    g1 = sign[rows[0]] * spots[["gx_inv_nm", "gy_inv_nm"]].iloc[rows[0]].to_numpy(float)
    g2 = sign[rows[1]] * spots[["gx_inv_nm", "gy_inv_nm"]].iloc[rows[1]].to_numpy(float)
    t1 = math.degrees(math.atan2(g1[1], g1[0]))
    d = (math.degrees(math.atan2(g2[1], g2[0])) - t1 + 180) % 360 - 180
    a0, a1 = (t1, t1 + d) if d > 0 else (t1 + d, t1)
    ax.add_patch(Arc((0, 0), 2 * r_arc, 2 * r_arc, theta1=a0, theta2=a1, color=colors["angle"], lw=1.0))
    ax.text(
        0.5,
        0.02,
        f"∠ = {ps.format_uncertain(ang, ang_err, '°')}",
        transform=ax.transAxes,
        color=colors["angle"],
        fontsize=6.2,
        ha="center",
        va="bottom",
        fontweight="bold",
        bbox=_dark_box(),
        zorder=26,
        gid=f"angle_label_{reg.role}",
    )


def _display_signs(spots, rows) -> np.ndarray:
    """+1/-1 per spot: which Friedel mate is drawn solid and labelled (the second drawn spot at an acute
    angle to the first, so that the arc shows the angle that is reported).
    """
    sign = np.ones(len(spots), int)
    if rows is not None and len(rows) == 2 and rows[0] is not None and rows[1] is not None:
        g = spots[["gx_inv_nm", "gy_inv_nm"]].to_numpy(float)
        if float(np.dot(g[rows[0]], g[rows[1]])) < 0:
            sign[rows[1]] = -1
    return sign


def _nice_step(gmax: float) -> float:
    raw = gmax / 2.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _reflection_name(report: LatticeReport, row_a: int, row_b: int, k: int) -> str:
    """(hkl) when indexed; else g1/g2 for the spots drawn in the panels, '#i' (row of the matrix spots, as in the FFTs)."""
    for role, row in (("matrix", row_a), ("dot", row_b)):
        reg = report.regions[role]
        hkl = reg.hkl.get(row)
        if hkl is not None:
            return hkl_label(tuple(reg.display_sign(row) * v for v in hkl))
    drawn = report.regions["matrix"].drawn_rows() or ()
    if row_a in drawn:
        return f"$g_{{{list(drawn).index(row_a) + 1}}}$"
    return f"#{row_a}"


def _matrix_row(report: LatticeReport, role: str, row: int):
    """The matrix spot row of a region's spot when it is in the comparison table (else None)."""
    comp = report.comparison
    if comp is None or len(comp.table) == 0:
        return None
    key = "spot_a" if role == "matrix" else "spot_b"
    hit = comp.table[comp.table[key] == row]
    return int(hit["spot_a"].iat[0]) if len(hit) else None


def comparison_rows(report: LatticeReport, *, mathtext: bool = True) -> list[list[str]]:
    """Rows of the figure's table, one per reflection measured in both regions.

    Columns: reflection ((hkl) when indexed), d in the matrix, d in the dot
    (each ± its standard uncertainty, Å), Δd = d_dot − d_matrix (Å), Δd/d (%),
    and "yes (z = 4.1)" / "no (z = 0.8)" for significance at the
    comparison's z threshold.
    """
    cmp = report.comparison
    if cmp is None or cmp.table is None or len(cmp.table) == 0:
        return []
    rows = []
    for k, r in enumerate(cmp.table.to_dict("records")):
        name = _reflection_name(report, int(r["spot_a"]), int(r["spot_b"]), k)
        if not mathtext:
            name = plain_text(name)
        dd = r["d_b_angstrom"] - r["d_a_angstrom"]
        dd_err = math.hypot(r["d_a_err_angstrom"], r["d_b_err_angstrom"])
        sig = "yes" if r["significant"] else "no"
        rows.append(
            [
                name,
                ps.format_uncertain(r["d_a_angstrom"], r["d_a_err_angstrom"]),
                ps.format_uncertain(r["d_b_angstrom"], r["d_b_err_angstrom"]),
                ps.format_uncertain(dd, dd_err),
                ps.format_uncertain(100 * r["rel_diff"], 100 * r["rel_diff_err"], "%"),
                f"{sig} (z = {r['z']:.1f})",
            ]
        )
    return rows


#: reflections shown in the figure's table (strongest first; all of them are in OUT.json / OUT.csv)
MAX_TABLE_ROWS = 10
#: below this width (mm) the figure uses the two-column layout of a single journal column
COMPACT_WIDTH_MM = 130.0


#: the first line under the table: what every "±" of the figure is
ERROR_LEGEND = "± = 1σ standard uncertainty (d, angles, Δd, Δd/d); z = Δd / σ(Δd)"


def _note_lines(report: LatticeReport, width_mm: float = ps.DOUBLE_COLUMN_MM) -> list[str]:
    import textwrap

    wrap = max(40, int(0.82 * width_mm))  # characters per line at 6 pt
    lines = [ERROR_LEGEND]
    for n in report.notes:
        lines.extend(textwrap.wrap(f"⚠ {n}", wrap, subsequent_indent="   "))
    return lines


def _draw_table(ax, report: LatticeReport, *, compact: bool = False):
    ax.set_axis_off()
    rows = comparison_rows(report)
    thr = getattr(report.comparison, "z_threshold", 3.0)
    header = [
        "reflection",
        "d matrix (Å)",
        f"d {_region_title(report.regions['dot'])} (Å)",
        "Δd (Å)",
        "Δd/d",
        f"significant (|z| > {thr:g})?",
    ]
    if not rows:
        ax.text(0.0, 0.5, "no reflection measured in both regions", transform=ax.transAxes, fontsize=6.5)
        return None
    n_more = len(rows) - MAX_TABLE_ROWS
    if n_more > 0:
        rows = rows[:MAX_TABLE_ROWS] + [[f"+{n_more} more (in the .csv/.json)", "", "", "", "", ""]]
    keep = [0, 1, 2, 4, 5] if compact else list(range(6))  # one column: no Δd in Å (Δd/d says it)
    if compact:
        header[5] = f"|z| > {thr:g}?"
    shown = [[r[i] for i in keep] for r in rows]
    tab = ax.table(
        cellText=shown,
        colLabels=[header[i] for i in keep],
        bbox=[0.0, 0.0, 1.0, 1.0],
        cellLoc="center",
        edges="horizontal",
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(5.6 if compact else 6.3)
    for (r, c), cell in tab.get_celld().items():
        cell.set_linewidth(0.4)
        if r == 0:
            cell.set_text_props(fontweight="bold")
        elif rows[r - 1][0].startswith("+"):
            cell.set_text_props(ha="left", fontstyle="italic")
            cell.set_linewidth(0)
        elif rows[r - 1][5].startswith("yes"):
            cell.set_text_props(color=ps.COLORS["warning"], fontweight="bold")
    return tab


#: height of one line of notes under the table (inches): the figure's room for them, and their baseline pitch
NOTE_LINE_IN = 0.11


def _draw_notes(ax, report: LatticeReport, width_mm: float):
    """The notes under the table, one text per line (``gid`` ``notes``, then ``notes_2``...), evenly spaced.

    One text per line, not one multi-line text: matplotlib applies a text's font features (no ligatures,
    see ``_plotstyle.save_figure``) to single-line texts only.
    """
    from matplotlib.transforms import offset_copy

    ax.set_axis_off()
    size = 6.0
    pitch_pt = NOTE_LINE_IN * 72.0
    for k, line in enumerate(_note_lines(report, width_mm)):
        ax.text(
            0.0,
            1.0,
            line,
            transform=offset_copy(ax.transAxes, ax.figure, y=-(size + k * pitch_pt), units="points"),
            fontsize=size,
            color="black" if line == ERROR_LEGEND else ps.COLORS["warning"],
            va="baseline",
            ha="left",
            gid="notes" if k == 0 else f"notes_{k + 1}",
        )


def plot_lattice_report(report: LatticeReport, *, width_mm: float = ps.DOUBLE_COLUMN_MM):
    """Draw the Fig. 4 figure of ``report`` (stored in ``report.figure`` and returned).

    Parameters
    ----------
    report : LatticeReport
        From :func:`build_lattice_report`.
    width_mm : float
        Figure width: 180 mm (a double journal column) puts (a, b) side by side over
        (c, d, e, f); below 130 mm (e.g. 85 mm, one column) the panels go two per row,
        (a b / c d / e f), and the table drops the Δd (Å) column.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    colors = dict(ps.COLORS)
    H, W = report.hrtem.shape
    aspect = H / W
    compact = width_mm < COMPACT_WIDTH_MM
    n_rows = min(max(len(comparison_rows(report)), 1), MAX_TABLE_ROWS + 1) + 1
    n_notes = len(_note_lines(report, width_mm))
    with ps.figure_style():
        w_in = ps.mm_to_inch(width_mm)
        colorbar_in = 0.45 if (report.haadf is None and report.anomaly is not None) else 0.0
        top_h = (w_in / 2 - 0.1 - colorbar_in) * aspect
        tab_h = (0.12 if compact else 0.135) * n_rows
        note_h = NOTE_LINE_IN * n_notes + 0.02
        if compact:
            mid_h = w_in / 2 * 0.98
            heights = [top_h, mid_h, mid_h, tab_h, note_h]
            fig = plt.figure(figsize=(w_in, sum(heights) + 0.35), layout="constrained")
            gs = fig.add_gridspec(5, 2, height_ratios=heights)
            axes = [fig.add_subplot(gs[r, c]) for r, c in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1))]
            ax_t, ax_n = fig.add_subplot(gs[3, :]), fig.add_subplot(gs[4, :])
        else:
            mid_h = w_in / 4 * 1.02
            heights = [top_h, mid_h, tab_h, note_h]
            fig = plt.figure(figsize=(w_in, sum(heights) + 0.3), layout="constrained")
            gs = fig.add_gridspec(4, 4, height_ratios=heights)
            axes = [fig.add_subplot(gs[0, 0:2]), fig.add_subplot(gs[0, 2:4])]
            axes += [fig.add_subplot(gs[1, c]) for c in range(4)]
            ax_t, ax_n = fig.add_subplot(gs[2, :]), fig.add_subplot(gs[3, :])
        ax_a, ax_b, ax_c, ax_d, ax_e, ax_f = axes
        _draw_overview(ax_a, report, colors)
        _draw_haadf(ax_b, report, colors)
        _draw_region(ax_c, report, report.regions["matrix"], "c", colors)
        _draw_fft(ax_d, report, report.regions["matrix"], "d", colors)
        _draw_region(ax_e, report, report.regions["dot"], "e", colors)
        _draw_fft(ax_f, report, report.regions["dot"], "f", colors)
        _draw_table(ax_t, report, compact=compact)
        _draw_notes(ax_n, report, width_mm)
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.03, hspace=0.02)
    report.figure = fig
    return fig
