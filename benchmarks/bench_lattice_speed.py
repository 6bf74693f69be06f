"""Speed of latticefit.lattice.measure_lattice against hyperspy fft() + find_peaks(), in the same run.

For 1024^2 and 4096^2 synthetic lattice images (square net, noise) it prints:

- latticefit warm: median wall time of ``measure_lattice(image)`` after a
  warm-up call (full analysis: spectrum, detection, ML refinement of every
  spot, errors, basis, and the image's systematic error from tiles of the
  field, each measured the same way: ``systematic="auto"``, the default);
  and the same with ``systematic="none"`` (Fisher errors only);
- hyperspy: ``Signal2D.fft(shift=True)``, power, then
  ``find_peaks(method='local_max')`` (the anchor a user has today; whole-pixel
  peaks, no errors), best of the runs;
- cold start: a fresh interpreter that imports latticefit and analyses one
  1024^2 image (numba kernels loaded from the on-disk cache; the first run
  after an install compiles them and is slower).

Usage: ``python benchmarks/bench_lattice_speed.py [--quick]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")


def _image(n):
    from latticefit.synth import _core as synth

    mg, _ = synth.cubic_001(
        shape=(n, n), rotation_deg=13.0, offset_px=(0.3, 0.4), noise_sigma=1.0, seed=1, dtype=np.float32
    )
    return mg


def time_latticefit(mg, repeats, systematic="auto"):
    from latticefit.lattice import measure_lattice

    res = measure_lattice(mg, systematic=systematic)  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = measure_lattice(mg, systematic=systematic)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), len(res.spots)


def time_hyperspy(mg, repeats):
    import hyperspy.api as hs

    logging.getLogger("hyperspy").setLevel(logging.ERROR)
    s = hs.signals.Signal2D(mg.data.copy())
    t_fft, t_all, n = [], [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = s.fft(shift=True).amplitude ** 2
        t1 = time.perf_counter()
        pk = p.find_peaks(method="local_max", interactive=False, show_progressbar=False)
        t2 = time.perf_counter()
        arr = pk.data[()] if pk.data.dtype == object else pk.data
        arr = arr[0] if isinstance(arr, np.ndarray) and arr.dtype == object else arr
        n = len(arr)
        t_fft.append(t1 - t0)
        t_all.append(t2 - t0)
    return min(t_fft), min(t_all), n


COLD = """
import time, warnings
t0 = time.perf_counter()
import numpy as np
from latticefit import synth
from latticefit.lattice import measure_lattice
mg, _ = synth.cubic_001(shape=(1024, 1024), noise_sigma=1.0, seed=1)
t1 = time.perf_counter()
res = measure_lattice(mg)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {len(res.spots)}")
"""


def cold_start():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, env=env, check=True)
    total = time.perf_counter() - t0
    imp, first, n = out.stdout.split()
    return total, float(imp), float(first)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (about two minutes)")
    args = ap.parse_args(argv)
    rep_lf = {1024: 5 if args.quick else 20, 4096: 3 if args.quick else 10}
    rep_hs = {1024: 2 if args.quick else 3, 4096: 1}
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    rows = []
    for n in (1024, 4096):
        mg = _image(n)
        med, best, ns = time_latticefit(mg, rep_lf[n])
        med_none = time_latticefit(mg, rep_lf[n], systematic="none")[0]
        t_fft, t_hs, npk = time_hyperspy(mg, rep_hs[n])
        rows.append((n, med, best, ns, med_none, t_fft, t_hs, npk))
        print(f"  {n}^2 done", flush=True)
    print()
    print(
        f"{'image':>10} {'latticefit warm median (s)':>27} {'best (s)':>9} {'spots':>6} "
        f"{'systematic=none (s)':>20} {'hyperspy fft (s)':>17} {'hyperspy fft+find_peaks (s)':>28} {'peaks':>6} "
        f"{'speed-up':>9}"
    )
    for n, med, best, ns, med_none, t_fft, t_hs, npk in rows:
        print(
            f"{f'{n}x{n}':>10} {med:>27.3f} {best:>9.3f} {ns:>6d} {med_none:>20.3f} {t_fft:>17.3f} {t_hs:>28.3f} "
            f"{npk:>6d} {t_hs / med:>8.1f}x"
        )
    total, imp, first = cold_start()
    print()
    print(
        f"cold start (fresh interpreter, numba cache on): import+synth {imp:.2f} s, first measure_lattice(1024^2) "
        f"{first:.2f} s, process total {total:.2f} s"
    )


if __name__ == "__main__":
    main()
