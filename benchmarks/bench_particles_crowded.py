"""Particle counting and sizing on crowded synthetic HAADF fields: latticefit vs ParticleSpy vs Otsu + watershed.

Fields (``latticefit.synth._crowded.haadf_crowded``): close-packed rafts with 0.1-1 nm surface gaps, chains,
random aggregates (20 % of their contacts overlap in projection), touching pairs and isolated dots over a
50 % background ramp and a film edge (+40 % background on one side), RSD 8 %:

- ``crowd``: 4 and 7 nm dots at 0.06 / 0.10 / 0.15 nm/px, dose 20 and 100 counts/px (12 fields);
- ``small``: dots of 5, 6.5 and 8 px diameter (4 nm dots at 0.8 / 0.615 / 0.5 nm/px), dose 20 and 100 (6 fields
  of 256 x 256 px with 500-900 dots each; the crowd fields are 512 x 512 px).

Per field and method: F1 of the detections (a detection matches a true dot when its centre lies within the
true radius, one to one; detections matched to a dot cut by the border and unmatched detections the method
itself flags as cut by the border, or within 1 px of it, are not counted; latticefit's rejected fits are
listed by it as such and not counted as particles, a true dot found only as a rejected fit is a miss), the bias of the mean diameter and the error of the RSD (percentage points) of the
particles the method puts in its statistics, against the true non-edge dots.

Methods, run on the same fields in the same run:

- ``latticefit``: ``find_particles`` with the diameter range 0.5-2x the nominal diameter (defaults otherwise;
  ``--default-range``: the default range too, as a user who gives none);
  the RSD scored is the one it reports as corrected for the measurement noise (``rsd_corrected_percent``);
- ``particlespy``: ParticleSpy 0.6 (installed in its own venv, ``/work/venv-particlespy`` or
  ``$PARTICLESPY_PYTHON``), its documented pipeline: Gaussian pre-filter (sigma = D/8 px, at least 1 px),
  Otsu threshold, distance-transform watershed (footprint D/2 px), ``clear_border``; ECD. Skipped with a
  message when that interpreter is missing;
- ``otsu-ws``: scikit-image Otsu + distance-transform watershed + regionprops ECD on the same pre-filtered image.

Speed: the whole ``find_particles`` on a 2048 x 2048 ``haadf_dots`` field with 300 dots (warm, median of
repeats), with the diameter range 3-14 nm and with the default range (1 nm to a quarter of the field, 1-51 nm).

Usage::

    python benchmarks/bench_particles_crowded.py [--quick] [--no-speed | --speed-only] [--no-peer] [--default-range]
        [--seed N] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from latticefit import synth
from latticefit.particles import find_particles

HERE = Path(__file__).resolve().parent
PEER_PY = os.environ.get("PARTICLESPY_PYTHON", "/work/venv-particlespy/bin/python")


def fields(quick=False):
    out = []
    for d in (4.0, 7.0):
        for pix in (0.06, 0.10, 0.15):
            for dose in (20.0, 100.0):
                out.append(("crowd", d, pix, dose))
    for dpx in (5.0, 6.5, 8.0):
        for dose in (20.0, 100.0):
            out.append(("small", 4.0, 4.0 / dpx, dose))
    if quick:
        out = out[::3]
    return out


def make_field(kind, d, pix, dose, seed, scale=1):
    # imported here: the speed run may use a source tree without it
    from latticefit.synth._crowded import benchmark_field

    # an older source tree on PYTHONPATH has no ``scale`` argument: pass it only when it is used
    return benchmark_field(kind, d, pix, dose, seed, scale) if scale != 1 else benchmark_field(kind, d, pix, dose, seed)


def otsu_ws(img, pix, d_nm):
    """Gaussian pre-filter + Otsu + distance-transform watershed + regionprops ECD (scikit-image)."""
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.measure import regionprops_table
    from skimage.segmentation import clear_border, watershed

    dpx = d_nm / pix
    sm = ndi.gaussian_filter(img.astype(np.float32), max(1.0, dpx / 8))
    mask = sm > threshold_otsu(sm)
    dist = ndi.distance_transform_edt(mask)
    fp = max(3, int(dpx / 2))
    pk = peak_local_max(dist, footprint=np.ones((fp, fp)), labels=ndi.label(mask)[0])
    mk = np.zeros(img.shape, np.int32)
    mk[tuple(pk.T)] = np.arange(1, len(pk) + 1)
    lab = clear_border(watershed(-dist, mk, mask=mask))
    t = regionprops_table(lab, properties=("centroid", "area"))
    return np.asarray(t["centroid-1"]), np.asarray(t["centroid-0"]), 2 * np.sqrt(np.asarray(t["area"]) / np.pi) * pix


def score(x, y, diam, in_stats, truth, rsd_percent=None, edge=None):
    """F1 (edge-tolerant), mean-diameter bias (%) and RSD error (pp) of the in-statistics diameters.

    ``rsd_percent`` replaces the RSD of the diameters (latticefit: its reported noise-corrected RSD);
    ``edge`` marks the detections the method itself flags as cut by the border (not counted when unmatched).
    """
    tp = truth.particles
    tx, ty, tr = tp.x_px.to_numpy(), tp.y_px.to_numpy(), tp.diameter_px.to_numpy() / 2
    tedge = tp.edge.to_numpy(bool)
    x, y = np.asarray(x, float), np.asarray(y, float)
    matched_t = np.full(len(tp), -1)
    matched_d = np.full(len(x), -1)
    if len(x):
        dist, j = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([x, y]), k=3)
        order = np.argsort(dist[:, 0])
        for i in order:
            for c in range(3):
                jj = j[i, c]
                if jj < len(tp) and dist[i, c] < tr[jj] and matched_t[jj] < 0:
                    matched_t[jj] = i
                    matched_d[i] = jj
                    break
    # a detection's own edge status: its distance to the border below the true radius of its match (or 1 px)
    H, W = truth.shape
    near_border = (x < 1) | (y < 1) | (x > W - 2) | (y > H - 2)
    if edge is not None:
        near_border |= np.asarray(edge, bool)
    tpos = int(np.sum((matched_t >= 0) & ~tedge))
    fn = int(np.sum((matched_t < 0) & ~tedge))
    fp = int(np.sum((matched_d < 0) & ~near_border))
    f1 = 2 * tpos / max(2 * tpos + fp + fn, 1)
    dt = tp.diameter_nm.to_numpy()[~tedge]
    ds = np.asarray(diam, float)[np.asarray(in_stats, bool)]
    ds = ds[np.isfinite(ds)]
    if ds.size < 3:
        return f1, np.nan, np.nan, ds.size
    bias = 100 * (ds.mean() / dt.mean() - 1)
    rsd = 100 * ds.std(ddof=1) / ds.mean() if rsd_percent is None else rsd_percent
    rsd_err = rsd - 100 * dt.std(ddof=1) / dt.mean()
    return f1, bias, rsd_err, ds.size


def run_peer(jobs):
    if not Path(PEER_PY).exists():
        print(
            f"particlespy: skipped ({PEER_PY} not found; python3 -m venv /work/venv-particlespy && "
            "/work/venv-particlespy/bin/pip install particlespy)"
        )
        return None
    with tempfile.TemporaryDirectory() as td:
        jp, op = Path(td) / "jobs.json", Path(td) / "out.json"
        js = []
        for k, (img, pix, d) in enumerate(jobs):
            npy = Path(td) / f"f{k}.npy"
            np.save(npy, img)
            dpx = d / pix
            js.append(
                {
                    "npy": str(npy),
                    "pixel_size_nm": pix,
                    "gaussian_px": max(1.0, dpx / 8),
                    "watershed_size_px": max(3, int(dpx / 2)),
                }
            )
        jp.write_text(json.dumps(js))
        r = subprocess.run(
            [PEER_PY, str(HERE / "_particlespy_worker.py"), str(jp), str(op)],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            print("particlespy: worker failed:", r.stderr.strip().splitlines()[-1:] or r.returncode)
            return None
        return json.loads(op.read_text())


#: the two searches timed: a range the user gives, and the default (1 nm to a quarter of the field: 1-51 nm)
SPEED_RANGES = {"3-14 nm": (3, 14), "default": None}


def speed(repeats=5, diameter_range_nm=(3, 14)):
    mg, _ = synth.haadf_dots(
        (2048, 2048), pixel_size_nm=0.1, diameter_nm=7.0, n_particles=300, n_touching_pairs=20, seed=3
    )
    find_particles(mg, diameter_range_nm=diameter_range_nm)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        find_particles(mg, diameter_range_nm=diameter_range_nm)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def speed_of_tree(src, repeats=5, diameter_range_nm=(3, 14)):
    """:func:`speed` with the latticefit of another source tree (e.g. the main branch), in a subprocess."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_particles_crowded as b; "
        f"print(b.speed({repeats}, {diameter_range_nm!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    try:
        return float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float("nan")


