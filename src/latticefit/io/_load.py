"""Part of :mod:`io` (see its docstring): io_load."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import (
    CalibrationWarning,
    FileReadError,
    InvalidDataError,
    LatticefitError,
)
from ..micrograph import Micrograph, axes_pixel_size_nm
from ..units import pixel_size_pair_nm
from ._budget import _probe_pixels, check_image_budget
from ._messages import _quiet_readers, _short_cause
from ._signals import _close, _energy_kv, _is_image, _mode, _open, _select, _to_micrograph, databar_rows


# ------------------------------------------------------------------ public API
def load(path, *, signal=None, frame=None, pixel_size=None, calibration=None) -> Micrograph:
    """Read one 2-D image from a microscope file.

    Parameters
    ----------
    path : str or Path
        A ``.dm3``, ``.dm4``, ``.emd``, ``.emi``, ``.ser``, ``.mrc``, ``.hspy``,
        ``.hdf5``, ``.tif``/``.tiff``, ``.png`` or ``.jpg`` file.
    signal : str or int, optional
        Signal (detector) to read from a multi-signal file: its title, matched
        case-insensitively (``'HAADF'``, ``'DF2'``), or its index. Default: the
        first 2-D image in the file.
    frame : int, ``'sum'`` or ``'mean'``, optional
        Frame of a 3-D stack, or how to combine the frames. Required for a
        stack of more than one frame.
    pixel_size : float, str or (float, float), optional
        Overrides the calibration of the file: nm for a bare number, a length
        such as ``'0.21A'``, or a (y, x) pair.
    calibration : Calibration, dict or path to a calibration JSON, optional
        A lattice calibration applied to the image (:meth:`latticefit.calibration.Calibration.apply`):
        the Micrograph carries its affine pixel-to-nm matrix and its uncertainty.

    Returns
    -------
    Micrograph
        2-D float32 data with ``pixel_size_nm`` (y, x) (``None`` when the file
        has no calibration, with a :class:`~latticefit.errors.CalibrationWarning`),
        ``title``, ``mode``, ``beam_energy_kv``, the file's original
        ``metadata``, ``signals`` (every signal title in the file), ``frames``
        and ``file_format``.

    Raises
    ------
    FileReadError
        Missing, empty, truncated or corrupt file (:class:`UnsupportedFormatError`
        for an unknown extension).
    DataShapeError
        1-D or 4-D data, or a stack without ``frame=``.
    SignalSelectionError
        ``signal`` names no signal of the file (the message lists them).
    InvalidDataError
        Every pixel is NaN.

    Examples
    --------
    >>> from latticefit.io import load
    >>> import numpy as np, tifffile, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "lattice.tif")
    >>> tifffile.imwrite(f, np.ones((64, 64), np.float32), imagej=True,
    ...                  resolution=(1 / 0.02, 1 / 0.02), metadata={"unit": "nm"})
    >>> mg = load(f)
    >>> mg.shape, tuple(round(v, 6) for v in mg.pixel_size_nm)
    ((64, 64), (0.02, 0.02))
    """
    p, signals, titles, fmt = _open(path)
    src = str(path)
    try:
        i = _select(signals, titles, signal, src)
        mg = _to_micrograph(
            signals[i], title=titles[i], titles=titles, fmt=fmt, src=src, frame=frame, pixel_size=pixel_size
        )
        if calibration is not None:
            from ..crystal._calibration_record import as_calibration

            mg = as_calibration(calibration).apply(mg)
        return mg
    except LatticefitError as e:
        raise e.with_source(src)
    finally:
        _close(signals)


def load_all(path, *, frame=None, pixel_size=None) -> list[Micrograph]:
    """Read every 2-D image of a file, one :class:`Micrograph` per signal/detector.

    Non-image signals (plots, spectra) are skipped. Parameters as in :func:`load`;
    ``frame=`` applies to every stack in the file.

    Raises
    ------
    DataShapeError
        When the file holds no 2-D image, or a stack and no ``frame=``.

    Examples
    --------
    >>> from latticefit.io import load_all
    >>> import numpy as np, tifffile, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.tif")
    >>> tifffile.imwrite(f, np.ones((32, 32), np.float32), imagej=True,
    ...                  resolution=(10, 10), metadata={"unit": "nm"})
    >>> [mg.pixel_size_nm for mg in load_all(f)]
    [(0.1, 0.1)]
    """
    p, signals, titles, fmt = _open(path)
    src = str(path)
    try:
        idx = [i for i, s in enumerate(signals) if _is_image(s)]
        if not idx:
            _select(signals, titles, None, src)  # raises the shape error
        return [
            _to_micrograph(
                signals[i], title=titles[i], titles=titles, fmt=fmt, src=src, frame=frame, pixel_size=pixel_size
            )
            for i in idx
        ]
    except LatticefitError as e:
        raise e.with_source(src)
    finally:
        _close(signals)


def inspect(path, *, signal=None, pixel_size=None) -> dict[str, Any]:
    """Describe a file without choosing a frame: the ``latticefit info`` record.

    Parameters
    ----------
    path : str or Path
        A supported file.
    signal : str or int, optional
        Signal to describe (default: the first 2-D image).
    pixel_size : optional
        Calibration override, as in :func:`load`.

    Returns
    -------
    dict
        ``file``, ``format``, ``title``, ``shape`` ([h, w] of one frame),
        ``dtype``, ``pixel_size_nm`` ([py, px] or None), ``mode``,
        ``beam_energy_kv``, ``signals`` (every title in the file) and ``frames``
        (number of frames of a stack, 1 for an image), ``databar_rows_removed`` (rows of an FEI
        data bar left out of the image; ``shape`` is without them).

    Examples
    --------
    >>> from latticefit.io import inspect
    >>> import numpy as np, tifffile, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "stack.tif")
    >>> tifffile.imwrite(f, np.ones((3, 32, 48), np.uint16), imagej=True,
    ...                  resolution=(100, 100), metadata={"unit": "micron"})
    >>> d = inspect(f)
    >>> d["shape"], d["frames"], d["pixel_size_nm"], d["format"]
    ([32, 48], 3, [10.0, 10.0], 'ImageJ TIFF')
    """
    p, signals, titles, fmt = _open(path)
    src = str(path)
    try:
        i = _select(signals, titles, signal, src)
        s = signals[i]
        am = s.axes_manager
        frames = int(s.data.shape[0]) if am.navigation_dimension == 1 else 1
        shape = [int(v) for v in s.data.shape[-2:]]
        bar = databar_rows(s)
        shape[0] -= bar
        names = getattr(s.data.dtype, "names", None)
        dtype = "rgb" if names else str(s.data.dtype)
        check_image_budget(s.data.shape, s.data.dtype.itemsize, src)
        _probe_pixels(s, src)
        if s.data.dtype.kind == "f":
            with _quiet_readers():
                finite = bool(np.isfinite(s.data).any())
                if hasattr(finite, "compute"):
                    finite = bool(finite.compute())
            if not finite:
                raise InvalidDataError("every pixel is NaN or infinite", src)
        if pixel_size is not None:
            ps = pixel_size_pair_nm(pixel_size)
        else:
            ps = axes_pixel_size_nm(am.signal_axes, source=src)
            if ps is None:
                warnings.warn(
                    f"{src}: no pixel size in the file ({fmt}); the image is uncalibrated "
                    "(pass pixel_size=, CLI --pixel-size)",
                    CalibrationWarning,
                    stacklevel=2,
                )
        return {
            "file": src,
            "format": fmt,
            "title": titles[i],
            "shape": shape,
            "dtype": dtype,
            "pixel_size_nm": [float(v) for v in ps] if ps else None,
            "mode": _mode(s, titles[i], fmt),
            "beam_energy_kv": _energy_kv(s),
            "signals": titles,
            "frames": frames,
            "databar_rows_removed": bar,
        }
    except LatticefitError as e:
        raise e.with_source(src)
    except Exception as e:
        raise FileReadError(f"cannot read the data ({_short_cause(e)})", src) from None
    finally:
        _close(signals)
