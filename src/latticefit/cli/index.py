"""``latticefit index``: phase, zone axis and (hkl) of every lattice spot."""

from __future__ import annotations

import argparse
import json
import sys

from ..serialize import to_jsonable, write_json
from ._common import add_load_args, calibration_line, circle_arg, d_range_arg, load_kwargs, rect_arg, run_per_file


def _uvw_arg(text):
    try:
        vals = [int(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"zone axis must be U,V,W integers, got {text!r}") from None
    if len(vals) != 3 or not any(vals):
        raise argparse.ArgumentTypeError(f"zone axis must be three integers U,V,W (not all zero), got {text!r}")
    return tuple(vals)


def _range_arg(text):
    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in Å, got {text!r}") from None
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"expected 0 < MIN < MAX, got {text!r}")
    return (lo, hi)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "index",
        help="index lattice spots: phase, zone axis, (hkl) per spot",
        description="Measure the lattice of each FILE (or a region) and index its spots against crystal "
        "phases with kinematic electron structure factors: zone axis, (hkl) of every spot, "
        "implied calibration factor, runner-up solutions, and flags for spots that only an "
        "extinct reflection could explain. Default phases: the whole built-in library "
        "(see `latticefit phases`).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="NAME",
        help="candidate phase from the library (repeatable), e.g. --phase MAPbBr3 --phase PbS",
    )
    p.add_argument(
        "--cif", action="append", default=[], metavar="FILE", help="candidate phase from a CIF file (repeatable)"
    )
    reg = p.add_mutually_exclusive_group()
    reg.add_argument("--roi", type=rect_arg, metavar="X,Y,W,H", help="rectangular region in pixels")
    reg.add_argument("--circle", type=circle_arg, metavar="X,Y,R", help="circular region in pixels")
    p.add_argument(
        "--free-scale",
        action="store_true",
        help="fit the calibration factor (true/file pixel size) within --scale-range",
    )
    p.add_argument(
        "--scale-range",
        type=_range_arg,
        default=(0.85, 1.15),
        metavar="MIN,MAX",
        help="range of the free calibration factor (default 0.85,1.15)",
    )
    p.add_argument(
        "--zone",
        type=_uvw_arg,
        action="append",
        metavar="U,V,W",
        help="only consider this zone axis (and its symmetry equivalents; repeatable)",
    )
    p.add_argument("--max-index", type=int, default=3, metavar="N", help="largest |u|,|v|,|w| searched (default 3)")
    p.add_argument(
        "--d-range",
        type=d_range_arg,
        metavar="MIN-MAX",
        help="d-spacing range given to the lattice measurement: 3-5A, 0.3-0.5nm, 3,5 or 3:5 (bare numbers are Å)",
    )
    p.add_argument(
        "--keep-unindexed",
        action="store_true",
        help="keep (and index) significant spots that no fitted lattice indexes",
    )
    p.add_argument("--beam-energy", type=float, metavar="KV", help="beam energy in kV (default: the file's, else 200)")
    p.add_argument("--alternatives", type=int, default=5, metavar="N", help="runner-up solutions to report (default 5)")
    p.add_argument(
        "--json",
        metavar="DEST",
        help="write JSON to DEST instead of the table ('-' = stdout, one compact object per file and line; "
        "a path gets one object, or a list for several files)",
    )
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..crystal._indexing import index_lattice
    from ..crystal._phases import resolve_phases
    from ..io import load
    from ..lattice._measure import measure_lattice

    phases = resolve_phases(args.phase, args.cif)  # bad names / CIFs fail once, before any file
    records = []

    def one(path):
        mg = load(path, **load_kwargs(args))
        roi = args.roi or args.circle
        kw = {} if args.d_range is None else {"d_range_angstrom": args.d_range}
        if getattr(args, "keep_unindexed", False):
            kw["keep_unindexed"] = True
        res = measure_lattice(mg, roi=roi, **kw)
        kv = args.beam_energy or mg.beam_energy_kv or 200.0
        idx = index_lattice(
            res,
            phases,
            free_scale=args.free_scale,
            scale_range=args.scale_range,
            zone_axes=args.zone,
            max_index=args.max_index,
            beam_energy_kv=kv,
            n_alternatives=args.alternatives,
        )
        rec = idx.to_dict()
        rec.setdefault("file", str(path))
        if mg.calibration_info:
            rec["calibration"] = mg.calibration_info
        if args.json == "-":  # one compact object per file and line, as `latticefit info --json`
            sys.stdout.write(
                json.dumps(to_jsonable(rec), ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
            )
            sys.stdout.flush()
        elif args.json:
            records.append(rec)
        else:
            cl = calibration_line(mg)
            sys.stdout.write(f"{path}\n" + (cl + "\n" if cl else "") + f"{idx}\n")
            sys.stdout.flush()

    status = run_per_file(args.files, one)
    if args.json and args.json != "-" and records:
        write_json(records[0] if len(args.files) == 1 else records, args.json)
    return status
