"""GPA (latticefit.gpa.strain_map): accuracy on known answers, speed at 4096², multislice dots.

Measured in one run, against anchors measured in the same run:

1. **accuracy** on plain-numpy lattices (not latticefit.synth): a perfect
   noisy lattice (mean strain / SE, z-score SD and 2-sigma coverage over noise
   realisations), +1 % and +2 % isotropic steps of Gaussian columns, a 2 %
   simple shear, an edge dislocation's Burgers circuit, g mis-set by 0.5 %,
   each for latticefit and for the *peer*: a plain numpy GPA written from
   Hÿtch, Snoeck & Kilaas (1998) (full-grid Gaussian mask, ifft2, phase by
   ``angle(H) - 2 pi g.r``, gradient by ``Im(conj(e^iP) grad e^iP)``,
   linear ``e = (D + D^T)/2``, no g refinement, no edge taper).
2. **speed**: warm wall and CPU time of a 4096² GPA (and of the peer) against one complex64 ``scipy.fft.fft2`` of 4096² (the anchor),
   with the load average (the machine is shared: ratios are what carry over).
3. **multislice** (when ``tests/data/multislice`` of the fixtures worktree, or
   ``--multislice DIR``, holds the files): mean dilatation inside vs outside
   the PbS dot (core r < 0.6 R vs ring 1.6-3 R, the ring is the reference), ± SE, z-test,
   with the automatic g, {200} and {220}, at two resolutions, for ``mapbbr3_001_dot_strained_exit.tif`` and
   ``mapbbr3_001_dot_bulk_mid.tif``.

4. **real** (when ``../shared/realdata/lattice`` holds the SrTiO3 / PTO files): a homogeneous real crystal
   has no strain, so every "dot" placed on it is a null. Per file: the fraction of valid pixels beyond 2
   sigma with the noise sigma and with the total (noise + the map's systematic floor), on the reference
   half and on the held-out other half (left/right, top/bottom); and the z of the dilatation contrast
   of fake dots on a grid (core 0.6 R vs ring 1.6-3 R, whole-field reference), with the noise SE alone and
   with the systematic part from placements of the same pattern elsewhere (the fake dot left out of its
   own null). N(0, 1) has rms z 1 and 4.6 % beyond 2.

Usage::

    python benchmarks/bench_gpa.py            # all
    python benchmarks/bench_gpa.py --quick    # 2048² speed, fewer realisations
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.fft

from latticefit.gpa import burgers_vector, disc_masks, region_contrast, strain_map
from latticefit.micrograph import Micrograph

PS, A = 0.02, 0.4
G = np.array([[1 / A, 0.0], [0.0, 1 / A]])


# ----------------------------------------------------------------- peer
def peer_gpa(img, g_inv_nm, ps_nm, s_inv_nm):
    """Plain numpy GPA from the paper: returns exx, eyy, exy (linear), rotation (rad)."""
    ny, nx = img.shape
    f = np.fft.fft2(img - img.mean())
    kx = np.fft.fftfreq(nx, ps_nm)[None, :]
    ky = np.fft.fftfreq(ny, ps_nm)[:, None]
    y, x = np.mgrid[:ny, :nx] * ps_nm
    grads = []
    for gx, gy in g_inv_nm:
        m = np.exp(-((kx - gx) ** 2 + (ky - gy) ** 2) / (2 * s_inv_nm**2))
        h = np.fft.ifft2(f * m)
        p = np.angle(h) - 2 * np.pi * (gx * x + gy * y)
        e = np.exp(1j * p)
        dy, dx = np.gradient(e, ps_nm)
        grads.append((np.imag(np.conj(e) * dx), np.imag(np.conj(e) * dy)))
    ginv = np.linalg.inv(np.asarray(g_inv_nm))
    phi = np.array([[grads[0][0], grads[0][1]], [grads[1][0], grads[1][1]]])
    d = -np.einsum("ik,kjyx->ijyx", ginv, phi) / (2 * np.pi)
    return d[0, 0], d[1, 1], 0.5 * (d[0, 1] + d[1, 0]), 0.5 * (d[1, 0] - d[0, 1])


# ----------------------------------------------------------------- lattices (plain numpy)
def cosines(n, ux=0.0, uy=0.0, noise=0.0, rng=None):
    y, x = np.mgrid[:n, :n] * PS
    img = np.cos(2 * np.pi * (x - ux) / A) + np.cos(2 * np.pi * (y - uy) / A)
    return img + (rng.normal(0, noise, img.shape) if noise else 0)


def columns(n, displace, width=0.05, noise=0.0, rng=None):
    img = np.zeros((n, n))
    g0 = np.arange(-2, int(n * PS / A) + 3) * A
    X0, Y0 = np.meshgrid(g0, g0)
    dx, dy = displace(X0, Y0)
    r = int(np.ceil(5 * width / PS))
    for cx, cy in zip((X0 + dx).ravel() / PS, (Y0 + dy).ravel() / PS):
        i0, j0 = int(round(cy)), int(round(cx))
        ys, xs = slice(max(i0 - r, 0), min(i0 + r + 1, n)), slice(max(j0 - r, 0), min(j0 + r + 1, n))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            continue
        yy, xx = np.mgrid[ys, xs]
        img[ys, xs] += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * PS**2 / (2 * width**2))
    return img + (rng.normal(0, noise, img.shape) if noise else 0)


def mg(img):
    return Micrograph(np.asarray(img, float), pixel_size_nm=(PS, PS))


def accuracy(n_real: int):
    rng = np.random.default_rng(11)
    rows = []
    sig = 0.3
    s_inv = 1 / (2 * np.pi * sig)
    # perfect lattice, noise realisations
    z_all, zp_all, means = [], [], []
    for _ in range(n_real):
        img = cosines(256, noise=0.5, rng=rng)
        sm = strain_map(mg(img), g=G, sigma_nm=sig)
        v = sm.valid
        z_all.append((sm.exx[v] / sm.sigma_exx[v])[::37])
        block = np.zeros(sm.shape, bool)
        block[100:156, 100:156] = True  # a sub-region: its mean is not forced to 0 by the refinement
        means.append(sm.region_mean("exx", block))
        pe = peer_gpa(img, G, PS, s_inv)[0]
        zp_all.append((pe[v] / sm.sigma_exx[v])[::37])
    z = np.concatenate(z_all)
    zp = np.concatenate(zp_all)
    mz = np.array([m / s for m, s in means])
    rows.append(
        ("perfect lattice, noise 0.5: z = exx/sigma SD", f"{z.std():.3f}", f"{zp.std():.3f} (latticefit sigma)")
    )
    rows.append(
        ("perfect lattice: |z| < 2 coverage", f"{np.mean(np.abs(z) < 2):.3f}", f"{np.mean(np.abs(zp) < 2):.3f}")
    )
    rows.append(
        ("perfect lattice: 56x56 px block mean / SE, SD over images", f"{mz.std():.2f} (mean {mz.mean():+.2f})", "-")
    )
    clean = cosines(256)
    sm = strain_map(mg(clean), g=G, sigma_nm=sig)
    pe = peer_gpa(clean, G, PS, s_inv)[0]
    rows.append(
        (
            "noise-free perfect: max |exx| valid px",
            f"{np.abs(sm.exx[sm.valid]).max():.1e}",
            f"{np.abs(pe[sm.valid]).max():.1e}",
        )
    )
    # dilatation steps
    n = 320
    for eps in (0.01, 0.02):

        def disp(X0, Y0, eps=eps):
            right = X0 > 160 * PS
            return eps * np.where(right, X0 - 160 * PS, 0.0), eps * np.where(right, Y0 - n * PS / 2, 0.0)

        img = columns(n, disp, noise=0.005, rng=rng)
        sm = strain_map(mg(img), g=G, sigma_nm=sig, reference=(0, 0, 130, n))
        reg = (slice(80, 240), slice(215, 250))
        pe = peer_gpa(img, G, PS, s_inv)
        rows.append(
            (
                f"+{eps:.0%} isotropic step: exx, eyy (%)",
                f"{np.median(sm.exx[reg]) * 100:.4f}, {np.median(sm.eyy[reg]) * 100:.4f}",
                f"{np.median(pe[0][reg]) * 100:.4f}, {np.median(pe[1][reg]) * 100:.4f}",
            )
        )
    # shear
    gam = 0.02
    y = np.mgrid[:n, :n][0] * PS
    img = cosines(n, ux=gam * np.maximum(y - n * PS / 2, 0.0))
    sm = strain_map(mg(img), g=G, sigma_nm=sig, reference=(0, 0, n, n // 2 - 30))
    reg = (slice(215, 255), slice(65, 255))
    pe = peer_gpa(img, G, PS, s_inv)
    rows.append(
        (
            "2 % simple shear: exy (%) [truth 1], rotation (mrad) [truth -9.9997]",
            f"{np.median(sm.exy[reg]) * 100:.4f}, {np.median(sm.rotation_rad[reg]) * 1e3:.4f}",
            f"{np.median(pe[2][reg]) * 100:.4f}, {np.median(pe[3][reg]) * 1e3:.4f} (ref. = whole field)",
        )
    )
    # dislocation
    yy, xx = np.mgrid[:n, :n] * PS
    X, Y = xx - n * PS / 2 + 0.013, yy - n * PS / 2 + 0.007
    r2, th, nu = X**2 + Y**2, np.arctan2(Y, X), 0.3
    ux = A / (2 * np.pi) * (th + X * Y / (2 * (1 - nu) * r2))
    uy = -A / (2 * np.pi) * ((1 - 2 * nu) / (4 * (1 - nu)) * np.log(r2) + (X**2 - Y**2) / (4 * (1 - nu) * r2))
    sm = strain_map(mg(cosines(n, ux, uy, noise=0.1, rng=rng)), g=G, sigma_nm=sig)
    bv = [np.linalg.norm(burgers_vector(sm, 160 - h, 160 - h, 160 + h, 160 + h)) / A for h in (50, 80)]
    rows.append(("edge dislocation: |b|/a, loops 100 and 160 px", f"{bv[0]:.4f}, {bv[1]:.4f}", "-"))
    # mis-set g
    sm = strain_map(mg(cosines(384, noise=0.2, rng=rng)), g=G * np.array([[1.005], [0.995]]), sigma_nm=sig)
    err = np.abs(sm.g_inv_nm - G).max() * A * 100
    rows.append(("g mis-set by 0.5 %: max |g - g_true| / |g| after refinement (%)", f"{err:.4f}", "no refinement: 0.5"))
    return rows


# ----------------------------------------------------------------- speed
def _best(fn, n=3):
    walls, cpus = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def speed(side: int):
    rng = np.random.default_rng(0)
    img = cosines(side, noise=0.5, rng=rng).astype(np.float32)
    m = mg(img)
    sig = 0.3
    z = img.astype(np.complex64)
    anchor = _best(lambda: scipy.fft.fft2(z, workers=2))
    strain_map(m, g=G, sigma_nm=sig)  # warm: FFT plans, page faults
    rows = [("scipy.fft.fft2 complex64 (anchor)", *anchor)]
    rows.append(("latticefit strain_map (g given)", *_best(lambda: strain_map(m, g=G, sigma_nm=sig))))
    # the sigma, amplitude, phase and displacement maps are computed when first read: all of them read
    rows.append(("  + all 13 derived maps read", *_best(lambda: strain_map(m, g=G, sigma_nm=sig).derived.all())))
    from latticefit.gpa import _kernels, _strain

    gr = [rng.normal(0, 0.01, img.shape).astype(np.float32) for _ in range(4)]
    c = np.diag([PS, PS])
    gpx = G * PS
    rows.append(("  of which: 2x2 algebra, numpy reference", *_best(lambda: _strain.deformation(gr, gpx, c))))
    rows.append(("  of which: 2x2 algebra, numba kernel", *_best(lambda: _kernels.deformation_maps(gr, gpx, c))))
    rows.append(
        ("peer: plain numpy GPA (complex128)", *_best(lambda: peer_gpa(img, G, PS, 1 / (2 * np.pi * sig)), n=1))
    )
    return rows, anchor[0]


# ----------------------------------------------------------------- multislice
def _dot_geometry(truth: dict, name: str):
    """(x_px, y_px, r_px) of the dot: ``truth['images'][name]['dot']`` of the fixtures' truth.json."""
    dot = truth.get("images", {}).get(name, {}).get("dot")
    if not dot:
        return None
    return float(dot["centre_x_px"]), float(dot["centre_y_px"]), float(dot["diameter_px"]) / 2.0