def print_speed(baseline_src=None):
    """The warm time of the whole analysis of the 2048² field, for each of :data:`SPEED_RANGES`."""
    for name, rng in SPEED_RANGES.items():
        if baseline_src:
            here = Path(__file__).resolve().parents[1] / "src"
            t_new, t_old = [], []
            for _ in range(2):  # alternate, so that a busy machine hurts both alike
                t_new.append(speed_of_tree(here, diameter_range_nm=rng))
                t_old.append(speed_of_tree(baseline_src, diameter_range_nm=rng))
            print(
                f"speed: find_particles on 2048^2 with 300 dots, range {name}, warm: {min(t_new):.2f} s "
                f"(baseline {baseline_src}: {min(t_old):.2f} s; best of 2 medians of 5)"
            )
        else:
            print(
                f"speed: find_particles on 2048^2 with 300 dots, range {name}, warm: {speed(diameter_range_nm=rng):.2f} s"
            )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every third field only")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="only the 2048^2 speed rows")
    ap.add_argument("--no-peer", action="store_true", help="skip particlespy")
    ap.add_argument(
        "--default-range",
        action="store_true",
        help="latticefit at its default diameter range (1 nm or 3 px to a quarter of the field), not 0.5-2 D",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--field-scale",
        type=int,
        default=1,
        metavar="K",
        help="fields K times wider (1024² crowd fields for K=2: more dots per field, fewer at the border)",
    )
    ap.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="also time the 2048^2 field with the latticefit in DIR "
        "(e.g. the main branch's src), alternating with this one",
    )
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.speed_only:
        return print_speed(args.baseline_src)
    rows, jobs = [], []
    for k, (kind, d, pix, dose) in enumerate(fields(args.quick)):
        mg, truth = make_field(kind, d, pix, dose, args.seed + k, args.field_scale)
        t0 = time.perf_counter()
        rng = None if args.default_range else (max(0.5 * d, 3 * pix), 2 * d)
        res = find_particles(mg, diameter_range_nm=rng)
        dt = time.perf_counter() - t0
        t = res.table
        # latticefit's particle count: every detection but the rejected fits (listed, not claimed as particles)
        c = t[t.status != "rejected"]
        lf = score(
            c.x_px,
            c.y_px,
            c.diameter_nm,
            c.in_statistics,
            truth,
            res.summary.get("rsd_corrected_percent"),
            edge=c.status == "edge",
        )
        ox, oy, oe = otsu_ws(mg.data, pix, d)
        ow = score(ox, oy, oe, np.ones(len(ox), bool), truth)
        rows.append(
            {
                "kind": kind,
                "d": d,
                "pix": pix,
                "dpx": d / pix,
                "dose": dose,
                "n_true": int((~truth.particles.edge).sum()),
                "lf": lf,
                "ow": ow,
                "t": dt,
                "truth": truth,
            }
        )
        jobs.append((mg.data, pix, d))
    peer = None if args.no_peer else run_peer(jobs)
    if peer is not None:
        for r, p in zip(rows, peer):
            q = p["particles"]
            r["ps"] = score(
                [a["x_px"] for a in q],
                [a["y_px"] for a in q],
                [a["ecd_nm"] for a in q],
                np.ones(len(q), bool),
                r["truth"],
            )
    hdr = (
        f"{'field':6} {'D nm':>4} {'nm/px':>5} {'D px':>5} {'dose':>4} {'N':>4} | "
        f"{'latticefit F1 bias% RSDpp':>26} | {'particlespy F1 bias% RSDpp':>27} | {'otsu-ws F1 bias% RSDpp':>23}"
    )
    print(hdr)
    print("-" * len(hdr))

    def fmt(s):
        return f"{s[0]:5.3f} {s[1]:+6.2f} {s[2]:+6.2f}" if s is not None else "    -      -      -"

    for r in rows:
        print(
            f"{r['kind']:6} {r['d']:4.0f} {r['pix']:5.3f} {r['dpx']:5.1f} {r['dose']:4.0f} {r['n_true']:4d} | "
            f"{fmt(r['lf']):>26} | {fmt(r.get('ps')):>27} | {fmt(r['ow']):>23}"
        )
    print("-" * len(hdr))
    for key, name in (("lf", "latticefit"), ("ps", "particlespy"), ("ow", "otsu-ws")):
        s = [r[key] for r in rows if key in r]
        if not s:
            continue
        f1 = np.array([v[0] for v in s])
        b = np.array([v[1] for v in s])
        e = np.array([v[2] for v in s])
        print(
            f"{name:12} F1 mean {f1.mean():.3f} (min {f1.min():.3f}, >= 0.98 on {int((f1 >= 0.98).sum())}/{len(s)})"
            f"  |bias| mean {np.nanmean(np.abs(b)):.2f} % (<= 1 % on {int((np.abs(b) <= 1).sum())}/{len(s)})"
            f"  |RSD err| mean {np.nanmean(np.abs(e)):.2f} pp (<= 1 pp on {int((np.abs(e) <= 1).sum())}/{len(s)})"
        )
    side = 512 * args.field_scale
    print(
        f"latticefit time per field ({side}^2 crowd, {side // 2}^2 small): median {np.median([r['t'] for r in rows]):.2f} s"
    )
    if not args.no_speed:
        print_speed(args.baseline_src)


if __name__ == "__main__":
    sys.exit(main())
