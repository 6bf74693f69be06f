"""``latticefit gpa FILE``: strain maps with per-pixel error maps (geometric phase analysis).

Writes the figure (``-o strain.pdf`` / ``.png``, always a PNG beside it), the
arrays (``--maps strain.npz`` / ``.hspy``; default ``OUT.npz``) and, with
``--json PATH|-``, the summary (schema ``latticefit.gpa/1``). ``--g n1,n2``
takes spots number n1 and n2 of the ``latticefit lattice`` table; ``auto``
(default) takes the strongest spot and the strongest one not collinear with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import LatticefitError
from ._common import add_load_args, circle_arg, load_kwargs, rect_arg

__all__ = ["register", "run"]


def _g_arg(text: str):
    t = str(text).strip().lower()
    if t == "auto":
        return "auto"
    try:
        a, b = (int(v) for v in t.replace(";", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--g takes two spot numbers N1,N2 of `latticefit lattice` or 'auto', got {text!r}"
        ) from None
    if a == b or a < 0 or b < 0:
        raise argparse.ArgumentTypeError(f"--g needs two different spot numbers >= 0, got {text!r}")
    return (a, b)


def _length_arg(text: str) -> float:
    from ..units import parse_length_nm

    try:
        return parse_length_nm(text)
    except LatticefitError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gpa",
        help="strain maps with error maps (geometric phase analysis)",
        description="Geometric phase analysis (Hÿtch et al. 1998): exx, eyy, exy, rotation and dilatation maps "
        "relative to a reference region, with per-pixel 1-sigma maps from the noise.",
    )
    p.add_argument("file", metavar="FILE", help="microscope file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pdf|png|svg", help="figure to write")
    p.add_argument(
        "--g",
        type=_g_arg,
        default="auto",
        metavar="N1,N2|auto",
        help="the two reflections: spot numbers of `latticefit lattice`, or auto (the strongest two "
        "non-collinear first-order spots)",
    )
    p.add_argument(
        "--resolution",
        type=_length_arg,
        metavar="LENGTH",
        help="spatial resolution, the sigma of the Gaussian point spread, e.g. 1nm or 8A "
        "(default: two periods of the longer spacing)",
    )
    p.add_argument(
        "--reference",
        type=rect_arg,
        metavar="X,Y,W,H",
        help="reference region in pixels (zero strain); default the whole field",
    )
    p.add_argument(
        "--dot",
        type=circle_arg,
        metavar="X,Y,R",
        help="a dot (disc, pixels): report its mean strain against the matrix ring 1.6-3 R around it "
        "(z-test); the ring is the reference unless --reference is given",
    )
    p.add_argument(
        "--keep-unindexed",
        action="store_true",
        help="number the spots of --g N1,N2 as `latticefit lattice --keep-unindexed` does (spots off the lattice kept)",
    )
    p.add_argument("--maps", metavar="PATH.npz|.hspy", help="arrays to write (default OUT.npz beside the figure)")
    p.add_argument("--json", metavar="PATH|-", help="write the summary as JSON to PATH, or to stdout with '-'")
    add_load_args(p)
    p.set_defaults(func=run)


def _reflections(mg, sel, reference, keep_unindexed=False):
    """G (1/nm) of spots sel = (n1, n2) of measure_lattice, as numbered in `latticefit lattice`."""
    import numpy as np

    from ..errors import AnalysisError
    from ..lattice._measure import measure_lattice

    res = measure_lattice(mg, roi=reference, keep_unindexed=keep_unindexed)
    n = len(res.spots)
    for i in sel:
        if i >= n:
            raise AnalysisError(
                f"--g {sel[0]},{sel[1]}: the image has {n} lattice spot(s), numbered 0-{max(n - 1, 0)}", mg.source
            )
    return np.array([[res.spots.gx_inv_nm.iloc[i], res.spots.gy_inv_nm.iloc[i]] for i in sel])


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import _plotstyle as ps
    from ..gpa import plot_strain_map, strain_map
    from ..io import load
    from ..serialize import OutputSet, dumps, write_json

    out = Path(args.output)
    ps.output_paths(out)  # the output formats are checked before any work (the error names the output)
    maps_path = Path(args.maps) if args.maps else out.with_suffix(".npz")
    if maps_path.suffix.lower() not in (".npz", ".hspy"):
        raise LatticefitError(f"--maps {maps_path}: arrays are written as .npz or .hspy")
    try:
        mg = load(args.file, **load_kwargs(args))
        reference = args.reference
        dot_masks = None
        if args.dot is not None:
            from ..gpa import disc_masks

            dot_masks = disc_masks(mg.shape, args.dot.x, args.dot.y, args.dot.r)
            if reference is None:
                reference = dot_masks[1]
        g = None if args.g == "auto" else _reflections(mg, args.g, args.reference, args.keep_unindexed)
        sm = strain_map(mg, g=g, sigma_nm=args.resolution, reference=reference)
        contrasts = []
        if dot_masks is not None:
            from ..gpa import region_contrast

            contrasts = [region_contrast(sm, *dot_masks, name=n) for n in ("dilatation", "exx", "eyy")]
    except LatticefitError as e:
        raise e.with_source(str(args.file)) from None
    sm.source = str(args.file)
    fig = plot_strain_map(sm, title=Path(args.file).name)
    with OutputSet() as outputs:  # figure, maps and JSON appear together or not at all
        written = ps.save_figure(fig, out, dpi=200, outputs=outputs)
        plt.close(fig)
        sm.save(outputs.stage(maps_path))
        written.append(maps_path)
        if args.json and args.json != "-":
            outputs.write_text(args.json, dumps(_json_record(sm, written, contrasts, args)) + "\n")
    if args.json == "-":
        write_json(_json_record(sm, written, contrasts, args), "-")
    else:
        print(f"{Path(args.file).name}: {sm.shape[1]} x {sm.shape[0]} px")
        print("\n".join(sm.summary_lines()))
        for rc in contrasts:
            print(f"dot {args.dot.describe()}: {rc.line()}")
        print("wrote " + ", ".join(str(p) for p in [*written, *([args.json] if args.json else [])]))
        sys.stdout.flush()
    return 0


def _json_record(sm, written, contrasts, args) -> dict:
    """The ``--json`` record: the strain map's summary, the files written and the dot's contrasts."""
    d = sm.to_dict()
    d["outputs"] = [str(p) for p in written]
    if contrasts:
        d["dot"] = {
            "x_px": args.dot.x,
            "y_px": args.dot.y,
            "r_px": args.dot.r,
            "contrasts": [rc.to_dict() for rc in contrasts],
        }
    return d