def _pair_near(spots, d_nm: float, tol: float = 0.03):
    """(gx, gy) of the two strongest non-collinear spots with d within ``tol`` of ``d_nm``."""
    near = spots[np.abs(spots.d_angstrom / 10.0 / d_nm - 1) < tol]
    gs = near[["gx_inv_nm", "gy_inv_nm"]].to_numpy()
    for i in range(len(gs)):
        for j in range(i + 1, len(gs)):
            c = abs(gs[i] @ gs[j]) / np.linalg.norm(gs[i]) / np.linalg.norm(gs[j])
            if c < np.cos(np.radians(15)):
                return np.array([gs[i], gs[j]])
    raise RuntimeError(f"no two spots near d = {d_nm * 10:.3f} Å")


def multislice(folder: Path):
    from latticefit.io import load
    from latticefit.lattice import measure_lattice

    truth_path = folder / "truth.json"
    if not truth_path.exists():
        return [("multislice", f"no truth.json in {folder}", "")]
    truth = json.loads(truth_path.read_text())
    rows = []
    for name in ("mapbbr3_001_dot_strained_exit.tif", "mapbbr3_001_dot_bulk_mid.tif"):
        p = folder / name
        if not p.exists():
            rows.append((name, "missing", ""))
            continue
        im = load(p)
        geo = _dot_geometry(truth, name)
        if geo is None:
            rows.append((name, f"dot geometry not found in truth.json (keys {list(truth)[:8]})", ""))
            continue
        x0, y0, r = geo
        inside, ring = disc_masks(im.shape, x0, y0, r, outer=(1.6, 3.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spots = measure_lattice(im).spots
        a_nm = 0.5933  # MAPbBr3; PbS (Fm-3m) has no {100}: only {200}, {220} fringes run through the dot
        for label, d_nm in (("auto g", None), ("{200}", a_nm / 2), ("{220}", a_nm / (2 * np.sqrt(2)))):
            g = None if d_nm is None else _pair_near(spots, d_nm)
            for sig in (0.4, 0.6):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sm = strain_map(im, g=g, sigma_nm=sig, reference=ring)
                rc = region_contrast(sm, inside, ring)
                d = ", ".join(f"{v:.3f}" for v in sm.to_dict()["d_angstrom"])
                rows.append((f"{name} {label} (d = {d} Å), sigma {sig} nm:", rc.line(), ""))
    return rows


# ----------------------------------------------------------------- real homogeneous crystals
REAL = Path(os.environ.get("LATTICEFIT_REALDATA", Path(__file__).resolve().parents[2] / "shared/realdata"))


def _beyond(v, s, m) -> float:
    return float(np.mean(np.abs(v[m]) / s[m] > 2)) if m.any() else float("nan")


def real_pixels(mg):
    """Fraction beyond 2 sigma (noise, total) of exx/eyy/exy/dilatation on the reference and held-out halves."""
    from latticefit.roi import Rect

    ny, nx = mg.shape
    rows = []
    for split, ref in (("left", Rect(0, 0, nx // 2, ny)), ("top", Rect(0, 0, nx, ny // 2))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm = strain_map(mg, reference=ref)
        held = sm.valid & ~ref.mask(mg.shape)
        for n in ("exx", "eyy", "exy", "dilatation"):
            v, s, t = getattr(sm, n), getattr(sm, f"sigma_{n}"), sm.sigma_total(n)
            rows.append(
                (
                    f"{split} half reference, {n}",
                    f"floor {100 * sm.systematic_sd[n]:.3f} %",
                    f"noise: ref {_beyond(v, s, sm.reference_mask):6.1%} held-out {_beyond(v, s, held):6.1%}",
                    f"total: ref {_beyond(v, t, sm.reference_mask):6.1%} held-out {_beyond(v, t, held):6.1%}",
                )
            )
    return rows


def real_fake_dots(mg, r_nm: float):
    """z of fake-dot dilatation contrasts on a homogeneous crystal: noise-only and with the systematic part."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = strain_map(mg)
    r = r_nm / sm.pixel_size_nm[1]
    ys, xs = np.nonzero(sm.valid)
    z_noise, z_tot, methods = [], [], set()
    step = max(4, int(1.2 * r))
    for y in range(int(ys.min() + 3 * r), int(ys.max() - 3 * r) + 1, step):
        for x in range(int(xs.min() + 3 * r), int(xs.max() - 3 * r) + 1, step):
            inside, ring = disc_masks(mg.shape, x, y, r)
            rc = region_contrast(sm, inside, ring)
            z_noise.append(rc.difference / rc.se_noise_difference)
            z_tot.append(rc.z)
            methods.add(rc.systematic_method)
    zn, zt = np.array(z_noise), np.array(z_tot)
    if not len(zn):
        return f"R = {r_nm} nm: no room", ""
    fmt = "rms z {:.2f}, beyond 2: {:.0%}"
    return (
        f"R = {r_nm} nm ({r:.0f} px), {len(zn)} fake dots",
        "noise SE: " + fmt.format(np.sqrt(np.mean(zn**2)), np.mean(np.abs(zn) > 2)),
        "total SE: "
        + fmt.format(np.sqrt(np.mean(zt**2)), np.mean(np.abs(zt) > 2))
        + f" ({', '.join(sorted(methods))})",
    )


def real(folder: Path):
    from latticefit.io import load

    files = ["Acquisition_18.emd", "test_ADF_cropped.hdf5", "Cropped_PTO-SRO_Aligned.hspy"]
    if not folder.exists():
        return [(f"no {folder}", "")]
    rows = []
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mg = load(folder / f)
        rows.append((f"### {f}", f"{mg.shape[1]} x {mg.shape[0]} px"))
        rows += real_pixels(mg)
        for r_nm in (0.6, 1.0):
            rows.append(real_fake_dots(mg, r_nm))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--side", type=int, default=None)
    ap.add_argument("--multislice", type=Path, default=None)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    side = args.side or (2048 if args.quick else 4096)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.skip_accuracy:
        print("\n## accuracy (latticefit vs plain numpy peer, same images)")
        print(f"{'case':<72} {'latticefit':>26}  peer")
        for case, a, b in accuracy(10 if args.quick else 30):
            print(f"{case:<72} {a:>26}  {b}")
    if not args.skip_speed:
        print(f"\n## speed, {side} x {side} px, warm (best of 3; peer once)")
        rows, t_fft = speed(side)
        print(f"{'':<40} {'wall s':>8} {'cpu s':>8} {'wall / fft2':>12}")
        for name, w, c in rows:
            print(f"{name:<40} {w:>8.3f} {c:>8.3f} {w / t_fft:>12.1f}")
        print(f"load average {os.getloadavg()[0]:.1f}")
    folder = args.multislice or Path(__file__).resolve().parents[1] / "tests/data/multislice"
    if not (folder / "truth.json").exists():
        folder = Path("/work/wt/fixtures/tests/data/multislice")
    print(f"\n## multislice ({folder})")
    for r in multislice(folder):
        print("  ".join(r))
    if not args.skip_real:
        print(f"\n## real homogeneous crystals ({REAL / 'lattice'})")
        for r in real(REAL / "lattice"):
            print("  ".join(r))


if __name__ == "__main__":
    main()
