"""Issue #10's size rules, kept: no module outside cli/ over ~600 lines, no function over ~80 lines.

A function counts its lines without its docstring; one that must stay long says why in a line starting
``# long because:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "latticefit"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules():
    return [p for p in sorted(SRC.rglob("*.py")) if "cli" not in p.relative_to(SRC).parts[:1]]


def _body_lines(node: ast.AST) -> int:
    n = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        if isinstance(body[0].value.value, str):
            n -= body[0].end_lineno - body[0].lineno + 1
    return n


def test_modules_stay_short():
    long = [f"{p.relative_to(SRC)}: {n}" for p in _modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES]
    assert not long, "modules over 600 lines (split by concept): " + ", ".join(long)


def test_functions_stay_short_or_say_why():
    long = []
    for p in _modules():
        text = p.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES:
                if not any("# long because:" in ln for ln in lines[node.lineno - 1 : node.end_lineno]):
                    long.append(f"{p.relative_to(SRC)}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert not long, "functions over 80 lines without a stated reason: " + "; ".join(long)
