"""Nanoparticle detection, model-fit sizing and size statistics from HAADF images."""

from __future__ import annotations

from ._pipeline import *  # noqa: F403
from ._sizestats import *  # noqa: F403

__all__ = [
    "EMPTY_SUMMARY_KEYS",
    "JSON_PARTICLE_KEYS",
    "NoiseModel",
    "ParticleResult",
    "TABLE_COLUMNS",
    "corrected_rsd",
    "corrected_rsd_sensitivity",
    "default_diameter_range_nm",
    "estimate_background",
    "estimate_noise_model",
    "fd_histogram",
    "find_particles",
    "intrinsic_sd",
    "fit_gaussian",
    "fit_lognormal",
    "miles_lantuejoul_weights",
    "plot_overlay",
    "region_measures",
    "rsd_bootstrap_ci",
    "size_summary",
    "summary_lines",
    "weighted_mean_sd",
]
