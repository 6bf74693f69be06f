"""Write the golden JSON files of the data contracts users script against (``tests/data/golden/``).

Each file is the ``to_dict()`` JSON of one public result on a small, seeded ``latticefit.synth`` input:
``lattice.json`` (:class:`~latticefit.lattice.LatticeResult`), ``comparison.json``
(:class:`~latticefit.lattice.RegionComparison`), ``particles.json``
(:class:`~latticefit.particles.ParticleResult`) and ``report.json``
(:class:`~latticefit.report.LatticeReport`). ``tests/test_golden.py`` recomputes them and compares
the key structure and value types exactly and the numbers to a loose tolerance: a change of the
contract (a renamed, added or removed key, a number that became a string) fails the test until the
golden file is rewritten here on purpose, with the change in ``CHANGELOG.md``.

Usage: ``PYTHONPATH=src python scripts/make_golden.py [--out tests/data/golden]``
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden"


def lattice_contract() -> dict:
    from latticefit.lattice import measure_lattice
    from latticefit.synth import perovskite_111

    mg, _ = perovskite_111((256, 256), pixel_size_nm=0.025, rotation_deg=12.0, seed=1)
    return measure_lattice(mg).to_dict()


def comparison_contract() -> dict:
    from latticefit.lattice import compare_regions
    from latticefit.synth import perovskite_111

    mg, _ = perovskite_111((256, 256), pixel_size_nm=0.025, rotation_deg=12.0, seed=2)
    return compare_regions(mg, (0, 0, 128, 128), (128, 128, 128, 128), systematic="none").to_dict()


def particles_contract() -> dict:
    from latticefit.particles import find_particles
    from latticefit.synth import haadf_dots

    mg, _ = haadf_dots((256, 256), pixel_size_nm=0.2, diameter_nm=5.0, n_particles=10, n_touching_pairs=1, seed=3)
    return find_particles(mg).to_dict()


def report_contract() -> dict:
    from latticefit.report import build_lattice_report
    from latticefit.synth import fig4_pair

    hr, hd, _ = fig4_pair(hrtem_shape=(256, 256), haadf_shape=(128, 128), hrtem_pixel_size_nm=0.05, seed=3)
    return build_lattice_report(hr, hd, phases=["MAPbBr3"]).to_dict()


CONTRACTS = {
    "lattice": lattice_contract,
    "comparison": comparison_contract,
    "particles": particles_contract,
    "report": report_contract,
}


def jsonable(d: dict) -> dict:
    """The dict exactly as the CLI writes it (strict JSON, through ``latticefit.serialize``)."""
    from latticefit.serialize import dumps

    return json.loads(dumps(d))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=GOLDEN)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    for name, make in CONTRACTS.items():
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(jsonable(make()), indent=1, sort_keys=True) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
