"""Speed and exactness of latticefit.synth.

Prints one table: wall time of each generator (best of 3) and its error against
an independent pure-numpy reference measured in the same run:

- lattice images: max |Fourier rendering - direct sum of Gaussian columns| over a
  96x96 crop, relative to the column peak;
- HAADF particles: relative error of the integrated particle signal against the
  sphere volume pi D^3 / 6 (noise-free, no gradient).

Run: python benchmarks/bench_synth.py
"""

from __future__ import annotations

import math
import time

import numpy as np

from latticefit.synth import _core as synth


def best_of(fn, n=3):
    times = []
    out = None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def direct_sum_error(mg, t, crop=96):
    h = w = crop
    py, px = t.pixel_size_nm
    ox, oy = t.origin_px
    yy, xx = np.mgrid[0:h, 0:w]
    X, Y = (xx - ox) * px, (yy - oy) * py
    ref = np.zeros((h, w))
    A = np.array([t.a1_nm, t.a2_nm]).T
    corners = np.array([[X.min(), Y.min()], [X.max(), Y.min()], [X.min(), Y.max()], [X.max(), Y.max()]])
    frac = np.linalg.solve(A, corners.T)
    lo, hi = np.floor(frac.min(axis=1)) - 10, np.ceil(frac.max(axis=1)) + 10
    s2 = 2 * t.column_sigma_nm**2
    for i in range(int(lo[0]), int(hi[0]) + 1):
        for j in range(int(lo[1]), int(hi[1]) + 1):
            for u, v, wgt in t.basis:
                p = (i + u) * t.a1_nm + (j + v) * t.a2_nm
                ref += wgt * np.exp(-((X - p[0]) ** 2 + (Y - p[1]) ** 2) / s2)
    s = t._series
    got = (mg.data[:h, :w].astype(np.float64) - t.background) / t.contrast * s.p2v + s.c0
    return float(np.abs(got - ref).max() / ref.max())


def main():
    rows = []
    for label, fn in (
        ("lattice_image 1024^2 (a 0.4, sigma 0.04 nm)", lambda: synth.lattice_image((1024, 1024))),
        ("lattice_image 4096^2 float64", lambda: synth.lattice_image((4096, 4096))),
        ("lattice_image 4096^2 float32", lambda: synth.lattice_image((4096, 4096), dtype=np.float32)),
        ("perovskite_111 4096^2 float32", lambda: synth.perovskite_111((4096, 4096), dtype=np.float32)),
        ("lattice_image 2048^2 sigma 0.02 nm", lambda: synth.lattice_image((2048, 2048), column_sigma_nm=0.02)),
        (
            "lattice 1024^2 + 4 inclusions + noise",
            lambda: synth.perovskite_111(
                (1024, 1024),
                noise_sigma=0.5,
                inclusions=[
                    {"x_px": 200 + 200 * i, "y_px": 500, "radius_nm": 2.0, "mismatch": 0.0024} for i in range(4)
                ],
            ),
        ),
    ):
        t, (mg, truth) = best_of(fn)
        err = "" if truth.noise_sigma or truth.inclusions else f"{direct_sum_error(mg, truth):.1e}"
        rows.append((label, t, f"{len(truth._series.h)} terms", err))
    for label, kw in (
        ("haadf_dots 1024^2, 80 x 7 nm", dict(shape=(1024, 1024), n_particles=80)),
        ("haadf_dots 2048^2, 300 x 7 nm", dict(shape=(2048, 2048), n_particles=300, n_touching_pairs=10)),
    ):
        t, (mg, truth) = best_of(lambda: synth.haadf_dots(**kw))
        rows.append((label, t, f"{len(truth.particles)} particles", ""))
    for d in (2.0, 4.0, 7.0):
        th = synth.sphere_thickness_image((128, 128), [63.37], [60.81], [d], pixel_size_nm=0.1)
        err = th.sum() * 0.01 / (math.pi * d**3 / 6) - 1
        rows.append((f"sphere volume D = {d} nm at 0.1 nm/px", float("nan"), "", f"{err:+.1e}"))
    print(f"{'case':44s} {'time (s)':>9s} {'size':>16s} {'rel. error':>11s}")
    for label, t, size, err in rows:
        ts = "" if math.isnan(t) else f"{t:9.3f}"
        print(f"{label:44s} {ts:>9s} {size:>16s} {err:>11s}")


if __name__ == "__main__":
    main()
