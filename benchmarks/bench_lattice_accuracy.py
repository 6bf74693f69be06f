"""Accuracy of latticefit.lattice.measure_lattice against ground truth and the Cramer-Rao bound.

Monte Carlo on synthetic lattice images (square [001] and hexagonal [111]-like
nets, random rotation and sub-pixel offset per trial) with white Gaussian noise,
whole images and 4-7 nm disks. For every first-order (and harmonic) reflection
with reported SNR >= 5 it prints:

- bias / sigma_CRLB and RMSE / sigma_CRLB of d (sigma_CRLB from the Fisher
  information of the true fringe amplitude, the true noise and the pixel set);
- 2-sigma coverage: the fraction of trials with |d - d_true| <= 2 d_err (reported);
- the RMSE of the angle between the two basis vectors;
- the same reflections read by the anchor a user has today: hyperspy
  ``Signal2D.fft()`` then ``find_peaks()`` on the power spectrum (whole
  pixels): nearest local maximum to the truth, RMSE of d / sigma_CRLB.

Usage: ``python benchmarks/bench_lattice_accuracy.py [--quick] [--trials N]``
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import warnings

import numpy as np
import pandas as pd

from latticefit.lattice import measure_lattice
from latticefit.roi import Circle
from latticefit.synth import _core as synth

warnings.simplefilter("ignore")
logging.getLogger("hyperspy").setLevel(logging.ERROR)


def crlb_cov_g_inv_nm(amplitude, sigma, xs, ys, pixel_size_nm):
    """CRLB covariance of (gx, gy) in (1/nm)^2 for a fringe of amplitude ``amplitude`` over pixels (xs, ys)."""
    r = np.stack([xs - xs.mean(), ys - ys.mean()])
    fim = (2 * np.pi) ** 2 * amplitude**2 / (2 * sigma**2) * (r @ r.T)
    cov_px = np.linalg.inv(fim)
    py, px = pixel_size_nm
    S = np.diag([1 / px, 1 / py])
    return S @ cov_px @ S


def d_sigma(g, cov):
    gn = np.linalg.norm(g)
    u = g / gn
    return 10.0 / gn**2 * math.sqrt(u @ cov @ u)


def make_image(kind, n, cnr, rng, seed):
    rot = float(rng.uniform(0, 180))
    off = tuple(rng.uniform(0, 1, 2))
    if kind == "square":
        return synth.cubic_001(
            shape=(n, n), pixel_size_nm=0.02, rotation_deg=rot, offset_px=off, noise_sigma=1.0 / cnr, seed=seed
        )
    return synth.perovskite_111(
        shape=(n, n), pixel_size_nm=0.02, rotation_deg=rot, offset_px=off, noise_sigma=1.0 / cnr, seed=seed
    )


def anchor_power(mg, roi):
    """hyperspy ``Signal2D.fft(shift=True)`` power spectrum of the image or region (mean removed, mask applied)."""
    import hyperspy.api as hs

    logging.getLogger("hyperspy").setLevel(logging.ERROR)
    data = mg.data
    if roi is not None:
        y0, y1, x0, x1 = roi.bounds(data.shape)
        m = roi.mask(data.shape)[y0:y1, x0:x1]
        sub = data[y0:y1, x0:x1]
        data = np.where(m, sub - sub[m].mean(), 0.0)
    s = hs.signals.Signal2D(np.asarray(data, np.float32))
    p = (s.fft(shift=True).amplitude ** 2).data
    return p


def anchor_d(power, g_true, pixel_size_nm):
    """d from the whole-pixel local maximum of the power nearest the true spot.

    This is exactly the precision of ``find_peaks(method='local_max')`` (integer
    pixel positions) without running it over the whole spectrum (which takes
    ~10 s per 1024^2 image; its speed is measured in bench_lattice_speed.py).
    """
    M, N = power.shape
    py, px = pixel_size_nm
    best = None
    for sgn in (1, -1):
        cy = M // 2 + sgn * g_true[1] * M * py
        cx = N // 2 + sgn * g_true[0] * N * px
        r0, c0 = int(round(cy)), int(round(cx))
        if not (2 <= r0 < M - 2 and 2 <= c0 < N - 2):
            continue
        blk = power[r0 - 2 : r0 + 3, c0 - 2 : c0 + 3]
        j = int(np.argmax(blk))
        r, c = r0 - 2 + j // 5, c0 - 2 + j % 5
        if best is None or power[r, c] > best[0]:
            best = (power[r, c], r, c)
    if best is None:
        return None
    _, r, c = best
    g = np.array([(c - N // 2) / (N * px), (r - M // 2) / (M * py)])
    return 10.0 / np.linalg.norm(g)


def run_case(kind, n, cnr, region, trials, seed0, do_anchor):
    recs = []
    angle_err = []
    for t in range(trials):
        rng = np.random.default_rng(seed0 + t)
        mg, truth = make_image(kind, n, cnr, rng, seed0 + t)
        ps = truth.pixel_size_nm
        if region == "whole":
            roi = None
            yy, xx = np.mgrid[:n, :n]
            xs, ys = xx.ravel().astype(float), yy.ravel().astype(float)
        else:
            diam_nm = float(region.split("nm")[0].split("disk")[1])
            r_px = diam_nm / 2 / ps[1]
            roi = Circle(n / 2 + rng.uniform(-0.5, 0.5), n / 2 + rng.uniform(-0.5, 0.5), r_px)
            m = roi.mask(mg.shape)
            yy, xx = np.nonzero(m)
            xs, ys = xx.astype(float), yy.astype(float)
        res = measure_lattice(mg, roi=roi)
        refl = truth.reflections(0.47 / ps[1], half=True)
        refl = refl[refl["amplitude"] > 1e-6]
        if do_anchor:
            power = anchor_power(mg, roi)
        sp = res.spots
        G = sp[["gx_inv_nm", "gy_inv_nm"]].to_numpy() if len(sp) else np.zeros((0, 2))
        for r in refl.itertuples():
            g_true = np.array([r.gx_inv_nm, r.gy_inv_nm])
            cov = crlb_cov_g_inv_nm(r.amplitude, truth.noise_sigma, xs, ys, ps)
            sig_crlb = d_sigma(g_true, cov)
            snr_true = r.amplitude * math.sqrt(xs.size) / (2 * truth.noise_sigma)
            rec = {
                "kind": kind,
                "n": n,
                "cnr": cnr,
                "region": region,
                "n1_n2": f"{r.n1},{r.n2}",
                "order": math.gcd(abs(r.n1), abs(r.n2)),
                "d_true": r.d_angstrom,
                "sigma_crlb": sig_crlb,
                "snr_true": snr_true,
                "found": False,
            }
            if len(G):
                dist = np.minimum(np.linalg.norm(G - g_true, axis=1), np.linalg.norm(G + g_true, axis=1))
                j = int(np.argmin(dist))
                if dist[j] < 0.02 * np.linalg.norm(g_true):
                    rec.update(found=True, d=sp.d_angstrom.iat[j], d_err=sp.d_err_angstrom.iat[j], snr=sp.snr.iat[j])
            if do_anchor:
                rec["d_anchor"] = anchor_d(power, g_true, ps)
            recs.append(rec)
        # angle errors between matched first-order families
        fam = {}
        for r in refl.itertuples():
            if math.gcd(abs(r.n1), abs(r.n2)) != 1 or not len(G):
                continue
            g_true = np.array([r.gx_inv_nm, r.gy_inv_nm])
            dist = np.minimum(np.linalg.norm(G - g_true, axis=1), np.linalg.norm(G + g_true, axis=1))
            j = int(np.argmin(dist))
            if dist[j] < 0.02 * np.linalg.norm(g_true) and sp.snr.iat[j] >= 5:
                fam[j] = r.azimuth_deg
        for row in res.angles.itertuples():
            if row.spot_i in fam and row.spot_j in fam:
                t_ = abs(fam[row.spot_i] - fam[row.spot_j]) % 180.0
                t_ = min(t_, 180.0 - t_)
                angle_err.append(row.angle_deg - t_)
    return recs, angle_err


def summarise(recs, angle_err_by_case):
    df = pd.DataFrame(recs)
    rows = []
    for key, g in df.groupby(["kind", "n", "cnr", "region", "order"], sort=False):
        f = g[g["found"] & (g.get("snr", 0) >= 5)] if "snr" in g else g.iloc[:0]
        if len(f) < 5:
            continue
        e = (f["d"] - f["d_true"]).to_numpy()
        sc = f["sigma_crlb"].to_numpy()
        row = {
            "lattice": key[0],
            "px": key[1],
            "CNR": key[2],
            "region": key[3],
            "order": key[4],
            "n_meas": len(f),
            "found%": 100.0 * g.loc[g["snr_true"] >= 5, "found"].mean(),
            "snr_med": float(np.median(f["snr"])),
            "bias/crlb": float(np.mean(e / sc)),
            "rmse/crlb": float(np.sqrt(np.mean((e / sc) ** 2))),
            "cover2s%": 100.0 * float(np.mean(np.abs(e) <= 2 * f["d_err"].to_numpy())),
            "rmse_d_A": float(np.sqrt(np.mean(e**2))),
        }
        if "d_anchor" in f:
            a = f["d_anchor"].dropna().astype(float)
            if len(a):
                ea = (a - f.loc[a.index, "d_true"]).to_numpy()
                row["anchor_rmse/crlb"] = float(np.sqrt(np.mean((ea / f.loc[a.index, "sigma_crlb"].to_numpy()) ** 2)))
                row["anchor_rmse_d_A"] = float(np.sqrt(np.mean(ea**2)))
        ae = angle_err_by_case.get(key[:4], [])
        row["angle_rmse_deg"] = float(np.sqrt(np.mean(np.square(ae)))) if ae else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer cases and trials (about a minute)")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--no-anchor", action="store_true")
    ap.add_argument("--csv", help="also write the table as CSV")
    args = ap.parse_args(argv)
    if args.quick:
        cases = [
            ("square", 256, 1.0, "whole"),
            ("hex", 256, 0.5, "whole"),
            ("square", 128, 2.0, "whole"),
            ("square", 1024, 0.5, "whole"),
            ("hex", 1024, 0.5, "whole"),
            ("hex", 512, 1.0, "disk4nm"),
            ("square", 512, 2.0, "disk7nm"),
        ]
        trials = args.trials or 25
    else:
        cases = []
        for kind in ("square", "hex"):
            for n, cnrs in ((128, (1.0, 5.0)), (256, (0.5, 1.0, 5.0)), (1024, (0.2, 0.5, 2.0)), (4096, (0.2,))):
                for c in cnrs:
                    cases.append((kind, n, c, "whole"))
            for c in (0.5, 2.0, 5.0):
                cases.append((kind, 512, c, "disk4nm"))
                cases.append((kind, 512, c, "disk7nm"))
        trials = args.trials or 100
    all_recs = []
    angle = {}
    t0 = time.perf_counter()
    for i, (kind, n, cnr, region) in enumerate(cases):
        tr = trials if n <= 1024 else max(10, trials // 10)
        recs, ae = run_case(kind, n, cnr, region, tr, 1000 * (i + 1), not args.no_anchor)
        all_recs += recs
        angle[(kind, n, cnr, region)] = ae
        print(f"  [{time.perf_counter() - t0:6.1f}s] {kind} {n}px CNR {cnr} {region}: {tr} trials", flush=True)
    table = summarise(all_recs, angle)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print()
    print("latticefit ML refinement vs truth (SNR >= 5 reflections), anchor = hyperspy fft()+find_peaks() whole pixels")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return table


if __name__ == "__main__":
    main()
