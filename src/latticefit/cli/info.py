"""``latticefit info FILE... [--json]``: what a microscope file holds and how it is calibrated.

Human-readable block per file by default; with ``--json`` one compact JSON
object per line (per file). A file that cannot be read prints one line on
stderr and the exit status is 2; the other files still print.
"""

from __future__ import annotations

import json
import sys

from ._common import pixel_size_arg, run_per_file

__all__ = ["register", "run", "format_record"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe microscope files: format, shape, pixel size, mode, detectors, frames",
        description="Describe microscope files: format, image shape, pixel size (nm), acquisition mode, "
        "beam energy, the signals/detectors and frames inside. Stacks need no --frame here.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="microscope file(s)")
    p.add_argument("--json", action="store_true", help="one compact JSON object per file, one per line")
    p.add_argument(
        "--signal",
        metavar="NAME",
        help="signal/detector to describe in a multi-signal file (default: the first 2-D image)",
    )
    p.add_argument(
        "--pixel-size",
        type=pixel_size_arg,
        metavar="SIZE",
        help="override the file's calibration, e.g. 0.021nm, 0.21A (a bare number is nm)",
    )
    p.set_defaults(func=run)


def _fmt_num(v, unit="") -> str:
    return "-" if v is None else f"{v:.6g}{unit}"


def format_record(rec: dict) -> str:
    """The human-readable block for one :func:`latticefit.io.inspect` record."""
    ps = rec.get("pixel_size_nm")
    if ps is None:
        ps_text = "uncalibrated"
    elif abs(ps[0] - ps[1]) <= 1e-9 * max(ps):
        ps_text = f"{ps[0]:.6g} nm/px"
    else:
        ps_text = f"y {ps[0]:.6g} nm/px, x {ps[1]:.6g} nm/px"
    h, w = rec["shape"]
    if ps is not None:
        ps_text += f"  (field of view {h * ps[0]:.4g} x {w * ps[1]:.4g} nm)"
    signals = rec.get("signals") or []
    rows = [
        ("format", rec.get("format") or "-"),
        ("signal", rec.get("title") or "-"),
        (
            "shape",
            f"{h} x {w} px ({rec.get('dtype')})"
            + (
                f"  (+ a {rec['databar_rows_removed']}-row FEI data bar, left out)"
                if rec.get("databar_rows_removed")
                else ""
            ),
        ),
        (
            "frames",
            str(rec.get("frames", 1)) + ("  (use --frame N|sum|mean to analyse)" if rec.get("frames", 1) > 1 else ""),
        ),
        ("pixel size", ps_text),
        ("mode", rec.get("mode") or "-"),
        ("beam energy", _fmt_num(rec.get("beam_energy_kv"), " kV")),
        ("signals", ", ".join(signals) if signals else "-"),
    ]
    lines = [str(rec["file"])]
    lines += [f"  {k:<12} {v}" for k, v in rows]
    return "\n".join(lines)


def run(args) -> int:
    from ..io import inspect

    def one(path):
        rec = inspect(path, signal=args.signal, pixel_size=args.pixel_size)
        if args.json:
            print(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        else:
            print(format_record(rec))
            print()
        sys.stdout.flush()

    return run_per_file(args.files, one)
