"""Synthetic HRTEM / HAADF images with known ground truth."""

from __future__ import annotations

from ._core import *  # noqa: F403

__all__ = [
    "LatticeTruth",
    "MAPBBR3_A_NM",
    "PBS_A_NM",
    "PairTruth",
    "ParticleTruth",
    "SRTIO3_A_NM",
    "cubic_001",
    "fig4_pair",
    "haadf_dots",
    "haadf_particles_image",
    "lattice_image",
    "perovskite_111",
    "reciprocal_basis",
    "rocksalt_111",
    "sphere_thickness_image",
]
