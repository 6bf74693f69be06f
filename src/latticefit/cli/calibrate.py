"""``latticefit calibrate FILE --phase P``: the pixel matrix from a lattice of known structure.

Measures the lattice of FILE (or of ``--roi``), indexes it against the phase and fits the
affine pixel-to-nm matrix (x and y scale, shear) by weighted least squares over every indexed
spot. Prints the table (scale factors, anisotropy, shear with 1-sigma errors, the residual of
each reflection after correction, the non-linear distortion over tiles) and writes the
calibration JSON with ``-o``; apply it to other images with ``--calibration CAL.json`` (valid
for images taken at the same magnification and scan settings).
"""

from __future__ import annotations

import argparse

from ._common import add_load_args, circle_arg, d_range_arg, load_kwargs, rect_arg

__all__ = ["register", "run"]


def _tiles_arg(text):
    t = str(text).strip().lower()
    if t in ("0", "none", "off"):
        return False
    try:
        parts = [int(v) for v in t.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"tiles must be N or ROWSxCOLS, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1 or parts[0] * parts[1] < 2:
        raise argparse.ArgumentTypeError(f"tiles must be N or ROWSxCOLS with at least 2 tiles, got {text!r}")
    return tuple(parts)


def register(subparsers) -> None:
    from .index import _uvw_arg

    p = subparsers.add_parser(
        "calibrate",
        help="affine calibration (scale x/y, shear) from a lattice of known phase",
        description="Fit the full pixel-to-nm matrix (x and y scale, shear) of FILE from the indexed spots of a "
        "known phase, with 1-sigma errors, residuals per reflection and the non-linear distortion "
        "over tiles; -o writes the calibration JSON that --calibration applies to other images "
        "(valid for images taken at the same magnification and scan settings).",
    )
    p.add_argument("file", metavar="FILE", help="microscope file with a region of known structure")
    p.add_argument("--phase", required=True, metavar="NAME|CIF", help="reference phase, e.g. SrTiO3, or a CIF file")
    p.add_argument("--zone", type=_uvw_arg, metavar="U,V,W", help="zone axis of the reference (default: searched)")
    reg = p.add_mutually_exclusive_group()
    reg.add_argument(
        "--roi", type=rect_arg, metavar="X,Y,W,H", help="reference region in pixels (default: whole image)"
    )
    reg.add_argument("--circle", type=circle_arg, metavar="X,Y,R", help="disk reference region in pixels")
    p.add_argument(
        "--d-range", type=d_range_arg, metavar="MIN-MAX", help="spacings used: 1.5-8A, 0.15-0.8nm (bare numbers are Å)"
    )
    p.add_argument(
        "--model",
        choices=("affine", "anisotropic", "isotropic"),
        default="affine",
        help="affine: scale x, scale y and shear (default); anisotropic: x and y scale; isotropic: one scale",
    )
    p.add_argument(
        "--tiles",
        type=_tiles_arg,
        metavar="N|RxC",
        help="tiles for the non-linear distortion (default 3x3 when tiles keep >= 128 px; 0: skip)",
    )
    p.add_argument("-o", "--output", metavar="CAL.json", help="write the calibration JSON")
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..crystal._calibration import calibrate
    from ..io import load

    mg = load(args.file, **load_kwargs(args))
    roi = args.roi or args.circle
    cal = calibrate(
        mg,
        roi,
        args.phase,
        zone_axis=args.zone,
        affine=args.model == "affine",
        anisotropic=args.model == "anisotropic",
        tiles=args.tiles,
        d_range_angstrom=args.d_range,
    )
    cal.source = str(args.file)
    print(
        f"{mg.name}: {mg.shape[0]} x {mg.shape[1]} px, file pixel size "
        f"{mg.pixel_size_nm[1]:.6g} x {mg.pixel_size_nm[0]:.6g} nm (x, y)"
    )
    print(cal)
    if args.output:
        cal.to_json(args.output)
        print(f"wrote {args.output}")
    return 0
