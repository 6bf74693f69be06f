"""``latticefit report``: the Fig. 4 lattice report of an HRTEM image (and its HAADF)."""

from __future__ import annotations

import sys

from ._common import add_load_args, circle_arg, d_range_arg, load_kwargs, rect_arg

HELP = "Fig. 4-style report: HRTEM (+HAADF) overview, matrix and dot regions, their FFTs and a comparison table"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help=HELP,
        description=HELP + ". Writes OUT (pdf/png/svg), a 300-dpi PNG "
        "beside it, OUT.json (everything), OUT.csv (the comparison table: one row per "
        "reflection measured in both regions) and OUT_spots.csv (every spot of each region).",
    )
    p.add_argument("hrtem", metavar="HRTEM_FILE", help="HRTEM image (any format latticefit reads)")
    p.add_argument("--haadf", metavar="HAADF_FILE", help="HAADF-STEM image of the same area (dots outlined)")
    p.add_argument("--haadf-signal", metavar="NAME", help="signal of a multi-signal HAADF file (default: the first)")
    p.add_argument(
        "--roi-matrix",
        type=rect_arg,
        metavar="X,Y,W,H",
        help="matrix region in HRTEM pixels (default: a square far from every dot)",
    )
    p.add_argument(
        "--roi-dot",
        type=circle_arg,
        metavar="X,Y,R",
        help="dot region in HRTEM pixels (default: from the HAADF, else from the HRTEM anomaly map)",
    )
    p.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="NAME|CIF",
        help="phase to index against (repeatable), e.g. MAPbBr3, PbS or a CIF file",
    )
    p.add_argument(
        "--free-scale",
        action="store_true",
        help="index with a free scale (the image calibration is off); without it, a region that "
        "fixed-scale indexing cannot explain is retried with a free scale, with a note",
    )
    p.add_argument(
        "--d-range",
        type=d_range_arg,
        metavar="MIN,MAX",
        help="spacings considered, in Å: 1.5,8 or 1.5-8A (as for latticefit lattice)",
    )
    p.add_argument(
        "--calibrate-on",
        choices=("matrix",),
        metavar="matrix",
        help="self-calibration: the matrix region (of the first --phase) calibrates the image affinely "
        "(scale x/y, shear) and the dot is measured in corrected units",
    )
    p.add_argument(
        "--all-dots",
        action="store_true",
        help="also measure every dot wholly inside the HRTEM against the matrix (per-dot Δd/d, GPA "
        "strain, the population verdict): writes OUT_dots.csv, OUT_dots.json and OUT_dots.png",
    )
    p.add_argument(
        "--keep-unindexed", action="store_true", help="keep significant spots that no fitted lattice indexes (order 0)"
    )
    p.add_argument("--width-mm", type=float, default=180.0, help="figure width in mm (default 180: double column)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.{pdf,png,svg}", help="figure file")
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from .._plotstyle import output_paths
    from ..report._lattice_report import build_lattice_report, plot_lattice_report

    paths = output_paths(args.output)  # bad extension: one-line error before any work
    hrtem = io.load(args.hrtem, **load_kwargs(args))
    haadf = io.load(args.haadf, signal=args.haadf_signal) if args.haadf else None
    phases = _phases(args.phase)
    rep = build_lattice_report(
        hrtem,
        haadf,
        roi_matrix=args.roi_matrix,
        roi_dot=args.roi_dot,
        phases=phases,
        d_range_angstrom=args.d_range,
        free_scale=args.free_scale,
        calibrate_on=args.calibrate_on,
        keep_unindexed=args.keep_unindexed,
    )
    plot_lattice_report(rep, width_mm=args.width_mm)
    written = rep.save(paths["figure"])
    for line in _summary_lines(rep):
        print(line)
    print("wrote " + ", ".join(str(p) for p in written))
    if args.all_dots:
        _all_dots(args, hrtem, haadf, rep, paths)
    measured = [name for name, reg in rep.regions.items() if len(reg.lattice.spots)]
    if not measured:  # the figure shows the blank regions, but there is no number in it
        print(f"latticefit: error: {args.hrtem}: no lattice spots in any region: nothing measured", file=sys.stderr)
        return 2
    return 0


def _phases(names):
    """Phase names and CIF paths (by extension) -> Phase objects; [] when none given (no indexing)."""
    if not names:
        return []
    from ..crystal._phases import resolve_phases

    return resolve_phases(names)


def _summary_lines(rep):
    from ..report._lattice_report import summary_lines

    return summary_lines(rep)


def _all_dots(args, hrtem, haadf, rep, paths) -> None:
    """``--all-dots``: every dot against the report's matrix region; table, verdict and files."""
    from .._plotstyle import save_figure
    from ..errors import LatticefitError
    from ..report._dots import measure_dots
    from ..report._dots_figure import plot_dot_statistics
    from ..serialize import atomic_write_text, write_json

    fig_path = paths["figure"]
    stem = fig_path.with_name(fig_path.stem + "_dots")
    try:
        st = measure_dots(rep.hrtem, haadf, roi_matrix=rep.regions["matrix"].choice.roi, d_range_angstrom=args.d_range)
    except LatticefitError as e:
        print(f"latticefit: warning: {args.hrtem}: --all-dots: {' '.join(str(e).split())}", file=sys.stderr)
        return
    for n in st.notes:
        print(f"latticefit: warning: {args.hrtem}: {n}", file=sys.stderr)
    print(st)
    write_json(st.to_dict(), stem.with_suffix(".json"))
    atomic_write_text(stem.with_suffix(".csv"), st.table.to_csv(index=False))
    written = save_figure(plot_dot_statistics(st), stem.with_suffix(".png"))
    print("wrote " + ", ".join(str(p) for p in [*written, stem.with_suffix(".json"), stem.with_suffix(".csv")]))
