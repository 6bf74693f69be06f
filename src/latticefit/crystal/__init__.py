"""Crystallography: phases and CIF files, kinematic scattering, indexing with extinctions, calibration."""

from __future__ import annotations

from ._calibration import *  # noqa: F403
from ._indexing import *  # noqa: F403
from ._phases import *  # noqa: F403
from ._scattering import *  # noqa: F403

__all__ = [
    "as_phase",
    "is_cif_path",
    "CALIBRATION_SCHEMA_VERSION",
    "COST_UNMATCHED",
    "Calibration",
    "EXTINCTION_REL_TOL",
    "IndexingResult",
    "IndexingSolution",
    "MismatchResult",
    "PENG_1996",
    "PHASE_LIBRARY",
    "PSEUDO_ATOMS",
    "Phase",
    "SOURCE",
    "Site",
    "VALIDITY",
    "angle_between_reflections",
    "as_calibration",
    "calibrate",
    "d_spacing",
    "electron_scattering_factor",
    "electron_wavelength_angstrom",
    "equivalent_zone_axes",
    "extinction_reason",
    "fit_pixel_scale",
    "format_hkl",
    "g_cartesian",
    "get_phase",
    "hkl_to_hkil",
    "index_lattice",
    "index_spots",
    "known_elements",
    "library_names",
    "load_calibration",
    "load_cif",
    "mismatch",
    "nonlinear_distortion",
    "reflections",
    "relativistic_gamma",
    "resolve_phases",
    "same_zone_axis",
    "scattering_coefficients",
    "spot_uncertainties",
    "structure_factor",
    "unique_zone_axes",
    "uvw_to_uvtw",
    "zone_axis_of",
    "zone_axis_reflections",
]
