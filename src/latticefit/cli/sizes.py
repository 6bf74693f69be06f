"""``latticefit sizes``: the Fig. 5 size figure of one or more HAADF images."""

from __future__ import annotations

from ._common import add_load_args, calibration_line, diameter_range_arg, load_kwargs

HELP = "Fig. 5-style size figure: HAADF images with dot outlines, size histograms with fits, N, mean ± SD, RSD"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sizes",
        help=HELP,
        description=HELP + ". Writes OUT (pdf/png/svg), a 300-dpi PNG "
        "beside it, OUT.json, OUT.csv (one row per population) and OUT_particles.csv.",
    )
    p.add_argument("files", nargs="+", metavar="HAADF_FILE", help="HAADF-STEM images, one population each")
    p.add_argument(
        "--diameter-range",
        type=diameter_range_arg,
        action="append",
        metavar="MIN,MAX",
        help="dot diameters searched, in nm: 2,12 or 2-12nm; repeat to split each image into size "
        "populations (e.g. --diameter-range 2-5nm --diameter-range 5-10nm)",
    )
    p.add_argument("--name", action="append", metavar="LABEL", help="population label (repeatable, in order)")
    p.add_argument(
        "--width-mm",
        type=float,
        default=None,
        help="figure width in mm (default: 85 for one population, 180 for several)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.{pdf,png,svg}", help="figure file")
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from .._plotstyle import output_paths
    from ..report._sizes import build_size_figure, plot_size_figure, summary_lines

    paths = output_paths(args.output)  # bad extension: one-line error before any work
    images = [io.load(f, **load_kwargs(args)) for f in args.files]
    fd = build_size_figure(images, diameter_range_nm=args.diameter_range, names=args.name)
    plot_size_figure(fd, width_mm=args.width_mm)
    written = fd.save(paths["figure"])
    for line in summary_lines(fd):
        print(line)
    if images and calibration_line(images[0]):
        print(calibration_line(images[0]))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
