"""``latticefit particles``: detect and size HAADF nanoparticles (model-fit diameters, RSD, overlay)."""

from __future__ import annotations

import argparse

from ._common import add_load_args, calibration_line, diameter_range_arg, load_kwargs, run_per_file

HELP = "detect and size bright nanoparticles in HAADF-STEM images (model-fit diameters with errors, RSD)"


def _positive(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return v


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "particles",
        help=HELP,
        description=HELP + ". Prints a summary table; --json writes the full result (file, pixel_size_nm, "
        "particles, summary), --csv one row per particle, --overlay a PNG of the outlines.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="image file(s)")
    p.add_argument(
        "--diameter-range",
        type=diameter_range_arg,
        metavar="LO-HI",
        help="particle diameters searched, e.g. 2-15nm (default: max(3 px, 1 nm) to 1/4 of the field)",
    )
    p.add_argument(
        "--false-alarms",
        type=_positive,
        default=0.05,
        metavar="N",
        help="expected number of noise detections per image (sets the threshold; default 0.05)",
    )
    p.add_argument("--probe-sigma", type=_positive, metavar="NM", help="probe sigma in nm (default: fitted)")
    p.add_argument(
        "--border-rule",
        choices=("exclude", "miles-lantuejoul", "include"),
        default=None,
        help="particles cut by the image border: exclude them (default), exclude them and weight the "
        "others by the Miles-Lantuéjoul correction, or include them (see Bresch et al. 2022)",
    )
    p.add_argument("--miles-lantuejoul", action="store_true", help="same as --border-rule miles-lantuejoul")
    p.add_argument(
        "--keep-flagged",
        action="store_true",
        help="keep rejected fits and unsplit clusters in the statistics (default: listed, left out)",
    )
    p.add_argument("--json", metavar="PATH|-", help="write the JSON result ('-' for stdout)")
    p.add_argument("--csv", metavar="PATH", help="write one row per particle")
    p.add_argument("--overlay", metavar="PNG", help="write the image with the particle outlines")
    add_load_args(p)
    p.set_defaults(func=run)


def _out_path(template, path, n_files, suffix):
    """One output per input: with several files, insert the input's stem before the extension."""
    from pathlib import Path

    if template is None or template == "-" or n_files == 1:
        return template
    t = Path(template)
    return str(t.with_name(f"{t.stem}_{Path(path).stem}{t.suffix or suffix}"))


def run(args) -> int:
    from .. import io
    from ..interop import provenance
    from ..particles._pipeline import find_particles, summary_lines
    from ..serialize import OutputSet, write_json

    n = len(args.files)
    json_records = []

    def one(path):
        mg = io.load(path, **load_kwargs(args))
        res = find_particles(
            mg,
            diameter_range_nm=args.diameter_range,
            false_alarms=args.false_alarms,
            probe_sigma_nm=args.probe_sigma,
            border_rule=args.border_rule or ("miles-lantuejoul" if args.miles_lantuejoul else "exclude"),
            keep_flagged=args.keep_flagged,
            source=str(path),
        )
        if args.json != "-":
            for line in summary_lines(res):
                print(line)
            if calibration_line(mg):
                print(calibration_line(mg))
        if args.json == "-":
            json_records.append({**res.to_dict(), "provenance": provenance(res, mg, parameters=args)})
        with OutputSet() as outputs:  # this file's JSON, CSV and overlay appear together or not at all
            _write_outputs(outputs, args, res, mg, path, n)

    status = run_per_file(args.files, one)
    if args.json == "-" and json_records:
        write_json(json_records[0] if n == 1 else json_records, "-")
    return status


def _write_outputs(outputs, args, res, mg, path, n) -> None:
    """Stage the JSON record, the particle CSV and the overlay PNG of one file (each when asked for)."""
    from ..interop import provenance
    from ..particles._plot import plot_overlay
    from ..serialize import dumps

    if args.json and args.json != "-":
        rec = {**res.to_dict(), "provenance": provenance(res, mg, parameters=args)}
        outputs.write_text(_out_path(args.json, path, n, ".json"), dumps(rec) + "\n")
    if args.csv:
        outputs.write_text(_out_path(args.csv, path, n, ".csv"), res.table.to_csv(index=False))
    if args.overlay:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .._plotstyle import figure_style

        with figure_style():
            fig, ax = plt.subplots(figsize=(5, 5), dpi=150)
            plot_overlay(res, mg, ax=ax)
            ax.set_title(
                f"{mg.name}: {res.summary['n']} particles, "
                + (
                    f"mean {res.summary['mean_nm']:.2f} nm, RSD {res.summary['rsd_percent']:.1f}%"
                    if res.summary["n"]
                    else "none sized"
                ),
                fontsize=7,
            )
            fig.tight_layout()
            fig.savefig(outputs.stage(_out_path(args.overlay, path, n, ".png")), dpi=200)
            plt.close(fig)
