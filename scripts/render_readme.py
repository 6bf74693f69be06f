#!/usr/bin/env python3
"""Regenerate the console blocks of README.md from what the current code prints.

Every ```console block of the README is a list of ``$ latticefit ...`` commands, each followed by what it
printed (stderr and stdout, as a terminal shows them). This script runs each command in a scratch folder
that holds the project's ``sample_data`` (so written figures do not land in the checkout) and puts the
fresh output back. A block that shows ``[exit N]`` lines keeps showing the exit status.

    python scripts/render_readme.py          # rewrite README.md
    python scripts/render_readme.py --check  # exit 1 and show a diff when README.md is out of date

``tests/test_readme.py`` runs the check (numbers compared to the precision they are printed with, so a
last-digit difference between CPUs does not fail it).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"```console\n(.*?)```", re.S)


def run_command(cmd: str, workdir: Path) -> tuple[str, int]:
    """Output (stderr and stdout, merged as a terminal shows them) and exit status of one README command."""
    argv = shlex.split(cmd)
    if argv[0] != "latticefit":
        raise SystemExit(f"README console blocks hold latticefit commands only, got: {cmd}")
    code = "import sys; from latticefit.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, COLUMNS="120", PYTHONWARNINGS="ignore::DeprecationWarning")
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv[1:]],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=600,
    )
    return proc.stdout, proc.returncode


def block_commands(body: str) -> list[str]:
    """The ``latticefit ...`` commands of a console block, in order."""
    return [line[2:] for line in body.splitlines() if line.startswith("$ ")]


def render_command(cmd: str, workdir: Path, show_exit: bool) -> str:
    """``$ cmd``, a fresh run's output and, when ``show_exit``, its ``[exit N]`` line."""
    text, rc = run_command(cmd, workdir)
    out = f"$ {cmd}\n{text}"
    if out and not out.endswith("\n"):
        out += "\n"
    if show_exit:
        out += f"[exit {rc}]\n"
    return out


def render_block(body: str, workdir: Path) -> str:
    """A console block's text with every command's output replaced by a fresh run."""
    show_exit = "[exit " in body
    return "".join(render_command(cmd, workdir, show_exit) for cmd in block_commands(body))


@contextlib.contextmanager
def scratch_folder():
    """A temporary folder holding a link to the project's ``sample_data``, where the commands run."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sample_data").symlink_to(ROOT / "sample_data", target_is_directory=True)
        yield work


def render(text: str) -> str:
    """README text with every console block regenerated."""
    with scratch_folder() as work:
        return BLOCK.sub(lambda m: "```console\n" + render_block(m.group(1), work) + "```", text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md is out of date")
    args = ap.parse_args(argv)
    old = README.read_text()
    new = render(old)
    if args.check:
        if new != old:
            sys.stdout.writelines(
                difflib.unified_diff(old.splitlines(True), new.splitlines(True), "README.md", "rendered")
            )
            return 1
        return 0
    if new != old:
        README.write_text(new)
        print("README.md updated")
    else:
        print("README.md is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
