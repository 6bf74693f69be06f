"""Sizing PbS dots on abTEM multislice HAADF-STEM images: latticefit's bias and error honesty vs Otsu + watershed.

Images: ``tests/data/multislice_particles/`` (``scripts/make_haadf_particle_fixtures.py``: abTEM PRISM,
300 kV, 10 mrad aberration-free probe, HAADF 40-60 mrad, one frozen-phonon configuration; randomly oriented
rock-salt PbS spheres cut from atoms, 7.0 and 4.0 nm, on 2 nm of amorphous carbon; 0.1 nm per probe
position). The noiseless intensity I (fraction of the probe on the detector) becomes counts as
``Poisson(dose * I + dark)`` (dose in electrons per probe position, ``dark`` counts per pixel), one seed per
realisation.

Per image, dose and true dot, over ``--seeds`` noise realisations:

- ``found``: realisations where exactly one latticefit row lies within R/2 of the true centre and it is in
  the statistics; ``extra``: rows in the statistics matched to no true dot (summed over realisations);
  ``flags``: the status / reject reason of matched rows left out of the statistics, if any;
- latticefit ``find_particles(counts, pixel_size=..., diameter_range_nm=(2, 10))``: mean fitted diameter and
  its bias against 2R (and against ``d_V``, the diameter of the bulk-density sphere holding the same number of
  atoms, from truth.json); SD of the fitted diameter over the realisations against the mean stated
  ``diameter_err_nm`` (ratio 1 for honest errors); SD of z = (d - mean d) / err;
- ``otsu-ws`` (``bench_particles.otsu_watershed``: Gaussian pre-filter sigma 1 px, scikit-image Otsu threshold,
  distance-transform watershed, regionprops ECD): found (nearest region centroid within R/2), mean ECD, bias.

``SNR``: (peak - background) / sqrt(peak) per pixel at the dot centre, from the noiseless image (3 x 3 mean).

Usage::

    python benchmarks/bench_particles_multislice.py [--seeds N] [--doses 3e3,1e4,1e5] [--dark 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import latticefit
from latticefit.particles import find_particles

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data" / "multislice_particles"
sys.path.insert(0, str(HERE))
from bench_particles import otsu_watershed  # noqa: E402


def snr_at(intensity, dot, dose, dark):
    i, j = int(round(dot["y_px"])), int(round(dot["x_px"]))
    peak = dose * intensity[i - 1 : i + 2, j - 1 : j + 2].mean() + dark
    bg = dose * np.median(intensity) + dark
    return (peak - bg) / np.sqrt(peak)


def run_image(name, entry, doses, seeds, dark, k):
    mg = latticefit.load(DATA / name)
    intensity = np.asarray(mg.data, float)
    px = mg.pixel_size_nm[1]
    dots = entry["dots"]
    rows = []
    for dose in doses:
        d = np.full((len(dots), seeds), np.nan)
        e = np.full_like(d, np.nan)
        o = np.full_like(d, np.nan)
        flags = [dict() for _ in dots]
        extra = 0
        t_lf = 0.0
        for s in range(seeds):
            rng = np.random.default_rng(100_000 * k + 1000 * int(np.log10(dose) * 10) + s)
            counts = rng.poisson(dose * intensity + dark).astype(np.float64)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tab = find_particles(counts, pixel_size=px, diameter_range_nm=(2, 10), n_boot=200).table
            t_lf += time.perf_counter() - t0
            matched = np.zeros(len(tab), bool)
            for i, dot in enumerate(dots):
                r = dot["diameter_nm"] / 2 / px
                near = np.hypot(tab.x_px.to_numpy() - dot["x_px"], tab.y_px.to_numpy() - dot["y_px"]) < 0.5 * r
                matched |= near
                sel = tab[near]
                if len(sel) == 1 and bool(sel.in_statistics.iloc[0]):
                    d[i, s], e[i, s] = sel.diameter_nm.iloc[0], sel.diameter_err_nm.iloc[0]
                else:
                    key = f"n={len(sel)} " + ",".join(f"{a}:{b}" for a, b in zip(sel.status, sel.reject_reason))
                    flags[i][key] = flags[i].get(key, 0) + 1
            extra += int((tab.in_statistics.to_numpy() & ~matched).sum())
            ox, oy, oe, _ = otsu_watershed(counts, px, 2.0)
            ox, oy, oe = np.asarray(ox), np.asarray(oy), np.asarray(oe)
            for i, dot in enumerate(dots):
                r = dot["diameter_nm"] / 2 / px
                dist = np.hypot(ox - dot["x_px"], oy - dot["y_px"])
                if len(dist) and dist.min() < 0.5 * r:
                    o[i, s] = oe[np.argmin(dist)]
        for i, dot in enumerate(dots):
            ok = np.isfinite(d[i])
            di, ei = d[i][ok], e[i][ok]
            z = (di - di.mean()) / ei if ok.sum() > 2 else np.array([np.nan])
            oo = o[i][np.isfinite(o[i])]
            rows.append(
                {
                    "image": name.removeprefix("haadf_pbs_").removesuffix(".tif"),
                    "dose": dose,
                    "snr": snr_at(intensity, dot, dose, dark),
                    "dot": i,
                    "d_true": dot["diameter_nm"],
                    "d_v": dot["diameter_volume_equivalent_nm"],
                    "found": int(ok.sum()),
                    "extra": extra if i == 0 else None,
                    "flags": flags[i],
                    "lf_mean": di.mean() if len(di) else np.nan,
                    "lf_sd": di.std(ddof=1) if len(di) > 1 else np.nan,
                    "lf_err": ei.mean() if len(ei) else np.nan,
                    "sd_z": z.std(ddof=1) if len(z) > 1 else np.nan,
                    "ow_found": len(oo),
                    "ow_mean": oo.mean() if len(oo) else np.nan,
                    "t_lf": t_lf / seeds,
                }
            )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30, help="noise realisations per image and dose")
    ap.add_argument("--doses", default="3e3,1e4,1e5", help="electrons per probe position, comma-separated")
    ap.add_argument("--dark", type=float, default=2.0, help="mean dark counts per pixel")
    args = ap.parse_args(argv)
    doses = [float(v) for v in args.doses.split(",")]
    truth = json.loads((DATA / "truth.json").read_text())
    rows = []
    for k, (name, entry) in enumerate(sorted(truth["images"].items())):
        rows += run_image(name, entry, doses, args.seeds, args.dark, k)
    n = args.seeds
    print(f"PbS dots, abTEM PRISM HAADF 40-60 mrad, 0.1 nm/px; {n} noise realisations per image and dose\n")
    print(
        "| image | dose e/probe | SNR | dot | 2R nm | d_V nm | found | extra | latticefit d nm | bias % vs 2R "
        "| bias % vs d_V | SD nm | mean err nm | SD/err | SD(z) | otsu-ws found | otsu-ws ECD nm | otsu-ws bias % |"
    )
    print("|" + "---|" * 18)
    for r in rows:
        print(
            f"| {r['image']} | {r['dose']:.0e} | {r['snr']:.0f} | {r['dot']} | {r['d_true']:.1f} | {r['d_v']:.3f} "
            f"| {r['found']}/{n} | {'' if r['extra'] is None else r['extra']} | {r['lf_mean']:.3f} "
            f"| {100 * (r['lf_mean'] / r['d_true'] - 1):+.2f} | {100 * (r['lf_mean'] / r['d_v'] - 1):+.2f} "
            f"| {r['lf_sd']:.4f} | {r['lf_err']:.4f} | {r['lf_sd'] / r['lf_err']:.2f} | {r['sd_z']:.2f} "
            f"| {r['ow_found']}/{n} | {r['ow_mean']:.3f} | {100 * (r['ow_mean'] / r['d_true'] - 1):+.2f} |"
        )
    flagged = [(r["image"], r["dose"], r["dot"], r["flags"]) for r in rows if r["flags"]]
    if flagged:
        print("\nlatticefit misses / flags (image, dose, dot: {rows near the dot, status:reject_reason: realisations})")
        for f in flagged:
            print(f"- {f[0]} {f[1]:.0e} dot {f[2]}: {f[3]}")
    print(f"\nlatticefit time per image (mean): {np.mean([r['t_lf'] for r in rows]):.2f} s")


if __name__ == "__main__":
    main()
