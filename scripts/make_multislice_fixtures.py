#!/usr/bin/env python
"""Multislice (abTEM) test fixtures of ``tests/data/multislice/``: physics nobody here wrote.

NOT run by the tests (the tests only read the committed files). It needs abTEM,
which is deliberately *not* a dependency of the project's own environment::

    python3 -m venv /work/venv-abtem
    /work/venv-abtem/bin/pip install abtem ase tifffile
    /work/venv-abtem/bin/python scripts/make_multislice_fixtures.py            # all images
    /work/venv-abtem/bin/python scripts/make_multislice_fixtures.py --only mapbbr3_111_hrtem

(run from the repository root; ``--out DIR`` writes elsewhere, ``--merge DIR`` copies the
images and truth entries made in another ``--out`` folder, ``--refresh-truth`` recomputes
only the FFT visibility from the committed pixels). Every image is
seeded, so a rerun with the same abTEM/numpy versions rewrites the same pixels.

What it does, per image:

1. builds the atoms with ASE (``ase.spacegroup.crystal`` unit cells, filled into an
   orthogonal, in-plane periodic supercell whose z axis is the zone axis);
2. optionally replaces a sphere of the matrix by a cube-on-cube rock-salt PbS dot;
3. simulates with abTEM (Lobato potentials, frozen phonons): plane-wave HRTEM with a
   CTF (Cs, defocus near Scherzer, focal spread, angular spread, objective aperture),
   or a STEM scan of one periodic cell (HAADF and ABF detectors) tiled to a field;
4. resamples the periodic intensity *exactly* (trigonometric interpolation with a
   square-pixel integration sinc) onto a square grid of the stated pixel size,
   applies Poisson noise at the stated dose, and writes a uint16 ImageJ TIFF
   calibrated in nm;
5. writes ``truth.json``: every zone-axis reflection up to ``D_MIN_ANGSTROM`` from the
   structure (geometry + kinematic electron structure factors with the Lobato
   parametrisation, independent of latticefit), and which families stand >= 5x above
   the local background of the image's Hann-windowed |FFT| (plain numpy).

Conventions: image row = y, column = x; pixel (row i, column j) is centred at
(y0 + i*px, x0 + j*px) of the simulation cell; the beam travels along +z (entrance
surface z = 0, exit surface z = thickness). Reflection g = R @ (h, k, l) / a with R the
rotation whose rows are the crystal directions of x, y, z (``frame_rows`` in truth.json);
the FFT peak of g sits at (column, row) offsets (gx, gy) * N * px from the centre.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DEFAULT = ROOT / "tests" / "data" / "multislice"
SCHEMA_VERSION = 1
MAX_TOTAL_BYTES = 6 * 1024 * 1024
D_MIN_ANGSTROM = 1.0
VISIBLE_RATIO = 5.0

A_MAPBBR3 = 5.933
A_PBS = 5.936
A_STO = 3.905
CN_HALF_BOND = 0.74  # Å: C-N 1.48 Å, methylammonium axis along a random <100> per cell; H omitted

# Frozen-phonon rms displacement per Cartesian direction (Å), room temperature,
# order of magnitude of published Uiso (MAPbBr3: large Br and MA motion).
SIGMAS = {
    "mapbbr3": {"Pb": 0.15, "Br": 0.25, "C": 0.30, "N": 0.30},
    "pbs": {"Pb": 0.12, "S": 0.12},
    "srtio3": {"Sr": 0.088, "Ti": 0.075, "O": 0.095},
}

# Crystal directions of the image x, y and beam z (right-handed).
FRAMES = {
    "001": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "111": ((1, -1, 0), (1, 1, -2), (1, 1, 1)),
    "110": ((-1, 1, 0), (0, 0, 1), (1, 1, 0)),
}


# ----------------------------------------------------------------------------- structures


def unit_cells():
    """ASE conventional cells (space group + Wyckoff positions), MA as a marker 'He' at 1b."""
    from ase.spacegroup import crystal

    def cp(a):
        return [a, a, a, 90, 90, 90]

    # Pm-3m, Pb at 1a (0,0,0), Br at 3d (1/2,0,0),(0,1/2,0),(0,0,1/2), MA at 1b (1/2,1/2,1/2)
    mapbbr3 = crystal(
        ["Pb", "Br", "He"], basis=[(0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0.5)], spacegroup=221, cellpar=cp(A_MAPBBR3)
    )
    pbs = crystal(["Pb", "S"], basis=[(0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225, cellpar=cp(A_PBS))
    srtio3 = crystal(
        ["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221, cellpar=cp(A_STO)
    )
    return {"mapbbr3": mapbbr3, "pbs": pbs, "srtio3": srtio3}


def frame_matrix(zone: str) -> np.ndarray:
    rows = [np.asarray(v, float) / np.linalg.norm(v) for v in FRAMES[zone]]
    R = np.array(rows)
    assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) > 0
    return R


def period_lengths(zone: str, a: float) -> np.ndarray:
    """Repeat lengths (Å) of the orthogonal cell along x, y, z for a primitive-cubic lattice."""
    return np.array([np.linalg.norm(v) for v in FRAMES[zone]]) * a


def fill(cell, a: float, R: np.ndarray, box: np.ndarray, origin=None, inside=None, lo_corner=None):
    """Symbols and positions (Å, frame coordinates) of a lattice with basis ``cell`` in ``box``.

    Lattice points are ``origin + R @ (a * (n + f))``; kept when 0 <= p < box (periodic
    box, an exact multiple of the repeat lengths) or, with ``inside``, where inside(p)
    (then only points of the box lo_corner .. lo_corner + box are tried).
    """
    origin = np.zeros(3) if origin is None else np.asarray(origin, float)
    lo_corner = np.zeros(3) if lo_corner is None else np.asarray(lo_corner, float)
    frac = cell.get_scaled_positions()
    syms = np.array(cell.get_chemical_symbols())
    corners = lo_corner + np.array(list(itertools.product(*[(0, L) for L in box]))) - origin
    cub = corners @ R / a  # frame -> cubic fractional coordinates (R orthogonal)
    lo, hi = np.floor(cub.min(0)) - 1, np.ceil(cub.max(0)) + 1
    n = np.stack(np.meshgrid(*[np.arange(l, h + 1) for l, h in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    out_s, out_p = [], []
    for f, s in zip(frac, syms):
        p = origin + (a * (n + f)) @ R.T
        if inside is None:
            eps = 1e-6
            keep = np.all((p >= -eps) & (p < box - eps), axis=1)
        else:
            keep = inside(p)
        out_p.append(p[keep])
        out_s += [s] * int(keep.sum())
    return np.array(out_s), np.concatenate(out_p)


def place_ma(syms, pos, R, rng):
    """Replace each 'He' marker by C and N, +-0.74 Å along a random cubic <100> axis."""
    m = syms == "He"
    centres = pos[m]
    axes = np.concatenate([R.T, -R.T])  # columns of R = cubic axes in the frame, both signs
    u = axes[rng.integers(0, 6, len(centres))]
    new_s = np.concatenate([syms[~m], ["C"] * len(centres), ["N"] * len(centres)])
    new_p = np.concatenate([pos[~m], centres - CN_HALF_BOND * u, centres + CN_HALF_BOND * u])
    return new_s, new_p


@dataclass
class Dot:
    centre_angstrom: np.ndarray  # frame coordinates of the sphere centre
    diameter_angstrom: float
    a_angstrom: float
    n_atoms: int = 0
    lattice_origin_angstrom: np.ndarray = field(default_factory=lambda: np.zeros(3))


def embed_dot(syms, pos, R, dot: Dot, matrix_a: float, cells):
    """Cut a sphere out of the matrix and fill it with cube-on-cube rock-salt PbS.

    The PbS lattice origin (a Pb site) is put on the matrix Pb site nearest to the centre;
    matrix atoms closer than 2.0 Å to a dot atom are removed (no overlapping atoms).
    """
    from scipy.spatial import cKDTree

    c = np.asarray(dot.centre_angstrom, float)
    r = dot.diameter_angstrom / 2
    pb = pos[syms == "Pb"]
    origin = pb[np.argmin(np.linalg.norm(pb - c, axis=1))]
    ds, dp = fill(
        cells["pbs"],
        dot.a_angstrom,
        R,
        np.full(3, 2 * r + 2),
        origin=origin,
        inside=lambda p: np.linalg.norm(p - c, axis=1) < r,
        lo_corner=c - r - 1,
    )
    keep = np.linalg.norm(pos - c, axis=1) >= r
    if len(dp):
        dist, _ = cKDTree(dp).query(pos)
        keep &= dist >= 2.0
    dot.n_atoms = len(ds)
    dot.lattice_origin_angstrom = origin
    return np.concatenate([syms[keep], ds]), np.concatenate([pos[keep], dp])


def supercell(phase: str, zone: str, reps, rng, dot: Dot | None = None):
    """ASE Atoms of the matrix supercell (reps = repeats of the orthogonal cell), optional dot."""
    from ase import Atoms

    cells = unit_cells()
    a = {"mapbbr3": A_MAPBBR3, "srtio3": A_STO}[phase]
    R = frame_matrix(zone)
    box = period_lengths(zone, a) * np.asarray(reps)
    syms, pos = fill(cells[phase], a, R, box)
    if phase == "mapbbr3":
        syms, pos = place_ma(syms, pos, R, rng)
    if dot is not None:
        syms, pos = embed_dot(syms, pos, R, dot, a, cells)
    atoms = Atoms(symbols=list(syms), positions=pos, cell=np.diag(box), pbc=True)
    return atoms, R, box


# ----------------------------------------------------------------------------- truth (structure)


def structure_factor(phase: str, hkl, sigmas) -> complex:
    """Kinematic electron structure factor (Lobato f_e, Debye-Waller) of the average cubic cell."""
    from abtem.parametrizations import LobatoParametrization

    par = LobatoParametrization()
    cell = unit_cells()[phase]
    a = cell.cell[0, 0]
    h = np.asarray(hkl, float)
    s2 = float(h @ h) / a**2  # |g|^2 in 1/Å^2
    F = 0j
    for sym, f in zip(cell.get_chemical_symbols(), cell.get_scaled_positions()):
        if sym == "He":  # orientation-averaged methylammonium: C and N over the six <100> axes
            for ax, sign in itertools.product(range(3), (1, -1)):
                for el, d in (("C", -CN_HALF_BOND), ("N", CN_HALF_BOND)):
                    ff = f.copy()
                    ff[ax] += sign * d / a
                    fe = float(par.scattering_factor(el)(np.array([s2]))[0])
                    dw = np.exp(-2 * np.pi**2 * sigmas[el] ** 2 * s2)
                    F += fe * dw * np.exp(2j * np.pi * h @ ff) / 6
            continue
        fe = float(par.scattering_factor(sym)(np.array([s2]))[0])
        dw = np.exp(-2 * np.pi**2 * sigmas[sym] ** 2 * s2)
        F += fe * dw * np.exp(2j * np.pi * h @ f)
    return F


def zone_families(phase: str, zone: str, a: float, d_min: float = D_MIN_ANGSTROM) -> list[dict]:
    """Every reflection of the zone down to d_min, grouped into {hkl} families."""
    u = np.array(FRAMES[zone][2])
    R = frame_matrix(zone)
    hmax = int(np.ceil(a / d_min))
    fams: dict[tuple, dict] = {}
    F000 = abs(structure_factor(phase, (0, 0, 0), SIGMAS[phase]))
    for hkl in itertools.product(range(-hmax, hmax + 1), repeat=3):
        h = np.array(hkl)
        if not h.any() or h @ u != 0:
            continue
        d = a / np.sqrt(h @ h)
        if d < d_min - 1e-9:
            continue
        key = tuple(sorted(np.abs(h), reverse=True))
        if key not in fams:
            F = structure_factor(phase, key, SIGMAS[phase])
            rel = abs(F) / F000
            fams[key] = {
                "family": "{" + "".join(map(str, key)) + "}",
                "hkl_rep": list(map(int, key)),
                "d_angstrom": round(float(d), 5),
                "g_abs_inv_nm": round(float(10 / d), 5),
                "kinematically_allowed": bool(rel > 1e-4),
                "abs_F_rel_to_F000": round(float(rel), 6),
                "members": [],
            }
        g = R @ h / a * 10  # 1/nm, frame coordinates
        fams[key]["members"].append(
            {
                "hkl": list(map(int, hkl)),
                "gx_inv_nm": round(float(g[0]), 6),
                "gy_inv_nm": round(float(g[1]), 6),
                "azimuth_deg": round(float(np.degrees(np.arctan2(g[1], g[0]))), 4),
            }
        )
    return sorted(fams.values(), key=lambda f: -f["d_angstrom"])


def first_order_angles(fams: list[dict]) -> dict:
    """Angles between members of the first allowed family, and between the first two families."""
    allowed = [f for f in fams if f["kinematically_allowed"]]
    out = {}
    if not allowed:
        return out

    def ang(m1, m2):
        v1, v2 = np.array([m1["gx_inv_nm"], m1["gy_inv_nm"]]), np.array([m2["gx_inv_nm"], m2["gy_inv_nm"]])
        return float(np.degrees(np.arccos(np.clip(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2), -1, 1))))

    f1 = allowed[0]
    m0 = f1["members"][0]
    out["first_family"] = f1["family"]
    out["within_first_family_deg"] = sorted({round(ang(m0, m), 3) for m in f1["members"][1:]})
    if len(allowed) > 1:
        f2 = allowed[1]
        out["second_family"] = f2["family"]
        out["first_to_second_family_deg"] = sorted({round(ang(m0, m), 3) for m in f2["members"]})
    return out


# ----------------------------------------------------------------------------- imaging


def resample_periodic(img: np.ndarray, period_xy, out_shape, px: float, x0: float, y0: float) -> np.ndarray:
    """Exact band-limited resampling of a periodic image (rows = y) onto a square grid.

    Trigonometric interpolation of the image's Fourier series, multiplied by the
    transfer of a square pixel (sinc) and truncated at the output Nyquist frequency.
    """
    ny, nx = img.shape
    F = np.fft.fft2(img) / img.size
    ky = np.fft.fftfreq(ny, d=period_xy[1] / ny)
    kx = np.fft.fftfreq(nx, d=period_xy[0] / nx)
    my, mx = np.abs(ky) < 0.5 / px, np.abs(kx) < 0.5 / px
    F = F[np.ix_(my, mx)] * np.outer(np.sinc(ky[my] * px), np.sinc(kx[mx] * px))
    yo = y0 + px * np.arange(out_shape[0])
    xo = x0 + px * np.arange(out_shape[1])
    Ey = np.exp(2j * np.pi * np.outer(yo, ky[my]))
    Ex = np.exp(2j * np.pi * np.outer(kx[mx], xo))
    return np.real(Ey @ F @ Ex)


def hrtem_intensity(atoms, sim: dict, seed: int) -> np.ndarray:
    """Mean intensity (rows = y) over frozen phonons of the plane-wave image after the CTF."""
    import abtem

    fp = abtem.FrozenPhonons(atoms, num_configs=sim["frozen_phonons"], sigmas=sim["sigmas"], seed=seed)
    pot = abtem.Potential(
        fp,
        sampling=sim["sampling_angstrom"],
        slice_thickness=sim["slice_thickness_angstrom"],
        projection="infinite",
        parametrization="lobato",
    )
    wave = abtem.PlaneWave(energy=sim["energy_ev"])
    exit_wave = wave.multislice(pot)
    ctf = abtem.CTF(
        energy=sim["energy_ev"],
        Cs=sim["Cs_angstrom"],
        defocus=sim["defocus_angstrom"],
        focal_spread=sim["focal_spread_angstrom"],
        angular_spread=sim["angular_spread_mrad"],
        semiangle_cutoff=sim["objective_aperture_mrad"],
    )
    img = exit_wave.apply_ctf(ctf).intensity().compute()
    arr = np.asarray(img.array)
    if arr.ndim == 3:  # frozen-phonon axis
        arr = arr.mean(0)
    return arr.T  # abTEM arrays are (x, y)


def stem_intensities(atoms, cell_xy, sim: dict, seed: int) -> dict:
    """HAADF and ABF intensities (rows = y) of a scan over one periodic cell."""
    import abtem

    fp = abtem.FrozenPhonons(atoms, num_configs=sim["frozen_phonons"], sigmas=sim["sigmas"], seed=seed)
    pot = abtem.Potential(
        fp,
        sampling=sim["sampling_angstrom"],
        slice_thickness=sim["slice_thickness_angstrom"],
        projection="infinite",
        parametrization="lobato",
    )
    probe = abtem.Probe(
        energy=sim["energy_ev"],
        semiangle_cutoff=sim["convergence_mrad"],
        Cs=sim["Cs_angstrom"],
        defocus=sim["defocus_angstrom"],
    )
    scan = abtem.GridScan(start=(0, 0), end=tuple(cell_xy), gpts=tuple(sim["scan_gpts_xy"]), endpoint=False)
    dets = {"haadf": abtem.AnnularDetector(*sim["haadf_mrad"]), "abf": abtem.AnnularDetector(*sim["abf_mrad"])}
    meas = probe.scan(pot, scan=scan, detectors=list(dets.values()), lazy=True)
    import dask

    arrays = dask.compute(*[m.array for m in meas])  # one multislice run for both detectors
    out = {}
    for name, arr in zip(dets, arrays):
        arr = np.asarray(arr)
        if arr.ndim == 3:
            arr = arr.mean(0)
        out[name] = arr.T
    return out


# ----------------------------------------------------------------------------- FFT visibility


def hann_fft_abs(img: np.ndarray) -> np.ndarray:
    w = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
    return np.abs(np.fft.fftshift(np.fft.fft2((img - img.mean()) * w)))


def visibility(
    img: np.ndarray, px_nm: float, fams: list[dict], r_peak=2, r_bg=(5.0, 9.0), also_exclude: list[dict] = ()
) -> list[dict]:
    """Peak / local-background of every zone reflection in the Hann-windowed |FFT|.

    Peak: maximum of |FFT| within ``r_peak`` px of the expected position g * N * px.
    Background: median of |FFT| in an annulus r_bg (px) around it, excluding 3 px around
    every expected reflection and the 6 px around the origin. A family is visible when at
    least half of its members have peak >= VISIBLE_RATIO * background.
    """
    A = hann_fft_abs(img)
    ny, nx = A.shape
    cy, cx = ny // 2, nx // 2
    yy, xx = np.mgrid[0:ny, 0:nx]
    all_pos = [
        (cx + m["gx_inv_nm"] * nx * px_nm, cy + m["gy_inv_nm"] * ny * px_nm)
        for f in list(fams) + list(also_exclude)
        for m in f["members"]
    ]
    excl = (xx - cx) ** 2 + (yy - cy) ** 2 < 36
    for u, v in all_pos:
        excl |= (xx - u) ** 2 + (yy - v) ** 2 < 9
    out = []
    for f in fams:
        ratios = []
        for m in f["members"]:
            u, v = cx + m["gx_inv_nm"] * nx * px_nm, cy + m["gy_inv_nm"] * ny * px_nm
            if not (r_bg[1] < u < nx - r_bg[1] and r_bg[1] < v < ny - r_bg[1]):
                ratios.append(None)
                continue
            r2 = (xx - u) ** 2 + (yy - v) ** 2
            peak = A[r2 <= r_peak**2].max()
            ann = (r2 >= r_bg[0] ** 2) & (r2 <= r_bg[1] ** 2) & ~excl
            bg = np.median(A[ann]) if ann.sum() >= 10 else np.median(A[(r2 >= r_bg[0] ** 2) & (r2 <= r_bg[1] ** 2)])
            ratios.append(round(float(peak / bg), 2))
        ok = [r for r in ratios if r is not None]
        n_vis = sum(r >= VISIBLE_RATIO for r in ok)
        out.append(
            {
                "family": f["family"],
                "d_angstrom": f["d_angstrom"],
                "members_in_fft": len(ok),
                "members_visible": int(n_vis),
                "visible": bool(ok) and n_vis * 2 >= len(ok),
                "peak_over_background": ratios,
            }
        )
    return out


def fft_visibility(counts: np.ndarray, entry: dict) -> dict:
    """Visibility of the matrix phase over the whole field.

    The dot phase is not measured separately: cube-on-cube, every PbS reflection of the
    zone lies within 1 % of an allowed matrix reflection (< 1 FFT pixel at these fields),
    and a crop inside the dot is too small to resolve the dense matrix net around it.
    """
    every = [f for v in entry["families"].values() for f in v]
    return {
        ph: visibility(counts.astype(float), entry["pixel_size_x_nm"], fams, also_exclude=every)
        for ph, fams in entry["families"].items()
        if ph != "PbS"
    }


def mark_coincidences(entry: dict) -> None:
    """PbS families whose |g| is within 1.5 % of a matrix family (cube-on-cube: same spot)."""
    if "PbS" not in entry["families"]:
        return
    matrix = next(ph for ph in entry["families"] if ph != "PbS")
    for f in entry["families"]["PbS"]:
        same = [
            m["family"]
            for m in entry["families"][matrix]
            if abs(m["g_abs_inv_nm"] / f["g_abs_inv_nm"] - 1) < 0.015 and m["hkl_rep"] == f["hkl_rep"]
        ]
        f["coincides_with_matrix_family"] = same[0] if same else None


def refresh_truth(out: Path, truth: dict) -> None:
    """Recompute the FFT visibility (and coincidences) of every image from its committed pixels."""
    import tifffile

    for name, e in truth["images"].items():
        counts = tifffile.imread(out / name)
        mark_coincidences(e)
        e["fft_visibility"] = fft_visibility(counts, e)
        if "PbS" in e["families"]:
            e["fft_visibility_note"] = (
                "PbS (dot) reflections are not measured separately: each coincides within 1 % "
                "with an allowed matrix reflection (coincides_with_matrix_family)"
            )
        e["bytes"] = (out / name).stat().st_size


# ----------------------------------------------------------------------------- writing


def write_tif(path: Path, counts: np.ndarray, px_nm: float, info: str) -> None:
    import tifffile

    if counts.max() > 65535:
        raise SystemExit(f"{path.name}: counts overflow uint16 (max {counts.max()})")
    tifffile.imwrite(
        path,
        counts.astype(np.uint16),
        imagej=True,
        resolution=(1.0 / px_nm, 1.0 / px_nm),
        metadata={"unit": "nm", "Info": info},
    )


# ----------------------------------------------------------------------------- image recipes

HRTEM_200KV = {
    "energy_ev": 200e3,
    "Cs_angstrom": 0.5e7,  # 0.5 mm, an uncorrected 200 kV FEG (JEOL 2100F class)
    "focal_spread_angstrom": 30.0,
    "angular_spread_mrad": 0.2,
    "objective_aperture_mrad": 30.0,
    "sampling_angstrom": 0.1,
    "slice_thickness_angstrom": 2.0,
    "frozen_phonons": 4,
}


def scherzer(sim: dict) -> float:
    from abtem.transfer import scherzer_defocus

    return float(scherzer_defocus(sim["Cs_angstrom"], sim["energy_ev"]))


@dataclass
class Recipe:
    name: str
    zone: str
    reps: tuple
    out_px: int
    px_nm: float
    dose_e_per_A2: float
    dot_diameter_nm: float | None = None
    dot_a_angstrom: float | None = None
    dot_depth: str | None = None  # "mid" or "exit"
    seed: int = 0
    note: str = ""
    frozen_phonons: int = 2  # CPU budget (shared 2 cores): 4 for the headline [111] image, 1-2 for the others
    sampling_angstrom: float = 0.125


RECIPES = [
    Recipe(
        "mapbbr3_111_hrtem", "111", (16, 9, 10), 512, 0.025, 400.0, seed=111, frozen_phonons=4, sampling_angstrom=0.1
    ),
    Recipe("mapbbr3_001_hrtem", "001", (22, 22, 17), 512, 0.025, 400.0, seed=1),
    Recipe("mapbbr3_001_pbs_dot_hrtem", "001", (22, 22, 17), 512, 0.025, 400.0, 4.5, A_PBS, "mid", seed=2),
    Recipe(
        "mapbbr3_111_pbs_dot_hrtem",
        "111",
        (16, 9, 10),
        512,
        0.025,
        400.0,
        4.5,
        A_PBS,
        "mid",
        seed=112,
        frozen_phonons=1,
        sampling_angstrom=0.15,
    ),
    Recipe(
        "mapbbr3_001_dot_strained_exit",
        "001",
        (24, 24, 17),
        560,
        0.025,
        400.0,
        5.0,
        1.01 * A_MAPBBR3,
        "exit",
        seed=3,
        note="PbS dot with a = 1.01 x 5.933 Å (+1 % vs the matrix), 0.8 nm above the exit surface",
        frozen_phonons=1,
        sampling_angstrom=0.15,
    ),
    Recipe(
        "mapbbr3_001_dot_bulk_mid",
        "001",
        (24, 24, 17),
        560,
        0.025,
        400.0,
        5.0,
        A_PBS,
        "mid",
        seed=4,
        note="bulk PbS dot (a = 5.936 Å, +0.05 % vs the matrix) in the middle of the slab",
        frozen_phonons=1,
        sampling_angstrom=0.15,
    ),
]
ORDER = [
    "mapbbr3_111_hrtem",
    "srtio3_110",
    "mapbbr3_001_hrtem",
    "mapbbr3_001_pbs_dot_hrtem",
    "mapbbr3_111_pbs_dot_hrtem",
    "mapbbr3_001_dot_strained_exit",
    "mapbbr3_001_dot_bulk_mid",
]

STEM_300KV = {
    "energy_ev": 300e3,
    "convergence_mrad": 21.4,
    "Cs_angstrom": 0.0,
    "defocus_angstrom": 0.0,  # probe-corrected
    "haadf_mrad": (60.0, 110.0),
    "abf_mrad": (10.7, 21.4),
    "sampling_angstrom": 0.06,
    "slice_thickness_angstrom": 2.0,
    "frozen_phonons": 2,
    "scan_gpts_xy": (20, 14),
    "supercell_reps": (3, 4, 10),
    "out_px": 512,
    "px_nm": 0.02,
    "electrons_per_probe_position": 2000.0,
}


def run_hrtem(rc: Recipe, out: Path) -> dict:
    rng = np.random.default_rng(rc.seed)
    a = A_MAPBBR3
    L = period_lengths(rc.zone, a) * np.array(rc.reps)
    dot = None
    if rc.dot_diameter_nm:
        r = rc.dot_diameter_nm * 5
        z = L[2] / 2 if rc.dot_depth == "mid" else L[2] - r - 8.0
        dot = Dot(np.array([L[0] / 2, L[1] / 2, z]), rc.dot_diameter_nm * 10, rc.dot_a_angstrom)
    atoms, _, box = supercell("mapbbr3", rc.zone, rc.reps, rng, dot)
    sim = dict(HRTEM_200KV, frozen_phonons=rc.frozen_phonons, sampling_angstrom=rc.sampling_angstrom)
    sim["sigmas"] = {**SIGMAS["mapbbr3"], **({"S": SIGMAS["pbs"]["S"]} if dot else {})}
    sim["defocus_angstrom"] = round(scherzer(sim), 1)
    t0, c0 = time.time(), time.process_time()
    I = hrtem_intensity(atoms, sim, seed=rc.seed)
    wall, cpu = time.time() - t0, time.process_time() - c0
    px_a = rc.px_nm * 10
    n = rc.out_px
    x0, y0 = (box[0] - n * px_a) / 2, (box[1] - n * px_a) / 2
    I = resample_periodic(I, box[:2], (n, n), px_a, x0, y0)
    mean_counts = rc.dose_e_per_A2 * px_a**2
    counts = np.random.default_rng(rc.seed + 1000).poisson(np.clip(I, 0, None) * mean_counts)
    path = out / f"{rc.name}.tif"
    write_tif(
        path,
        counts,
        rc.px_nm,
        f"abTEM multislice HRTEM MAPbBr3 [{rc.zone}] {sim['energy_ev'] / 1e3:.0f} kV; "
        f"pixel size {rc.px_nm} nm; truth in truth.json",
    )
    np.save(Path("/tmp") / f"{rc.name}_noisefree.npy", I.astype(np.float32))
    fams = {"MAPbBr3": zone_families("mapbbr3", rc.zone, A_MAPBBR3)}
    if dot:
        fams["PbS"] = zone_families("pbs", rc.zone, rc.dot_a_angstrom)
    entry = {
        "file": path.name,
        "bytes": path.stat().st_size,
        "mode": "HRTEM",
        "kind": "abTEM plane-wave multislice",
        "phases": ["MAPbBr3 Pm-3m a=5.933 Å (Pb 1a, Br 3d, CH3NH3 as C+N at 1b along random <100>, H omitted)"]
        + ([f"PbS Fm-3m a={rc.dot_a_angstrom:.4f} Å (dot, cube-on-cube)"] if dot else []),
        "zone_axis": f"[{rc.zone}]",
        "frame_rows": [list(v) for v in FRAMES[rc.zone]],
        "shape": [n, n],
        "pixel_size_x_nm": rc.px_nm,
        "pixel_size_y_nm": rc.px_nm,
        "field_origin_in_cell_angstrom": [round(float(x0), 4), round(float(y0), 4)],
        "supercell_angstrom": [round(float(v), 4) for v in box],
        "supercell_repeats": list(rc.reps),
        "n_atoms": len(atoms),
        "beam_energy_kv": sim["energy_ev"] / 1e3,
        "Cs_mm": sim["Cs_angstrom"] / 1e7,
        "defocus_nm": sim["defocus_angstrom"] / 10,
        "defocus_convention": "abTEM: positive = underfocus (C10 = -defocus); Scherzer",
        "focal_spread_nm": sim["focal_spread_angstrom"] / 10,
        "angular_spread_mrad": sim["angular_spread_mrad"],
        "objective_aperture_mrad": sim["objective_aperture_mrad"],
        "thickness_nm": round(float(box[2]) / 10, 4),
        "potential_sampling_angstrom": sim["sampling_angstrom"],
        "slice_thickness_angstrom": sim["slice_thickness_angstrom"],
        "frozen_phonons": sim["frozen_phonons"],
        "frozen_phonon_sigmas_angstrom": sim["sigmas"],
        "dose_e_per_angstrom2": rc.dose_e_per_A2,
        "mean_counts_per_pixel": round(float(counts.mean()), 3),
        "noise": "Poisson",
        "detector": "ideal counting, square-pixel sinc, no MTF beyond it",
        "simulation_wall_s": round(wall, 1),
        "simulation_cpu_s": round(cpu, 1),
        "families": fams,
        "first_order_angles": {k: first_order_angles(v) for k, v in fams.items()},
        "note": rc.note,
    }
    if dot:
        c = dot.centre_angstrom
        entry["dot"] = {
            "centre_x_px": round(float((c[0] - x0) / px_a), 3),
            "centre_y_px": round(float((c[1] - y0) / px_a), 3),
            "centre_x_nm": round(float((c[0] - x0) / 10), 4),
            "centre_y_nm": round(float((c[1] - y0) / 10), 4),
            "centre_depth_nm": round(float(c[2] / 10), 4),
            "depth_from_exit_surface_nm": round(float((box[2] - c[2]) / 10), 4),
            "diameter_nm": rc.dot_diameter_nm,
            "diameter_px": round(rc.dot_diameter_nm / rc.px_nm, 3),
            "a_angstrom": round(float(rc.dot_a_angstrom), 5),
            "mismatch_percent": round(100 * (rc.dot_a_angstrom / A_MAPBBR3 - 1), 4),
            "n_atoms": dot.n_atoms,
            "orientation": "cube-on-cube, PbS Pb site on the matrix Pb site nearest the centre",
        }
    mark_coincidences(entry)
    entry["fft_visibility"] = fft_visibility(counts, entry)
    if dot:
        entry["fft_visibility_note"] = (
            "PbS (dot) reflections are not measured separately: each coincides within 1 % "
            "with an allowed matrix reflection (coincides_with_matrix_family)"
        )
    return entry


def run_stem(out: Path) -> list[dict]:
    sim = dict(STEM_300KV)
    sim["sigmas"] = SIGMAS["srtio3"]
    rng = np.random.default_rng(110)
    atoms, _, box = supercell("srtio3", "110", sim["supercell_reps"], rng)
    cell_xy = period_lengths("110", A_STO)[:2]
    t0, c0 = time.time(), time.process_time()
    ims = stem_intensities(atoms, cell_xy, sim, seed=110)
    wall, cpu = time.time() - t0, time.process_time() - c0
    px_a, n = sim["px_nm"] * 10, sim["out_px"]
    fams = {"SrTiO3": zone_families("srtio3", "110", A_STO)}
    entries = []
    for name, key, seed in (("srtio3_110_haadf", "haadf", 1110), ("srtio3_110_bf", "abf", 1111)):
        I = resample_periodic(ims[key], cell_xy, (n, n), px_a, 0.0, 0.0)
        lam = np.clip(I, 0, None) * sim["electrons_per_probe_position"]
        counts = np.random.default_rng(seed).poisson(lam)
        path = out / f"{name}.tif"
        det = sim["haadf_mrad"] if key == "haadf" else sim["abf_mrad"]
        write_tif(
            path,
            counts,
            sim["px_nm"],
            f"abTEM multislice STEM {key.upper()} {det[0]}-{det[1]} mrad SrTiO3 [110] "
            f"300 kV; pixel size {sim['px_nm']} nm; truth in truth.json",
        )
        np.save(Path("/tmp") / f"{name}_noisefree.npy", I.astype(np.float32))
        entries.append(
            {
                "file": path.name,
                "bytes": path.stat().st_size,
                "mode": "STEM",
                "detector": key.upper(),
                "detector_mrad": list(det),
                "kind": "abTEM STEM multislice of one periodic cell, tiled (exact periodic "
                "resampling) to the field, then Poisson noise; no scan distortion, no probe-position-dependent phonons",
                "phases": ["SrTiO3 Pm-3m a=3.905 Å (Sr 1a, Ti 1b, O 3c)"],
                "zone_axis": "[110]",
                "frame_rows": [list(v) for v in FRAMES["110"]],
                "shape": [n, n],
                "pixel_size_x_nm": sim["px_nm"],
                "pixel_size_y_nm": sim["px_nm"],
                "supercell_angstrom": [round(float(v), 4) for v in box],
                "supercell_repeats": list(sim["supercell_reps"]),
                "scan_cell_angstrom": [round(float(v), 4) for v in cell_xy],
                "scan_gpts_xy": list(sim["scan_gpts_xy"]),
                "n_atoms": len(atoms),
                "beam_energy_kv": 300.0,
                "convergence_semiangle_mrad": sim["convergence_mrad"],
                "Cs_mm": 0.0,
                "defocus_nm": 0.0,
                "thickness_nm": round(float(box[2]) / 10, 4),
                "potential_sampling_angstrom": sim["sampling_angstrom"],
                "slice_thickness_angstrom": sim["slice_thickness_angstrom"],
                "frozen_phonons": sim["frozen_phonons"],
                "frozen_phonon_sigmas_angstrom": sim["sigmas"],
                "electrons_per_probe_position": sim["electrons_per_probe_position"],
                "dose_e_per_angstrom2": round(sim["electrons_per_probe_position"] / px_a**2, 1),
                "mean_counts_per_pixel": round(float(counts.mean()), 3),
                "noise": "Poisson",
                "simulation_wall_s": round(wall, 1),
                "simulation_cpu_s": round(cpu, 1),
                "simulation_note": "one STEM run gives both the HAADF and the ABF file",
                "families": fams,
                "first_order_angles": {k: first_order_angles(v) for k, v in fams.items()},
            }
        )
        entries[-1]["fft_visibility"] = fft_visibility(counts, entries[-1])
    return entries


def check_folder_size(folder: Path, max_bytes: int) -> int:
    """Print the size of the fixture folder; exit status 1 (with a message) when it holds more than ``max_bytes``."""
    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    print(f"total {total / 2**20:.2f} MiB in {folder}")
    if total > max_bytes:
        print(f"error: {folder} holds {total} bytes > {max_bytes}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DEFAULT)
    ap.add_argument("--only", action="append", choices=ORDER, help="make only these (repeatable)")
    ap.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="also take the images and truth entries made into another --out folder",
    )
    ap.add_argument(
        "--refresh-truth",
        action="store_true",
        help="no simulation: recompute the FFT visibility of every image in truth.json",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    truth_path = args.out / "truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else {}
    truth.update(
        {
            "schema_version": SCHEMA_VERSION,
            "generator": "scripts/make_multislice_fixtures.py",
            "d_min_angstrom": D_MIN_ANGSTROM,
            "visible_ratio": VISIBLE_RATIO,
            "conventions": __doc__.split("Conventions: ")[1].strip(),
        }
    )
    truth.setdefault("images", {})
    import abtem
    import ase

    truth["versions"] = {"abtem": abtem.__version__, "ase": ase.__version__, "numpy": np.__version__}
    for other in args.merge:
        import shutil

        t_other = json.loads((other / "truth.json").read_text())
        for name, e in t_other["images"].items():
            shutil.copy2(other / name, args.out / name)
            truth["images"][name] = e
    todo = [] if (args.refresh_truth or args.merge) and not args.only else (args.only or ORDER)
    for name in ORDER:
        if name not in todo:
            continue
        print(f"... {name}", flush=True)
        entries = (
            run_stem(args.out)
            if name == "srtio3_110"
            else [run_hrtem(next(r for r in RECIPES if r.name == name), args.out)]
        )
        for e in entries:
            truth["images"][e["file"]] = e
            vis = ", ".join(f"{v['family']}" for ph in e["fft_visibility"].values() for v in ph if v["visible"])
            print(
                f"{e['file']}: {e['bytes']} B, sim {e['simulation_wall_s']} s wall / {e['simulation_cpu_s']} s CPU; "
                f"visible: {vis}",
                flush=True,
            )
        truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    if args.refresh_truth or args.merge:
        refresh_truth(args.out, truth)
        truth["images"] = dict(sorted(truth["images"].items()))
        truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    return check_folder_size(args.out, MAX_TOTAL_BYTES)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
