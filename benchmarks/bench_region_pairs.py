"""Do region differences have honest error bars? Random pairs of equal squares of one crystal.

Two equal, non-overlapping squares of one homogeneous crystal differ only by
noise and by the image's own distortion (scan distortion, drift), so their
``compare_regions`` z-scores should be ~N(0, 1): rms z ~ 1, |z| > 2 in ~4.6 %,
|z| > 3 in ~0.3 %. For each real file and square size this prints the rms z,
the fraction |z| > 2 and |z| > 3 of

- ``stat``: the statistical (Fisher, Birge-scaled) errors only (latticefit 0.1);
- ``total``: statistical + the image's systematic term estimated on the whole box (as ``systematic='auto'``);
- ``held-out x`` / ``held-out y``: statistical + a systematic term estimated on one half of the box only
  (left/right, top/bottom), for pairs drawn in the other half (both ways round): the estimate is not
  fitted to the pairs it is tested on. ``sys tiles`` gives the tiles behind each estimate ("none": too
  few tiles hold the lattice, statistical errors only).

``refl`` rows are every matched reflection's z; ``mean`` rows the z of the
first-order mean Δd/d (``summary['z']``). ``N(0,1) 90%`` is the central 90 %
interval of the rms of that many independent N(0, 1) values (one per pair:
the reflections of one pair are correlated): the rms z of a few pairs, and a
systematic term estimated from a few tiles, scatter by that much. The
synthetic part repeats the test over independent ``latticefit.synth`` images
(one pair each), clean and with a random scan distortion of their own
(``scan_distort``: smooth random slow-scan and line-offset errors). On the
distorted ones the systematic term is significant in every image and is
estimated on that image alone, so their rows test it (its small-sample
factor included) over independent trials, where the real files can only
test it over many pairs of one image.

The field of one crystal is a box per file (``FILES``: the PbTiO3 layer of
the PbTiO3/SrRuO3 image, whose SrRuO3 layer is another material), and the
squares are measured on the d range that the box's own spectrum supports
(``crystal_d_range``: a square's spectrum cannot tell a scan-noise side band
from a lattice reflection, the whole box's information-limit check can).

Usage: ``python benchmarks/bench_region_pairs.py [--pairs N] [--synth-trials N] [--quick]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from latticefit.io import load
from latticefit.lattice import compare_regions, measure_lattice
from latticefit.lattice._systematic import estimate_systematic
from latticefit.micrograph import Micrograph
from latticefit.roi import Rect
from latticefit.synth import _core as synth

warnings.simplefilter("ignore")
REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "lattice"
#: per file: square sides (px) and the box (x, y, w, h; None: the whole field) of one homogeneous crystal
FILES = {
    # SrTiO3 [001], 1024 px: one crystal over the whole field
    "Acquisition_18.emd": ((128, 192, 256), None),
    # SrTiO3 [110], 400 x 380 px at 0.093 Å/px: (001) is 42 px, so squares below ~160 px hold < 5.5 periods
    # of the coarse reflections; 112 and 160 px hold (1-12), (2-20), (2-22) and, at 160, (002), (1-11)
    "test_ADF_cropped.hdf5": ((112, 160), None),
    # PbTiO3/SrRuO3: the SrRuO3 layer starts at y ~ 150-170 (row-mean intensity step), so the crystal is the
    # PbTiO3 layer above it; squares straddling the interface compare two materials, not one crystal
    "Cropped_PTO-SRO_Aligned.hspy": ((96, 128), (0, 0, 1312, 144)),
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


def halves(box, across):
    """The two halves of ``box`` = (x, y, w, h): ``across='x'`` left/right, ``'y'`` top/bottom."""
    x, y, w, h = box
    if across == "x":
        return (x, y, w // 2, h), (x + w // 2, y, w - w // 2, h)
    return (x, y, w, h // 2), (x, y + h // 2, w, h - h // 2)


def splits(box, side):
    """The held-out splits whose halves each hold two squares of ``side`` px."""
    _, _, w, h = box
    out = []
    if w // 2 >= 2 * side or (w // 2 >= side and h >= 2 * side):
        out.append("x")
    if h // 2 >= 2 * side or (h // 2 >= side and w >= 2 * side):
        out.append("y")
    return out


def crystal_d_range(mg, box):
    """Reflections of the crystal: d from the finest spacing that the whole box's spectrum supports up.

    On the whole box the plausibility checks of ``measure_lattice`` refuse spots beyond its information
    limit (e.g. the carrier side band of ``test_ADF_cropped.hdf5`` at 0.3-0.6 Å); a small square's own
    spectrum cannot tell them apart, so the squares are measured on the box's range.
    """
    res = measure_lattice(mg, roi=Rect(*box), systematic="none")
    if not len(res.spots):
        return None
    return (0.98 * float(res.spots["d_angstrom"].min()), None)


def rms_interval(n, level=0.9):
    """Central ``level`` interval of the rms of ``n`` independent N(0, 1) values."""
    from scipy import stats

    if n < 1:
        return (np.nan, np.nan)
    a = (1 - level) / 2
    return tuple(float(np.sqrt(stats.chi2.ppf(q, n) / n)) for q in (a, 1 - a))


def pair_z(mg, ra, rb, systematic, kw):
    cmp = compare_regions(mg, ra, rb, systematic=systematic, **kw)
    t = cmp.table
    if len(t) == 0:
        return None
    return {
        "refl_stat": t["z_stat"].to_numpy(float),
        "refl_total": t["z"].to_numpy(float),
        "mean_stat": np.array([cmp.summary["z_stat"]]),
        "mean_total": np.array([cmp.summary["z"]]),
    }


def stats_row(z, n_pairs):
    z = np.concatenate(z) if len(z) else np.zeros(0)
    z = z[np.isfinite(z)]
    if not len(z):
        return {"pairs": 0, "n": 0, "rms_z": np.nan, "N(0,1) 90%": "", "|z|>2 %": np.nan, "|z|>3 %": np.nan}
    lo, hi = rms_interval(n_pairs)
    return {
        "pairs": n_pairs,
        "n": len(z),
        "rms_z": float(np.sqrt(np.mean(z**2))),
        "N(0,1) 90%": f"{lo:.2f}-{hi:.2f}",
        "|z|>2 %": 100 * float(np.mean(np.abs(z) > 2)),
        "|z|>3 %": 100 * float(np.mean(np.abs(z) > 3)),
    }


def run_file(name, sides, box, n_pairs, seed):
    mg = load(REAL / name)
    rng = np.random.default_rng(seed)
    H, W = mg.shape
    box = box or (0, 0, W, H)
    bx, by, bw, bh = box
    d_range = crystal_d_range(mg, box)
    kw = {"d_range_angstrom": d_range}
    rows = []
    for side in sides:
        acc = {k: [] for k in ("refl_stat", "refl_total", "mean_stat", "mean_total")}
        t0 = time.perf_counter()
        # the box's estimate, once per size (what systematic='auto' computes for a region of this size)
        ref = measure_lattice(
            mg, roi=Rect(bx + (bw - side) // 2, by + (bh - side) // 2, side, side), systematic="none", **kw
        )
        whole = estimate_systematic(
            mg, ref.spots, (side, side), field_box=box, measure=measure_lattice, measure_kwargs=kw
        )
        for k in range(n_pairs):
            pr = random_pair(rng, box, side)
            if pr is None:
                break
            z = pair_z(mg, *pr, whole, kw)
            if z is not None:
                for key in ("refl_stat", "refl_total", "mean_stat", "mean_total"):
                    acc[key].append(z[key])
        n_pairs_of = {"stat": len(acc["mean_stat"]), "total": len(acc["mean_stat"])}
        tiles_of = {"stat": "-", "total": str(whole.n_tiles)}
        # held-out: estimate on one half, test pairs drawn inside the other half (each split both ways round)
        for across in splits(box, side):
            err = f"held-out {across}"
            acc[f"refl_{err}"], acc[f"mean_{err}"] = [], []
            n_held, held_tiles = 0, []
            for est_box, test_box in (halves(box, across), halves(box, across)[::-1]):
                model = estimate_systematic(
                    mg, ref.spots, (side, side), field_box=est_box, measure=measure_lattice, measure_kwargs=kw
                )
                held_tiles.append(str(model.n_tiles) if model.method == "tiles" else f"{model.n_tiles} (none)")
                for k in range(max(1, n_pairs // 2)):
                    pr = random_pair(rng, test_box, side)
                    if pr is None:
                        break
                    z = pair_z(mg, *pr, model, kw)
                    if z is not None:
                        n_held += 1
                        acc[f"refl_{err}"].append(z["refl_total"])
                        acc[f"mean_{err}"].append(z["mean_total"])
            n_pairs_of[err], tiles_of[err] = n_held, " / ".join(held_tiles)
        for what in ("refl", "mean"):
            for err in n_pairs_of:
                row = {"file": name, "side_px": side, "z of": what, "errors": err, "sys tiles": tiles_of[err]}
                rows.append({**row, **stats_row(acc[f"{what}_{err}"], n_pairs_of[err])})
        sd = np.sqrt(np.clip(np.diag(whole.cov_D), 0, None))
        print(
            f"  {name} {side}px in box {box}, d >= {d_range[0] if d_range else 0:.3f} Å: "
            f"{time.perf_counter() - t0:5.1f}s; sys tiles {whole.n_tiles} "
            f"(chi2/dof {whole.chi2 / max(whole.dof, 1):.1f}, nu {whole.nu}, kappa {whole.kappa:.2f}, "
            f"trend {'yes' if whole.has_trend else 'no'}, shrinkage {whole.shrinkage:.2f}), sd(D) = "
            + ", ".join(f"{100 * v:.2f}%" for v in sd),
            flush=True,
        )
    return rows


def _smooth_noise(rng, n, corr_px):
    """n values of a stationary Gaussian process of unit SD and Gaussian correlation length ``corr_px``."""
    pad = 4 * int(corr_px)
    w = ndi.gaussian_filter1d(rng.normal(size=n + 2 * pad), corr_px, mode="wrap")[pad : pad + n]
    return w / w.std()


def scan_distort(mg, rng, amplitude_px, corr_px=70.0):
    """The image as a scan with random position errors per scan line (slow-scan drift and line-to-line
    fast-scan offsets, each a smooth random function of the line, SD ``amplitude_px``): the local lattice
    then changes from place to place (y scale and shear) as on a real STEM scan, and differently in every
    image.
    """
    H, W = mg.shape
    yy, xx = np.mgrid[:H, :W].astype(float)
    uy = amplitude_px * _smooth_noise(rng, H, corr_px)[:, None]
    ux = amplitude_px * _smooth_noise(rng, H, corr_px)[:, None]
    data = ndi.map_coordinates(mg.data, [yy + uy, xx + ux], order=3, mode="reflect")
    return Micrograph(data, pixel_size_nm=mg.pixel_size_nm, source=f"scan-distorted {mg.source}")


#: synthetic kinds: (name, generator, scan distortion SD in px or 0, image side px); the 768 px field holds
#: 6 rows of 128 px tiles where the 384 px one holds 3 (a line-synchronous distortion: tiles of one row share
#: their scan lines)
SYNTH_KINDS = (
    ("cubic_001", "cubic_001", 0.0, 384),
    ("perovskite_111", "perovskite_111", 0.0, 384),
    ("cubic_001 + scan distortion 1 px", "cubic_001", 1.0, 384),
    ("perovskite_111 + scan distortion 2 px", "perovskite_111", 2.0, 384),
    ("perovskite_111 + scan distortion 2 px", "perovskite_111", 2.0, 768),
)


def run_synth(trials, seed0):
    """One pair of 128 px squares per independent synthetic image (systematic='auto' on each), without and
    with a random scan distortion (each image its own: the systematic term is estimated on an image that
    is independent of every other trial's).
    """
    rows = []
    for kind, gen, distortion_px, size in SYNTH_KINDS:
        acc = {k: [] for k in ("refl_stat", "refl_total", "mean_stat", "mean_total")}
        sys_frac = []
        for t in range(trials):
            rng = np.random.default_rng(seed0 + t)
            mk = getattr(synth, gen)
            mg, _ = mk(
                shape=(size, size),
                pixel_size_nm=0.02,
                rotation_deg=float(rng.uniform(0, 180)),
                offset_px=tuple(rng.uniform(0, 1, 2)),
                noise_sigma=1.0,
                seed=seed0 + t,
            )
            if distortion_px:
                mg = scan_distort(mg, rng, distortion_px)
            ra, rb = random_pair(rng, (0, 0, size, size), 128)
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
                        "file": f"synth.{kind} {size}px",
                        "side_px": 128,
                        "z of": what,
                        "errors": err,
                        "sys tiles": "auto",
                        **stats_row(acc[f"{what}_{err}"], len(acc[f"{what}_stat"])),
                    }
                )
        sf = np.array(sys_frac)
        print(
            f"  synth.{kind} {size}px: {trials} trials; max d_err_sys/d_err_stat per image: median {np.median(sf):.3f}, "
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
    for name, (sides, box) in FILES.items():
        if not (REAL / name).exists():
            print(f"  {name}: not found in {REAL}, skipped")
            continue
        rows += run_file(name, sides, box, args.pairs, args.seed)
    rows += run_synth(args.synth_trials, 5000)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print()
    print("rms z of same-crystal region pairs (N(0,1): rms 1, |z|>2 4.6 %, |z|>3 0.3 %)")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return df


if __name__ == "__main__":
    main()
