"""The built-in analyses of a batch: lattice metrology (+ indexing) and particle sizing, each with a small figure.

Each analyzer has the signature ``fn(micrograph, settings) -> AnalysisOutcome``
(see :mod:`latticefit.batch._task`): it calls the library functions
(:func:`latticefit.lattice.measure_lattice`,
:func:`latticefit.indexing.index_lattice`,
:func:`latticefit.particles.find_particles`), picks the key numbers for
``summary.csv`` and draws a two-panel figure:

- lattice: (a) the image with a scale bar; (b) its power spectrum on
  calibrated axes (1/nm) with the refined spots circled and the strongest
  spacings labelled;
- particles: (a) the image with the particle outlines; (b) the histogram of
  the model-fit diameters used in the statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import _plotstyle as ps
from ..crystal._structure import is_cif_path
from ._types import AnalysisOutcome

__all__ = [
    "default_analyzers",
    "analyze_lattice",
    "analyze_particles",
    "lattice_summary",
    "particle_summary",
    "FIGURE_SIZE_IN",
    "FIGURE_DPI",
]

#: per-file figure: two panels side by side, small enough for a thumbnail page
FIGURE_SIZE_IN = (6.4, 3.2)
FIGURE_DPI = 110

#: size-summary keys copied to summary.csv (``n`` becomes ``n_particles``)
_PARTICLE_KEYS = ("n_edge", "mean_nm", "std_nm", "median_nm", "rsd_percent", "rsd_corrected_percent", "mean_err_nm")


def default_analyzers() -> dict:
    """``{'lattice': analyze_lattice, 'particles': analyze_particles}``."""
    return {"lattice": analyze_lattice, "particles": analyze_particles}


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ----------------------------------------------------------------------------- lattice
def lattice_summary(result) -> dict:
    """Key numbers of a :class:`~latticefit.lattice.LatticeResult` for ``summary.csv``.

    ``d_angstrom`` ± ``d_err_angstrom`` is the strongest spot (highest SNR);
    ``basis_angle_deg`` the acute angle between the fitted basis vectors.
    """
    spots = result.spots
    out: dict[str, Any] = {
        "n_spots": int(len(spots)),
        "d_angstrom": None,
        "d_err_angstrom": None,
        "azimuth_deg": None,
        "snr": None,
        "basis_d1_angstrom": None,
        "basis_d2_angstrom": None,
        "basis_angle_deg": None,
        "basis_angle_err_deg": None,
    }
    if len(spots):
        top = spots.iloc[0]
        out.update(
            d_angstrom=_num(top["d_angstrom"]),
            d_err_angstrom=_num(top["d_err_angstrom"]),
            azimuth_deg=_num(top["azimuth_deg"]),
            snr=_num(top["snr"]),
        )
    b = result.basis
    if b:
        d = list(b.get("d_angstrom") or [None, None])
        out.update(
            basis_d1_angstrom=_num(d[0]),
            basis_d2_angstrom=_num(d[1]),
            basis_angle_deg=_num(b.get("angle_deg")),
            basis_angle_err_deg=_num(b.get("angle_err_deg")),
        )
    return out


def _split_phases(settings: Mapping) -> tuple[list[str], list[str]]:
    names, cifs = [], []
    for entry in settings.get("phases") or []:
        ph = entry["phase"] if isinstance(entry, Mapping) else str(entry)
        (cifs if is_cif_path(ph) else names).append(ph)
    return names, cifs


def _index(result, mg, settings):
    from ..crystal._indexing import index_lattice

    names, cifs = _split_phases(settings)
    kw: dict[str, Any] = {"phases": names or None, "cifs": cifs, "free_scale": bool(settings.get("free_scale"))}
    if mg.beam_energy_kv:
        kw["beam_energy_kv"] = float(mg.beam_energy_kv)
    return index_lattice(result, **kw)


def _indexing_summary(idx) -> dict:
    b = idx.best
    if b is None:
        return {"phase": "", "zone_axis": "", "n_indexed": 0, "scale_factor": None, "scale_factor_err": None}
    return {
        "phase": b.phase.name,
        "zone_axis": "[" + " ".join(str(int(v)) for v in b.zone_axis) + "]",
        "n_indexed": int(b.n_matched),
        "scale_factor": _num(b.scale_factor),
        "scale_factor_err": _num(b.scale_factor_err),
    }


def _phase_label(settings: Mapping) -> str:
    names = []
    for entry in settings.get("phases") or []:
        ph = str(entry["phase"] if isinstance(entry, Mapping) else entry)
        names.append(Path(ph).name if is_cif_path(ph) else ph)
    return ", ".join(names)


def indexing_note(n_indexed: int, n_spots: int, settings: Mapping) -> str | None:
    """A warning for ``summary.csv`` when indexing explained no spot, or fewer than half of them.

    Examples
    --------
    >>> indexing_note(0, 15, {"phases": [{"phase": "SrTiO3"}]})
    '0/15 spots indexed against SrTiO3: calibration off? try --free-scale'
    >>> indexing_note(14, 15, {"phases": [{"phase": "SrTiO3"}]}) is None
    True
    """
    if n_spots <= 0 or 2 * n_indexed >= n_spots:
        return None
    text = f"{n_indexed}/{n_spots} spots indexed against {_phase_label(settings)}"
    if settings.get("free_scale"):
        return text + " (free scale 0.85-1.15): another phase, or a second phase in the image?"
    return text + ": calibration off? try --free-scale"


def _with_indexing(spots, indexed):
    """The lattice spots plus Miller ``h``, ``k``, ``l`` (integers, missing where unmatched), ``index_status``,
    ``phase``, ``d_calc_angstrom``, ``residual_angstrom`` of the best indexing solution (``n1``, ``n2`` are the
    lattice basis indices).
    """
    import pandas as pd

    out = spots.reset_index(drop=True).copy()
    rows = indexed.reset_index(drop=True)
    if len(rows) != len(out):
        return out
    matched = (rows["status"] != "unmatched").to_numpy()
    for c in ("h", "k", "l"):
        values = pd.array(rows[c], dtype="Int64")
        values[~matched] = pd.NA
        out[c] = values
    out["index_status"] = rows["status"].to_numpy()
    for col in ("phase", "d_calc_angstrom", "residual_angstrom"):
        if col in rows.columns:
            out[col] = rows[col].to_numpy()
    return out


def analyze_lattice(mg, settings: Mapping) -> AnalysisOutcome:
    """Lattice spots (d ± err, angles) of the whole image; indexed when ``settings['phases']`` names phases."""
    from ..lattice._measure import measure_lattice
    from ..spectrum import power_spectrum

    # a batch runs one file per core: the FFTs of one file use one thread
    opts = {"workers": 1, **dict(settings.get("lattice_options") or {})}
    res = measure_lattice(mg, **opts)
    summary = lattice_summary(res)
    spots = res.spots.copy()
    result: Any = res
    notes: list[str] = []
    if settings.get("phases") and len(spots):
        idx = _index(res, mg, settings)
        summary.update(_indexing_summary(idx))
        result = idx  # its to_dict() is the lattice record plus the indexing keys
        spots = _with_indexing(spots, idx.spots)
        note = indexing_note(summary["n_indexed"], len(spots), settings)
        if note:
            notes.append(note)
    elif settings.get("phases"):
        notes.append("no spots to index")
    # the figure (and its spectrum) only when figures are written (batch --no-figures: not built at all)
    fig = lattice_figure(mg, res, power_spectrum(mg, workers=1), summary) if settings.get("figures", True) else None
    return AnalysisOutcome(summary=summary, result=result, spots=spots_table(spots), figure=fig, notes=notes)


def spots_table(spots):
    """The spots as written to ``spots.csv``: the g vector as ``gx_inv_nm``, ``gy_inv_nm`` and its length as
    ``g_abs_inv_nm`` (never a scalar named ``g_inv_nm``, which in the JSON records is the vector).
    """
    out = spots.copy()
    if "g_inv_nm" in out.columns:
        if "g_abs_inv_nm" not in out.columns:
            out.insert(list(out.columns).index("g_inv_nm"), "g_abs_inv_nm", out["g_inv_nm"].to_numpy())
        out = out.drop(columns=["g_inv_nm"])
    elif {"gx_inv_nm", "gy_inv_nm"} <= set(out.columns) and "g_abs_inv_nm" not in out.columns:
        out["g_abs_inv_nm"] = np.hypot(out["gx_inv_nm"].to_numpy(float), out["gy_inv_nm"].to_numpy(float))
    return out


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # fixed margins: a constrained layout would double the drawing time of these small figures
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    fig.subplots_adjust(left=0.02, right=0.985, bottom=0.13, top=0.92, wspace=0.28)
    FigureCanvasAgg(fig)
    return fig


def _title(mg) -> str:
    name = Path(mg.source).name if mg.source else "image"
    return f"{name} [{mg.title}]" if mg.title and len(mg.signals or []) > 1 else name


#: the image panel is about 300 px wide: larger images are block-averaged to at most this size first
_DISPLAY_MAX_PX = 640


def _display_image(data: np.ndarray) -> tuple[np.ndarray, int]:
    """``data`` block-averaged by an integer factor to at most :data:`_DISPLAY_MAX_PX` across, and the factor."""
    f = max(1, int(math.ceil(max(data.shape) / _DISPLAY_MAX_PX)))
    if f == 1:
        return data, 1
    h, w = (data.shape[0] // f) * f, (data.shape[1] // f) * f
    return data[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3)), f


def _spectrum_window(spectrum, gmax: float):
    """log10 power of the part of the spectrum with |gx|, |gy| <= gmax, and its imshow extent."""
    gx, gy = spectrum.gx_inv_nm, spectrum.gy_inv_nm
    cols = np.flatnonzero(np.abs(gx) <= gmax * 1.02)
    rows = np.flatnonzero(np.abs(gy) <= gmax * 1.02)
    if cols.size < 2 or rows.size < 2:
        return spectrum.log_power, spectrum.extent_inv_nm
    p = spectrum.power[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    pos = p[p > 0]
    lp = np.log10(np.maximum(p, pos.min() if pos.size else 1.0))
    dx, dy = gx[1] - gx[0], gy[1] - gy[0]
    extent = (
        float(gx[cols[0]] - dx / 2),
        float(gx[cols[-1]] + dx / 2),
        float(gy[rows[-1]] + dy / 2),
        float(gy[rows[0]] - dy / 2),
    )
    return lp, extent


def lattice_figure(mg, result, spectrum, summary: Mapping):
    """(a) image with scale bar, (b) power spectrum (1/nm) with the spots circled and labelled."""
    from matplotlib.patches import Circle

    with ps.figure_style():
        fig = _figure()
        ax_img, ax_fft = fig.subplots(1, 2)
        img, f = _display_image(mg.data)
        px = mg.pixel_size_nm[1] * f if mg.pixel_size_nm else None
        ps.show_image(ax_img, img, pixel_size_nm=px)
        ps.panel_label(ax_img, "a", title="image")
        spots = result.spots
        g = np.hypot(spots["gx_inv_nm"], spots["gy_inv_nm"]).to_numpy() if len(spots) else np.array([])
        gmax = float(g.max()) * 1.35 if g.size else float(min(abs(spectrum.gx_inv_nm[0]), abs(spectrum.gy_inv_nm[0])))
        lp, extent = _spectrum_window(spectrum, gmax)
        lo, hi = np.percentile(lp, [50, 99.95])
        ax_fft.imshow(lp, extent=extent, cmap="gray", vmin=lo, vmax=hi, origin="upper", interpolation="antialiased")
        ax_fft.set_xlim(-gmax, gmax)
        ax_fft.set_ylim(gmax, -gmax)
        ax_fft.set_xlabel("$g_x$ (1/nm)")
        ax_fft.set_ylabel("$g_y$ (1/nm)")
        r = 0.04 * gmax
        for i, row in enumerate(spots.itertuples()):
            color = ps.COLORS["spot"] if int(getattr(row, "order", 1)) == 1 else ps.COLORS["g2"]
            for sgn in (1, -1):
                ax_fft.add_patch(Circle((sgn * row.gx_inv_nm, sgn * row.gy_inv_nm), r, fill=False, lw=0.8, color=color))
            if i < 4:
                ax_fft.annotate(
                    f"{row.d_angstrom:.3f} Å",
                    (row.gx_inv_nm, row.gy_inv_nm),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=6,
                    color=ps.COLORS["g1"],
                )
        ps.panel_label(ax_fft, "b", dark_background=True, title="power spectrum")
        lines = [f"{summary['n_spots']} spots"]
        if summary.get("d_angstrom"):
            lines.append(
                "strongest d = " + ps.format_uncertain(summary["d_angstrom"], summary.get("d_err_angstrom"), "Å")
            )
        if summary.get("basis_angle_deg"):
            lines.append(
                "basis angle = "
                + ps.format_uncertain(summary["basis_angle_deg"], summary.get("basis_angle_err_deg"), "°")
            )
        if summary.get("phase"):
            lines.append(f"{summary['phase']} {summary.get('zone_axis', '')}")
            if summary.get("scale_factor") is not None:
                lines.append(
                    "scale factor = "
                    + ps.format_uncertain(summary.get("scale_factor"), summary.get("scale_factor_err"))
                )
        elif summary.get("n_indexed") == 0:
            lines.append("not indexed")
        ax_fft.text(
            0.98,
            0.02,
            "\n".join(lines),
            transform=ax_fft.transAxes,
            ha="right",
            va="bottom",
            fontsize=6,
            color="white",
            bbox=dict(boxstyle="square,pad=0.2", fc="black", alpha=0.55, lw=0),
        )
        fig.suptitle(_title(mg), fontsize=7)
    return fig


# ----------------------------------------------------------------------------- particles
def particle_summary(result) -> dict:
    """Key numbers of a :class:`~latticefit.particles.ParticleResult` for ``summary.csv``.

    ``n_particles`` counts the particles in the statistics (edge particles
    left out, ``n_edge``); ``n_detected`` every particle found.
    """
    s = result.summary or {}
    out: dict[str, Any] = {"n_particles": s.get("n"), "n_detected": int(len(result.table))}
    for k in _PARTICLE_KEYS:
        v = s.get(k)
        out[k] = int(v) if k == "n_edge" and v is not None else _num(v)
    ci = s.get("rsd_ci95_percent")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        out["rsd_ci95_low_percent"], out["rsd_ci95_high_percent"] = _num(ci[0]), _num(ci[1])
    return out


def analyze_particles(mg, settings: Mapping) -> AnalysisOutcome:
    """Particles (model-fit diameters) and their size statistics."""
    from ..particles._pipeline import find_particles

    res = find_particles(mg, **dict(settings.get("particle_options") or {}))
    summary = particle_summary(res)
    fig = particles_figure(mg, res, summary) if settings.get("figures", True) else None
    return AnalysisOutcome(summary=summary, result=res, particles=res.table, figure=fig)


def particles_figure(mg, result, summary: Mapping):
    """(a) image with the particle outlines, (b) histogram of the diameters in the statistics."""
    from ..particles._pipeline import plot_overlay

    with ps.figure_style():
        fig = _figure()
        ax_img, ax_h = fig.subplots(1, 2)
        plot_overlay(result, mg, ax=ax_img)
        n_det, n_stat = summary.get("n_detected") or 0, summary.get("n_particles") or 0
        ps.panel_label(
            ax_img,
            "a",
            title=(f"{n_det} detected, {n_stat} in statistics" if n_det != n_stat else f"{n_det} particles"),
        )
        d = np.asarray(result.diameters_nm, dtype=float)
        d = d[np.isfinite(d)]
        if d.size:
            bins = max(5, min(30, int(np.sqrt(d.size)) + 3))
            counts, _, _ = ax_h.hist(d, bins=bins, color=ps.COLORS["hist"], edgecolor="white", linewidth=0.4)
            ax_h.set_ylim(0, max(counts.max(), 1) * 1.4)  # room for the statistics text
        ax_h.set_xlabel("diameter (nm)")
        ax_h.set_ylabel("particles")
        text = f"n = {summary.get('n_particles') or 0}"
        if summary.get("mean_nm"):
            text += "\nmean = " + ps.format_uncertain(summary["mean_nm"], summary.get("mean_err_nm"), "nm")
        if summary.get("rsd_percent") is not None:
            text += f"\nRSD = {summary['rsd_percent']:.1f}%"
        ax_h.text(
            0.97,
            0.97,
            text,
            transform=ax_h.transAxes,
            ha="right",
            va="top",
            fontsize=6,
            bbox=dict(boxstyle="square,pad=0.2", fc="white", alpha=0.8, lw=0),
        )
        ps.panel_label(ax_h, "b", dark_background=False, title="sizes")
        fig.suptitle(_title(mg), fontsize=7)
    return fig
