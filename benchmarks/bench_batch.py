"""Batch throughput: ``latticefit batch`` with 1 and 2 workers against a plain loop of hs.load + the library call.

Writes ``--n`` synthetic 1024 x 1024 micrographs (``--kind lattice``: MAPbBr3
[111] HRTEM-like, the default; ``particles``: HAADF dots; ``mixed``: half of
each) as calibrated ImageJ TIFFs into a temporary folder, then measures

1. **plain loop**: ``hs.load`` + ``Micrograph.from_signal`` + ``measure_lattice`` /
   ``find_particles`` per file, in this process, nothing written (the anchor);
2. **batch --jobs 1**: :func:`latticefit.batch.run` in this process (load,
   analysis, figure, JSON, record, tables, page);
3. **batch --jobs 2**: the same with two worker processes.

and prints files/s, the ratios, and the per-file time split of the batch
(load / analysis / figure / other, from ``summary.csv``) beside the loop's
analysis time. The machine's load average is printed too: other processes
on the same cores lower the --jobs 2 speed-up.

Usage::

    python benchmarks/bench_batch.py             # 200 files
    python benchmarks/bench_batch.py --quick     # 24 files
    python benchmarks/bench_batch.py --n 50 --kind mixed
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _spin(n: int = 15_000_000) -> float:
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i
    return time.perf_counter() - t


def machine_speedup() -> float:
    """Throughput of 2 processes over 1 on a fixed pure-Python loop, measured now: the speed-up this machine
    can give two workers at this moment (other users' processes take cores too)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # start-up not timed
        one = pool.apply(_spin)
        t = time.perf_counter()
        pool.map(_spin, [15_000_000, 15_000_000])
        two = time.perf_counter() - t
    return 2 * one / two


def write_folder(folder: Path, n: int, kind: str, size: int) -> list[Path]:
    import tifffile

    from latticefit.synth import _core as synth

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        lattice = kind == "lattice" or (kind == "mixed" and i % 2 == 0)
        if lattice:
            mg, _ = synth.perovskite_111(shape=(size, size), noise_sigma=0.4, rotation_deg=(7.0 * i) % 60, seed=i)
        else:
            mg, _ = synth.haadf_dots(
                (size, size), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=60, n_touching_pairs=4, seed=i
            )
        p = folder / f"{'hrtem' if lattice else 'haadf'}_{i:04d}.tif"
        r = 1.0 / mg.pixel_size_nm[1]
        tifffile.imwrite(p, mg.data.astype(np.float32), imagej=True, resolution=(r, r), metadata={"unit": "nm"})
        paths.append(p)
    return paths


def plain_loop(paths: list[Path]) -> tuple[float, float]:
    """Wall time of hs.load + the library call per file, and the summed analysis time."""
    import hyperspy.api as hs

    from latticefit.lattice import measure_lattice
    from latticefit.micrograph import Micrograph
    from latticefit.particles import find_particles

    t_analysis = 0.0
    t0 = time.perf_counter()
    for p in paths:
        s = hs.load(str(p))
        mg = Micrograph.from_signal(s, source=str(p))
        t1 = time.perf_counter()
        if p.name.startswith("hrtem"):
            measure_lattice(mg)
        else:
            find_particles(mg)
        t_analysis += time.perf_counter() - t1
    return time.perf_counter() - t0, t_analysis


def batch_run(folder: Path, out: Path, jobs: int, mode: str, figures: bool = True) -> tuple[float, pd.DataFrame]:
    from latticefit.batch import _run as batch

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = batch.run(folder, out, jobs=jobs, mode=mode, progress=False, figures=figures)
    wall = time.perf_counter() - t0
    bad = summary[summary["status"] != "ok"]
    if len(bad):
        raise SystemExit(f"batch failed on {len(bad)} files: {bad[['file', 'error']].head()}")
    return wall, summary


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="number of files (default 200)")
    ap.add_argument("--quick", action="store_true", help="24 files")
    ap.add_argument("--kind", choices=["lattice", "particles", "mixed"], default="lattice")
    ap.add_argument("--size", type=int, default=1024, help="image side in px (default 1024)")
    ap.add_argument("--keep", metavar="DIR", help="write the files and outputs here and keep them")
    args = ap.parse_args(argv)
    n = 24 if args.quick else args.n
    warnings.filterwarnings("ignore")
    mode = {"lattice": "lattice", "particles": "particles", "mixed": "auto"}[args.kind]

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="latticefit_bench_batch_"))
    try:
        t = time.perf_counter()
        paths = write_folder(root / "in", n, args.kind, args.size)
        print(
            f"wrote {n} {args.size}x{args.size} {args.kind} images in {time.perf_counter() - t:.1f} s "
            f"({sum(p.stat().st_size for p in paths) / 1e6:.0f} MB) to {root / 'in'}"
        )
        # warm-up: numba caches, imports (not timed, as a long session would have them warm)
        plain_loop(paths[:2])
        loads = [os.getloadavg()[0]]
        avail_before = machine_speedup()
        t_loop, t_loop_analysis = plain_loop(paths)
        loads.append(os.getloadavg()[0])
        t1, s1 = batch_run(root / "in", root / "out1", 1, mode)
        loads.append(os.getloadavg()[0])
        t1n, s1n = batch_run(root / "in", root / "out1n", 1, mode, figures=False)
        loads.append(os.getloadavg()[0])
        t2, s2 = batch_run(root / "in", root / "out2", 2, mode)
        loads.append(os.getloadavg()[0])
        avail_after = machine_speedup()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    def rate(t):
        return n / t

    rows = [
        ("plain loop (hs.load + library call)", t_loop, rate(t_loop), 1.0, np.nan),
        ("batch --jobs 1", t1, rate(t1), rate(t1) / rate(t_loop), 1.0),
        ("batch --jobs 1 --no-figures", t1n, rate(t1n), rate(t1n) / rate(t_loop), rate(t1n) / rate(t1)),
        ("batch --jobs 2", t2, rate(t2), rate(t2) / rate(t_loop), rate(t2) / rate(t1)),
    ]
    print(
        f"\n{n} files, {os.cpu_count()} cores; 1-min load average before each run and at the end: "
        + " / ".join(f"{v:.2f}" for v in loads)
        + " (other processes on the cores lower the jobs-2 speed-up)"
    )
    print(
        f"machine anchor: 2 processes of a pure-Python loop run {avail_before:.2f}x (before) and "
        f"{avail_after:.2f}x (after) the throughput of 1: the most --jobs 2 can gain right now"
    )
    print(f"{'run':38s} {'wall (s)':>9s} {'files/s':>8s} {'vs loop':>8s} {'vs jobs 1':>9s}")
    for name, t, r, vs_loop, vs_1 in rows:
        v1 = "" if np.isnan(vs_1) else f"{vs_1:9.2f}"
        print(f"{name:38s} {t:9.1f} {r:8.2f} {vs_loop:8.2f} {v1:>9s}")

    print("\nper file, mean (s)                    load  analysis  figure  other*   total")
    print(
        f"{'plain loop':36s} {(t_loop - t_loop_analysis) / n:6.3f} {t_loop_analysis / n:9.3f} {'':>7s} "
        f"{'':>7s} {t_loop / n:7.3f}"
    )
    for name, s, wall in (
        ("batch --jobs 1", s1, t1),
        ("batch --jobs 1 --no-figures", s1n, t1n),
        ("batch --jobs 2 (per worker)", s2, t2),
    ):
        load = s["load_s"].mean()
        ana = s["analysis_s"].mean()
        fig = s["figure_s"].mean()
        tot = s["time_s"].mean()
        other = tot - load - ana - fig
        print(f"{name:36s} {load:6.3f} {ana:9.3f} {fig:7.3f} {other:7.3f} {tot:7.3f}")
    for name, s, wall, jobs in (("batch --jobs 1", s1, t1, 1), ("batch --jobs 2", s2, t2, 2)):
        busy = s["time_s"].sum() / (jobs * wall)
        print(
            f"{name}: workers busy {100 * busy:.0f} % of the wall time (sum of per-file task times / "
            f"(jobs x wall)); the rest is start-up, hand-over and writing"
        )
    parent = t1 - s1["time_s"].sum()
    print(
        f"\nbatch --jobs 1 outside the per-file task (writing outputs, records, tables, page; start-up): "
        f"{parent:.1f} s = {parent / n:.3f} s per file"
    )
    print("* other = content hash, periodicity test (auto mode), JSON serialisation inside the task")
    print(
        f"per-file overhead of batch over the library call (jobs 1): {(t1 - t_loop_analysis) / n:.3f} s "
        f"(load + figure + writes), analysis {t_loop_analysis / n:.3f} s"
    )
    print(f"batch --jobs 1 --no-figures / plain loop, per file: {t1n / t_loop:.2f}x (issue #15 target <= 1.3x)")


if __name__ == "__main__":
    main()
