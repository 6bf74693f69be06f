"""The particle overlay figure and the summary lines printed by ``latticefit particles``."""

from __future__ import annotations

import math

import numpy as np

from ..micrograph import Micrograph
from ._result import ParticleResult


def plot_overlay(
    result: ParticleResult,
    image=None,
    ax=None,
    *,
    circles: bool = True,
    centres: bool = True,
    scalebar: bool = True,
    legend: bool = True,
    linewidth: float = 0.8,
):
    """Draw the segmented particles over the image.

    Outlines of the label image by status (:mod:`latticefit._particle_overlay`): particles in the
    statistics in orange with their fitted model diameter as a solid sky-blue circle, particles cut by
    the border in reddish purple, unsplit clusters in vermillion (dashed), rejected fits in yellow
    (dotted, crossed); all Okabe-Ito (colour-blind safe). The scale bar goes to the emptiest corner
    and never covers a detected particle (outside the image when no corner is free).

    Parameters
    ----------
    result : ParticleResult
        Output of :func:`find_particles`.
    image : Micrograph or ndarray, optional
        The analysed image (not needed when only outlines are wanted).
    ax : matplotlib Axes, optional
        Axes to draw in (a new figure otherwise).
    circles, centres, scalebar, legend : bool
        Draw the fitted circles / centre marks / a scale bar / a legend.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from latticefit import synth
    >>> mg, _ = synth.haadf_dots((256, 256), pixel_size_nm=0.1, diameter_nm=5, n_particles=6, n_touching_pairs=1)
    >>> from latticefit.particles import find_particles
    >>> ax = plot_overlay(find_particles(mg, diameter_range_nm=(2, 10)), mg)
    """
    import matplotlib.pyplot as plt

    from .._plotstyle import show_image
    from . import _overlay as _particle_overlay

    if ax is None:
        _fig, ax = plt.subplots(figsize=(5, 5))
    pix = float(math.sqrt(result.pixel_size_nm[0] * result.pixel_size_nm[1]))
    if image is not None:
        data = image.data if isinstance(image, Micrograph) else np.asarray(image, dtype=np.float32)
        show_image(ax, data, scalebar=False)
    h, w = result.labels.shape
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    t = result.table
    if scalebar and image is not None:
        # the emptiest corner: no segment and no fitted disk of any detection under the bar
        occ_t = t.assign(diameter_px_overlay=t["diameter_nm"] / pix) if len(t) else None
        _particle_overlay.place_scalebar(ax, pix, result.labels, occ_t)
    if len(t) == 0:
        ax.text(0.5, 0.5, "no particles", transform=ax.transAxes, ha="center", va="center", color="white")
        return ax
    handles = _particle_overlay.draw_particles(ax, result, circles=circles, centres=centres, linewidth=linewidth)
    if legend:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.01),
            ncol=2,
            fontsize=6,
            frameon=False,
            handlelength=1.8,
            borderaxespad=0.2,
        )
    return ax


def _g(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def count_line(s: dict, n_detected: int | None = None) -> str:
    """``"N detected = n in statistics + e cut by the border + r rejected (reasons) + c unsplit clusters"``."""
    nd = s.get("n_detected", n_detected)
    rule = s.get("border_rule", "exclude")
    parts = [f"{s['n']} in statistics" + (" (flagged kept)" if s.get("n_flagged_kept") else "")]
    parts.append(f"{s.get('n_edge', 0)} cut by the border (border rule {rule})")
    reasons = s.get("reasons") or {}
    why = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in reasons.items())
    parts.append(f"{s.get('n_rejected', 0)} rejected fits" + (f" ({why})" if why else ""))
    parts.append(f"{s.get('n_cluster', 0)} unsplit clusters")
    return f"{nd} particles detected = " + " + ".join(parts)


def summary_lines(result: ParticleResult) -> list[str]:
    """A short human-readable summary table of a :class:`ParticleResult`."""
    from .._plotstyle import format_uncertain

    s = result.summary
    name = result.source or "image"
    lines = [f"{name}: {count_line(s, len(result.table))}"]
    if s["n"]:

        def ci(key, unit=""):
            v = s.get(key) or [None, None]
            return f"95% CI {_g(v[0])}-{_g(v[1])}{unit}"

        lines += [
            (
                f"  model-fit diameter  mean {format_uncertain(s['mean_nm'], s.get('mean_err_nm'), 'nm')} (± SE; "
                f"{ci('mean_ci95_nm', ' nm')})   median {_g(s['median_nm'])} nm ({ci('median_ci95_nm', ' nm')})"
            ),
            (
                f"  SD {_g(s['std_nm'])} nm ({ci('std_ci95_nm', ' nm')})   RSD {_g(s['rsd_percent'])}% "
                f"({ci('rsd_ci95_percent', '%')}, bootstrap)   corrected for measurement noise "
                f"{_g(s['rsd_corrected_percent'])}%"
            ),
            (
                f"  per-particle error (rms, 1 SE) {_g(s.get('mean_measurement_err_nm'))} nm   "
                f"mask ECD mean {_g(s.get('ecd_mean_nm'))} nm   probe sigma {_g(s.get('probe_sigma_nm'))} nm"
            ),
        ]
        g = s.get("gaussian") or {}
        ln = s.get("lognormal") or {}
        gof = s.get("goodness_of_fit") or {}
        if g and ln:
            lines.append(
                f"  fits: normal mu {_g(g.get('mu_nm'))} nm sigma {_g(g.get('sigma_nm'))} nm "
                f"(KS p {_g((gof.get('normal') or {}).get('p'))}); lognormal median {_g(ln.get('median_nm'))} nm "
                f"sigma_ln {_g(ln.get('sigma_log'))} (KS p {_g((gof.get('lognormal') or {}).get('p'))})"
            )
        adv = s.get("rsd_precision") or {}
        if adv.get("targets"):
            need = ", ".join(f"{t['n_needed']} for ±{t['halfwidth_pp']:g} pp" for t in adv["targets"])
            lines.append(
                f"  RSD precision: ±{_g(adv.get('rsd_ci95_halfwidth_pp'))} pp (95% CI half-width) with "
                f"N = {s['n']}; particles needed: {need}"
            )
        for note in s.get("notes", []):
            lines.append(f"  note: {note}")
    return lines
