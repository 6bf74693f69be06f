"""``latticefit phases``: list the built-in crystal phases (and any CIF given)."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "phases",
        help="list the built-in crystal phases",
        description="List the built-in phases (name, space group, cell) used by "
        "`latticefit index`; --cif adds phases read from CIF files.",
    )
    p.add_argument("--cif", action="append", default=[], metavar="FILE", help="also read this CIF file (repeatable)")
    p.add_argument("--json", nargs="?", const="-", metavar="DEST", help="write JSON to DEST ('-' = stdout)")
    p.set_defaults(func=run)


def _short(text: str, n: int = 48) -> str:
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= n else first[: n - 3] + "..."


def run(args) -> int:
    from ..crystal._phases import get_phase, library_names, load_cif  # lazy: every command builds this parser
    from ..serialize import write_json

    phases = [get_phase(n) for n in library_names()] + [load_cif(c) for c in args.cif]
    if args.json:
        write_json([p.summary() for p in phases], args.json)
        return 0
    out = sys.stdout
    out.write(
        f"{'name':<10} {'space group':<12} {'a (Å)':>7} {'b (Å)':>7} {'c (Å)':>7} "
        f"{'alpha':>6} {'beta':>6} {'gamma':>6}  atoms  description\n"
    )
    for p in phases:
        out.write(
            f"{p.name:<10} {(p.space_group or 'P1') + f' ({p.space_group_number or 1})':<12} "
            f"{p.a:7.4f} {p.b:7.4f} {p.c:7.4f} {p.alpha:6.1f} {p.beta:6.1f} {p.gamma:6.1f}  "
            f"{len(p.sites):>5}  {_short(p.description)}\n"
        )
    return 0
