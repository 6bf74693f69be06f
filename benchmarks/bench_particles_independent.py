"""Particle sizing on fields from a generator that shares no code with ``latticefit.synth``.

``latticefit.synth`` and the fit model were written together: a field from it is described exactly by the
model (the same sphere profile, the pixel box taken as the same Gaussian). This benchmark draws its own
fields, the way an outside referee would:

- each sphere's chord length ``2 sqrt(R² - r²)`` is sampled on a 4 x 4 sub-grid of every pixel and averaged
  (the pixel box exactly, not a Gaussian), then blurred by ``scipy.ndimage.gaussian_filter`` (0.12 nm at
  0.1 nm/px, 0.3 px on the fields of 5 and 8 px dots);
- a linear background ramp of 30 % across the field; a dot's centre stands twice its background above it;
- noise: ``poisson`` (integer counts), ``detector`` (counts x 3.7 + 1000, float: no integer quantum, so
  latticefit cannot take it for counts) and ``gauss`` (additive white noise of the background's Poisson SD);
- layouts, RSD 8 %: ``separated`` (1024² at 0.1 nm/px, 60 dots of 4 or 7 nm, gaps >= 0.3 nm) and ``raft`` (dots
  grown onto one another: 450 dots of 4 nm or 160 of 7 nm with 0.1-0.3 nm surface gaps on 1024² at 0.1 nm/px;
  1400 dots of 8 px or 3000 of 5 px with 0.1-0.5 nm gaps on 512², background 20 or 100 counts/px).

Scoring, per field: a detection in the method's statistics matches a true dot when its centre lies within the
true radius (one to one). F1 counts the true dots at least 4 px inside the frame as the ones to find, and every
detection in the statistics that matches no dot as a false one (a true dot nearer the border than 4 px may be
counted or not). The bias is that of the matched pairs (fit against its own true dot), so the border rule does
not enter; the RSD error is the RSD the method reports (latticefit's corrected for the measurement noise,
``rsd_corrected_percent``; Otsu's of its ECDs) against that of the matched true dots. ``SD(z)`` and ``cov2`` are
the SD of ``(d_fit - d_true) / error`` and the fraction within 2 errors (latticefit's per-particle errors; 1
and 0.95 for honest errors).

Methods in the same run: ``latticefit`` (``find_particles``, diameter range 0.5-2x the nominal diameter, at least 3 px) and
``otsu-ws`` (scikit-image Otsu + distance-transform watershed + regionprops ECD,
``bench_particles.otsu_watershed``).

Usage::

    python benchmarks/bench_particles_independent.py [--seeds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from latticefit.micrograph import Micrograph
from latticefit.particles import find_particles

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_particles import otsu_watershed  # noqa: E402

SUPERSAMPLE = 4


@dataclass(frozen=True)
class Kind:
    """One field type: layout, nominal diameter, pixel size, field side, dot count, noise, background counts."""

    layout: str
    d_nm: float
    px_nm: float
    size: int
    n: int
    noise: str = "poisson"
    bg: float = 50.0
    blur_nm: float = 0.12
    gap_nm: tuple = (0.3, 0.3)


KINDS = [Kind("separated", d, 0.1, 1024, 60, noise) for noise in ("poisson", "detector", "gauss") for d in (4.0, 7.0)]
KINDS += [Kind("raft", 4.0, 0.1, 1024, 450, gap_nm=(0.1, 0.3)), Kind("raft", 7.0, 0.1, 1024, 160, gap_nm=(0.1, 0.3))]
KINDS += [  # 8 px and 5 px dots (0.5 and 0.8 nm/px), blur 0.3 px, 0.1-0.5 nm gaps: sub-pixel at 5 px
    Kind("raft", 4.0, px, 512, n, bg=bg, blur_nm=0.3 * px, gap_nm=(0.1, 0.5))
    for px, n in ((0.5, 1400), (0.8, 3000))
    for bg in (20.0, 100.0)
]


# ----------------------------------------------------------------------------- the generator
def place_dots(rng, k: Kind):
    """Centres (nm) and diameters: random sequential placement, or grown onto existing dots (raft)."""
    xs, ys, ds = [], [], []
    extent = k.size * k.px_nm
    raft = k.layout == "raft"
    for _ in range(200 * k.n):
        if len(xs) >= k.n:
            break
        d = rng.normal(k.d_nm, 0.08 * k.d_nm)
        if raft and xs and rng.random() < 0.97:
            j = rng.integers(len(xs))
            ang = rng.uniform(0, 2 * np.pi)
            dist = (ds[j] + d) / 2 + rng.uniform(*k.gap_nm)
            x, y = xs[j] + dist * np.cos(ang), ys[j] + dist * np.sin(ang)
        else:
            x, y = rng.uniform(0, extent, 2)
        if not (0 <= x < extent and 0 <= y < extent):
            continue
        if not xs or np.all(np.hypot(np.array(xs) - x, np.array(ys) - y) > (np.array(ds) + d) / 2 + 0.99 * k.gap_nm[0]):
            xs.append(x)
            ys.append(y)
            ds.append(d)
    return np.array(xs), np.array(ys), np.array(ds)


def projected_spheres(xs, ys, ds, k: Kind):
    """Sum of the spheres' chord lengths (px), each pixel the mean of a SUPERSAMPLE² sub-grid."""
    ss = SUPERSAMPLE
    m = k.size * ss
    img = np.zeros((m, m), np.float32)
    for x, y, d in zip(xs, ys, ds):
        R, cx, cy = d / 2 / k.px_nm * ss, x / k.px_nm * ss, y / k.px_nm * ss
        i0, i1 = int(max(0, cy - R - 2)), int(min(m, cy + R + 3))
        j0, j1 = int(max(0, cx - R - 2)), int(min(m, cx + R + 3))
        yy, xx = np.mgrid[i0:i1, j0:j1] + 0.5
        img[i0:i1, j0:j1] += 2 * np.sqrt(np.clip(R * R - (xx - cx) ** 2 - (yy - cy) ** 2, 0, None)) / ss
    return img.reshape(k.size, ss, k.size, ss).mean(axis=(1, 3))


