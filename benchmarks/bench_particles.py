"""Accuracy and speed of latticefit.particles against the usual anchors, on synth HAADF fields.

Accuracy (synth fields with known truth, ``latticefit.synth.haadf_dots``: 4 and 7 nm dots, RSD 5-12 %,
0.05-0.2 nm/px, 20-100 counts/px, ~10 % of the dots in touching pairs, a 30 % background gradient):

- detection precision / recall / F1 (a detection matches a true dot when its centre is within the true radius);
- bias of the mean diameter and error of the RSD (percentage points) over the non-edge dots;
- coverage of the per-particle 2-sigma error bars (latticefit model fit only). A field holds 18-120
  non-edge dots, so the coverage of one image scatters by chance (binomial: a 95 % rate on 25 dots has an SD
  of 4.4 %); the coverage table pools the z-scores ``(d_fit - d_true) / err`` of every field type over
  several seeds (``--cov-seeds``) and also gives their SD (1 for honest errors);

for four methods run on the same fields in the same run:

- ``latticefit``      : model-fit diameter (projected sphere blurred by the probe);
- ``latticefit-ECD``  : the equivalent circular diameter of latticefit's own segmentation (20 % of peak outline);
- ``otsu-watershed``  : scikit-image Otsu threshold of the smoothed image + distance-transform watershed +
                        regionprops ECD (what ImageJ 'Analyze Particles' / ParticleSpy users do);
- ``blob_log``        : ``skimage.feature.blob_log`` radius = sqrt(2) * sigma.

Speed: the whole ``find_particles`` analysis (background, detection, segmentation, model fits, statistics) on a
2048 x 2048 field with 300 dots, warm (median of repeats), against ``skimage.feature.blob_log`` alone on the
same image and scale range.

Usage::

    python benchmarks/bench_particles.py [--quick] [--no-speed]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from latticefit.particles import find_particles
from latticefit.synth import _core as synth


# ----------------------------------------------------------------------------- anchors
def otsu_watershed(img, pixel_size_nm, dmin_nm):
    """Otsu on a lightly smoothed image, distance-transform watershed, regionprops ECD."""
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.measure import regionprops_table
    from skimage.segmentation import watershed

    sm = ndi.gaussian_filter(img.astype(np.float32), 1.0)
    mask = sm > threshold_otsu(sm)
    dist = ndi.distance_transform_edt(mask)
    min_d = max(1, int(0.5 * dmin_nm / pixel_size_nm))
    peaks = peak_local_max(dist, min_distance=min_d, labels=ndi.label(mask)[0], exclude_border=False)
    markers = np.zeros(img.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    lab = watershed(-dist, markers, mask=mask)
    t = regionprops_table(lab, properties=("centroid", "area", "bbox"))
    h, w = img.shape
    edge = (t["bbox-0"] == 0) | (t["bbox-1"] == 0) | (t["bbox-2"] == h) | (t["bbox-3"] == w)
    return t["centroid-1"], t["centroid-0"], 2 * np.sqrt(t["area"] / np.pi) * pixel_size_nm, edge


def blob_log_anchor(img, pixel_size_nm, dmin_nm, dmax_nm, threshold=0.05):
    """skimage blob_log on the min-max normalised image; radius = sqrt(2) sigma."""
    from skimage.feature import blob_log

    a = img.astype(np.float64)
    a = (a - a.min()) / max(np.ptp(a), 1e-12)
    smin = dmin_nm / 2 / pixel_size_nm / math.sqrt(2)
    smax = dmax_nm / 2 / pixel_size_nm / math.sqrt(2)
    b = blob_log(a, min_sigma=smin, max_sigma=smax, num_sigma=10, threshold=threshold, overlap=0.5)
    y, x, s = b.T if len(b) else (np.zeros(0), np.zeros(0), np.zeros(0))
    r = math.sqrt(2) * s
    h, w = img.shape
    edge = (x - r < 0) | (y - r < 0) | (x + r > w - 1) | (y + r > h - 1)
    return x, y, 2 * r * pixel_size_nm, edge


# ----------------------------------------------------------------------------- scoring
def score(x, y, d_nm, edge, truth, err_nm=None):
    t = truth.particles
    tx, ty, td = t.x_px.to_numpy(), t.y_px.to_numpy(), t.diameter_nm.to_numpy()
    tr = t.diameter_px.to_numpy() / 2
    n_det = len(x)
    used = set()
    pairs = {}
    if n_det:
        tree = cKDTree(np.column_stack([x, y]))
        dist, idx = tree.query(np.column_stack([tx, ty]), k=min(3, n_det))
        dist = dist.reshape(len(tx), -1)
        idx = idx.reshape(len(tx), -1)
        for ti in np.argsort(dist[:, 0]):
            for dd, di in zip(dist[ti], idx[ti]):
                if dd < tr[ti] and di not in used:
                    pairs[ti] = int(di)
                    used.add(int(di))
                    break
    tp = len(pairs)
    prec = tp / n_det if n_det else 0.0
    rec = tp / len(tx)
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    inner = [ti for ti in pairs if not t.edge.iloc[ti] and np.isfinite(d_nm[pairs[ti]])]
    dm = np.array([d_nm[pairs[ti]] for ti in inner])
    dt = td[inner]
    # the statistics a user would report: every non-edge detection of the method
    keep = ~np.asarray(edge, bool) & np.isfinite(d_nm)
    dall = np.asarray(d_nm)[keep]
    true_inner = td[~t.edge.to_numpy()]
    true_rsd = 100 * true_inner.std(ddof=1) / true_inner.mean()
    out = {
        "P": prec,
        "R": rec,
        "F1": f1,
        "bias_%": 100 * (dall.mean() / true_inner.mean() - 1) if dall.size else np.nan,
        "rsd_err_pp": (100 * dall.std(ddof=1) / dall.mean() - true_rsd) if dall.size > 2 else np.nan,
        "cov2": np.nan,
    }
    if err_nm is not None and len(inner):
        e = np.array([err_nm[pairs[ti]] for ti in inner])
        ok = np.isfinite(e)
        out["cov2"] = float(np.mean(np.abs(dm[ok] - dt[ok]) < 2 * e[ok]))
        out["z"] = (dm[ok] - dt[ok]) / e[ok]
        out["z_sd"] = float(np.std(out["z"]))
    return out


def field_configs(quick):
    full = [
        # (diameter_nm, rsd, pixel_size_nm, dose, shape)
        (4.0, 0.05, 0.05, 100, 1024),
        (4.0, 0.08, 0.1, 50, 1024),
        (4.0, 0.12, 0.2, 20, 1024),
        (7.0, 0.05, 0.1, 100, 1024),
        (7.0, 0.08, 0.2, 50, 1024),
        (7.0, 0.12, 0.1, 20, 1024),
        (7.0, 0.10, 0.05, 50, 1536),
        (4.0, 0.10, 0.1, 20, 1024),
    ]
    return full[1:5] if quick else full


def n_for(shape, ps, d):
    area = (shape * ps) ** 2
    return int(min(120, 0.12 * area / (math.pi * d * d / 4)))


def accuracy(quick, seeds, cov_seeds):
    """Rows (field, method, score) for ``seeds``; latticefit alone also on ``cov_seeds`` for the coverage table."""
    rows, cov = [], {}
    for d, rsd, ps, dose, shape in field_configs(quick):
        for seed in sorted(set(seeds) | set(cov_seeds)):
            n = n_for(shape, ps, d)
            mg, truth = synth.haadf_dots(
                (shape, shape),
                pixel_size_nm=ps,
                diameter_nm=d,
                rsd=rsd,
                n_particles=n,
                n_touching_pairs=max(1, n // 10),
                dose=dose,
                seed=seed,
            )
            drange = (0.5 * d, 2.0 * d)
            res = find_particles(mg, diameter_range_nm=drange)
            t = res.table
            name = f"D={d:g}nm rsd={rsd:.0%} {ps:g}nm/px dose={dose:g} n={n}"
            s_lf = score(
                t.x_px.to_numpy(),
                t.y_px.to_numpy(),
                t.diameter_nm.to_numpy(),
                t.edge.to_numpy(),
                truth,
                t.diameter_err_nm.to_numpy(),
            )
            if seed in cov_seeds:
                cov.setdefault(name, []).append(s_lf)
            if seed not in seeds:
                continue
            rows.append((name, "latticefit", s_lf))
            rows.append(
                (
                    name,
                    "latticefit-ECD",
                    score(t.x_px.to_numpy(), t.y_px.to_numpy(), t.ecd_nm.to_numpy(), t.edge.to_numpy(), truth),
                )
            )
            rows.append((name, "otsu-watershed", score(*otsu_watershed(mg.data, ps, drange[0]), truth)))
            rows.append((name, "blob_log", score(*blob_log_anchor(mg.data, ps, *drange), truth)))
    return rows, cov


def print_coverage(cov):
    print("\n## Coverage of the per-particle 2-sigma error bars (latticefit), pooled over seeds per field type\n")
    print(
        "(one image holds 18-120 non-edge dots: its own coverage scatters by chance, e.g. SD 4.4 % for a 95 % rate on"
    )
    print(
        " 25 dots; the pooled rate over N dots has a binomial SD of sqrt(0.95 * 0.05 / N). z = (d_fit - d_true) / err;"
    )
    print(" honest errors give cov2s = 0.954 and SD(z) = 1. 'per seed' is the range of the single-image rates.)\n")
    print(
        f"{'field':44s} {'seeds':>5s} {'N':>5s} {'cov2s':>6s} {'+-':>6s} {'SD(z)':>6s} {'mean(z)':>8s} {'per seed':>13s}"
    )
    allz = []
    for name, ss in cov.items():
        z = np.concatenate([s["z"] for s in ss if "z" in s])
        allz.append(z)
        c = np.mean(np.abs(z) < 2)
        per = [s["cov2"] for s in ss]
        print(
            f"{name:44s} {len(ss):5d} {len(z):5d} {c:6.3f} {math.sqrt(0.95 * 0.05 / len(z)):6.3f} {z.std():6.2f} "
            f"{z.mean():+8.2f} {min(per):6.3f}-{max(per):.3f}"
        )
    z = np.concatenate(allz)
    print(
        f"{'all fields':44s} {'':5s} {len(z):5d} {np.mean(np.abs(z) < 2):6.3f} {math.sqrt(0.95 * 0.05 / len(z)):6.3f} "
        f"{z.std():6.2f} {z.mean():+8.2f}"
    )


def print_accuracy(rows):
    print("\n## Accuracy on synth HAADF fields (touching pairs included; statistics over non-edge dots;")
    print("   one row per field and seed, seeds 0 and 1 (0 only with --quick))\n")
    print(f"{'field':44s} {'method':15s} {'P':>6s} {'R':>6s} {'F1':>6s} {'bias%':>7s} {'RSDerr':>7s} {'cov2s':>6s}")
    for name, method, s in rows:
        print(
            f"{name:44s} {method:15s} {s['P']:6.3f} {s['R']:6.3f} {s['F1']:6.3f} {s['bias_%']:7.2f} "
            f"{s['rsd_err_pp']:7.2f} {s['cov2']:6.3f}"
        )
    print("\n### Summary per method (mean over fields; worst case in brackets)\n")
    print(f"{'method':15s} {'F1':>14s} {'|bias|%':>15s} {'|RSDerr| pp':>15s} {'cov2s per image':>15s}")
    for method in ("latticefit", "latticefit-ECD", "otsu-watershed", "blob_log"):
        ss = [s for _, m, s in rows if m == method]
        f1 = np.array([s["F1"] for s in ss])
        b = np.abs([s["bias_%"] for s in ss])
        r = np.abs([s["rsd_err_pp"] for s in ss])
        c = np.array([s["cov2"] for s in ss])
        cov = f"{np.nanmean(c):.3f} [{np.nanmin(c):.3f}]" if np.isfinite(c).any() else "-"
        print(
            f"{method:15s} {f1.mean():7.3f} [{f1.min():.3f}] {np.nanmean(b):7.2f} [{np.nanmax(b):5.2f}] "
            f"{np.nanmean(r):7.2f} [{np.nanmax(r):5.2f}] {cov:>15s}"
        )


def speed(quick):
    from skimage.feature import blob_log

    mg, truth = synth.haadf_dots(
        (2048, 2048),
        pixel_size_nm=0.1,
        diameter_nm=7.0,
        rsd=0.08,
        n_particles=300,
        n_touching_pairs=30,
        dose=50.0,
        seed=7,
    )
    drange = (3.0, 12.0)
    find_particles(mg, diameter_range_nm=drange)  # warm-up (numba compile, profile table)
    reps = 3 if quick else 7
    ts, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        res = find_particles(mg, diameter_range_nm=drange)
        ts.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t_lf = float(np.median(ts))
    a = mg.data.astype(np.float64)
    a = (a - a.min()) / np.ptp(a)
    smin = drange[0] / 2 / 0.1 / math.sqrt(2)
    smax = drange[1] / 2 / 0.1 / math.sqrt(2)
    t0, c0 = time.perf_counter(), time.process_time()
    b = blob_log(a, min_sigma=smin, max_sigma=smax, num_sigma=10, threshold=0.05)
    t_bl = time.perf_counter() - t0
    c_bl = time.process_time() - c0
    s_lf = score(
        res.table.x_px.to_numpy(),
        res.table.y_px.to_numpy(),
        res.table.diameter_nm.to_numpy(),
        res.table.edge.to_numpy(),
        truth,
        res.table.diameter_err_nm.to_numpy(),
    )
    print("\n## Speed: 2048 x 2048 field, 300 dots (7 nm, 0.1 nm/px, 30 touching pairs), range 3-12 nm\n")
    print(
        f"cores: {os.cpu_count()}  load average: {os.getloadavg()[0]:.1f}  numba threads: "
        f"{__import__('numba').get_num_threads()}  python {platform.python_version()}"
    )
    c_lf = float(np.median(cpu))
    print("(wall = elapsed time; cpu = CPU time of this process, all threads: on a shared, loaded machine the")
    print(" wall time is inflated by other processes, the CPU time is what an idle core would take)")
    print(f"{'method':36s} {'wall_s':>8s} {'cpu_s':>8s} {'ratio':>7s} {'found':>6s} {'F1':>6s}")
    print(
        f"{'latticefit find_particles (whole)':36s} {t_lf:8.3f} {c_lf:8.3f} {1.0:7.2f} {len(res.table):6d} "
        f"{s_lf['F1']:6.3f}   (wall of all runs: {', '.join(f'{t:.3f}' for t in ts)})"
    )
    print(f"{'skimage.feature.blob_log (alone)':36s} {t_bl:8.3f} {c_bl:8.3f} {t_bl / t_lf:7.2f} {len(b):6d}")
    print(
        f"\nlatticefit is {t_bl / t_lf:.1f}x faster than blob_log alone; summary: n={res.summary['n']}, "
        f"mean {res.summary['mean_nm']:.3f} nm (truth {truth.particles.diameter_nm.mean():.3f}), "
        f"RSD {res.summary['rsd_percent']:.2f}%"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 fields x 1 seed (coverage: 3 seeds), 3 timing repeats")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument(
        "--cov-seeds",
        type=int,
        default=None,
        help="seeds per field type pooled in the coverage table (default 3 with --quick, else 8)",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if not args.no_accuracy:
        n_cov = args.cov_seeds if args.cov_seeds else (3 if args.quick else 8)
        rows, cov = accuracy(args.quick, [0] if args.quick else [0, 1], list(range(n_cov)))
        print_accuracy(rows)
        print_coverage(cov)
    if not args.no_speed:
        speed(args.quick)


if __name__ == "__main__":
    main()
