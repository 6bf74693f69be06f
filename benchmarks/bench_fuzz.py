"""Fuzz benchmark (issue 17): a seeded corpus of hostile inputs through every command.

    python benchmarks/bench_fuzz.py [--n 180] [--seed 0] [--timeout 120]

Prints, per command, the runs and every broken promise: tracebacks, "unexpected" exceptions, hangs
(time limit), exit 0 on an input with nothing to measure, more than one error line, error lines that
do not name the file, stray output. The corpus generator and the checks are ``tests/fuzz_corpus.py``
(the suite runs a sample of the same corpus). Runs are in-process (``latticefit.cli.main``), so the
count is not limited by interpreter start-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_corpus import COMMANDS, argv_for, check_run, make_corpus, run_cli  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=180, help="mutants (x 6 commands = runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0, help="time limit per run (s)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(Path(tmp) / "corpus", args.n, seed=args.seed)
        kinds = Counter(m.kind.split(":")[0] for m in corpus)
        print(
            f"corpus: {len(corpus)} mutants (seed {args.seed}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        )
        rows, examples = [], []
        for command in COMMANDS:
            tally: Counter = Counter()
            times = []
            for m in corpus:
                res = run_cli(argv_for(command, m, Path(tmp)), timeout_s=args.timeout)
                times.append(res.seconds)
                tally[f"exit {res.code}"] += 1
                for p in check_run(command, m, res):
                    key = p.split(":")[0]
                    tally[key] += 1
                    if len(examples) < 20:
                        examples.append(f"{command} {m.path.name} ({m.kind}): {p}")
            times.sort()
            rows.append((command, len(corpus), tally, times[len(times) // 2], times[-1]))
    keys = [
        "traceback",
        "unexpected exception",
        "hang (time limit reached)",
        "exit 0 on an input with nothing to measure",
        "error line does not name the file",
        "stray output",
    ]
    short = ["traceback", "unexpected", "hang", "exit-0 nonsense", "unnamed", "stray"]
    print(
        f"\n{'command':10s} {'runs':>5s} {'exit0':>6s} {'exit2':>6s} "
        + " ".join(f"{s:>15s}" for s in short)
        + f" {'multi-line':>10s} {'median s':>9s} {'max s':>7s}"
    )
    total = Counter()
    for command, n, t, med, mx in rows:
        multi = sum(v for k, v in t.items() if k.endswith("error lines"))
        vals = [t.get(k, 0) for k in keys]
        total.update(dict(zip(short, vals)))
        total["runs"] += n
        total["multi"] += multi
        print(
            f"{command:10s} {n:5d} {t.get('exit 0', 0):6d} {t.get('exit 2', 0):6d} "
            + " ".join(f"{v:15d}" for v in vals)
            + f" {multi:10d} {med:9.2f} {mx:7.2f}"
        )
    print(
        f"{'all':10s} {total['runs']:5d} {'':6s} {'':6s} "
        + " ".join(f"{total[s]:15d}" for s in short)
        + f" {total['multi']:10d}"
    )
    if examples:
        print("\nfirst problems:")
        print("\n".join("  " + e for e in examples))


if __name__ == "__main__":
    main()
