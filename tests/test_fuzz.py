"""A sample of the hostile-input corpus through every command (issue 17); the full set is
``benchmarks/bench_fuzz.py``. Each run: one line per error naming the file, no traceback, no
"unexpected" exception, no hang, and exit 2 where nothing could be measured."""

from __future__ import annotations

import pytest

from fuzz_corpus import COMMANDS, argv_for, check_run, make_corpus, run_cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("fuzz"), 36, seed=2026)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_hostile_inputs_get_one_line_and_the_right_exit(command, corpus, tmp_path):
    # the figure commands are the slow ones: for them the inputs with nothing to measure and every fifth other
    fast = command in ("info", "lattice", "index", "particles")
    sample = corpus if fast else [m for i, m in enumerate(corpus) if m.blank or m.unreadable or i % 5 == 0]
    failures = []
    for m in sample:
        res = run_cli(argv_for(command, m, tmp_path), timeout_s=60)
        problems = check_run(command, m, res)
        if problems:
            failures.append(f"{m.path.name} ({m.kind}): {'; '.join(problems)} | {res.stderr.strip()[:300]}")
    assert not failures, "\n".join(failures)
