#!/usr/bin/env python
"""Write the calibrated sample files of ``sample_data/`` with :mod:`latticefit.synth`.

Usage (from the repository root)::

    python scripts/make_sample_data.py            # writes into sample_data/
    python scripts/make_sample_data.py --out DIR  # somewhere else

Every file is deterministic (fixed seeds): running the script again rewrites
the same pixels. Next to the images it writes ``truth.json`` (the ground truth
of every file) and one ``<name>.particles.csv`` per HAADF file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from latticefit.serialize import dumps
from latticefit.synth import _core as synth

ROOT = Path(__file__).resolve().parents[1]
MAX_TOTAL_BYTES = 5 * 1024 * 1024


def _as_uint16(mg) -> np.ndarray:
    data = mg.data
    if data.min() < 0 or data.max() > 65535 or not np.array_equal(data, np.round(data)):
        raise SystemExit(f"{mg.source}: data are not uint16 counts (min {data.min()}, max {data.max()})")
    return data.astype(np.uint16)


def write_imagej_tif(path: Path, mg) -> None:
    import tifffile

    px_nm = mg.pixel_size_nm[1]
    tifffile.imwrite(
        path,
        _as_uint16(mg),
        imagej=True,
        resolution=(1.0 / mg.pixel_size_nm[1], 1.0 / mg.pixel_size_nm[0]),
        metadata={
            "unit": "nm",
            "Info": f"latticefit.synth {mg.title} {mg.mode}; pixel size {px_nm} nm; ground truth in truth.json",
        },
    )


def write_hspy(path: Path, mg) -> None:
    import hyperspy.api as hs

    s = hs.signals.Signal2D(_as_uint16(mg))
    ay, ax = s.axes_manager.signal_axes[1], s.axes_manager.signal_axes[0]
    ay.name, ay.scale, ay.units = "y", float(mg.pixel_size_nm[0]), "nm"
    ax.name, ax.scale, ax.units = "x", float(mg.pixel_size_nm[1]), "nm"
    s.metadata.General.title = mg.title
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", float(mg.beam_energy_kv))
    s.metadata.set_item("Acquisition_instrument.TEM.acquisition_mode", "STEM")
    s.metadata.set_item("Acquisition_instrument.TEM.Detector.name", mg.title)
    s.metadata.set_item("Signal.quantity", "Intensity (counts)")
    s.save(path, overwrite=True)


def build(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    truth: dict = {}

    # Fig. 4 case: HRTEM MAPbBr3 [111] with four embedded dots (+0.24 %) and the same field in HAADF
    fig4 = dict(
        hrtem_shape=(1024, 1024),
        hrtem_pixel_size_nm=0.025,
        haadf_shape=(512, 512),
        dot_diameter_nm=4.0,
        dot_rsd=0.06,
        n_dots=4,
        mismatch=0.0024,
        rotation_deg=12.0,
        hrtem_background=400.0,
        hrtem_contrast=50.0,
        hrtem_noise_sigma=0.0,
        hrtem_dose=400.0,
        dot_contrast=1.15,
        haadf_background=60.0,
        haadf_dose=60.0,
        haadf_particle_contrast=1.5,
        seed=4,
    )
    hrtem, haadf, pair = synth.fig4_pair(**fig4)
    write_imagej_tif(out / "perovskite_111_hrtem.tif", hrtem)
    write_hspy(out / "perovskite_111_haadf.hspy", haadf)
    pair.dots.to_csv(out / "perovskite_111_dots.csv", index=False, float_format="%.6f")
    pd = pair.to_dict()
    truth["perovskite_111_hrtem.tif"] = {
        "pixel_size_nm": list(hrtem.pixel_size_nm),
        "shape": list(hrtem.shape),
        "mode": "HRTEM",
        "lattice": pd["hrtem"],
        "dots": pd["dots"],
        "generator": {"function": "fig4_pair", **fig4},
    }
    truth["perovskite_111_haadf.hspy"] = {
        "pixel_size_nm": list(haadf.pixel_size_nm),
        "shape": list(haadf.shape),
        "mode": "HAADF",
        "particles": pd["haadf"],
        "dots": pd["dots"],
        "generator": {"function": "fig4_pair", **fig4},
    }

    # Fig. 5 cases: PbS dot fields, ~4 nm and ~7 nm, RSD 7-8 %, touching pairs, particles cut by the border
    for name, kw, writer in (
        (
            "pbs_dots_4nm_haadf.tif",
            dict(shape=(512, 512), diameter_nm=4.0, rsd=0.075, n_particles=45, n_touching_pairs=3, seed=2),
            write_imagej_tif,
        ),
        (
            "pbs_dots_7nm_haadf.hspy",
            dict(shape=(768, 768), diameter_nm=7.0, rsd=0.08, n_particles=45, n_touching_pairs=4, seed=24),
            write_hspy,
        ),
    ):
        kw.update(
            pixel_size_nm=0.1, background=50.0, dose=50.0, gradient=0.3, particle_contrast=1.0, probe_sigma_nm=0.1
        )
        mg, pt = synth.haadf_dots(**kw)
        writer(out / name, mg)
        stem = name.rsplit(".", 1)[0]
        pt.particles.to_csv(out / f"{stem}.particles.csv", index=False, float_format="%.6f")
        truth[name] = {
            "pixel_size_nm": list(mg.pixel_size_nm),
            "shape": list(mg.shape),
            "mode": "HAADF",
            "particles": pt.to_dict(),
            "generator": {"function": "haadf_dots", **kw},
        }
    (out / "truth.json").write_text(dumps(truth) + "\n", encoding="utf-8")
    return truth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sample_data", help="output folder (default: sample_data/)")
    args = ap.parse_args(argv)
    build(args.out)
    total = 0
    for f in sorted(args.out.iterdir()):
        if f.is_file() and f.name != "README.md":
            total += f.stat().st_size
            print(f"{f.name:36s} {f.stat().st_size / 1024:8.1f} KiB")
    print(f"{'total (without README.md)':36s} {total / 1024:8.1f} KiB")
    if total > MAX_TOTAL_BYTES:
        print(f"error: sample data exceed {MAX_TOTAL_BYTES / 2**20:.0f} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
