"""Crystal phases, kinematic electron structure factors and zone-axis reflections.

A :class:`Phase` holds lattice parameters (Å, degrees), the space group (when
known) and every atom of the conventional cell (fractional coordinates,
occupancy). Built-in phases (:data:`PHASE_LIBRARY`, :func:`get_phase`) cover
the materials latticefit was founded on; any other phase comes from a CIF file
through :func:`load_cif` (``ase.io.read``, which expands the space group).

Geometry uses the metric tensor, so hexagonal (and any triclinic) cells work:
``1/d^2 = h G* h``; the Cartesian reciprocal vector of ``(hkl)`` is
``hkl @ reciprocal_matrix`` and a direction ``[uvw]`` is ``uvw @ direct_matrix``;
``(hkl)`` lies in zone ``[uvw]`` when ``h u + k v + l w = 0`` (Weiss zone law).

Structure factors are kinematic electron structure factors
``F(g) = sum_j occ_j f_j(s) exp(2 pi i g.r_j) exp(-B s^2)`` with
``s = 1/(2d)`` and the Peng et al. (1996) amplitudes of
:mod:`latticefit.scattering` (times the relativistic factor gamma). A
reflection is *extinct* when ``|F| < 1e-6 sum_j |occ_j f_j|``; the reason is
classified as a lattice-centring absence (never restored by double
diffraction), a glide or screw absence (space-group absence that dynamical
double diffraction can excite in a zone axis), or a special-position absence
(the atoms of this structure cancel; also excitable dynamically).

Examples
--------
>>> pbs = get_phase("PbS")
>>> round(float(d_spacing(pbs, (2, 2, 0))), 4)
2.0987
>>> extinction_reason(pbs, (1, 1, 0))[1]
'(110) extinct in PbS Fm-3m: F-centring requires h,k,l all even or all odd'
"""

from __future__ import annotations

from ._reflections import (  # noqa: F401
    _as_hkl,
    _as_hkl_raw,
    _check_reflection_work,
    _extinction_kinds,
    _reflection_table,
    d_spacing,
    extinction_reason,
    format_hkl,
    g_cartesian,
    reflections,
    structure_factor,
)
from ._structure import (  # noqa: F401
    _ALIASES,
    _BUILT,
    _CENTRING_RULES,
    DEFAULT_BEAM_ENERGY_KV,
    EXTINCTION_REL_TOL,
    MAX_CIF_BYTES,
    MAX_REFLECTION_WORK,
    PHASE_LIBRARY,
    Phase,
    Site,
    _compact_symbol,
    _dedupe_sites,
    _full_cellpar,
    _library,
    as_phase,
    get_phase,
    is_cif_path,
    library_names,
    load_cif,
    resolve_phases,
)
from ._zones import (  # noqa: F401
    _canonical_zone,
    _primitive,
    _zone_key,
    angle_between_reflections,
    equivalent_zone_axes,
    hkl_to_hkil,
    same_zone_axis,
    unique_zone_axes,
    uvw_to_uvtw,
    zone_axis_of,
    zone_axis_reflections,
    zone_frame,
)

__all__ = [
    "as_phase",
    "is_cif_path",
    "Site",
    "Phase",
    "PHASE_LIBRARY",
    "library_names",
    "get_phase",
    "resolve_phases",
    "load_cif",
    "d_spacing",
    "g_cartesian",
    "structure_factor",
    "extinction_reason",
    "reflections",
    "zone_axis_reflections",
    "unique_zone_axes",
    "equivalent_zone_axes",
    "same_zone_axis",
    "angle_between_reflections",
    "zone_axis_of",
    "hkl_to_hkil",
    "uvw_to_uvtw",
    "format_hkl",
    "EXTINCTION_REL_TOL",
]
