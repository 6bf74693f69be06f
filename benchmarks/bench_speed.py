"""Speed a user feels: cold command wall times, warm kernels, and their ratios to anchors of the same run.

Prints the table of issue #15:

1. **cold commands**: ``latticefit info | particles | lattice | report`` run as a fresh
   ``python -m latticefit.cli`` process on the sample data (and, when ``../shared/realdata`` is
   there, ``particles`` on a FEI Helios SEM TIFF that holds no dots). Each command runs once
   untimed (numba's on-disk cache and the OS file cache warm, as for a user on the second day),
   then ``--runs`` times; the median and the spread are printed.
2. **warm kernels** in this process (after a warm-up call): ``measure_lattice`` on 1024² and
   4096² synthetic lattices against one ``scipy.fft.rfft2`` of the same image (the FFT floor)
   and against hyperspy ``fft()`` + ``find_peaks(method="local_max")`` with the thresholds a
   user would set (``threshold_rel=1e-3, min_distance=5``); ``find_particles`` on a 2048²
   HAADF field against ``skimage.feature.blob_log`` over the same sigma range with
   ``threshold=0.05``.

Timings on a shared machine are noisy: the 1-min load average is printed before and after.
``benchmarks/bench_batch.py`` measures the batch overhead and the ``--jobs 2`` scaling.

Usage::

    python benchmarks/bench_speed.py            # 3 cold runs per command, about 3 minutes
    python benchmarks/bench_speed.py --runs 1   # one cold run per command
    python benchmarks/bench_speed.py --no-kernels
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
REAL = ROOT.parent / "shared" / "realdata"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lattice_speed import _image, time_latticefit  # noqa: E402


def commands(out: Path) -> list[tuple[str, list[str], str]]:
    """(label, argv after ``latticefit``, target) of each cold command."""
    hrtem, haadf = SAMPLE / "perovskite_111_hrtem.tif", SAMPLE / "perovskite_111_haadf.hspy"
    dots = SAMPLE / "pbs_dots_7nm_haadf.hspy"
    cmds = [
        ("info pbs_dots_7nm_haadf.hspy", ["info", str(dots)], "<= 0.5 s"),
        ("particles pbs_dots_7nm_haadf.hspy (768²)", ["particles", str(dots)], "<= 1.0 s"),
        ("lattice perovskite_111_hrtem.tif (1024²)", ["lattice", str(hrtem)], "<= 1.0 s"),
        (
            "report on the sample pair (PDF + PNG)",
            ["report", str(hrtem), "--haadf", str(haadf), "--phase", "MAPbBr3", "--phase", "PbS"]
            + ["-o", str(out / "fig4.pdf")],
            "<= 3 s",
        ),
    ]
    helios = REAL / "loaders" / "FEI-Helios-Ebeam-16bits.tif"
    if helios.exists():
        cmds.append(("particles on a SEM TIFF without dots", ["particles", str(helios)], "well under 1 s"))
    return cmds


def cold(argv: list[str]) -> float:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latticefit.cli", *argv], capture_output=True, env=env, check=False)
    return time.perf_counter() - t0


def time_rfft2(data: np.ndarray, repeats: int) -> float:
    from scipy import fft as sfft

    x = np.asarray(data, dtype=np.float32)
    sfft.rfft2(x, workers=2)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sfft.rfft2(x, workers=2)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def time_hyperspy_peaks(data: np.ndarray, repeats: int) -> float:
    import hyperspy.api as hs

    logging.getLogger("hyperspy").setLevel(logging.ERROR)
    s = hs.signals.Signal2D(np.asarray(data, dtype=np.float32))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = s.fft(shift=True).amplitude ** 2
        p.find_peaks(method="local_max", threshold_rel=1e-3, min_distance=5, interactive=False, show_progressbar=False)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def time_particles(repeats: int) -> tuple[float, float, int, int]:
    from skimage.feature import blob_log

    from latticefit.particles import find_particles
    from latticefit.synth import _core as synth

    mg, _ = synth.haadf_dots((2048, 2048), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=240, seed=3)
    find_particles(mg)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = find_particles(mg)
        ts.append(time.perf_counter() - t0)
    img = mg.data.astype(np.float32)
    img = (img - img.min()) / max(float(np.ptp(img)), 1e-12)
    r_px = 3.5 / 0.1
    tb = []
    for _ in range(max(1, repeats // 2)):
        t0 = time.perf_counter()
        blobs = blob_log(img, min_sigma=0.5 * r_px / 1.414, max_sigma=1.5 * r_px / 1.414, num_sigma=10, threshold=0.05)
        tb.append(time.perf_counter() - t0)
    return statistics.median(ts), statistics.median(tb), int(res.summary["n"]), len(blobs)


def kernel_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    rows = []
    for n in (1024, 4096):
        mg = _image(n)
        med, _, _ = time_latticefit(mg, repeats if n == 1024 else max(3, repeats // 2))
        floor = time_rfft2(mg.data, repeats)
        hs_t = time_hyperspy_peaks(mg.data, 1 if n == 4096 else 2)
        rows.append((f"measure_lattice {n}²", med, "one scipy.fft.rfft2 (the floor)", floor))
        rows.append((f"measure_lattice {n}²", med, "hyperspy fft + find_peaks (threshold_rel 1e-3)", hs_t))
        print(f"  kernels {n}² done", flush=True)
    t_lf, t_blob, n_lf, n_blob = time_particles(max(3, repeats // 2))
    rows.append((f"find_particles 2048² ({n_lf} sized)", t_lf, f"skimage blob_log ({n_blob} blobs)", t_blob))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="cold runs per command (default 3)")
    ap.add_argument("--repeats", type=int, default=7, help="warm repeats per kernel (default 7)")
    ap.add_argument("--no-kernels", action="store_true", help="cold commands only")
    ap.add_argument("--no-cold", action="store_true", help="warm kernels only")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    print(f"cores available: {len(os.sched_getaffinity(0))}, 1-min load average at start {load0:.2f}")
    rows = []
    if not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="latticefit_bench_speed_") as tmp:
            for label, cmd, target in commands(Path(tmp)):
                cold(cmd)  # warm the numba cache and the OS file cache
                ts = [cold(cmd) for _ in range(args.runs)]
                rows.append((label, statistics.median(ts), min(ts), max(ts), target))
                print(f"  {label}: done", flush=True)
    krows = [] if args.no_kernels else kernel_rows(args.repeats)
    print(f"\n1-min load average: {load0:.2f} at start, {os.getloadavg()[0]:.2f} at the end")
    if rows:
        print(f"\n{'cold command (fresh process)':44s} {'median (s)':>10s} {'min':>6s} {'max':>6s}  target")
        for label, med, lo, hi, target in rows:
            print(f"{label:44s} {med:10.2f} {lo:6.2f} {hi:6.2f}  {target}")
    if krows:
        print(f"\n{'warm kernel':34s} {'median (s)':>10s}  {'anchor, same run':48s} {'(s)':>7s} {'ratio':>7s}")
        for label, t, anchor, ta in krows:
            print(f"{label:34s} {t:10.3f}  {anchor:48s} {ta:7.3f} {t / ta:6.2f}x")


if __name__ == "__main__":
    main()
