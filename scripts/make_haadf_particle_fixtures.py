#!/usr/bin/env python
"""Multislice (abTEM) HAADF-STEM fixtures of PbS quantum dots with known diameters.

Writes ``tests/data/multislice_particles/``: noiseless HAADF intensities of rock-salt PbS
spheres on amorphous carbon, so that the particle-sizing tests run on physics that
latticefit did not write. NOT run by the tests (they only read the committed files).
It needs abTEM, which is deliberately *not* a dependency of the project's environment::

    python3 -m venv /work/venv-abtem
    /work/venv-abtem/bin/pip install abtem ase tifffile
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        nice -n 10 /work/venv-abtem/bin/python scripts/make_haadf_particle_fixtures.py     # both cells
    ... scripts/make_haadf_particle_fixtures.py --only cell_b                  # one cell
    ... scripts/make_haadf_particle_fixtures.py --tiny --out /tmp/tiny         # cost estimate

(run from the repository root; ``--out DIR`` writes elsewhere; ``--tiny`` simulates a
3.1 nm cell with one 1.1 nm dot on the same potential grid density, slices and probe to
estimate the cost of the full cells). Everything is seeded, so a rerun with the same
abTEM/numpy versions rewrites the same pixels. The simulation runs on one thread
(dask single-threaded scheduler, FFTW with 1 thread).

What it does, per cell:

1. builds the atoms with ASE: rock-salt PbS spheres (a = 5.936 Å, Pb 4a, S 4b; a Pb
   site at the sphere centre; atoms whose centre lies within R of the centre kept), each
   in a seeded random orientation, resting on a 2 nm amorphous carbon film (random
   positions at 2.0 g/cm^3 with a minimum C-C distance of 1.3 Å, random sequential
   addition, periodic in-plane), in vacuum otherwise; carbon atoms closer than 2 Å to a
   PbS atom are removed;
2. simulates a HAADF-STEM scan with abTEM: 300 kV aberration-free probe, PRISM
   (``SMatrix`` with an interpolation factor), Lobato potentials (infinite projection),
   one frozen-phonon configuration, an annular detector inside the antialiasing
   aperture of the potential sampling;
3. writes the scanned intensity (fraction of the incident probe reaching the detector,
   float32, no noise) as an ImageJ TIFF calibrated in nm, one pixel per probe position,
   and ``truth.json`` (dot centres in output pixels, diameters 2R, atom counts, all
   simulation parameters, seeds, versions, wall and CPU time).

Conventions: image row = y, column = x; pixel (row i, column j) is the probe position
(x, y) = (j * step, i * step) of the simulation cell (integer pixel coordinates are
probe positions); the beam travels along +z (entrance surface z = 0); the dots lie on
the entrance side of the carbon film.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from make_multislice_fixtures import check_folder_size  # the sibling script (lazy imports only)

ROOT = Path(__file__).resolve().parents[1]
OUT_DEFAULT = ROOT / "tests" / "data" / "multislice_particles"
SCHEMA_VERSION = 1
MAX_TOTAL_BYTES = 3 * 1024 * 1024

A_PBS = 5.936  # Å
C_DENSITY_G_CM3 = 2.0
C_MIN_DIST = 1.3  # Å
C_THICKNESS = 20.0  # Å
VACUUM = 2.0  # Å above the dots and below the film
GAP_DOT_FILM = 1.0  # Å between the lowest point of a sphere and the top of the film
# Frozen-phonon rms displacement per Cartesian direction (Å); PbS as in make_multislice_fixtures.py
SIGMAS = {"Pb": 0.12, "S": 0.12, "C": 0.08}

SIM = {
    "energy_ev": 300e3,
    "convergence_semiangle_mrad": 10.0,
    "Cs_angstrom": 0.0,
    "defocus_angstrom": 0.0,  # aberration-free probe, focused on the entrance surface
    "haadf_mrad": (40.0, 60.0),
    "potential_gpts_per_nm": 96,  # 0.104 Å sampling: antialias aperture 63 mrad at 300 kV
    "slice_thickness_angstrom": 2.0,
    "interpolation": 6,  # PRISM window = cell / 6 = 20.8 Å
    "scan_step_nm": 0.1,
    "frozen_phonons": 1,
    "projection": "infinite",
    "parametrization": "lobato",
}

# Dot centres (x, y) in nm of the cell and diameters (nm); >= 1 nm from every cell border.
CELLS = {
    "cell_a": {
        "extent_nm": 12.5,
        "dots": [(4.55, 4.6, 7.0), (9.45, 9.4, 4.0)],
        "seed": 101,
        "note": "one 7.0 nm and one 4.0 nm PbS sphere, 1.36 nm surface gap",
    },
    "cell_b": {
        "extent_nm": 12.5,
        "dots": [(3.05, 3.6, 4.0), (7.55, 3.6, 4.0), (6.1, 9.45, 4.0)],
        "seed": 202,
        "note": "three 4.0 nm PbS spheres: two nearly touching (0.5 nm surface gap), one separated",
    },
}
TINY = {
    "extent_nm": 3.125,
    "dots": [(1.5625, 1.5625, 1.1)],
    "seed": 9,
    "note": "cost estimate only",
    "interpolation": 2,  # window 15.6 Å (the full cells: 20.8 Å)
    "scan_step_nm": 0.25,
    "depth_like_nm": 7.0,  # film + vacuum + depth of the 7 nm cell, for the slice count
}


# ----------------------------------------------------------------------------- structures


def pbs_sphere(radius: float, rng: np.random.Generator):
    """Symbols and positions (Å, centred on 0) of a randomly oriented rock-salt PbS sphere.

    Pb at the fcc sites of (0,0,0), S at (1/2,0,0) + fcc; a Pb site at the centre; atoms
    whose centre lies within ``radius`` kept. Returns symbols, positions, rotation matrix.
    """
    from scipy.spatial.transform import Rotation

    fcc = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
    basis = [("Pb", fcc), ("S", fcc + np.array([0.5, 0, 0]))]
    n = int(np.ceil(radius / A_PBS)) + 1
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    syms, pos = [], []
    for s, f in basis:
        p = (A_PBS * (grid + f[None])).reshape(-1, 3) @ rot.T
        p = p[np.linalg.norm(p, axis=1) < radius]
        syms += [s] * len(p)
        pos.append(p)
    return np.array(syms), np.concatenate(pos), rot


def carbon_film(extent: float, z0: float, rng: np.random.Generator):
    """Random C positions (Å) at C_DENSITY_G_CM3 in [0, extent)^2 x [z0, z0 + C_THICKNESS), min distance C_MIN_DIST.

    Random sequential addition with periodic in-plane distances: draw all, then redraw
    one atom of every too-close pair until none is left.
    """
    from scipy.spatial import cKDTree

    n_per_a3 = C_DENSITY_G_CM3 / 12.011 * 6.02214076e23 * 1e-24
    n = int(round(n_per_a3 * extent * extent * C_THICKNESS))
    lo, hi = np.array([0, 0, z0]), np.array([extent, extent, z0 + C_THICKNESS])
    pos = rng.uniform(lo, hi, (n, 3))
    box = [extent, extent, 1e6]  # periodic in x, y only
    for _ in range(200):
        q = pos.copy()
        q[:, 2] -= z0
        pairs = cKDTree(q, boxsize=box).query_pairs(C_MIN_DIST, output_type="ndarray")
        if not len(pairs):
            break
        bad = np.unique(pairs.max(1))
        pos[bad] = rng.uniform(lo, hi, (len(bad), 3))
    else:
        raise RuntimeError("carbon film: random sequential addition did not converge")
    q = pos.copy()
    q[:, 2] -= z0
    dmin = float(cKDTree(q, boxsize=box).query(q, k=2)[0][:, 1].min())
    return pos, dmin


def build_cell(spec: dict):
    """ASE Atoms of one cell, and the per-dot truth."""
    from ase import Atoms
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(spec["seed"])
    L = spec["extent_nm"] * 10
    rmax = max(d for *_, d in spec["dots"]) * 5
    depth_top = 2 * rmax if "depth_like_nm" not in spec else spec["depth_like_nm"] * 10
    z_film = VACUUM + depth_top + GAP_DOT_FILM
    syms, pos, dots = [], [], []
    for k, (x, y, d) in enumerate(spec["dots"]):
        r = d * 5
        assert min(x * 10 - r, y * 10 - r, L - x * 10 - r, L - y * 10 - r) >= 10.0 - 1e-9, f"dot {k} < 1 nm from border"
        s, p, rot = pbs_sphere(r, rng)
        c = np.array([x * 10, y * 10, z_film - GAP_DOT_FILM - r])
        syms.append(s)
        pos.append(p + c)
        r_atoms = np.linalg.norm(p, axis=1)
        n_per_a3 = 8 / A_PBS**3
        dots.append(
            {
                "centre_angstrom": c,
                "diameter_nm": d,
                "n_atoms": len(s),
                "n_pb": int((s == "Pb").sum()),
                "rotation_matrix": np.round(rot, 8).tolist(),
                # what an atom-cut sphere can claim: the sphere of the same number of atoms
                # at bulk density, and the uniform sphere with the same rms radius
                "diameter_volume_equivalent_nm": round(
                    float(2 * (3 * len(s) / (4 * np.pi * n_per_a3)) ** (1 / 3) / 10), 5
                ),
                "diameter_rms_equivalent_nm": round(float(2 * np.sqrt(5 / 3 * np.mean(r_atoms**2)) / 10), 5),
                "max_atom_radius_nm": round(float(r_atoms.max() / 10), 5),
            }
        )
    # no overlaps between dots (periodic in-plane)
    for i in range(len(dots)):
        for j in range(i + 1, len(dots)):
            dxy = dots[i]["centre_angstrom"][:2] - dots[j]["centre_angstrom"][:2]
            dxy -= L * np.round(dxy / L)
            gap = np.hypot(*dxy) - 5 * (dots[i]["diameter_nm"] + dots[j]["diameter_nm"])
            assert gap > 4.0, f"dots {i} and {j}: surface gap {gap:.2f} Å"
            dots[i].setdefault("surface_gaps_nm", {})[str(j)] = round(float(gap / 10), 4)
            dots[j].setdefault("surface_gaps_nm", {})[str(i)] = round(float(gap / 10), 4)
    c_pos, c_dmin = carbon_film(L, z_film, rng)
    pbs = np.concatenate(pos)
    dist, _ = cKDTree(pbs).query(c_pos)
    c_pos = c_pos[dist >= 2.0]
    all_s = np.concatenate(syms + [np.array(["C"] * len(c_pos))])
    all_p = np.concatenate([pbs, c_pos])
    Lz = z_film + C_THICKNESS + VACUUM
    atoms = Atoms(symbols=list(all_s), positions=all_p, cell=[L, L, Lz], pbc=True)
    film = {
        "n_atoms": len(c_pos),
        "thickness_nm": C_THICKNESS / 10,
        "top_z_nm": round(z_film / 10, 4),
        "density_g_cm3": C_DENSITY_G_CM3,
        "min_c_c_distance_angstrom": round(c_dmin, 4),
        "min_c_c_distance_target_angstrom": C_MIN_DIST,
    }
    return atoms, dots, film, rng


# ----------------------------------------------------------------------------- simulation


def simulate(atoms, extent: float, sim: dict, seed: int):
    """HAADF intensity (rows = y), the antialias cutoff (mrad) and the S-matrix beam count."""
    import abtem
    import dask

    dask.config.set(scheduler="synchronous")
    abtem.config.set({"fftw.threads": 1})
    n = int(round(sim["potential_gpts_per_nm"] * extent / 10))
    fp = abtem.FrozenPhonons(atoms, num_configs=sim["frozen_phonons"], sigmas=SIGMAS, seed=seed)
    pot = abtem.Potential(
        fp,
        gpts=(n, n),
        slice_thickness=sim["slice_thickness_angstrom"],
        projection=sim["projection"],
        parametrization=sim["parametrization"],
    )
    probe = abtem.Probe(energy=sim["energy_ev"], semiangle_cutoff=sim["convergence_semiangle_mrad"])
    probe.grid.match(pot)
    cutoff = float(min(probe.cutoff_angles))
    inner, outer = sim["haadf_mrad"]
    assert inner >= 3 * sim["convergence_semiangle_mrad"], "HAADF inner angle < 3x the semiangle"
    assert outer < cutoff, f"HAADF outer angle {outer} >= antialias cutoff {cutoff:.1f} mrad"
    smat = abtem.SMatrix(
        potential=pot,
        energy=sim["energy_ev"],
        semiangle_cutoff=sim["convergence_semiangle_mrad"],
        interpolation=sim["interpolation"],
        downsample="cutoff",
    )
    step = sim["scan_step_nm"] * 10
    scan = abtem.GridScan(start=(0, 0), end=(extent, extent), sampling=step, endpoint=False)
    meas = smat.scan(scan=scan, detectors=abtem.AnnularDetector(inner=inner, outer=outer), lazy=True)
    arr = np.asarray(meas.compute().array)
    while arr.ndim > 2:  # frozen-phonon axis
        arr = arr.mean(0)
    return arr.T.astype(np.float32), cutoff, int(len(smat.wave_vectors)), n, len(pot)


def write_tif(path: Path, img: np.ndarray, px_nm: float, info: str) -> None:
    import tifffile

    tifffile.imwrite(
        path,
        img.astype(np.float32),
        imagej=True,
        resolution=(1.0 / px_nm, 1.0 / px_nm),
        metadata={"unit": "nm", "Info": info},
    )


def run_cell(name: str, spec: dict, out: Path) -> dict:
    sim = dict(SIM)
    for k in ("interpolation", "scan_step_nm"):
        sim[k] = spec.get(k, sim[k])
    t_build = time.time()
    atoms, dots, film, _ = build_cell(spec)
    t_build = time.time() - t_build
    L = spec["extent_nm"] * 10
    t0, c0 = time.time(), time.process_time()
    img, cutoff, n_beams, gpts, n_slices = simulate(atoms, L, sim, seed=spec["seed"] + 1)
    wall, cpu = time.time() - t0, time.process_time() - c0
    px_nm = sim["scan_step_nm"]
    path = out / f"haadf_pbs_{name}.tif"
    write_tif(
        path,
        img,
        px_nm,
        f"abTEM PRISM HAADF-STEM {sim['haadf_mrad'][0]:.0f}-{sim['haadf_mrad'][1]:.0f} mrad, PbS dots on "
        f"amorphous C, 300 kV; noiseless (fraction of the probe); pixel size {px_nm} nm; truth in truth.json",
    )
    step_a = px_nm * 10
    entry = {
        "file": path.name,
        "bytes": path.stat().st_size,
        "note": spec["note"],
        "pixel_size_nm": px_nm,
        "shape": list(img.shape),
        "cell_angstrom": [round(float(v), 4) for v in atoms.cell.lengths()],
        "n_atoms": len(atoms),
        "dots": [
            {
                "x_px": round(float(d["centre_angstrom"][0] / step_a), 4),
                "y_px": round(float(d["centre_angstrom"][1] / step_a), 4),
                "x_nm": round(float(d["centre_angstrom"][0] / 10), 4),
                "y_nm": round(float(d["centre_angstrom"][1] / 10), 4),
                "centre_z_nm": round(float(d["centre_angstrom"][2] / 10), 4),
                **{k: v for k, v in d.items() if k != "centre_angstrom"},
            }
            for d in dots
        ],
        "carbon_film": film,
        "intensity": {
            "min": float(img.min()),
            "max": float(img.max()),
            "median": float(np.median(img)),
            "meaning": "fraction of the incident probe intensity reaching the HAADF detector",
        },
        "simulation": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in sim.items()},
            "potential_gpts": [gpts, gpts],
            "potential_sampling_angstrom": round(L / gpts, 5),
            "n_slices": n_slices,
            "antialias_cutoff_mrad": round(cutoff, 2),
            "s_matrix_beams": n_beams,
            "prism_window_angstrom": round(L / sim["interpolation"], 3),
            "frozen_phonon_sigmas_angstrom": SIGMAS,
            "scan": "GridScan start (0, 0), end = cell, endpoint False; one output pixel per probe position",
            "threads": "1 (dask synchronous scheduler, FFTW 1 thread, OMP/BLAS/numba 1), nice 10",
        },
        "seeds": {"structure": spec["seed"], "frozen_phonons": spec["seed"] + 1},
        "structure_build_s": round(t_build, 1),
        "simulation_wall_s": round(wall, 1),
        "simulation_cpu_s": round(cpu, 1),
    }
    return entry


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DEFAULT)
    ap.add_argument("--only", action="append", choices=list(CELLS), help="make only these (repeatable)")
    ap.add_argument("--tiny", action="store_true", help="cost estimate: a 3.1 nm cell with one 1.1 nm dot")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import abtem
    import ase

    if args.tiny:
        e = run_cell("tiny", TINY, args.out)
        print(json.dumps({k: e[k] for k in ("simulation_wall_s", "simulation_cpu_s", "shape", "intensity")}, indent=1))
        print(json.dumps(e["simulation"], indent=1))
        return 0
    truth_path = args.out / "truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else {}
    truth.update(
        {
            "schema_version": SCHEMA_VERSION,
            "generator": "scripts/make_haadf_particle_fixtures.py",
            "conventions": __doc__.split("Conventions: ")[1].strip(),
            "versions": {"abtem": abtem.__version__, "ase": ase.__version__, "numpy": np.__version__},
            "pbs_lattice_parameter_angstrom": A_PBS,
        }
    )
    truth.setdefault("images", {})
    for name in args.only or list(CELLS):
        print(f"... {name}", flush=True)
        e = run_cell(name, CELLS[name], args.out)
        truth["images"][e["file"]] = e
        print(
            f"{e['file']}: {e['bytes']} B, {e['n_atoms']} atoms, {e['simulation']['s_matrix_beams']} beams, "
            f"sim {e['simulation_wall_s']} s wall / {e['simulation_cpu_s']} s CPU",
            flush=True,
        )
        truth["images"] = dict(sorted(truth["images"].items()))
        truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    return check_folder_size(args.out, MAX_TOTAL_BYTES)


if __name__ == "__main__":
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    sys.exit(main())