def field(seed, k: Kind):
    """One field: ``(image, x_px, y_px, d_nm)`` of the true dots (pixel centres at integers)."""
    rng = np.random.default_rng(seed)
    xs, ys, ds = place_dots(rng, k)
    chord = ndi.gaussian_filter(projected_spheres(xs, ys, ds, k), k.blur_nm / k.px_nm)
    ramp = k.bg * (1 + 0.3 * np.arange(k.size)[None, :] / k.size)
    lam = ramp + 2 * k.bg / (k.d_nm / k.px_nm) * chord  # a dot's centre twice the background above it
    if k.noise == "poisson":
        img = rng.poisson(lam).astype(np.float32)
    elif k.noise == "detector":
        img = (rng.poisson(lam) * 3.7 + 1000.0).astype(np.float32)
    else:
        img = (lam + rng.normal(0, np.sqrt(k.bg), lam.shape)).astype(np.float32)
    return img, xs / k.px_nm - 0.5, ys / k.px_nm - 0.5, ds


# ----------------------------------------------------------------------------- scoring
def score(x, y, d, err, rsd_reported, tx, ty, td, shape, px_nm):
    """F1, bias %, RSD error pp, SD(z), cov2 of detections ``(x, y, d)`` against the true dots.

    The RSD error is the method's reported RSD (``rsd_reported``, percent; else that of ``d``) against the
    RSD of the matched true dots.
    """
    tr = td / 2 / px_nm
    pairs = {}
    if len(x):
        dist, idx = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([x, y]))
        for di in np.argsort(dist):
            if dist[di] < tr[idx[di]] and idx[di] not in pairs.values():
                pairs[di] = int(idx[di])
    h, w = shape
    deep = (tx - tr > 4) & (ty - tr > 4) & (tx + tr < w - 5) & (ty + tr < h - 5)
    found = set(pairs.values())
    tp = sum(1 for t in np.flatnonzero(deep) if t in found)
    fn = int(deep.sum()) - tp
    fp = len(x) - len(pairs)
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    det = np.array(list(pairs.keys()), int)
    dm, dt = d[det], td[list(pairs.values())]
    bias = 100 * (dm.mean() / dt.mean() - 1)
    rsd = 100 * dm.std(ddof=1) / dm.mean() if rsd_reported is None else rsd_reported
    rsd_err = rsd - 100 * dt.std(ddof=1) / dt.mean()
    if err is None:
        return f1, bias, rsd_err, np.nan, np.nan, np.zeros(0)
    z = (dm - dt) / err[det]
    return f1, bias, rsd_err, float(np.std(z)), float(np.mean(np.abs(z) < 2)), z


def run_latticefit(img, px_nm, d_mean):
    """``find_particles`` over 0.5-2x the nominal diameter (at least 3 px); its RSD corrected for the noise."""
    mg = Micrograph(data=img, pixel_size_nm=(px_nm, px_nm))
    res = find_particles(mg, diameter_range_nm=(max(0.5 * d_mean, 3 * px_nm), 2.0 * d_mean))
    st = res.table[res.table["in_statistics"]]
    cols = ("x_px", "y_px", "diameter_nm", "diameter_err_nm")
    return (*(st[c].to_numpy() for c in cols), float(res.summary["rsd_corrected_percent"]))


def run_otsu(img, px_nm, d_mean):
    x, y, d, edge = otsu_watershed(img, px_nm, 0.5 * d_mean)
    keep = ~np.asarray(edge, bool)
    return np.asarray(x)[keep], np.asarray(y)[keep], np.asarray(d)[keep], None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"{args.seeds} seeds per field type; RSD 8 %; a dot's centre 2x its background above it\n")
    head = f"{'layout':9s} {'D nm':>4s} {'nm/px':>5s} {'D px':>4s} {'noise':8s} {'bg':>4s} {'method':10s} "
    print(head + "F1 mean F1 min |bias|% max |RSD err|pp max  SD(z)  cov2     n")
    for k in KINDS:
        for name, method in (("latticefit", run_latticefit), ("otsu-ws", run_otsu)):
            f1s, biases, rsds, zs = [], [], [], []
            for seed in range(args.seeds):
                img, tx, ty, td = field(1000 * seed + int(10 * k.d_nm) + int(100 * k.px_nm), k)
                out = method(img, k.px_nm, k.d_nm)
                f1, bias, rsd_err, _sdz, _cov, z = score(*out, tx, ty, td, img.shape, k.px_nm)
                f1s.append(f1)
                biases.append(abs(bias))
                rsds.append(abs(rsd_err))
                zs.append(z)
            z = np.concatenate(zs)
            sdz = f"{np.std(z):6.2f}" if z.size else f"{'-':>6s}"
            cov = f"{np.mean(np.abs(z) < 2):5.3f}" if z.size else f"{'-':>5s}"
            print(
                f"{k.layout:9s} {k.d_nm:4.0f} {k.px_nm:5.2f} {k.d_nm / k.px_nm:4.0f} {k.noise:8s} {k.bg:4.0f} {name:10s} "
                f"{np.mean(f1s):7.3f} {min(f1s):6.3f} {max(biases):11.2f} {max(rsds):16.2f} {sdz} {cov} {z.size:5d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
