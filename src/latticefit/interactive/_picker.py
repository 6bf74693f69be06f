"""A live FFT region picker for notebooks: drag a rectangle or a disk, read d ± SD and the angle.

The picker is a matplotlib figure (interactive with ``%matplotlib widget``, i.e. ipympl, in Jupyter; any
interactive backend elsewhere): the micrograph, the FFT of the current region with its refined spots, and
the numbers. Every region is measured by exactly the call :meth:`RegionPicker.code` prints, so the numbers
can be reproduced in a script without the widget.

Keys (with the figure focused): ``r`` rectangle, ``d`` disk, ``1``/``2`` choose which region (the first
or the second label) the next drag sets.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._plotstyle import OKABE_ITO
from ..errors import LatticefitError
from ..lattice import compare_regions, measure_lattice
from ..micrograph import as_micrograph
from ..roi import Circle, Mask, Rect, as_roi
from ..spectrum import power_spectrum

__all__ = ["RegionPicker", "pick_regions"]

_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["vermillion"])


def _fmt(v: float, e: float) -> str:
    """Format value ± error, the error on 2 significant digits."""
    if not (np.isfinite(e) and e > 0):
        return f"{v:.4f}"
    digits = max(0, min(6, 1 - int(math.floor(math.log10(e)))))
    return f"{v:.{digits}f} ± {e:.{digits}f}"


def _roi_code(r) -> str:
    if isinstance(r, Rect):
        return f"Rect({int(r.x)}, {int(r.y)}, {int(r.w)}, {int(r.h)})"
    if isinstance(r, Circle):
        return f"Circle({float(r.x)!r}, {float(r.y)!r}, {float(r.r)!r})"
    raise LatticefitError("a mask region has no one-line code: pass it as a boolean array")


class RegionPicker:
    """Pick one or two regions of a micrograph and see their lattice live.

    Parameters
    ----------
    image : Micrograph, Signal2D, array or path
        The micrograph (a path is read with :func:`latticefit.load`).
    pixel_size : optional
        Calibration of an array (nm for a bare number).
    shape : {'rect', 'disk'}
        What a drag draws first (``r``/``d`` keys or :attr:`shape` switch it).
    labels : (str, str)
        Names of the two regions (e.g. the matrix and a dot); the second region triggers
        :func:`latticefit.lattice.compare_regions`.
    figsize : (float, float)
    **measure_kwargs
        Options of :func:`latticefit.lattice.measure_lattice` (``d_range_angstrom``, ``systematic`` ...),
        used for every region and printed by :meth:`code`.

    Attributes
    ----------
    results : dict
        label -> :class:`~latticefit.lattice.LatticeResult` of each region picked.
    comparison : RegionComparison or None
        The two regions compared (once both are picked).
    figure : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from latticefit import synth
    >>> from latticefit.roi import Rect
    >>> mg, _ = synth.perovskite_111(shape=(256, 256), noise_sigma=0.2, seed=1)
    >>> p = RegionPicker(mg, systematic="none")
    >>> p.set_region(Rect(0, 0, 128, 128))
    >>> round(p.results["a"].basis["angle_deg"])
    60
    >>> p.regions
    {'a': Rect(x=0, y=0, w=128, h=128)}
    """

    def __init__(
        self, image, *, pixel_size=None, shape: str = "rect", labels=("a", "b"), figsize=(12, 4.6), **measure_kwargs
    ):
        import matplotlib.pyplot as plt
        from matplotlib.widgets import EllipseSelector, RectangleSelector

        self._path = None
        if isinstance(image, (str, Path)):
            from ..io import load

            self._path = str(image)
            image = load(image)
        self._image = image
        self._pixel_size = pixel_size
        self.mg = as_micrograph(image, pixel_size)
        self.mg.require_calibration()
        self.labels = tuple(labels)
        if len(self.labels) != 2:
            raise LatticefitError(f"labels must name two regions, got {labels!r}")
        self.measure_kwargs = dict(measure_kwargs)
        self.results: dict = {}
        self.comparison = None
        self._regions: dict = {}
        self.active = self.labels[0]
        self.figure, (self.ax_image, self.ax_fft, self.ax_text) = plt.subplots(
            1, 3, figsize=figsize, gridspec_kw={"width_ratios": [1, 1, 1.15]}
        )
        self.ax_image.imshow(self.mg.data, cmap="gray", interpolation="nearest")
        self.ax_image.set_title(f"{self.mg.name}: drag a region")
        self.ax_image.set_xlabel("x (px)")
        self.ax_image.set_ylabel("y (px)")
        self.ax_fft.set_title("FFT of the region")
        self.ax_text.axis("off")
        self._text = self.ax_text.text(
            0, 1, "", va="top", ha="left", family="monospace", fontsize=7, transform=self.ax_text.transAxes
        )
        self._patches: dict = {}
        self._error = None
        self._notes: list = []
        props = dict(edgecolor=_COLOURS[0], facecolor="none", linewidth=1.5)
        kw = dict(useblit=False, interactive=True, props=props, minspanx=8, minspany=8, spancoords="data")
        self.selectors = {
            "rect": RectangleSelector(self.ax_image, self._on_select, **kw),
            "disk": EllipseSelector(self.ax_image, self._on_select, **kw),
        }
        self._shape = None
        self.shape = shape
        self._key_cid = self.figure.canvas.mpl_connect("key_press_event", self._on_key)
        self._update_text()

    # ------------------------------------------------------------ state
    @property
    def shape(self) -> str:
        """``'rect'`` or ``'disk'``: what the next drag draws."""
        return self._shape

    @shape.setter
    def shape(self, value: str):
        if value not in self.selectors:
            raise LatticefitError(f"shape must be 'rect' or 'disk', got {value!r}")
        self._shape = value
        for k, sel in self.selectors.items():
            sel.set_active(k == value)
            if k != value:
                sel.set_visible(False)

    @property
    def regions(self) -> dict:
        """The regions picked: label -> :class:`~latticefit.roi.Rect` or :class:`~latticefit.roi.Circle` (pixels)."""
        return dict(self._regions)

    def hyperspy_rois(self) -> dict:
        """The regions as hyperspy ROIs: label -> ROI in the image's calibrated units."""
        from ..interop import to_hyperspy_roi

        return {k: to_hyperspy_roi(r, self._roi_frame()) for k, r in self._regions.items()}

    def _roi_frame(self):
        return self._image if hasattr(self._image, "axes_manager") else self.mg

    # ------------------------------------------------------------ callbacks
    def _on_select(self, eclick, erelease):
        """Selector callback: the dragged box becomes a Rect, or the disk inscribed in it a Circle."""
        x0, x1 = sorted((eclick.xdata, erelease.xdata))
        y0, y1 = sorted((eclick.ydata, erelease.ydata))
        if self._shape == "rect":
            roi = Rect(int(round(x0 + 0.5)), int(round(y0 + 0.5)), int(round(x1 - x0)), int(round(y1 - y0)))
        else:
            roi = Circle(round((x0 + x1) / 2, 1), round((y0 + y1) / 2, 1), round(min(x1 - x0, y1 - y0) / 2, 1))
        try:
            self.set_region(roi)
        except LatticefitError as e:  # a region outside the image or too small: say so, keep the last one
            self._error = str(e)
            self._update_text()
            self.figure.canvas.draw_idle()

    def _on_key(self, event):
        if event.key == "r":
            self.shape = "rect"
        elif event.key == "d":
            self.shape = "disk"
        elif event.key in ("1", "2"):
            self.active = self.labels[int(event.key) - 1]
            colour = _COLOURS[int(event.key) - 1]
            for sel in self.selectors.values():
                sel.set_props(edgecolor=colour)
        self._update_text()

    # ------------------------------------------------------------ the analysis
    def set_region(self, roi, label: str | None = None) -> None:
        """Set region ``label`` (default: the active one) and measure it, as a drag does.

        ``roi`` is any region :func:`latticefit.roi.as_roi` accepts (a hyperspy ROI in the image's
        calibrated units too). Setting the first region makes the second one active.
        """
        label = label or self.active
        if label not in self.labels:
            raise LatticefitError(f"no region {label!r}: the regions are {self.labels}")
        r = as_roi(roi, self._roi_frame())
        if isinstance(r, Mask):
            raise LatticefitError("the picker takes rectangles and disks")
        other = self.labels[1 - self.labels.index(label)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if other in self._regions:
                # both regions: compare_regions measures each with measure_lattice(**measure_kwargs), the very
                # results a separate measure_lattice call gives (the printed code makes both calls)
                rois = {label: r, other: self._regions[other]}
                cmp = compare_regions(
                    self.mg, rois[self.labels[0]], rois[self.labels[1]], labels=self.labels, **self.measure_kwargs
                )
                results = {self.labels[0]: cmp.a, self.labels[1]: cmp.b}
            else:
                cmp, results = None, {label: measure_lattice(self.mg, roi=r, **self.measure_kwargs)}
        self._notes = [str(w.message) for w in caught]
        self._regions[label] = r
        self.results.update(results)
        self.comparison = cmp
        if label == self.labels[0] and self.labels[1] not in self._regions:
            self.active = self.labels[1]
            for sel in self.selectors.values():
                sel.set_props(edgecolor=_COLOURS[1])
        self._draw_region(label)
        self._draw_fft(label)
        self._update_text()
        self.figure.canvas.draw_idle()

    def _draw_region(self, label):
        from matplotlib.patches import Circle as MplCircle
        from matplotlib.patches import Rectangle

        old = self._patches.pop(label, None)
        if old is not None:
            for a in old:
                a.remove()
        r = self._regions[label]
        c = _COLOURS[self.labels.index(label)]
        if isinstance(r, Rect):
            p = Rectangle((r.x - 0.5, r.y - 0.5), r.w, r.h, fill=False, ec=c, lw=1.5)
            xt, yt = r.x, r.y - 4
        else:
            p = MplCircle((r.x, r.y), r.r, fill=False, ec=c, lw=1.5)
            xt, yt = r.x - r.r, r.y - r.r - 4
        self.ax_image.add_patch(p)
        t = self.ax_image.text(xt, yt, label, color=c, fontsize=8, va="bottom")
        self._patches[label] = (p, t)

    def _draw_fft(self, label):
        from matplotlib.patches import Circle as MplCircle

        res, r = self.results[label], self._regions[label]
        spec = power_spectrum(self.mg, roi=r)
        ax = self.ax_fft
        ax.clear()
        ax.imshow(spec.log_power, extent=spec.extent_inv_nm, cmap="gray", interpolation="nearest")
        c = _COLOURS[self.labels.index(label)]
        sp = res.spots
        if len(sp):
            gm = 1.25 * float(sp.g_abs_inv_nm.max())
            size = 0.05 * gm
            for gx, gy, d, o in zip(sp.gx_inv_nm, sp.gy_inv_nm, sp.d_angstrom, sp.order):
                col = OKABE_ITO["sky_blue"] if o == 1 else OKABE_ITO["orange"]
                for s in (1, -1):
                    ax.add_patch(MplCircle((s * gx, s * gy), size, fill=False, ec=col, lw=1.0))
                ax.text(gx, gy - 1.3 * size, f"{d:.3f}", color=col, fontsize=6.5, ha="center", va="bottom")
            ax.set_xlim(-gm, gm)
            ax.set_ylim(gm, -gm)
        ax.set_xlabel("gx (1/nm)")
        ax.set_ylabel("gy (1/nm)")
        ax.set_title(f"FFT of {label}: {len(sp)} spots", color=c)

    def _update_text(self):
        lines = [f"next drag: {self._shape} -> region {self.active!r}  (keys r/d, 1/2)", ""]
        if self._error:
            lines[1:1] = [f"not used: {self._error}", ""]
            self._error = None
        for label in self.labels:
            res = self.results.get(label)
            if res is None:
                continue
            lines.append(f"{label}: {self._regions[label].describe()}")
            first = res.spots[res.spots.order <= 1]
            for i, row in enumerate(first.itertuples()):
                if i >= 4:
                    break
                n12 = "" if pd.isna(row.n1) else f"({int(row.n1)},{int(row.n2)})"
                lines.append(f"  d = {_fmt(row.d_angstrom, row.d_err_angstrom)} Å  {n12}")
            if res.basis:
                b = res.basis
                lines.append(f"  angle = {_fmt(b['angle_deg'], b['angle_err_deg'])}°")
            if len(res.spots) > min(len(first), 4):
                lines.append(f"  (+{len(res.spots) - min(len(first), 4)} more spots: .results[{label!r}].spots)")
            lines.append("")
        if self.comparison is not None:
            cmp = self.comparison
            lines.append(f"{self.labels[1]} vs {self.labels[0]}: Δd/d (%), first order")
            for row in cmp.table[cmp.table.order <= 1].itertuples():
                lines.append(
                    f"  d={row.d_a_angstrom:.3f} Å: {_fmt(100 * row.rel_diff, 100 * row.rel_diff_err)}  z={row.z:+.1f}"
                )
            s = cmp.summary
            if s.get("n"):
                lines.append(
                    f"  mean {_fmt(100 * s['mean_rel_diff'], 100 * s['mean_rel_diff_err'])} %, "
                    f"z = {s['z']:.1f} ({'significant' if s['significant'] else 'not significant'})"
                )
            lines.append("")
        if self.results:
            lines.append("±: 1 SD (standard uncertainty)")
        self._text.set_text("\n".join(lines))

    # ------------------------------------------------------------ replay
    def code(self, *, print_code: bool = True) -> str:
        """The script that reproduces the picker's numbers without the widget (printed, and returned).

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from latticefit import synth
        >>> from latticefit.roi import Circle
        >>> mg, _ = synth.perovskite_111(shape=(256, 256), noise_sigma=0.2, seed=1)
        >>> p = RegionPicker(mg, systematic="none")
        >>> p.set_region(Circle(128.0, 128.0, 60.0))
        >>> _ = p.code()
        import latticefit as lf
        from latticefit.roi import Circle, Rect
        <BLANKLINE>
        image = ...  # the image given to the picker
        a = lf.measure_lattice(image, roi=Circle(128.0, 128.0, 60.0), systematic='none')
        print(a.table())
        """
        # a path, or a Micrograph read from a file, is loaded again; a Signal2D may have been changed since it
        # was read (its original_filename stays): the script then takes the image itself
        from_file = not hasattr(self._image, "axes_manager") and self.mg.source and Path(self.mg.source).is_file()
        src = self._path or (self.mg.source if from_file else None)
        lines = ["import latticefit as lf", "from latticefit.roi import Circle, Rect", ""]
        if src is not None:
            ps = "" if self._pixel_size is None else f", pixel_size={self._pixel_size!r}"
            lines.append(f"image = lf.load({src!r}{ps})")
        else:
            lines.append("image = ...  # the image given to the picker")
        kw = "".join(f", {k}={v!r}" for k, v in self.measure_kwargs.items())
        if src is None and self._pixel_size is not None:
            kw = f", pixel_size={self._pixel_size!r}" + kw
        for label in self.labels:
            if label in self._regions:
                var = label if label.isidentifier() else f"region_{self.labels.index(label) + 1}"
                lines.append(f"{var} = lf.measure_lattice(image, roi={_roi_code(self._regions[label])}{kw})")
                lines.append(f"print({var}.table())")
        if self.comparison is not None:
            ra, rb = (_roi_code(self._regions[k]) for k in self.labels)
            lines.append(f"cmp = lf.compare_regions(image, {ra}, {rb}, labels={self.labels!r}{kw})")
            lines.append("print(cmp.table)")
            lines.append("print(cmp.summary)")
        text = "\n".join(lines)
        if print_code:
            print(text)
        return text


def pick_regions(image, **kwargs) -> RegionPicker:
    """Open a :class:`RegionPicker` on ``image`` (in Jupyter: run ``%matplotlib widget`` first).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from latticefit import synth
    >>> p = pick_regions(synth.perovskite_111(shape=(128, 128), seed=0)[0], labels=("matrix", "dot"))
    >>> p.active
    'matrix'
    """
    return RegionPicker(image, **kwargs)
