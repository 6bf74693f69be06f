"""latticefit: trustworthy crystallographic numbers and figures from HRTEM / HAADF-STEM exports.

``import latticefit as lf`` gives the verbs a user types first, loaded lazily (PEP 562), so that
``import latticefit`` itself costs a few milliseconds:

- :func:`lf.load <latticefit.io.load>` reads a microscope file into a :class:`~latticefit.micrograph.Micrograph`;
- :func:`lf.measure_lattice <latticefit.lattice.measure_lattice>` measures d-spacings and angles with
  uncertainties, :func:`lf.compare_regions <latticefit.lattice.compare_regions>` compares two regions;
- :func:`lf.index_lattice <latticefit.crystal.index_lattice>` indexes the spots against phases;
- :func:`lf.find_particles <latticefit.particles.find_particles>` detects and sizes HAADF nanoparticles;
- :func:`lf.strain_map <latticefit.gpa.strain_map>` maps strain by geometric phase analysis;
- :func:`lf.build_lattice_report <latticefit.report.build_lattice_report>` and
  :func:`lf.size_figure <latticefit.report.size_figure>` make the Fig. 4 / Fig. 5 figures;
- :func:`lf.run_batch <latticefit.batch.run>` analyses a whole folder;
- :func:`lf.save_result <latticefit.interop.save_result>` writes a result with the analysed image and its
  provenance (``.hspy``/``.json``/``.csv``), :func:`lf.load_result <latticefit.interop.load_result>` re-opens it.

The subpackages (``lf.lattice``, ``lf.crystal``, ``lf.particles``, ``lf.gpa``, ``lf.report``, ``lf.batch``,
``lf.synth``, ``lf.io``, ...) are reachable as attributes too.

Examples
--------
>>> import latticefit as lf
>>> mg = lf.synth.perovskite_111(shape=(256, 256), noise_sigma=0.1, seed=1)[0]
>>> res = lf.measure_lattice(mg)
>>> bool(abs(res.basis["angle_deg"] - 60) < 0.5)
True
"""

from __future__ import annotations

from ._lazy import lazy_attributes

__version__ = "0.2.0.dev0"

# name -> (module, attribute); attribute None means the module itself
_LAZY = {
    "load": ("latticefit.io", "load"),
    "Micrograph": ("latticefit.micrograph", "Micrograph"),
    "as_micrograph": ("latticefit.micrograph", "as_micrograph"),
    "LatticefitError": ("latticefit.errors", "LatticefitError"),
    "LatticefitWarning": ("latticefit.errors", "LatticefitWarning"),
    "measure_lattice": ("latticefit.lattice", "measure_lattice"),
    "compare_regions": ("latticefit.lattice", "compare_regions"),
    "LatticeResult": ("latticefit.lattice", "LatticeResult"),
    "index_lattice": ("latticefit.crystal", "index_lattice"),
    "get_phase": ("latticefit.crystal", "get_phase"),
    "load_cif": ("latticefit.crystal", "load_cif"),
    "calibrate": ("latticefit.crystal", "calibrate"),
    "load_calibration": ("latticefit.crystal", "load_calibration"),
    "find_particles": ("latticefit.particles", "find_particles"),
    "strain_map": ("latticefit.gpa", "strain_map"),
    "build_lattice_report": ("latticefit.report", "build_lattice_report"),
    "size_figure": ("latticefit.report", "size_figure"),
    "run_batch": ("latticefit.batch", "run"),
    "save_result": ("latticefit.interop", "save_result"),
    "load_result": ("latticefit.interop", "load_result"),
}
_SUBPACKAGES = (
    "batch",
    "cli",
    "crystal",
    "errors",
    "gpa",
    "interactive",
    "interop",
    "io",
    "lattice",
    "micrograph",
    "particles",
    "report",
    "roi",
    "serialize",
    "spectrum",
    "synth",
    "units",
)

__all__ = ["__version__", *_LAZY, *_SUBPACKAGES]


__getattr__, __dir__ = lazy_attributes(
    globals(), {**_LAZY, **{name: (f"latticefit.{name}", None) for name in _SUBPACKAGES}}
)
del lazy_attributes
