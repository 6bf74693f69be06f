"""Affine lattice calibration: recovered pixel matrix, coverage of its sigma, corrected d-spacings.

Synthetic part: cubic [001] lattices (a = 3.905 Å, SrTiO3) imaged through a known pixel matrix
(x and y scale errors uniform in +-4 %, shear uniform in +-2 deg, random lattice rotation) with
white noise. Each trial calibrates one image (``calibrate(..., affine=True)``) and applies the
calibration to a second image of the same "session" (same matrix, new noise and rotation): the
corrected (100)/(010) spacings of that second image are compared with 3.905 Å. Anchors in the same
run: the file calibration (no correction) and the isotropic calibration (one scale factor).

Real part: ``Acquisition_18.emd`` (SrTiO3 [001] HAADF, openNCEM; the file's pixel size is ~5 % off):
calibrate on one half of the field, measure the other half (left/right and top/bottom, both ways),
and the non-linear distortion over 3 x 3 tiles of the whole field.

Run: ``python benchmarks/bench_calibration.py [--trials N] [--size PX]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from latticefit.crystal import calibrate
from latticefit.lattice import measure_lattice
from latticefit.micrograph import Micrograph
from latticefit.roi import Rect

A_NM = 0.3905
REALDATA = Path(os.environ.get("LATTICEFIT_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))


def pixel_matrix(p_nm, kx, ky, shear_deg):
    s = math.radians(shear_deg)
    return np.array([[p_nm * kx, p_nm * ky * math.sin(s)], [0.0, p_nm * ky * math.cos(s)]])


def affine_cubic(shape, A, *, rotation_deg, noise, rng):
    """Cubic [001] net (a = 3.905 Å) seen through pixel matrix A (pixel (x, y) at A @ (x, y) nm), plus noise."""
    H, W = shape
    y, x = np.mgrid[0:H, 0:W].astype(float)
    X, Y = A[0, 0] * x + A[0, 1] * y, A[1, 0] * x + A[1, 1] * y
    t = math.radians(rotation_deg)
    R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    img = np.zeros(shape)
    for h, k, amp in [(1, 0, 1.0), (0, 1, 1.0), (1, 1, 0.6), (1, -1, 0.6), (2, 0, 0.3), (0, 2, 0.3)]:
        g = R @ np.array([h, k]) / A_NM
        img += amp * np.cos(2 * np.pi * (g[0] * X + g[1] * Y) + rng.uniform(0, 2 * np.pi))
    return img + noise * rng.standard_normal(shape)


def first_order_d(res):
    """d (Å) and total error of the (100)/(010) spots (first order, near 3.905 Å)."""
    s = res.spots
    m = (s["order"] == 1) & np.isclose(s["d_angstrom"], 3.905, rtol=0.06)
    return s.loc[m, "d_angstrom"].to_numpy(float), s.loc[m, "d_err_angstrom"].to_numpy(float)


def synthetic(trials, size, noise, seed):
    rng = np.random.default_rng(seed)
    p = 0.02
    z = {"kx": [], "ky": [], "shear": []}
    err = {"kx": [], "ky": [], "shear": []}
    d_aff, dz_aff, d_iso, d_raw, fails = [], [], [], [], 0
    t0 = time.perf_counter()
    for _ in range(trials):
        kx, ky = 1 + rng.uniform(-0.04, 0.04), 1 + rng.uniform(-0.04, 0.04)
        sh = rng.uniform(-2, 2)
        A = pixel_matrix(p, kx, ky, sh)
        ref = Micrograph(
            affine_cubic((size, size), A, rotation_deg=rng.uniform(0, 90), noise=noise, rng=rng), pixel_size_nm=(p, p)
        )
        other = Micrograph(
            affine_cubic((size, size), A, rotation_deg=rng.uniform(0, 90), noise=noise, rng=rng), pixel_size_nm=(p, p)
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cal = calibrate(ref, None, "SrTiO3", zone_axis=(0, 0, 1), affine=True, tiles=False)
                iso = calibrate(ref, None, "SrTiO3", zone_axis=(0, 0, 1))
                d, e = first_order_d(measure_lattice(cal.apply(other)))
                di, _ = first_order_d(measure_lattice(iso.apply(other)))
                dr, _ = first_order_d(measure_lattice(other))
        except Exception:  # noqa: BLE001 - counted
            fails += 1
            continue
        for name, val, true, sig in (
            ("kx", cal.scale_factor_yx[1], kx, cal.scale_factor_yx_err[1]),
            ("ky", cal.scale_factor_yx[0], ky, cal.scale_factor_yx_err[0]),
            ("shear", cal.shear_deg, sh, cal.shear_err_deg),
        ):
            z[name].append((val - true) / sig)
            err[name].append(val - true)
        d_aff.extend(d / 3.905 - 1)
        dz_aff.extend((d - 3.905) / e)
        d_iso.extend(di / 3.905 - 1)
        d_raw.extend(dr / 3.905 - 1)
    dt = time.perf_counter() - t0
    return {
        "z": {k: np.array(v) for k, v in z.items()},
        "err": {k: np.array(v) for k, v in err.items()},
        "d_aff": np.array(d_aff),
        "dz_aff": np.array(dz_aff),
        "d_iso": np.array(d_iso),
        "d_raw": np.array(d_raw),
        "fails": fails,
        "seconds": dt,
    }


def real_half_fields():
    f = REALDATA / "lattice" / "Acquisition_18.emd"
    if not f.exists():
        print(f"\n(real part skipped: {f} not found)")
        return
    from latticefit.io import load

    mg = load(f)
    H, W = mg.shape
    halves = {
        "left": Rect(0, 0, W // 2, H),
        "right": Rect(W // 2, 0, W // 2, H),
        "top": Rect(0, 0, W, H // 2),
        "bottom": Rect(0, H // 2, W, H // 2),
    }
    print(
        f"\nAcquisition_18.emd ({H}x{W}, file pixel {mg.pixel_size_nm[1]:.6g} nm): calibrate on one half "
        "(affine, SrTiO3 [001]), measure the other; a = mean of the basis d1, d2"
    )
    print(
        f"{'calibrated on':>14} {'measured':>9} {'k_x':>8} {'k_y':>8} {'aniso %':>8} {'shear °':>8} "
        f"{'d1 (Å)':>8} {'d2 (Å)':>8} {'a err %':>8} {'d1/d2-1 %':>10} {'(100)/(010)-1 %':>16}"
    )
    cals = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, r in halves.items():
            cals[name] = calibrate(mg, r, "SrTiO3", zone_axis=(0, 0, 1), affine=True, tiles=False)
        for a, b in (("left", "right"), ("right", "left"), ("top", "bottom"), ("bottom", "top")):
            c = cals[a]
            res = measure_lattice(c.apply(mg), roi=halves[b])
            d1, d2 = res.basis["d_angstrom"]
            d, _ = first_order_d(res)
            r100 = 100 * (d[0] / d[1] - 1) if len(d) == 2 else float("nan")
            print(
                f"{a:>14} {b:>9} {c.scale_factor_yx[1]:8.5f} {c.scale_factor_yx[0]:8.5f} "
                f"{c.anisotropy_percent:+8.3f} {c.shear_deg:+8.3f} {d1:8.4f} {d2:8.4f} "
                f"{100 * (0.5 * (d1 + d2) / 3.905 - 1):+8.3f} {100 * (d1 / d2 - 1):+10.3f} {r100:+16.3f}"
            )
        whole = calibrate(mg, None, "SrTiO3", zone_axis=(0, 0, 1), affine=True, tiles=(3, 3))
    nl = whole.nonlinear
    print(
        f"whole field: k_x {whole.scale_factor_yx[1]:.5f} ± {whole.scale_factor_yx_err[1]:.5f}, k_y "
        f"{whole.scale_factor_yx[0]:.5f} ± {whole.scale_factor_yx_err[0]:.5f}, anisotropy "
        f"{whole.anisotropy_percent:+.3f} ± {whole.anisotropy_err_percent:.3f} %, shear {whole.shear_deg:+.3f} ± "
        f"{whole.shear_err_deg:.3f}° (1 SD), chi2/dof {whole.chi2_reduced:.2f}"
    )
    print(
        f"non-linear distortion over {nl['n_tiles']} tiles: {nl['rms_percent']:.3f} % rms "
        f"(raw {nl['raw_rms_percent']:.3f} %, tile noise {nl['noise_rms_percent']:.3f} %, max tile "
        f"{nl['max_percent']:.3f} %)"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--noise", type=float, action="append", help="noise sigma (signal amplitude 1); repeatable")
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args(argv)
    noises = args.noise or [1.0, 3.0]
    print(
        f"synthetic: {args.trials} trials per noise level, {args.size}x{args.size} px, pixel 0.02 nm, "
        "k_x, k_y in 1 +- 4 %, shear in +-2 deg, random rotation"
    )
    print(f"{'noise':>6} {'param':>6} {'rms err':>10} {'median σ':>10} {'z mean':>7} {'z SD':>6} {'2σ cover':>9}")
    summary = []
    for i, noise in enumerate(noises):
        r = synthetic(args.trials, args.size, noise, seed=100 + i)
        for name in ("kx", "ky", "shear"):
            zz, ee = r["z"][name], r["err"][name]
            unit = "°" if name == "shear" else ""
            print(
                f"{noise:6.1f} {name:>6} {np.sqrt(np.mean(ee**2)):9.2e}{unit:1} "
                f"{np.median(np.abs(ee / zz)):9.2e}{unit:1} {zz.mean():+7.2f} {zz.std():6.2f} "
                f"{100 * np.mean(np.abs(zz) < 2):8.1f}%"
            )
        summary.append((noise, r))
    print("\ncorrected (100)/(010) of a second image of the same session (calibration applied), d / 3.905 Å - 1:")
    print(f"{'noise':>6} {'method':>22} {'rms %':>8} {'max |.| %':>10} {'within 0.05 %':>14} {'2σ cover':>9}")
    for noise, r in summary:
        for label, arr, z in (
            ("file calibration", r["d_raw"], None),
            ("isotropic calibration", r["d_iso"], None),
            ("affine calibration", r["d_aff"], r["dz_aff"]),
        ):
            cov = "" if z is None else f"{100 * np.mean(np.abs(z) < 2):8.1f}%"
            print(
                f"{noise:6.1f} {label:>22} {100 * np.sqrt(np.mean(arr**2)):8.4f} {100 * np.abs(arr).max():10.4f} "
                f"{100 * np.mean(np.abs(arr) < 5e-4):13.1f}% {cov:>9}"
            )
        print(f"{'':6} ({r['fails']} failed trials, {r['seconds']:.0f} s)")
    if not args.no_real:
        real_half_fields()
    return 0


if __name__ == "__main__":
    sys.exit(main())
