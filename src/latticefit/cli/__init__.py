"""The ``latticefit`` command line.

Each sub-command lives in its own module ``latticefit.cli.<name>`` with a
``register(subparsers)`` function that adds its parser and sets
``func(args) -> int`` as the parser default. Exit status: 0 success, 1 some
files of a batch failed, 2 bad input or arguments.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from .. import __version__
from ..errors import LatticefitError

# order = order in --help
COMMANDS = ["info", "lattice", "index", "phases", "calibrate", "particles", "report", "sizes", "gpa", "batch"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latticefit",
        description="Crystallographic numbers and publication figures from HRTEM / HAADF-STEM exports.",
    )
    parser.add_argument("--version", action="version", version=f"latticefit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:  # a command not built yet
            if e.name == f"{__name__}.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None):
    return f"latticefit: warning: {message}\n"


def main(argv=None) -> int:
    """Entry point of the ``latticefit`` console script."""
    warnings.formatwarning = _format_warning
    # third-party chatter (hyperspy/rosettasciio deprecations) is not for the user
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # numpy's floating-point chatter (RuntimeWarning) is never the user's message: latticefit states
    # what went wrong in its own warnings and errors, one line each
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ._common import quiet_third_party_logs

    quiet_third_party_logs()
    try:
        return int(args.func(args) or 0)
    except LatticefitError as e:
        print(f"latticefit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latticefit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # read-only folder, disk full, a file where a folder should be: say which path
        from ..serialize import printable_text

        path = e.filename if e.filename is not None else _input_named(args)
        why = e.strerror or " ".join(str(e).split())
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            why = "cannot write there: a file stands where a folder is needed"
        print(f"latticefit: error: {printable_text(str(path))}: {why}", file=sys.stderr)
        return 2
    except Exception as e:  # never a traceback for the user unless asked for
        if os.environ.get("LATTICEFIT_DEBUG"):
            raise
        where = _input_named(args)
        print(
            f"latticefit: error: {where + ': ' if where else ''}unexpected {type(e).__name__}: "
            f"{' '.join(str(e).split())} (set LATTICEFIT_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 2


def _input_named(args) -> str:
    """The input the command was given (file, files, folder or HRTEM), for an error line that names it."""
    for name in ("file", "hrtem", "folder", "files"):
        v = getattr(args, name, None)
        if isinstance(v, (list, tuple)):
            v = v[0] if len(v) == 1 else ", ".join(str(x) for x in v)
        if v:
            from ..serialize import printable_text

            return printable_text(str(v))
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
