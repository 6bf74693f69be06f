"""The README's console blocks are what the current code prints (regenerate: scripts/render_readme.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[-+]?\d+(?:\.(\d+))?(?:[eE][-+]?\d+)?")


def _load_renderer():
    spec = importlib.util.spec_from_file_location("render_readme", ROOT / "scripts" / "render_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _same_to_printed_precision(a: str, b: str) -> list[str]:
    """Lines that differ: counts must be equal, decimals within 2 units of their last printed digit."""
    bad = []
    la, lb = a.splitlines(), b.splitlines()
    if len(la) != len(lb):
        return [f"{len(la)} lines in the README block, {len(lb)} printed now:\n" + "\n".join(lb[:12])]
    for x, y in zip(la, lb):
        if NUMBER.sub("#", x) != NUMBER.sub("#", y):
            bad.append(f"README: {x}\n   now: {y}")
            continue
        for mx, my in zip(NUMBER.finditer(x), NUMBER.finditer(y)):
            digits = max(len(mx.group(1) or ""), len(my.group(1) or ""))
            tol = 0.0 if digits == 0 else 2.0 * 10.0**-digits + 1e-12
            if abs(float(mx.group(0)) - float(my.group(0))) > tol:
                bad.append(f"README: {x}\n   now: {y}")
                break
    return bad


def test_unit_tolerance_of_the_comparison():
    assert not _same_to_printed_precision("d = 4.195 ± 0.005 Å", "d = 4.196 ± 0.005 Å")
    assert _same_to_printed_precision("d = 4.195 ± 0.005 Å", "d = 4.215 ± 0.005 Å")
    assert _same_to_printed_precision("45 particles detected", "44 particles detected")
    assert _same_to_printed_precision("wrote fig4.pdf", "wrote fig4.svg")


RENDER = _load_renderer()
BLOCKS = RENDER.BLOCK.findall(RENDER.README.read_text())
# one case per README command (each runs in its own process, so xdist spreads them over the workers)
COMMANDS = [(b, i) for b, body in enumerate(BLOCKS) for i, _ in enumerate(RENDER.block_commands(body))]


def _segments(body: str) -> list[str]:
    """A console block cut before each ``$ `` line: one command and what it printed per piece."""
    return [s for s in re.split(r"(?m)^(?=\$ )", body) if s]


def test_readme_console_blocks_are_commands_and_their_output():
    assert BLOCKS, "no console block found in README.md"
    for body in BLOCKS:
        assert body.startswith("$ "), f"a README console block starts with a command:\n{body[:200]}"
        assert len(_segments(body)) == len(RENDER.block_commands(body))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("block", "index"), COMMANDS, ids=[f"{b + 1}-{RENDER.block_commands(BLOCKS[b])[i].split()[1]}" for b, i in COMMANDS]
)
def test_readme_console_blocks_match_the_current_code(block, index):
    body = BLOCKS[block]
    cmd = RENDER.block_commands(body)[index]
    with RENDER.scratch_folder() as work:
        new = RENDER.render_command(cmd, work, "[exit " in body)
    problems = _same_to_printed_precision(_segments(body)[index], new)
    assert not problems, (
        "README.md console blocks are out of date; run `python scripts/render_readme.py`:\n" + "\n".join(problems[:20])
    )
