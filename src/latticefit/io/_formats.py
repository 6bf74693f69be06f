"""Part of :mod:`io` (see its docstring): io_formats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    FileReadError,
    LatticefitError,
    UnsupportedFormatError,
)
from ._budget import _check_unchunked_size
from ._messages import _QUIET_LOGGERS, _quiet_readers, _short_cause  # noqa: F401


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
    FormatInfo(
        (".dm3", ".dm4"),
        "DigitalMicrograph",
        "rosettasciio digitalmicrograph",
        "axis scale + unit per axis (x and y may differ)",
        "several data items per file (image + plot): the first 2-D image is used unless signal= names one",
    ),
    FormatInfo(
        (".emd",),
        "Velox EMD / Berkeley EMD",
        "rosettasciio emd",
        "axis scale + unit (Velox: µm, pm ...; Berkeley: the dim vectors, 'n_m' read as nm)",
        "Velox: one signal per detector (HAADF, DF2, BF, DF4 ...), camera stacks need frame=",
    ),
    FormatInfo(
        (".emi", ".ser"),
        "TIA",
        "rosettasciio tia",
        "axis scale + unit",
        "load the .emi (its _1.ser must be beside it) or the .ser directly; series need frame=",
    ),
    FormatInfo((".mrc",), "MRC", "rosettasciio mrc", "header pixel size (Å) converted to nm", "stacks need frame="),
    FormatInfo(
        (".hspy", ".hdf5"),
        "HyperSpy HDF5",
        "rosettasciio hspy (reader='HSPY')",
        "axis scale + unit; empty unit with a scale != 1 is taken as nm with a CalibrationWarning",
        ".hdf5 is read with the HSPY reader because several readers claim that extension",
    ),
    FormatInfo(
        (".tif", ".tiff"),
        "TIFF",
        "rosettasciio tiff (FEI/Thermo, Zeiss, DigitalMicrograph); tifffile (ImageJ)",
        "FEI/Thermo and DM calibration tags; ImageJ XResolution/YResolution (pixels per unit) + unit= "
        "in the ImageJ description (nm, micron, \\u00B5m, Å ...)",
        "a TIFF without calibration loads uncalibrated (pixel_size_nm None) with a CalibrationWarning; "
        "RGB is converted to grey",
    ),
    FormatInfo(
        (".png",),
        "PNG",
        "imageio",
        "none (pass pixel_size=)",
        "loads uncalibrated with a CalibrationWarning; RGB(A) converted to grey",
    ),
    FormatInfo(
        (".jpg", ".jpeg"),
        "JPEG",
        "imageio",
        "none (pass pixel_size=)",
        "lossy compression distorts Fourier peaks: prefer the original file; RGB converted to grey",
    ),
)

#: Lower-case file extensions (with the dot) that :func:`load` reads.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(e for f in FORMATS for e in f.extensions)

# camera names Velox gives TEM (parallel-beam) images; STEM detectors are HAADF, DF2, BF ...
_TEM_CAMERAS = ("CETA", "BM-CETA", "FALCON", "ONEVIEW", "ORIUS", "ULTRASCAN", "K2", "K3")
_LUMA = np.array([0.2125, 0.7154, 0.0721])  # Rec. 709, as skimage.color.rgb2gray


def supported_extensions() -> list[str]:
    """File extensions latticefit reads, lower case with the dot.

    Examples
    --------
    >>> from latticefit.io import supported_extensions
    >>> ".dm4" in supported_extensions()
    True
    """
    return list(SUPPORTED_EXTENSIONS)


def is_supported(path) -> bool:
    """True when ``path`` has an extension that :func:`load` reads (case-insensitive).

    Examples
    --------
    >>> from latticefit.io import is_supported
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
    >>> from latticefit.io import is_companion_file
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
    if not any(head[o : o + 8] == _HDF5_MAGIC for o in (0, 512, 1024, 2048)):
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
    """ImageJ TIFF -> one signal (:class:`~latticefit.io._plainsignal.PlainSignal2D`) with the ImageJ calibration."""
    import tifffile

    from ._plainsignal import plain_signal

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
    original = {"ImageJ": {k: v for k, v in ij.items() if isinstance(v, (str, int, float))}}
    return [plain_signal(data, scale=(sx, sy), units=unit, original=original)]


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
    """PNG/JPEG -> one uncalibrated grey signal (:class:`~latticefit.io._plainsignal.PlainSignal2D`)."""
    import imageio.v3 as iio

    from ._plainsignal import plain_signal

    with _quiet_readers():
        data = np.asarray(iio.imread(p))
    if data.ndim == 3 and data.shape[-1] in (2, 3, 4):
        data = _rgb_to_grey(data)
    return [plain_signal(data)]


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

    fmt = {
        ".dm3": "DigitalMicrograph DM3",
        ".dm4": "DigitalMicrograph DM4",
        ".emd": "EMD",
        ".emi": "TIA",
        ".ser": "TIA",
        ".mrc": "MRC",
        ".hspy": "HyperSpy HDF5",
        ".hdf5": "HyperSpy HDF5",
        ".tif": "TIFF",
        ".tiff": "TIFF",
    }[ext]
    if kind:
        fmt = {"fei": "FEI/Thermo TIFF", "zeiss": "Zeiss SEM TIFF", "dm": "DigitalMicrograph TIFF"}.get(kind, "TIFF")
    # lazy where it pays (HDF5, memory-mapped DM/TIA/MRC); rosettasciio's lazy TIFF leaves its file open
    kwargs: dict[str, Any] = {"lazy": kind is None}
    if ext == ".hdf5":
        kwargs["reader"] = "HSPY"
    if kwargs["lazy"] and _small_enough_to_read_whole(p, ext):
        # a small file is read whole at once: no dask graph (importing dask costs about a second)
        if ext in (".hspy", ".hdf5"):
            from ._plainsignal import read_hspy_plain

            with _quiet_readers():
                plain = read_hspy_plain(p)  # a plain image without building hyperspy signals
            if plain is not None:
                return _named_signals(plain, fmt, ext, src)
        import hyperspy.api as hs

        try:
            with _quiet_readers():
                out = hs.load(str(p), **{**kwargs, "lazy": False})
            return _named_signals(out, fmt, ext, src)
        except Exception:  # noqa: BLE001 - a damaged file: the lazy read below names the problem as always
            pass
    import hyperspy.api as hs

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
    return _named_signals(out, fmt, ext, src)


