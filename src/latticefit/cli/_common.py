"""Helpers shared by the sub-commands: argument types, per-file error handling, output."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from ..errors import LatticefitError
from ..roi import parse_circle, parse_rect
from ..units import parse_length_nm

__all__ = [
    "pixel_size_arg",
    "d_range_arg",
    "diameter_range_arg",
    "rect_arg",
    "circle_arg",
    "add_load_args",
    "load_kwargs",
    "calibration_line",
    "run_per_file",
    "error_line",
    "quiet_third_party_logs",
]


def quiet_third_party_logs() -> None:
    """Silence hyperspy/rosettasciio log chatter that is not the user's business."""
    for name in ("hyperspy", "rsciio", "rosettasciio", "numba", "distributed", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _argtype(fn, what):
    def conv(text):
        try:
            return fn(text)
        except LatticefitError as e:
            raise argparse.ArgumentTypeError(e.message) from None

    conv.__name__ = what
    return conv


def _parse_d_range(text):
    from ..lattice._measure import parse_d_range  # lazy: keeps `latticefit --help` fast

    return parse_d_range(text)


def _parse_diameter_range(text):
    from ..particles._pipeline import _parse_range

    return _parse_range(text, None)


pixel_size_arg = _argtype(parse_length_nm, "pixel size")
#: ``--d-range``: 3-5A, 0.3-0.5nm, 3,5 or 3:5 (bare numbers are Å), one syntax for every command
d_range_arg = _argtype(_parse_d_range, "d range")
#: ``--diameter-range``: 2-15nm, 2,15 or 2:15 (bare numbers are nm)
diameter_range_arg = _argtype(_parse_diameter_range, "diameter range")
rect_arg = _argtype(parse_rect, "rectangle")
circle_arg = _argtype(parse_circle, "circle")


def _frame_arg(text):
    t = str(text).strip().lower()
    if t in ("sum", "mean"):
        return t
    try:
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame must be an index, 'sum' or 'mean', got {text!r}") from None


def add_load_args(parser: argparse.ArgumentParser) -> None:
    """``--pixel-size``, ``--signal`` and ``--frame``, shared by every command that loads a file."""
    parser.add_argument(
        "--pixel-size",
        type=pixel_size_arg,
        metavar="SIZE",
        help="override the file's calibration, e.g. 0.021nm, 0.21A, 21pm (a bare number is nm)",
    )
    parser.add_argument(
        "--signal",
        metavar="NAME",
        help="signal/detector to use in a multi-signal file (e.g. HAADF, DF2); default: the first 2-D image",
    )
    parser.add_argument(
        "--frame", type=_frame_arg, metavar="N|sum|mean", help="frame of a 3-D stack: an index, 'sum' or 'mean'"
    )
    parser.add_argument(
        "--calibration",
        metavar="CAL.json",
        help="apply a lattice calibration (from `latticefit calibrate -o CAL.json`): lengths in "
        "corrected nm, errors include the calibration's; valid for images taken at the "
        "same magnification and scan settings",
    )


def _calibration(args):
    """The ``--calibration`` file read once (a bad file is a one-line error naming it)."""
    path = getattr(args, "calibration", None)
    if path is None:
        return None
    cached = getattr(args, "_calibration_obj", None)
    if cached is None:
        from ..crystal._calibration import load_calibration

        cached = load_calibration(path)
        args._calibration_obj = cached
    return cached


def load_kwargs(args) -> dict:
    kw = {
        "pixel_size": getattr(args, "pixel_size", None),
        "signal": getattr(args, "signal", None),
        "frame": getattr(args, "frame", None),
    }
    cal = _calibration(args)
    if cal is not None:
        kw["calibration"] = cal
    return kw


def calibration_line(mg) -> str | None:
    """One line stating the calibration an image carries and its assumption (None when uncalibrated)."""
    info = getattr(mg, "calibration_info", None)
    if not info:
        return None
    za = "[" + " ".join(str(v) for v in info.get("zone_axis") or []) + "]"
    return (
        f"calibration: {info.get('file') or 'given'} ({info.get('reference_phase')} {za}, "
        f"{info.get('model')}, from {info.get('reference_file')}); {info.get('validity')}"
    )


def error_line(exc: BaseException, path=None) -> str:
    """One line describing ``exc`` for ``path`` (no traceback)."""
    if isinstance(exc, LatticefitError):
        exc.with_source(str(path) if path is not None else None)
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:  # disk full, read-only folder: the path it happened at
        from ..serialize import printable_text

        where = exc.filename if exc.filename is not None else path
        return f"{printable_text(str(where))}: {exc.strerror}" if where is not None else exc.strerror
    msg = " ".join(str(exc).split()) or type(exc).__name__
    prefix = f"{path}: " if path is not None else ""
    return f"{prefix}unexpected {type(exc).__name__}: {msg}"


def run_per_file(paths, fn) -> int:
    """Call ``fn(path)`` for every path; a failing file prints one line and the others go on.

    Returns 0 when every file succeeded, else 2.
    """
    status = 0
    for p in paths:
        try:
            fn(p)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - reported as one line
            if os.environ.get("LATTICEFIT_DEBUG"):
                raise
            print(f"latticefit: error: {error_line(e, p)}", file=sys.stderr)
            sys.stderr.flush()
            status = 2
    return status


def capture_warnings():
    """Context manager printing each warning once as a one-liner on stderr."""
    return warnings.catch_warnings()
