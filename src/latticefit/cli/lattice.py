"""``latticefit lattice FILE``: d-spacings and angles with 1-sigma errors.

Prints a table (d in Å, azimuth in degrees, signal-to-noise, harmonic order,
indices in the fitted basis) and the basis; ``--json PATH`` (or ``-`` for
stdout, then without the table) writes the :meth:`LatticeResult.to_dict`
contract. An image without lattice spots gives an empty table, a warning and
exit status 0.
"""

from __future__ import annotations

import sys

from ._common import add_load_args, calibration_line, circle_arg, d_range_arg, load_kwargs, rect_arg

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lattice",
        help="measure lattice spacings and angles with uncertainties",
        description="Find the lattice spots of an image (or a region), refine them to the statistical "
        "limit and print d-spacings (Å), azimuths and inter-planar angles with 1-sigma errors.",
    )
    p.add_argument("file", metavar="FILE", help="microscope file")
    reg = p.add_mutually_exclusive_group()
    reg.add_argument("--roi", type=rect_arg, metavar="X,Y,W,H", help="rectangular region in pixels")
    reg.add_argument("--circle", type=circle_arg, metavar="X,Y,R", help="disk region (a dot) in pixels")
    p.add_argument(
        "--d-range",
        type=d_range_arg,
        metavar="MIN-MAX",
        help="keep spacings in this range: 3-5A, 0.3-0.5nm, 3,5 or 3:5 (bare numbers are Å)",
    )
    p.add_argument(
        "--keep-unindexed",
        action="store_true",
        help="keep significant spots that the fitted lattice does not index (order 0)",
    )
    p.add_argument(
        "--min-snr",
        type=float,
        default=5.0,
        metavar="S",
        help="smallest amplitude signal-to-noise ratio of a reported spot (default 5)",
    )
    p.add_argument("--json", metavar="PATH|-", help="write the result as JSON to PATH, or to stdout with '-'")
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..interop import provenance
    from ..io import load
    from ..lattice._measure import measure_lattice
    from ..serialize import write_json

    mg = load(args.file, **load_kwargs(args))
    roi = args.roi or args.circle
    res = measure_lattice(
        mg, roi=roi, d_range_angstrom=args.d_range, min_snr=args.min_snr, keep_unindexed=args.keep_unindexed
    )
    if args.json != "-":
        ps = res.pixel_size_nm
        where = f", region {roi.describe()}" if roi is not None else ""
        M, N = res.region_shape
        ps_text = f"{ps[0]:.6g} nm/px" if ps[0] == ps[1] else f"y {ps[0]:.6g} nm/px, x {ps[1]:.6g} nm/px"
        print(f"{mg.name}: {M} x {N} px (height x width){where}, pixel size {ps_text}")
        if calibration_line(mg):
            print(calibration_line(mg))
        print(res)
        sys.stdout.flush()
    if args.json:
        d = res.to_dict()
        d["file"] = str(args.file)
        d["provenance"] = provenance(res, mg, parameters=args)
        write_json(d, args.json)
    if len(res) == 0:  # the (empty) result is written, but nothing was measured: not a success
        print(f"latticefit: error: {args.file}: no lattice spots found: nothing measured", file=sys.stderr)
        return 2
    return 0
