"""Part of :mod:`io` (see its docstring): io_signals."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import (
    CalibrationWarning,
    DataShapeError,
    FileReadError,
    LatticefitWarning,
    SignalSelectionError,
)
from ..micrograph import Micrograph, mode_from_metadata
from ._budget import check_image_budget
from ._formats import _TEM_CAMERAS, _check_path, _read_signals, _rgb_to_grey
from ._messages import _quiet_readers, _short_cause


def _close(signals) -> None:
    with _quiet_readers():
        for s in signals:
            closer = getattr(s, "close_file", None)
            if closer is not None and getattr(s, "_lazy", False):
                try:
                    closer()
                except Exception:
                    pass


def _titles(signals, p: Path) -> list[str]:
    out = []
    for i, s in enumerate(signals):
        t = str(s.metadata.get_item("General.title") or "").strip()
        if not t:
            t = p.stem if len(signals) == 1 else f"signal {i}"
        out.append(t)
    return out


def _is_image(s) -> bool:
    am = s.axes_manager
    return am.signal_dimension == 2 and am.navigation_dimension <= 1


def _shape_problem(s, title: str) -> str:
    am = s.axes_manager
    shape = tuple(s.data.shape)
    if am.signal_dimension == 2:
        return (
            f"signal {title!r} is {len(shape)}-D data of shape {shape} (a 4-D/spectrum-image dataset), not a 2-D image"
        )
    kind = {0: "a scalar", 1: "1-D data (a spectrum or profile)"}.get(
        am.signal_dimension, f"{am.signal_dimension}-D signal"
    )
    return f"signal {title!r} is {kind} of shape {shape}, not a 2-D image"


def _select(signals, titles: list[str], signal, src: str) -> int:
    """Index of the signal to use: the first 2-D image, or the one ``signal`` names."""
    n = len(signals)
    choices = ", ".join(titles)
    if signal is None:
        for i, s in enumerate(signals):
            if _is_image(s):
                return i
        raise DataShapeError(
            _shape_problem(signals[0], titles[0]) if n == 1 else f"no 2-D image among the {n} signals ({choices})", src
        )
    idx = None
    if isinstance(signal, (int, np.integer)) and not isinstance(signal, bool):
        idx = int(signal)
    else:
        name = str(signal).strip().lower()
        matches = [i for i, t in enumerate(titles) if t.lower() == name]
        if matches:
            idx = matches[0]
        elif re.fullmatch(r"-?\d+", name):
            idx = int(name)
        else:
            raise SignalSelectionError(
                f"no signal named {signal!r}; choose one of: {choices} (or an index 0-{n - 1})", src
            )
    if not -n <= idx < n:
        raise SignalSelectionError(f"signal index {idx} out of range; the file holds {n}: {choices}", src)
    idx %= n
    if not _is_image(signals[idx]):
        images = [t for s, t in zip(signals, titles) if _is_image(s)]
        extra = f" (2-D images in this file: {', '.join(images)})" if images else ""
        raise DataShapeError(_shape_problem(signals[idx], titles[idx]) + extra, src)
    return idx


def _grey_signal(s):
    """``s`` with rgb pixels turned grey (other signals unchanged)."""
    if not getattr(s.data.dtype, "names", None):
        return s
    import hyperspy.api as hs

    data = _rgb_to_grey(np.asarray(s.data))
    g = hs.signals.Signal2D(data)
    for a_new, a_old in zip(g.axes_manager.signal_axes, s.axes_manager.signal_axes):
        a_new.scale, a_new.units, a_new.offset = a_old.scale, a_old.units, a_old.offset
    g.metadata.add_dictionary(s.metadata.as_dictionary())
    g.original_metadata.add_dictionary(s.original_metadata.as_dictionary())
    return g


def _mode(s, title: str, fmt: str) -> str | None:
    md = s.metadata
    mode = mode_from_metadata(md, title=title)
    if mode is None and md.has_item("Acquisition_instrument.SEM"):
        return "SEM"
    if mode is None and fmt == "Velox EMD" and any(c in title.upper() for c in _TEM_CAMERAS):
        return "TEM"
    return mode


def _energy_kv(s) -> float | None:
    md = s.metadata
    for key in ("Acquisition_instrument.TEM.beam_energy", "Acquisition_instrument.SEM.beam_energy"):
        v = md.get_item(key)
        if v:
            try:
                return float(v)
            except (TypeError, ValueError):
                return None
    return None


def databar_rows(s) -> int:
    """Rows of an FEI/Thermo SEM/FIB data bar below the scan (0 when there is none).

    FEI TIFFs append the instrument's data bar (kV, magnification, scale bar as text) under the
    scanned rows; the metadata give the scanned rows (``Image/ResolutionY``) and the bar's height
    (``PrivateFei/DatabarHeight``). The bar is not image data: measured as such its glyphs become
    "particles" and "lattice spots".
    """
    try:
        fei = s.original_metadata.get_item("fei_metadata")
        fei = fei.as_dictionary() if hasattr(fei, "as_dictionary") else fei
        scan_rows = int((fei.get("Image") or {}).get("ResolutionY", 0))
        bar = int((fei.get("PrivateFei") or {}).get("DatabarHeight", 0))
    except (AttributeError, TypeError, ValueError):
        return 0
    rows = int(s.data.shape[-2])
    if bar > 0 and 0 < scan_rows < rows and rows - scan_rows == bar:
        return bar
    return 0


def _without_databar(mg: Micrograph, s, src: str) -> Micrograph:
    """``mg`` cropped to its scanned rows when an FEI data bar is appended to ``s`` (stated in a warning).

    The crop is made on the pixels (a numpy slice), not on the hyperspy signal: slicing a signal imports
    hyperspy's ROI and drawing modules (about 2 s of a command's start-up).
    """
    bar = databar_rows(s)
    if not bar:
        return mg
    rows = int(mg.data.shape[0])
    warnings.warn(
        f"{src}: the FEI data bar ({bar} rows below the {rows - bar} scanned rows) is not image data: left out",
        LatticefitWarning,
        stacklevel=4,
    )
    return mg.crop(0, rows - bar, 0, int(mg.data.shape[1]))


def _to_micrograph(s, *, title, titles, fmt, src, frame, pixel_size) -> Micrograph:
    check_image_budget(s.data.shape, s.data.dtype.itemsize, src)
    if getattr(s, "_lazy", False):
        try:
            with _quiet_readers():
                s.compute(close_file=True, show_progressbar=False)
        except Exception as e:
            raise FileReadError(
                f"cannot read the pixel data of {title!r} (truncated or corrupt?): {_short_cause(e)}", src
            ) from None
    s = _grey_signal(s)
    mg = _without_databar(Micrograph.from_signal(s, frame=frame, source=src, pixel_size=pixel_size), s, src)
    mg.title = title
    mg.signals = list(titles)
    mg.file_format = fmt
    mg.mode = _mode(s, title, fmt)
    mg.beam_energy_kv = _energy_kv(s)
    if mg.pixel_size_nm is None:
        warnings.warn(
            f"{src}: no pixel size in the file ({fmt}); the image is uncalibrated (pass pixel_size=, CLI --pixel-size)",
            CalibrationWarning,
            stacklevel=3,
        )
    return mg


def _open(path):
    p, ext = _check_path(path)
    signals, fmt = _read_signals(p, ext)
    return p, signals, _titles(signals, p), fmt
