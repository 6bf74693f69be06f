"""Geometric phase analysis (GPA): strain, rotation and dilatation maps with per-pixel error maps.

After Hÿtch, Snoeck & Kilaas (1998), Ultramicroscopy 74:131.

- :func:`strain_map` runs GPA on an image and returns a :class:`StrainMap`;
- :func:`plot_strain_map` draws its maps (``latticefit gpa`` on the command line);
- :func:`region_contrast` compares a dot with the matrix (z-test), :func:`burgers_vector` closes a circuit.
"""

from __future__ import annotations

from ._api import choose_reflections, strain_map
from ._circuit import burgers_vector
from ._regions import RegionContrast, disc_masks, dots_mask, region_contrast
from ._result import MAP_NAMES, SCHEMA_VERSION, StrainMap

__all__ = [
    "MAP_NAMES",
    "SCHEMA_VERSION",
    "RegionContrast",
    "StrainMap",
    "burgers_vector",
    "choose_reflections",
    "disc_masks",
    "dots_mask",
    "plot_strain_map",
    "region_contrast",
    "strain_map",
]


def plot_strain_map(result, **kwargs):
    """Figure of the maps of a :class:`StrainMap` (see :func:`latticefit.gpa._plot.plot_strain_map`)."""
    from ._plot import plot_strain_map as _plot

    return _plot(result, **kwargs)
