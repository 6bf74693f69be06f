"""Read microscope files into :class:`~latticefit.micrograph.Micrograph` objects.

Vendor formats are read by rosettasciio through hyperspy (no hand-written
parsers): Gatan ``.dm3``/``.dm4``, Velox and Berkeley ``.emd``, FEI TIA
``.emi``/``.ser``, ``.mrc``, HyperSpy ``.hspy``/``.hdf5`` and FEI/Thermo,
Zeiss or DigitalMicrograph TIFF. ImageJ TIFFs are read with tifffile
(rosettasciio only understands the ``micron`` unit of ImageJ), PNG/JPEG with
imageio (uncalibrated). Every problem becomes a one-line
:class:`~latticefit.errors.LatticefitError` that names the file.

The public functions:

- :func:`load` one 2-D image (``signal=`` picks a detector, ``frame=`` a frame);
- :func:`load_all` every 2-D image of a file (one per detector);
- :func:`inspect` a JSON-ready description of a file without reading a frame;
- :func:`supported_extensions`, :func:`is_supported`, :func:`is_companion_file`
  for finding files in a folder.

hyperspy is imported inside the functions, so ``import latticefit`` stays light.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CalibrationWarning, DataShapeError, FileReadError, InvalidDataError, LatticefitError, SignalSelectionError, UnsupportedFormatError
from .micrograph import Micrograph, axes_pixel_size_nm, mode_from_metadata
from .units import pixel_size_pair_nm

__all__ = [
    "load",
    "load_all",
    "inspect",
    "supported_extensions",
    "is_supported",
    "is_companion_file",
    "SUPPORTED_EXTENSIONS",
    "FORMATS",
]


@dataclass(frozen=True)
class FormatInfo:
    """One row of the supported-formats table."""

    extensions: tuple[str, ...]
    name: str
    reader: str
    calibration: str
    notes: str = ""


#: The supported formats (also rendered in ``docs/formats.md``).
FORMATS: tuple[FormatInfo, ...] = (
    FormatInfo((".dm3", ".dm4"), "DigitalMicrograph", "rosettasciio digitalmicrograph",
               "axis scale + unit per axis (x and y may differ)",
               "several data items per file (image + plot): the first 2-D image is used unless signal= names one"),
    FormatInfo((".emd",), "Velox EMD / Berkeley EMD", "rosettasciio emd",
               "axis scale + unit (Velox: µm, pm ...; Berkeley: the dim vectors, 'n_m' read as nm)",
               "Velox: one signal per detector (HAADF, DF2, BF, DF4 ...), camera stacks need frame="),
    FormatInfo((".emi", ".ser"), "TIA", "rosettasciio tia",
               "axis scale + unit",
               "load the .emi (its _1.ser must be beside it) or the .ser directly; series need frame="),
    FormatInfo((".mrc",), "MRC", "rosettasciio mrc", "header pixel size (Å) converted to nm", "stacks need frame="),
    FormatInfo((".hspy", ".hdf5"), "HyperSpy HDF5", "rosettasciio hspy (reader='HSPY')",
               "axis scale + unit; empty unit with a scale != 1 is taken as nm with a CalibrationWarning",
               ".hdf5 is read with the HSPY reader because several readers claim that extension"),
    FormatInfo((".tif", ".tiff"), "TIFF", "rosettasciio tiff (FEI/Thermo, Zeiss, DigitalMicrograph); tifffile (ImageJ)",
               "FEI/Thermo and DM calibration tags; ImageJ XResolution/YResolution (pixels per unit) + unit= "
               "in the ImageJ description (nm, micron, \\u00B5m, Å ...)",
               "a TIFF without calibration loads uncalibrated (pixel_size_nm None) with a CalibrationWarning; "
               "RGB is converted to grey"),
    FormatInfo((".png",), "PNG", "imageio", "none (pass pixel_size=)",
               "loads uncalibrated with a CalibrationWarning; RGB(A) converted to grey"),
    FormatInfo((".jpg", ".jpeg"), "JPEG", "imageio", "none (pass pixel_size=)",
               "lossy compression distorts Fourier peaks: prefer the original file; RGB converted to grey"),
)

#: Lower-case file extensions (with the dot) that :func:`load` reads.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(e for f in FORMATS for e in f.extensions)

# camera names Velox gives TEM (parallel-beam) images; STEM detectors are HAADF, DF2, BF ...
_TEM_CAMERAS = ("CETA", "BM-CETA", "FALCON", "ONEVIEW", "ORIUS", "ULTRASCAN", "K2", "K3")
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # Rec. 709, as skimage.color.rgb2gray
_QUIET_LOGGERS = ("hyperspy", "rsciio", "rosettasciio", "tifffile", "imageio", "h5py")


def supported_extensions() -> list[str]:
    """File extensions latticefit reads, lower case with the dot.

    Examples
    --------
    >>> ".dm4" in supported_extensions()
    True
    """
    return list(SUPPORTED_EXTENSIONS)


def is_supported(path) -> bool:
    """True when ``path`` has an extension that :func:`load` reads (case-insensitive).

    Examples
    --------
    >>> is_supported("a/b/Image 01.DM3"), is_supported("notes.txt")
    (True, False)
    """
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def is_companion_file(path) -> bool:
    """True for a TIA ``<name>_<n>.ser`` whose ``<name>.emi`` sits beside it.

    A folder scan should skip such files so that the acquisition is read once
    (through its ``.emi``).

    Examples
    --------
    >>> is_companion_file("/nonexistent/scan_1.ser")
    False
    """
    p = Path(path)
    if p.suffix.lower() != ".ser":
        return False
    m = re.match(r"^(.*)_\d+$", p.stem)
    if not m:
        return False
    base = m.group(1)
    return any((p.parent / f"{base}{ext}").exists() for ext in (".emi", ".EMI", ".Emi"))


# --------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _quiet_readers():
    """Silence third-party log records and warnings while a reader runs."""
    saved = {}
    for name in _QUIET_LOGGERS:
        lg = logging.getLogger(name)
        saved[name] = lg.level
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _short_cause(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    name = type(exc).__name__
    if name == "error":  # struct.error, zlib.error ...
        name = f"{type(exc).__module__}.error"
    return f"{name}: {text}" if text else name


def _check_path(path) -> tuple[Path, str]:
    p = Path(path)
    src = str(path)
    if not p.exists():
        raise FileReadError("file not found", src)
    if p.is_dir():
        raise FileReadError("is a directory, not a file", src)
    ext = p.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        shown = ext or "(no extension)"
        raise UnsupportedFormatError(
            f"unsupported file type {shown!r} (supported: {', '.join(SUPPORTED_EXTENSIONS)})", src
        )
    if p.stat().st_size == 0:
        raise FileReadError("file is empty (0 bytes)", src)
    _check_signature(p, ext)
    return p, ext


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_signature(p: Path, ext: str) -> None:
    """Reject a file whose first bytes do not match its extension (e.g. text named .dm3)."""
    if ext not in (".dm3", ".dm4", ".emd", ".hspy", ".hdf5"):
        return
    with open(p, "rb") as fh:
        head = fh.read(2056)
    if ext in (".dm3", ".dm4"):
        version = int.from_bytes(head[:4], "big") if len(head) >= 4 else -1
        if version not in (3, 4):
            raise FileReadError(f"not a DigitalMicrograph file (no DM3/DM4 header; starts with {head[:8]!r})", str(p))
        return
    # HDF5 superblock at 0 or after a user block of 512, 1024, 2048 ... bytes
    if not any(head[o:o + 8] == _HDF5_MAGIC for o in (0, 512, 1024, 2048)):
        raise FileReadError(f"not an HDF5 file (expected by {ext}; starts with {head[:8]!r})", str(p))


def _tiff_kind(p: Path) -> str:
    """'imagej', 'fei', 'zeiss', 'dm' or 'plain' for a TIFF (raises FileReadError if unreadable)."""
    import tifffile

    try:
        with _quiet_readers(), tifffile.TiffFile(p) as tif:
            if len(tif.pages) == 0:
                raise FileReadError("TIFF holds no image (truncated or corrupt?)", str(p))
            page = tif.pages[0]
            if tif.is_fei:
                return "fei"
            if tif.is_sem:
                return "zeiss"
            if any(t in page.tags for t in (65003, 65004, 65009, 65022)):
                return "dm"
            if tif.is_imagej:
                return "imagej"
            return "plain"
    except LatticefitError:
        raise
    except Exception as e:
        raise FileReadError(f"cannot read as TIFF ({_short_cause(e)})", str(p)) from None


def _decode_unit(unit) -> str:
    u = str(unit).strip()
    if "\\u" in u or "\\x" in u:  # ImageJ writes 'µm' as the escape '\u00B5m'
        try:
            u = u.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except Exception:
            pass
    return u


def _read_imagej_tiff(p: Path):
    """ImageJ TIFF -> one hyperspy Signal2D with the ImageJ calibration on its axes."""
    import hyperspy.api as hs
    import tifffile

    with _quiet_readers(), tifffile.TiffFile(p) as tif:
        page = tif.pages[0]
        data = tif.asarray()
        ij = dict(tif.imagej_metadata or {})
        rgb = page.photometric == tifffile.PHOTOMETRIC.RGB
        res_unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 1

        def scale(tagname):
            tag = page.tags.get(tagname)
            if tag is None:
                return 1.0
            num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
            value = float(den) / float(num) if num else float("nan")
            return value if np.isfinite(value) and value > 0 else float("nan")

        sy, sx = scale("YResolution"), scale("XResolution")
    if rgb:
        data = _rgb_to_grey(data)
    unit = _decode_unit(ij["unit"]) if ij.get("unit") is not None else ""
    if unit.lower() in ("inch", "cm") or (not unit and res_unit != 1):
        unit, sy, sx = "", 1.0, 1.0  # a print resolution (dpi), not a microscope calibration
    if not (np.isfinite(sx) and np.isfinite(sy)):
        unit, sy, sx = "", 1.0, 1.0  # a zero or unreadable resolution is no calibration: load() warns
    s = hs.signals.Signal2D(data)
    ax, ay = s.axes_manager.signal_axes
    ax.scale, ay.scale = sx, sy
    if unit:
        ax.units = ay.units = unit
    s.metadata.General.title = ""
    s.original_metadata.add_dictionary({"ImageJ": {k: v for k, v in ij.items() if isinstance(v, (str, int, float))}})
    return [s]


def _rgb_to_grey(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.names:  # rosettasciio's structured rgb(a) dtype
        arr = np.stack([arr[n] for n in arr.dtype.names[:3]], axis=-1)
    if arr.shape[-1] in (3, 4):
        return (arr[..., :3].astype(np.float64) @ _LUMA).astype(np.float32)
    if arr.shape[-1] == 2:  # grey + alpha
        return arr[..., 0]
    return arr


def _read_raster(p: Path):
    """PNG/JPEG -> one uncalibrated hyperspy Signal2D (grey)."""
    import hyperspy.api as hs
    import imageio.v3 as iio

    with _quiet_readers():
        data = np.asarray(iio.imread(p))
    if data.ndim == 3 and data.shape[-1] in (2, 3, 4):
        data = _rgb_to_grey(data)
    s = hs.signals.Signal2D(data)
    s.metadata.General.title = ""
    return [s]


def _read_signals(p: Path, ext: str) -> tuple[list, str]:
    """Read every signal of a file (lazily where the reader can) and name the format."""
    src = str(p)
    if ext in (".png", ".jpg", ".jpeg"):
        fmt = "PNG" if ext == ".png" else "JPEG"
        try:
            return _read_raster(p), fmt
        except Exception as e:
            raise FileReadError(f"cannot read as {fmt} ({_short_cause(e)})", src) from None
    kind = _tiff_kind(p) if ext in (".tif", ".tiff") else None
    if kind == "imagej":
        try:
            return _read_imagej_tiff(p), "ImageJ TIFF"
        except LatticefitError:
            raise
        except Exception as e:
            raise FileReadError(f"cannot read as ImageJ TIFF ({_short_cause(e)})", src) from None

    import hyperspy.api as hs

    fmt = {
        ".dm3": "DigitalMicrograph DM3", ".dm4": "DigitalMicrograph DM4", ".emd": "EMD",
        ".emi": "TIA", ".ser": "TIA", ".mrc": "MRC", ".hspy": "HyperSpy HDF5", ".hdf5": "HyperSpy HDF5",
        ".tif": "TIFF", ".tiff": "TIFF",
    }[ext]
    if kind:
        fmt = {"fei": "FEI/Thermo TIFF", "zeiss": "Zeiss SEM TIFF", "dm": "DigitalMicrograph TIFF"}.get(kind, "TIFF")
    # lazy where it pays (HDF5, memory-mapped DM/TIA/MRC); rosettasciio's lazy TIFF leaves its file open
    kwargs: dict[str, Any] = {"lazy": kind is None}
    if ext == ".hdf5":
        kwargs["reader"] = "HSPY"
    try:
        with _quiet_readers():
            try:
                out = hs.load(str(p), **kwargs)
            except ValueError as e:
                if not (kwargs["lazy"] and "chunks" in str(e)):
                    raise
                # an unchunked HDF5 dataset (valid; hyperspy itself loads it): dask cannot wrap it lazily
                _check_unchunked_size(p, src)
                out = hs.load(str(p), **{**kwargs, "lazy": False})
    except LatticefitError:
        raise
    except Exception as e:
        hint = " (truncated or corrupt?)" if p.stat().st_size < 4096 or "truncat" in str(e).lower() else ""
        raise FileReadError(f"cannot read as {fmt}{hint}: {_short_cause(e)}", src) from None
    signals = out if isinstance(out, (list, tuple)) else [out]
    if not signals:
        raise FileReadError(f"no data found reading it as {fmt} (truncated or corrupt?)", src)
    if ext == ".emd":
        om = signals[0].original_metadata
        fmt = "Velox EMD" if (om.has_item("Core") or om.has_item("BinaryResult")) else "Berkeley EMD"
    return list(signals), fmt


def memory_budget_bytes() -> int:
    """Largest image (bytes as float32) latticefit agrees to analyse on this machine.

    The analyses hold up to ~10 float32 copies of the image at once, so the default is a tenth of the
    memory available now (``MemAvailable``); ``LATTICEFIT_MAX_IMAGE_BYTES`` overrides it.

    Examples
    --------
    >>> memory_budget_bytes() > 0
    True
    """
    env = os.environ.get("LATTICEFIT_MAX_IMAGE_BYTES")
    if env:
        try:
            return max(int(float(env)), 1)
        except ValueError:
            pass
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, AttributeError):
        avail = 8 << 30
    return max(int(avail // 10), 64 << 20)


def check_image_budget(shape, itemsize: int, src: str) -> None:
    """Refuse, before anything is allocated, data whose declared size exceeds :func:`memory_budget_bytes`.

    ``shape`` is the declared shape of the whole dataset (a stack included) and ``itemsize`` its bytes per
    value; both the data as stored and one float32 frame must fit.
    """
    n_all = int(np.prod([int(v) for v in shape], dtype=np.float64))
    n_frame = int(np.prod([int(v) for v in shape[-2:]], dtype=np.float64))
    budget = memory_budget_bytes()
    need = max(n_all * int(itemsize) // 4, n_frame * 4)
    if need > budget:
        dims = " x ".join(str(int(v)) for v in shape)
        raise InvalidDataError(f"declared data of {dims} values ({need / 2**30:.1f} GiB as float32) exceed the "
                               f"memory budget of {budget / 2**30:.1f} GiB (set LATTICEFIT_MAX_IMAGE_BYTES "
                               "to raise it)", src)


def _check_unchunked_size(p: Path, src: str) -> None:
    import h5py

    sizes = []
    with h5py.File(p, "r") as f:
        f.visititems(lambda name, obj: sizes.append((obj.shape, obj.dtype.itemsize))
                     if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 else None)
    for shape, itemsize in sizes:
        check_image_budget(shape, itemsize, src)


def _probe_pixels(s, src: str) -> None:
    """Read the data of ``s`` far enough to find truncation and corrupt blocks (``info`` reads no image else).

    Lazy data up to 256 MiB are read whole; larger data, their first and last frame.
    """
    data = s.data
    if not hasattr(data, "compute"):
        return  # already in memory: it was read whole
    try:
        with _quiet_readers():
            if data.nbytes <= 256 << 20:
                data.compute()
            else:
                data[(0,) * (data.ndim - 2)].compute()
                data[tuple(n - 1 for n in data.shape[:-2])].compute()
    except Exception as e:  # noqa: BLE001 - any reader failure means a damaged file
        raise FileReadError(f"cannot read the pixel data (truncated or corrupt?): {_short_cause(e)}", src) from None


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
        return f"signal {title!r} is {len(shape)}-D data of shape {shape} (a 4-D/spectrum-image dataset), not a 2-D image"
    kind = {0: "a scalar", 1: "1-D data (a spectrum or profile)"}.get(am.signal_dimension, f"{am.signal_dimension}-D signal")
    return f"signal {title!r} is {kind} of shape {shape}, not a 2-D image"


def _select(signals, titles: list[str], signal, src: str) -> int:
    """Index of the signal to use: the first 2-D image, or the one ``signal`` names."""
    n = len(signals)
    choices = ", ".join(titles)
    if signal is None:
        for i, s in enumerate(signals):
            if _is_image(s):
                return i
        raise DataShapeError(_shape_problem(signals[0], titles[0]) if n == 1 else
                             f"no 2-D image among the {n} signals ({choices})", src)
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
            raise SignalSelectionError(f"no signal named {signal!r}; choose one of: {choices} (or an index 0-{n - 1})", src)
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


def _to_micrograph(s, *, title, titles, fmt, src, frame, pixel_size) -> Micrograph:
    check_image_budget(s.data.shape, s.data.dtype.itemsize, src)
    if getattr(s, "_lazy", False):
        try:
            with _quiet_readers():
                s.compute(close_file=True, show_progressbar=False)
        except Exception as e:
            raise FileReadError(f"cannot read the pixel data of {title!r} (truncated or corrupt?): {_short_cause(e)}",
                                src) from None
    s = _grey_signal(s)
    mg = Micrograph.from_signal(s, frame=frame, source=src, pixel_size=pixel_size)
    mg.title = title
    mg.signals = list(titles)
    mg.file_format = fmt
    mg.mode = _mode(s, title, fmt)
    mg.beam_energy_kv = _energy_kv(s)
    if mg.pixel_size_nm is None:
        warnings.warn(f"{src}: no pixel size in the file ({fmt}); the image is uncalibrated "
                      "(pass pixel_size=, CLI --pixel-size)", CalibrationWarning, stacklevel=3)
    return mg


def _open(path):
    p, ext = _check_path(path)
    signals, fmt = _read_signals(p, ext)
    return p, signals, _titles(signals, p), fmt


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
        mg = _to_micrograph(signals[i], title=titles[i], titles=titles, fmt=fmt, src=src,
                            frame=frame, pixel_size=pixel_size)
        if calibration is not None:
            from .crystal._calibration_record import as_calibration

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
        return [_to_micrograph(signals[i], title=titles[i], titles=titles, fmt=fmt, src=src,
                               frame=frame, pixel_size=pixel_size) for i in idx]
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
        (number of frames of a stack, 1 for an image).

    Examples
    --------
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
                warnings.warn(f"{src}: no pixel size in the file ({fmt}); the image is uncalibrated "
                              "(pass pixel_size=, CLI --pixel-size)", CalibrationWarning, stacklevel=2)
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
        }
    except LatticefitError as e:
        raise e.with_source(src)
    except Exception as e:
        raise FileReadError(f"cannot read the data ({_short_cause(e)})", src) from None
    finally:
        _close(signals)

