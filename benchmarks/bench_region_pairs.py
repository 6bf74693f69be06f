"""Do region differences have honest error bars? Random pairs of equal squares of one crystal.

Two equal, non-overlapping squares of one homogeneous crystal differ only by
noise and by the image's own distortion (scan distortion, drift), so their
``compare_regions`` z-scores should be ~N(0, 1): rms z ~ 1, |z| > 2 in ~4.6 %,
|z| > 3 in ~0.3 %. For each real file and square size this prints the rms z,
the fraction |z| > 2 and |z| > 3 of

- ``stat``: the statistical (Fisher, Birge-scaled) errors only (latticefit 0.1);
- ``total``: statistical + the image's systematic term estimated on the whole field (``systematic='auto'``);
- ``held-out``: statistical + a systematic term estimated on one half of the field only, for pairs drawn
  in the other half (both ways round): the estimate is not fitted to the pairs it is tested on.

``refl`` rows are every matched reflection's z; ``mean`` rows the z of the
first-order mean Δd/d (``summary['z']``). The synthetic part repeats the test
over independent ``latticefit.synth`` images (one pair each).

Usage: ``python benchmarks/bench_region_pairs.py [--pairs N] [--synth-trials N] [--quick]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from latticefit.io import load
from latticefit.lattice import compare_regions, measure_lattice
from latticefit.lattice._systematic import estimate_systematic
from latticefit.roi import Rect
from latticefit.synth import _core as synth

warnings.simplefilter("ignore")
REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "lattice"
FILES = {
    "Acquisition_18.emd": (128, 192, 256),
    "test_ADF_cropped.hdf5": (80, 112),
    "Cropped_PTO-SRO_Aligned.hspy": (96, 128, 160),
}


def random_pair(rng, box, side, tries=200):
    """Two non-overlapping side x side squares inside box = (x, y, w, h), or None."""
    x0, y0, w, h = box
    if w < side or h < side:
        return None
    for _ in range(tries):
        ax, bx = rng.integers(x0, x0 + w - side + 1, 2)
        ay, by = rng.integers(y0, y0 + h - side + 1, 2)
        if abs(int(ax) - int(bx)) >= side or abs(int(ay) - int(by)) >= side:
            return Rect(int(ax), int(ay), side, side), Rect(int(bx), int(by), side, side)
    return None


def halves(shape):
    H, W = shape
    if W >= H:
        return (0, 0, W // 2, H), (W // 2, 0, W - W // 2, H)
    return (0, 0, W, H // 2), (0, H // 2, W, H - H // 2)


def pair_z(mg, ra, rb, systematic):
    cmp = compare_regions(mg, ra, rb, systematic=systematic)
    t = cmp.table
    if len(t) == 0:
        return None
    return {
        "refl_stat": t["z_stat"].to_numpy(float),
        "refl_total": t["z"].to_numpy(float),
        "mean_stat": np.array([cmp.summary["z_stat"]]),
        "mean_total": np.array([cmp.summary["z"]]),
    }


def stats_row(z):
    z = np.concatenate(z) if len(z) else np.zeros(0)
    z = z[np.isfinite(z)]
    if not len(z):
        return {"n": 0, "rms_z": np.nan, "|z|>2 %": np.nan, "|z|>3 %": np.nan}
    return {
        "n": len(z),
        "rms_z": float(np.sqrt(np.mean(z**2))),
        "|z|>2 %": 100 * float(np.mean(np.abs(z) > 2)),
        "|z|>3 %": 100 * float(np.mean(np.abs(z) > 3)),
    }


def run_file(name, sides, n_pairs, seed):
    mg = load(REAL / name)
    rng = np.random.default_rng(seed)
    H, W = mg.shape
    rows = []
    for side in sides:
        acc = {k: [] for k in ("refl_stat", "refl_total", "mean_stat", "mean_total", "refl_held", "mean_held")}
        t0 = time.perf_counter()
        # the whole-field estimate, once per size (what systematic='auto' computes for a region of this size)
        ref = measure_lattice(mg, roi=Rect((W - side) // 2, (H - side) // 2, side, side), systematic="none")
        whole = estimate_systematic(mg, ref.spots, (side, side), measure=measure_lattice)
        for k in range(n_pairs):
            pr = random_pair(rng, (0, 0, W, H), side)
            if pr is None:
                break
            z = pair_z(mg, *pr, whole)
            if z is not None:
                for key in ("refl_stat", "refl_total", "mean_stat", "mean_total"):
                    acc[key].append(z[key])
        # held-out: estimate on one half, test pairs drawn inside the other half
        for est_box, test_box in (halves(mg.shape), halves(mg.shape)[::-1]):
            model = estimate_systematic(mg, ref.spots, (side, side), field_box=est_box, measure=measure_lattice)
            for k in range(max(1, n_pairs // 2)):
                pr = random_pair(rng, test_box, side)
                if pr is None:
                    break
                z = pair_z(mg, *pr, model)
                if z is not None:
                    acc["refl_held"].append(z["refl_total"])
                    acc["mean_held"].append(z["mean_total"])
        for what in ("refl", "mean"):
            for err, key in (("stat", f"{what}_stat"), ("total", f"{what}_total"), ("held-out", f"{what}_held")):
                rows.append({"file": name, "side_px": side, "z of": what, "errors": err, **stats_row(acc[key])})
        sd = np.sqrt(np.clip(np.diag(whole.cov_D), 0, None))
        print(
            f"  {name} {side}px: {time.perf_counter() - t0:5.1f}s; sys tiles {whole.n_tiles} "
            f"(chi2/dof {whole.chi2 / max(whole.dof, 1):.1f}), sd(D) = " + ", ".join(f"{100 * v:.2f}%" for v in sd),
            flush=True,
        )
    return rows


def run_synth(trials, seed0):
    """One pair of 128 px squares per independent synthetic image (systematic='auto' on each)."""
    rows = []
    for kind in ("cubic_001", "perovskite_111"):
        acc = {k: [] for k in ("refl_stat", "refl_total", "mean_stat", "mean_total")}
        sys_frac = []
        for t in range(trials):
            rng = np.random.default_rng(seed0 + t)
            mk = getattr(synth, kind)
            mg, _ = mk(
                shape=(384, 384),
                pixel_size_nm=0.02,
                rotation_deg=float(rng.uniform(0, 180)),
                offset_px=tuple(rng.uniform(0, 1, 2)),
                noise_sigma=1.0,
                seed=seed0 + t,
            )
            ra, rb = random_pair(rng, (0, 0, 384, 384), 128)
            cmp = compare_regions(mg, ra, rb, systematic="auto")
            t_ = cmp.table
            if not len(t_):
                continue
            acc["refl_stat"].append(t_["z_stat"].to_numpy(float))
            acc["refl_total"].append(t_["z"].to_numpy(float))
            acc["mean_stat"].append(np.array([cmp.summary["z_stat"]]))
            acc["mean_total"].append(np.array([cmp.summary["z"]]))
            sp = cmp.a.spots
            sys_frac.append(float(np.max(sp["d_err_sys_angstrom"] / sp["d_err_stat_angstrom"])))
        for what in ("refl", "mean"):
            for err in ("stat", "total"):
                rows.append(
                    {
                        "file": f"synth.{kind} 384px",
                        "side_px": 128,
                        "z of": what,
                        "errors": err,
                        **stats_row(acc[f"{what}_{err}"]),
                    }
                )
        sf = np.array(sys_frac)
        print(
            f"  synth.{kind}: {trials} trials; max d_err_sys/d_err_stat per image: median {np.median(sf):.3f}, "
            f"{100 * np.mean(sf > 0):.0f}% of images with a non-zero systematic term",
            flush=True,
        )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=30, help="random pairs per file and size (whole field)")
    ap.add_argument("--synth-trials", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="10 pairs, 20 synthetic trials")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.quick:
        args.pairs, args.synth_trials = 10, 20
    rows = []
    for name, sides in FILES.items():
        if not (REAL / name).exists():
            print(f"  {name}: not found in {REAL}, skipped")
            continue
        rows += run_file(name, sides, args.pairs, args.seed)
    rows += run_synth(args.synth_trials, 5000)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print()
    print("rms z of same-crystal region pairs (N(0,1): rms 1, |z|>2 4.6 %, |z|>3 0.3 %)")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return df


if __name__ == "__main__":
    main()
