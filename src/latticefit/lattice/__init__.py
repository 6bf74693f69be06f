"""Lattice metrology: spot detection, sub-pixel refinement, basis search, error budget, region comparison."""

from __future__ import annotations

from ._compare import *  # noqa: F403
from ._measure import *  # noqa: F403
from ._multi import Lattice

__all__ = [
    "Lattice",
    "LatticeResult",
    "RegionComparison",
    "SPOT_COLUMNS",
    "compare_lattices",
    "compare_regions",
    "measure_lattice",
    "parse_d_range",
]
