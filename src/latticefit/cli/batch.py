"""``latticefit batch FOLDER -o OUT``: a folder of exports in, results tables, figures and a page out.

Exit status: 0 when every file succeeded (unsupported files skipped do not
count as failures), 1 when some failed (their count is printed and they are
listed in ``OUT/errors.csv``), 2 for bad arguments (missing folder, bad
option, dask missing or its scheduler unreachable).
"""

from __future__ import annotations

import argparse
import sys

from ._common import _calibration, add_load_args

__all__ = ["register", "run"]


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch",
        help="analyse every microscope file of a folder: tables, figures, a browsable page",
        description="Analyse every supported file of FOLDER in parallel and write, under OUT, a JSON result and "
        "a PNG figure per file and signal (mirroring the folder tree), summary.csv, spots.csv, "
        "particles.csv, errors.csv and index.html. A bad file is listed in errors.csv and the run "
        "goes on; --resume after a crash or kill redoes only unfinished files. "
        "Exit status: 0 all files succeeded, 1 some failed, 2 bad arguments.",
    )
    p.add_argument("folder", metavar="FOLDER", help="folder of microscope exports")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (created)")
    p.add_argument("-r", "--recursive", action="store_true", help="also process sub-folders")
    p.add_argument(
        "--mode",
        choices=["auto", "lattice", "particles", "both"],
        default="auto",
        help="analysis per image: auto (default) = particles for HAADF/STEM (lattice instead when the image "
        "resolves a lattice: atomic columns are not particles), lattice for TEM/HRTEM, from the "
        "metadata or, without a mode there, from the image's periodicity; both = both analyses",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="worker processes (default: all cores; 1 = in this process)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a dask.distributed cluster: tcp://host:8786, or 'local' for a LocalCluster "
        "of --jobs workers (needs pip install 'latticefit[dask]')",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the results already in OUT for unchanged files and settings; redo the rest",
    )
    p.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="NAME|CIF",
        help="phase to index lattice spots against (repeatable), e.g. MAPbBr3, PbS or a CIF file",
    )
    p.add_argument(
        "--free-scale",
        action="store_true",
        help="with --phase: fit the calibration factor (0.85-1.15) while indexing, for images whose pixel "
        "size is a few percent off; the implied factor is in the scale_factor column",
    )
    p.add_argument(
        "--no-figures",
        action="store_true",
        help="numbers only: no per-file figure (faster; index.html has no thumbnails)",
    )
    p.add_argument(
        "--keep-unindexed",
        action="store_true",
        help="keep significant spots that no fitted lattice indexes (order 0) in spots.csv",
    )
    p.add_argument(
        "--pattern",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files matching this glob (repeatable; case-insensitive), e.g. '*.dm4' or 'day2/*.emd'",
    )
    add_load_args(p)
    for action in p._actions:  # batch defaults differ from the single-file commands'
        if action.dest == "signal":
            action.help = "only this signal/detector of multi-signal files (default: every 2-D image, one row each)"
        elif action.dest == "frame":
            action.help = "frame of 3-D stacks: an index, 'sum' or 'mean' (default: mean)"
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..batch._run import failed_files
    from ..batch._run import run as run_batch

    frame = args.frame if args.frame is not None else "mean"
    progress = (not args.quiet) and sys.stderr.isatty()
    summary = run_batch(
        args.folder,
        args.out,
        recursive=args.recursive,
        mode=args.mode,
        jobs=args.jobs,
        scheduler=args.scheduler,
        resume=args.resume,
        phases=args.phase or None,
        free_scale=args.free_scale,
        pattern=args.pattern or None,
        pixel_size=args.pixel_size,
        signal=args.signal,
        frame=frame,
        progress=progress,
        calibration=_calibration(args),
        figures=not args.no_figures,
        lattice_options={"keep_unindexed": True} if args.keep_unindexed else None,
    )
    failed = failed_files(summary)
    n_files = summary["file"].nunique() if len(summary) else 0
    n_skipped = summary.loc[summary["status"] == "skipped", "file"].nunique() if len(summary) else 0
    n_ok = n_files - len(failed) - n_skipped
    if not args.quiet:
        print(
            f"latticefit batch: {n_files} files: {n_ok} ok, {len(failed)} failed, {n_skipped} skipped "
            f"-> {args.out}/summary.csv, {args.out}/index.html"
        )
    if n_files == 0:
        print(
            f"latticefit: warning: no files found in {args.folder}"
            + ("" if args.recursive else " (use --recursive for sub-folders)"),
            file=sys.stderr,
        )
    if failed:
        print(
            f"latticefit: error: {len(failed)} file{'s' if len(failed) != 1 else ''} failed "
            f"(see {args.out}/errors.csv)",
            file=sys.stderr,
        )
        return 1
    return 0
