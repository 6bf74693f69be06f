"""latticefit: trustworthy crystallographic numbers and figures from HRTEM / HAADF-STEM exports.

The main entry points:

- :func:`latticefit.io.load` reads a microscope file into a :class:`~latticefit.micrograph.Micrograph`;
- :func:`latticefit.lattice.measure_lattice` measures d-spacings and angles with uncertainties;
- :func:`latticefit.particles.find_particles` detects and sizes HAADF nanoparticles;
- :mod:`latticefit.crystal` indexes spots against phases;
- :mod:`latticefit.synth` draws images with known ground truth.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import LatticefitError, LatticefitWarning  # noqa: E402
from .micrograph import Micrograph, as_micrograph  # noqa: E402

__all__ = ["__version__", "LatticefitError", "LatticefitWarning", "Micrograph", "as_micrograph", "load"]


def load(path, **kwargs):
    """Shortcut for :func:`latticefit.io.load`."""
    from .io import load as _load

    return _load(path, **kwargs)