def _named_signals(out, fmt: str, ext: str, src: str) -> tuple[list, str]:
    signals = out if isinstance(out, (list, tuple)) else [out]
    if not signals:
        raise FileReadError(f"no data found reading it as {fmt} (truncated or corrupt?)", src)
    if ext == ".emd":
        om = signals[0].original_metadata
        fmt = "Velox EMD" if (om.has_item("Core") or om.has_item("BinaryResult")) else "Berkeley EMD"
    return list(signals), fmt


#: files whose data hold at most this many bytes are read whole instead of lazily
READ_WHOLE_BYTES = 64 << 20


def _small_enough_to_read_whole(p: Path, ext: str) -> bool:
    """Whether the data of ``p`` are small enough to read at once (HDF5: the declared datasets, else the file).

    TIA ``.emi`` files keep their data in ``.ser`` files beside them: they are always read lazily.
    """
    from ._budget import memory_budget_bytes

    limit = min(READ_WHOLE_BYTES, memory_budget_bytes())
    if ext == ".emi":
        return False
    if ext not in (".hspy", ".hdf5", ".emd"):
        return p.stat().st_size <= limit
    try:
        import h5py

        total = 0

        def add(name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 2:
                total += int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize

        with h5py.File(p, "r") as f:
            f.visititems(add)
        return total <= limit
    except Exception:  # noqa: BLE001 - unreadable as HDF5: the lazy read reports it
        return False
