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

import math
import os
from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from ..errors import AnalysisError, FileReadError
from ._scattering import electron_scattering_factor, relativistic_gamma

__all__ = [
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

#: |F| below this fraction of sum_j |f_j| counts as an exact extinction
EXTINCTION_REL_TOL = 1e-6
DEFAULT_BEAM_ENERGY_KV = 200.0
#: largest CIF file read (bytes): a crystal structure is a few kB; beyond this it is not one (or a hostile file)
MAX_CIF_BYTES = 4 << 20
#: largest number of reflections x atoms worked out for one reflection list (structure factors)
MAX_REFLECTION_WORK = 50_000_000


@dataclass(frozen=True)
class Site:
    """One atom of the conventional cell: element (or pseudo-atom), fractional xyz, occupancy."""

    element: str
    xyz: tuple[float, float, float]
    occupancy: float = 1.0


_CENTRING_RULES = {
    "P": None,
    "F": "F-centring requires h,k,l all even or all odd",
    "I": "I-centring requires h+k+l even",
    "C": "C-centring requires h+k even",
    "A": "A-centring requires k+l even",
    "B": "B-centring requires h+l even",
    "R": "R-centring requires -h+k+l = 3n",
}


def _compact_symbol(symbol: str | None) -> str | None:
    if symbol is None:
        return None
    return str(symbol).replace(" ", "")


@dataclass(eq=False)
class Phase:
    """A crystal phase: lattice parameters, space group and the atoms of the cell.

    Parameters
    ----------
    name : str
        Name used in reports (``'PbS'``).
    a, b, c : float
        Cell lengths in Å.
    alpha, beta, gamma : float
        Cell angles in degrees.
    sites : tuple of Site
        Every atom of the conventional cell (already expanded by symmetry).
    space_group : str, optional
        Hermann-Mauguin symbol (``'Fm-3m'``); ``None`` for an explicit basis.
    space_group_number : int, optional
        International Tables number; enables symmetry operations, absence
        classification and the Laue-group reduction of zone axes.
    description : str
        Free text (what the phase is, modelling choices).
    source : str
        ``'built-in'`` or the CIF path.

    Examples
    --------
    >>> p = Phase.from_space_group("Cu", 225, (3.615,), [("Cu", (0, 0, 0))])
    >>> len(p.sites), p.space_group, p.centring
    (4, 'Fm-3m', 'F')
    """

    name: str
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    sites: tuple[Site, ...]
    space_group: str | None = None
    space_group_number: int | None = None
    description: str = ""
    source: str = "built-in"
    _cache: dict = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------- factories
    @classmethod
    def from_space_group(cls, name, space_group, cellpar, basis, *, description="", source="built-in",
                         setting=1) -> "Phase":
        """Build a phase from an asymmetric unit and a space group (expanded with ase).

        Parameters
        ----------
        space_group : int or str
            Number or Hermann-Mauguin symbol (``225`` or ``'F m -3 m'``).
        cellpar : sequence
            ``(a,)`` cubic, ``(a, c)`` hexagonal/tetragonal, or ``(a, b, c, alpha, beta, gamma)``; Å and degrees.
        basis : sequence of (element, (x, y, z)) or (element, (x, y, z), occupancy)
            Asymmetric unit; elements may be pseudo-atoms (``'MA'``).
        """
        from ase.spacegroup import Spacegroup

        sg = Spacegroup(space_group, setting=setting)
        a, b, c, al, be, ga = _full_cellpar(cellpar, sg)
        labels = [str(site[0]) for site in basis]
        occ = [float(site[2]) if len(site) > 2 else 1.0 for site in basis]
        pos, kinds = sg.equivalent_sites([tuple(float(v) for v in site[1]) for site in basis])
        sites = tuple(Site(labels[k], tuple(float(v) for v in p), occ[k]) for p, k in zip(pos, kinds))
        return cls(name, a, b, c, al, be, ga, sites, _compact_symbol(sg.symbol), int(sg.no), description, source)

    @classmethod
    def from_basis(cls, name, cellpar, sites, *, description="", source="built-in") -> "Phase":
        """Build a phase from an explicit list of every atom in the cell (no space group, P1)."""
        a, b, c, al, be, ga = _full_cellpar(cellpar, None)
        out = []
        for s in sites:
            out.append(Site(str(s[0]), tuple(float(v) for v in s[1]), float(s[2]) if len(s) > 2 else 1.0))
        return cls(name, a, b, c, al, be, ga, tuple(out), None, None, description, source)

    # ------------------------------------------------------------ geometry
    @property
    def cellpar(self) -> tuple[float, float, float, float, float, float]:
        """``(a, b, c, alpha, beta, gamma)`` in Å and degrees."""
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    @property
    def direct_matrix(self) -> np.ndarray:
        """Rows are the cell vectors a, b, c in Cartesian Å (a along x, b in the xy plane)."""
        if "A" not in self._cache:
            a, b, c = self.a, self.b, self.c
            al, be, ga = (math.radians(v) for v in (self.alpha, self.beta, self.gamma))
            cx = c * math.cos(be)
            cy = c * (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
            cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
            A = np.array([[a, 0.0, 0.0], [b * math.cos(ga), b * math.sin(ga), 0.0], [cx, cy, cz]])
            A[np.abs(A) < 1e-12] = 0.0
            self._cache["A"] = A
        return self._cache["A"]

    @property
    def reciprocal_matrix(self) -> np.ndarray:
        """Rows are a*, b*, c* in Cartesian 1/Å (crystallographer's convention, no 2 pi)."""
        if "B" not in self._cache:
            self._cache["B"] = np.linalg.inv(self.direct_matrix).T
        return self._cache["B"]

    @property
    def metric_tensor(self) -> np.ndarray:
        """Direct metric tensor G (Å^2); its inverse is the reciprocal metric G*."""
        A = self.direct_matrix
        return A @ A.T

    @property
    def volume_angstrom3(self) -> float:
        return float(abs(np.linalg.det(self.direct_matrix)))

    @property
    def is_hexagonal(self) -> bool:
        """Hexagonal/trigonal axes (a = b, gamma = 120): 4-index notation applies."""
        return abs(self.gamma - 120.0) < 1e-6 and abs(self.a - self.b) < 1e-9 and \
            abs(self.alpha - 90.0) < 1e-6 and abs(self.beta - 90.0) < 1e-6

    @property
    def centring(self) -> str:
        """Lattice centring letter (P, F, I, C, A, B, R) from the space-group symbol."""
        if self.space_group:
            return self.space_group[0].upper()
        return "P"

    @property
    def label(self) -> str:
        """``'PbS Fm-3m'``."""
        return f"{self.name} {self.space_group}" if self.space_group else f"{self.name} (P1 basis)"

    def symmetry_operations(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """All (R, t) of the space group, x' = R x + t (with centrings); identity only without one."""
        if "ops" not in self._cache:
            if self.space_group_number:
                from ase.spacegroup import Spacegroup

                sg = Spacegroup(self.space_group_number)
                ops = [(np.asarray(R, int), np.asarray(t, float)) for R, t in sg.get_symop()]
                self._cache["centring_translations"] = [np.asarray(t, float) for t in sg.subtrans
                                                        if np.any(np.abs(t) > 1e-9)]
            else:
                ops = [(np.eye(3, dtype=int), np.zeros(3))]
                self._cache["centring_translations"] = []
            self._cache["ops"] = ops
        return self._cache["ops"]

    def centring_translations(self) -> list[np.ndarray]:
        self.symmetry_operations()
        return self._cache["centring_translations"]

    def laue_rotations(self) -> np.ndarray:
        """Distinct point-group rotations plus inversion, acting on directions [uvw] (column vectors)."""
        if "laue" not in self._cache:
            mats = {}
            for R, _ in self.symmetry_operations():
                for M in (R, -R):
                    mats[M.tobytes()] = M
            self._cache["laue"] = np.array(list(mats.values()))
        return self._cache["laue"]

    def summary(self) -> dict:
        """A JSON-ready description (the ``latticefit phases`` record)."""
        return {
            "name": self.name,
            "space_group": self.space_group,
            "space_group_number": self.space_group_number,
            "a_angstrom": self.a, "b_angstrom": self.b, "c_angstrom": self.c,
            "alpha_deg": self.alpha, "beta_deg": self.beta, "gamma_deg": self.gamma,
            "n_atoms_cell": len(self.sites),
            "elements": sorted({s.element for s in self.sites}),
            "description": self.description,
            "source": self.source,
        }

    to_dict = summary

    def __repr__(self) -> str:
        return (f"Phase({self.name!r}, {self.space_group or 'P1 basis'}, a={self.a:g} b={self.b:g} c={self.c:g} Å, "
                f"angles=({self.alpha:g}, {self.beta:g}, {self.gamma:g}), {len(self.sites)} atoms)")


def _full_cellpar(cellpar, sg):
    vals = [float(v) for v in np.atleast_1d(cellpar)]
    if len(vals) == 6:
        return tuple(vals)
    system = None
    if sg is not None:
        n = int(sg.no)
        system = "cubic" if n >= 195 else "hexagonal" if n >= 143 else "tetragonal" if n >= 75 else None
    if len(vals) == 1:
        if system not in (None, "cubic"):
            raise AnalysisError(f"space group {sg.symbol} needs more than one lattice parameter")
        return (vals[0], vals[0], vals[0], 90.0, 90.0, 90.0)
    if len(vals) == 2:
        if system == "hexagonal":
            return (vals[0], vals[0], vals[1], 90.0, 90.0, 120.0)
        if system == "tetragonal":
            return (vals[0], vals[0], vals[1], 90.0, 90.0, 90.0)
        raise AnalysisError("two lattice parameters (a, c) only make sense for hexagonal or tetragonal cells")
    if len(vals) == 3:
        return (vals[0], vals[1], vals[2], 90.0, 90.0, 90.0)
    raise AnalysisError(f"cannot read cell parameters {cellpar!r}: give (a,), (a, c), (a, b, c) or six values")


# ---------------------------------------------------------------- library
def _library() -> dict:
    lib = {}

    def add(name, sg, cellpar, basis, description):
        lib[name] = (sg, cellpar, basis, description)

    add("MAPbBr3", 221, (5.933,), [("Pb", (0, 0, 0)), ("Br", (0.5, 0, 0)), ("MA", (0.5, 0.5, 0.5))],
        "CH3NH3PbBr3 cubic perovskite (room temperature). The disordered methylammonium cation is one "
        "pseudo-atom 'MA' (C + N + 6 H scattering) at the cube centre.")
    add("CsPbBr3", 221, (5.874,), [("Pb", (0, 0, 0)), ("Br", (0.5, 0, 0)), ("Cs", (0.5, 0.5, 0.5))],
        "CsPbBr3 in its cubic (high-temperature / nanocrystal pseudo-cubic) form; the room-temperature "
        "bulk phase is orthorhombic Pnma (use a CIF for it).")
    add("PbS", 225, (5.936,), [("Pb", (0, 0, 0)), ("S", (0.5, 0.5, 0.5))], "PbS galena, rock salt.")
    add("PbSe", 225, (6.124,), [("Pb", (0, 0, 0)), ("Se", (0.5, 0.5, 0.5))], "PbSe, rock salt.")
    add("CdSe-zb", 216, (6.077,), [("Cd", (0, 0, 0)), ("Se", (0.25, 0.25, 0.25))], "CdSe zinc blende.")
    add("CdSe-wz", 186, (4.30, 7.01), [("Cd", (1 / 3, 2 / 3, 0.0)), ("Se", (1 / 3, 2 / 3, 0.375))],
        "CdSe wurtzite (ideal u = 3/8).")
    add("Si", 227, (5.431,), [("Si", (0, 0, 0))], "Silicon, diamond structure (origin choice 1).")
    add("GaAs", 216, (5.653,), [("Ga", (0, 0, 0)), ("As", (0.25, 0.25, 0.25))], "GaAs zinc blende.")
    add("Au", 225, (4.078,), [("Au", (0, 0, 0))], "Gold, fcc.")
    add("SrTiO3", 221, (3.905,), [("Sr", (0, 0, 0)), ("Ti", (0.5, 0.5, 0.5)), ("O", (0.5, 0.5, 0))],
        "SrTiO3 cubic perovskite (room temperature).")
    return lib


#: name -> (space group number, cellpar, asymmetric unit, description)
PHASE_LIBRARY: dict = _library()
_ALIASES = {"cdse": "CdSe-zb", "cdse-zincblende": "CdSe-zb", "cdse-wurtzite": "CdSe-wz", "sto": "SrTiO3",
            "mapbbr3": "MAPbBr3", "ch3nh3pbbr3": "MAPbBr3"}
_BUILT: dict = {}


def library_names() -> list[str]:
    """Names of the built-in phases."""
    return list(PHASE_LIBRARY)


def get_phase(name) -> Phase:
    """A built-in phase by name (case-insensitive), or a :class:`Phase` passed through.

    Raises
    ------
    AnalysisError
        For an unknown name (the message lists the library).

    Examples
    --------
    >>> get_phase("srtio3").space_group
    'Pm-3m'
    """
    if isinstance(name, Phase):
        return name
    key = str(name).strip()
    lookup = {k.lower(): k for k in PHASE_LIBRARY}
    real = lookup.get(key.lower()) or _ALIASES.get(key.lower())
    if real is None:
        raise AnalysisError(f"unknown phase {name!r}; built-in phases: {', '.join(PHASE_LIBRARY)} "
                            "(or give a CIF file)")
    if real not in _BUILT:
        sg, cellpar, basis, desc = PHASE_LIBRARY[real]
        _BUILT[real] = Phase.from_space_group(real, sg, cellpar, basis, description=desc)
    return _BUILT[real]


def load_cif(path, *, name: str | None = None) -> Phase:
    """Read a phase from a CIF file with ``ase.io.read`` (which expands the space group).

    Partial occupancies are kept when ase reports them.

    Raises
    ------
    FileReadError
        When the file is missing or ase cannot read it.
    """
    path = str(path)
    if not os.path.exists(path):
        raise FileReadError("CIF file not found", path)
    size = os.path.getsize(path)
    if size > MAX_CIF_BYTES:
        raise FileReadError(f"CIF of {size / 2**20:.1f} MiB is far larger than a crystal structure "
                            f"(limit {MAX_CIF_BYTES / 2**20:.0f} MiB): not read", path)
    try:
        import ase.io

        atoms = ase.io.read(path, format="cif")
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad file
        why = " ".join(str(e).split())[:200]
        cause = f"{type(e).__name__}: {why}" if why else f"ase's CIF parser failed with {type(e).__name__}"
        raise FileReadError(f"cannot read as CIF, not a valid CIF file? ({cause})", path) from None
    try:
        a, b, c, al, be, ga = (float(v) for v in atoms.cell.cellpar())
        frac = atoms.get_scaled_positions(wrap=True)
        symbols = atoms.get_chemical_symbols()
        occ_info = atoms.info.get("occupancy") or {}
        # ase maps each atom to its asymmetric-unit site through 'spacegroup_kinds' (older: tags)
        tags = atoms.arrays.get("spacegroup_kinds")
        if tags is None:
            tags = atoms.get_tags()
        sites = []
        for i, (sym, p) in enumerate(zip(symbols, frac)):
            occd = occ_info.get(str(tags[i])) if occ_info else None
            if occd and len(occd) > 1:  # mixed site: one entry per element
                for el, o in occd.items():
                    sites.append(Site(el, tuple(float(v) for v in p), float(o)))
            else:
                o = float(next(iter(occd.values()))) if occd else 1.0
                sites.append(Site(sym, tuple(float(v) for v in p), o))
        sites = _dedupe_sites(sites)
        sg = atoms.info.get("spacegroup")
        sg_no = int(sg.no) if sg is not None and int(sg.no) > 1 else None
        sg_sym = _compact_symbol(sg.symbol) if sg_no else None
    except Exception as e:  # noqa: BLE001
        raise FileReadError(f"CIF has no usable cell or atoms ({type(e).__name__}: {e})", path) from None
    if not sites:
        raise FileReadError("CIF lists no atoms", path)
    nm = name or os.path.splitext(os.path.basename(path))[0]
    return Phase(nm, a, b, c, al, be, ga, tuple(sites), sg_sym, sg_no, f"read from {os.path.basename(path)}", path)


def _dedupe_sites(sites):
    out, seen = [], set()
    for s in sites:
        key = (s.element, tuple(round(v % 1.0, 5) % 1.0 for v in s.xyz), round(s.occupancy, 5))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def resolve_phases(phases=None, cifs=()) -> list[Phase]:
    """Phases from names / Phase objects plus CIF paths; the whole library when both are empty."""
    out = [get_phase(p) for p in (phases or [])]
    out += [load_cif(c) for c in (cifs or [])]
    if not out:
        out = [get_phase(n) for n in PHASE_LIBRARY]
    return out


# ------------------------------------------------------------ reflections
def _as_hkl(hkl) -> np.ndarray:
    arr = np.asarray(hkl)
    if arr.shape[-1] == 4:  # (hkil) -> (hkl)
        arr = arr[..., [0, 1, 3]]
    return np.asarray(np.rint(arr), dtype=int)


def g_cartesian(phase: Phase, hkl) -> np.ndarray:
    """Cartesian reciprocal vectors of ``hkl`` (..., 3) in 1/Å."""
    return _as_hkl(hkl) @ phase.reciprocal_matrix


def d_spacing(phase: Phase, hkl):
    """Interplanar spacing d(hkl) in Å (metric tensor; works for any cell).

    Examples
    --------
    >>> round(float(d_spacing(get_phase("CdSe-wz"), (0, 0, 2))), 3)
    3.505
    """
    g = np.linalg.norm(g_cartesian(phase, hkl), axis=-1)
    with np.errstate(divide="ignore"):
        d = np.where(g > 0, 1.0 / np.where(g > 0, g, 1.0), np.inf)
    return d if d.ndim else float(d)


def structure_factor(phase: Phase, hkl, *, beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
                     debye_waller_b: float | dict = 0.0, return_scale: bool = False):
    """Kinematic electron structure factor F(hkl) in Å (complex).

    Parameters
    ----------
    hkl : array (..., 3)
        Miller indices (4-index (hkil) accepted).
    beam_energy_kv : float
        Beam energy for the relativistic factor gamma (None: non-relativistic amplitudes).
    debye_waller_b : float or dict
        Isotropic B in Å^2 (one value, or per element); 0 = static lattice.
    return_scale : bool
        Also return ``sum_j |occ_j f_j(s)|`` (the reference for relative extinction tests).

    Examples
    --------
    >>> pbs = get_phase("PbS")
    >>> F = structure_factor(pbs, [(1, 1, 1), (2, 0, 0), (1, 1, 0)])
    >>> bool(abs(F[1]) > abs(F[0])), bool(abs(F[2]) < 1e-9)
    (True, True)
    """
    hkl = _as_hkl(hkl)
    d = d_spacing(phase, hkl.reshape(-1, 3))
    s = np.where(np.isfinite(d), 0.5 / np.where(np.isfinite(d), d, 1.0), 0.0)
    F = np.zeros(s.shape, complex)
    scale = np.zeros(s.shape)
    elements = sorted({st.element for st in phase.sites})
    hk = hkl.reshape(-1, 3).astype(float)
    for el in elements:
        f = np.asarray(electron_scattering_factor(el, s), float)
        B = debye_waller_b.get(el, 0.0) if isinstance(debye_waller_b, dict) else float(debye_waller_b)
        if B:
            f = f * np.exp(-B * s * s)
        pos = np.array([st.xyz for st in phase.sites if st.element == el])
        occ = np.array([st.occupancy for st in phase.sites if st.element == el])
        phase_sum = np.exp(2j * np.pi * (hk @ pos.T)) @ occ
        F += f * phase_sum
        scale += np.abs(f) * occ.sum()
    if beam_energy_kv is not None:
        gam = relativistic_gamma(beam_energy_kv)
        F *= gam
        scale *= gam
    F = F.reshape(hkl.shape[:-1])
    scale = scale.reshape(hkl.shape[:-1])
    if return_scale:
        return F, scale
    return F


def format_hkl(hkl) -> str:
    """``(1-10)``-style label (bars as minus signs; multi-digit indices separated by spaces)."""
    vals = [int(v) for v in _as_hkl_raw(hkl)]
    sep = " " if any(abs(v) > 9 for v in vals) else ""
    return "(" + sep.join(str(v) for v in vals) + ")"


def _as_hkl_raw(hkl):
    return np.asarray(np.rint(np.asarray(hkl)), dtype=int).ravel()


def _extinction_kinds(phase: Phase, hkl: np.ndarray) -> list[tuple[str, str]]:
    """Why each of many extinct reflections (E, 3)."""
    hkl = np.asarray(hkl, int).reshape(-1, 3)
    if len(hkl) == 0:
        return []
    hf = hkl.astype(float)

    def nonint(x):
        return np.abs((x + 0.5) % 1.0 - 0.5) > 1e-6

    cent = np.zeros(len(hkl), bool)
    for t in phase.centring_translations():
        cent |= nonint(hf @ t)
    # one operation per rotation part: for reflections that obey the centring condition the
    # centring-translated copies of an operation give the same phase factor
    ops = {}
    for R, t in phase.symmetry_operations():
        if not np.array_equal(R, np.eye(3, dtype=int)):
            ops.setdefault(R.tobytes(), (R, t))
    ops = list(ops.values())
    glide = np.zeros(len(hkl), bool)
    screw = np.zeros(len(hkl), bool)
    rest = np.nonzero(~cent)[0]
    if ops and rest.size:
        Rs = np.array([R for R, _ in ops])                    # (n, 3, 3)
        ts = np.array([t for _, t in ops])                    # (n, 3)
        dets = np.array([round(np.linalg.det(R)) for R, _ in ops])
        hr = hkl[rest]
        hR = np.einsum("ei,nij->enj", hr, Rs)                  # (E, n, 3)
        inv = np.all(hR == hr[:, None, :], axis=2)             # (E, n)
        absent = inv & nonint(hf[rest] @ ts.T)
        glide[rest] = np.any(absent & (dets < 0)[None, :], axis=1)
        screw[rest] = np.any(absent & (dets > 0)[None, :], axis=1)
    rule = _CENTRING_RULES.get(phase.centring) or f"{phase.centring}-centring"
    out = []
    for c, g, s in zip(cent, glide, screw):
        if c:
            out.append(("centring", rule))
        elif g and s:
            out.append(("glide", "glide-plane and screw-axis absence (can appear by double diffraction)"))
        elif g:
            out.append(("glide", "glide-plane absence (can appear by double diffraction)"))
        elif s:
            out.append(("screw", "screw-axis absence (can appear by double diffraction)"))
        else:
            out.append(("special-position", "atoms on special positions cancel in this structure "
                                            "(can appear by double diffraction)"))
    return out


def extinction_reason(phase: Phase, hkl, *, beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV):
    """Why ``(hkl)`` is extinct in ``phase``, or ``None`` when it is allowed.

    Returns
    -------
    (kind, text) or None
        kind is ``'centring'``, ``'glide'``, ``'screw'`` or ``'special-position'``;
        text reads like ``"(110) extinct in PbS Fm-3m: F-centring requires h,k,l all even or all odd"``.

    Examples
    --------
    >>> extinction_reason(get_phase("Si"), (2, 0, 0))[0]
    'glide'
    >>> extinction_reason(get_phase("Si"), (2, 2, 0)) is None
    True
    """
    h = _as_hkl(hkl).ravel()
    if not np.any(h):
        return None
    F, scale = structure_factor(phase, h, beam_energy_kv=beam_energy_kv, return_scale=True)
    if abs(F) >= EXTINCTION_REL_TOL * scale:
        return None
    kind, why = _extinction_kinds(phase, h[None, :])[0]
    return kind, f"{format_hkl(h)} extinct in {phase.label}: {why}"


def reflections(phase: Phase, *, d_min_angstrom: float = 1.0, beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
                include_extinct: bool = True):
    """Every reflection with d >= ``d_min_angstrom`` (both Friedel mates), as a DataFrame.

    Columns: h, k, l, d_angstrom, g_inv_nm, F_abs (Å), intensity_rel (|F|^2 over the strongest
    allowed), allowed, extinction_kind, extinction_reason.

    Examples
    --------
    >>> t = reflections(get_phase("PbS"), d_min_angstrom=2.0)
    >>> sorted(set(map(tuple, t.loc[t.allowed, ["h", "k", "l"]].abs().to_numpy().tolist())))[:3]
    [(0, 0, 2), (0, 2, 0), (0, 2, 2)]
    """
    import pandas as pd

    tab = _reflection_table(phase, d_min_angstrom, beam_energy_kv)
    keep = np.ones(len(tab["hkl"]), bool) if include_extinct else tab["allowed"]
    hkl = tab["hkl"][keep]
    return pd.DataFrame({
        "h": hkl[:, 0], "k": hkl[:, 1], "l": hkl[:, 2],
        "d_angstrom": tab["d"][keep],
        "g_inv_nm": 10.0 / tab["d"][keep],
        "F_abs": tab["F_abs"][keep],
        "intensity_rel": tab["intensity_rel"][keep],
        "allowed": tab["allowed"][keep],
        "extinction_kind": [tab["kind"][i] for i in np.nonzero(keep)[0]],
        "extinction_reason": [tab["reason"][i] for i in np.nonzero(keep)[0]],
    })


def _reflection_table(phase: Phase, d_min_angstrom: float, beam_energy_kv) -> dict:
    """Cached arrays of all reflections with d >= d_min (sorted by d descending)."""
    key = ("refl", round(float(d_min_angstrom), 4), beam_energy_kv)
    if key in phase._cache:
        return phase._cache[key]
    gmax = 1.0 / float(d_min_angstrom)
    A = phase.direct_matrix
    # |h| <= gmax * |a_i| bounds every index
    nmax = [int(math.ceil(gmax * np.linalg.norm(A[i]))) for i in range(3)]
    _check_reflection_work(phase, d_min_angstrom, nmax)
    rng = [np.arange(-n, n + 1) for n in nmax]
    hkl = np.stack(np.meshgrid(*rng, indexing="ij"), -1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    g = hkl @ phase.reciprocal_matrix
    gn = np.linalg.norm(g, axis=1)
    sel = gn <= gmax * (1 + 1e-9)
    hkl, g, gn = hkl[sel], g[sel], gn[sel]
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], np.round(gn, 9)))
    hkl, g, gn = hkl[order], g[order], gn[order]
    F, scale = structure_factor(phase, hkl, beam_energy_kv=beam_energy_kv, return_scale=True)
    Fa = np.abs(F)
    allowed = Fa >= EXTINCTION_REL_TOL * scale
    kinds, reasons = [""] * len(hkl), [""] * len(hkl)
    ext = np.nonzero(~allowed)[0]
    for i, (kind, why) in zip(ext, _extinction_kinds(phase, hkl[ext])):
        kinds[i] = kind
        h = [int(v) for v in hkl[i]]
        sep = " " if any(abs(v) > 9 for v in h) else ""
        reasons[i] = f"({sep.join(str(v) for v in h)}) extinct in {phase.label}: {why}"
    imax = float((Fa[allowed] ** 2).max()) if np.any(allowed) else 1.0
    tab = {"hkl": hkl, "g_cart": g, "d": 1.0 / gn, "F_abs": Fa, "intensity_rel": Fa ** 2 / imax,
           "allowed": allowed, "kind": kinds, "reason": reasons}
    phase._cache[key] = tab
    return tab


def _check_reflection_work(phase: Phase, d_min_angstrom: float, nmax) -> None:
    """Refuse, before allocating, a reflection list that would exhaust memory or time.

    The number of reflections with d >= d_min is about the reciprocal-sphere volume times the cell
    volume, (4/3) pi V / d_min^3; with the index box searched and one structure-factor term per atom,
    a 1000 A cell to 1 A would need ~1e9 reflections x atoms. The bound is on d-range times cell, not on
    the cell alone, so a large cell is fine at a coarse d_min.
    """
    n_box = float(np.prod([2 * n + 1 for n in nmax], dtype=np.float64))
    n_refl = 4.0 / 3.0 * math.pi * phase.volume_angstrom3 / float(d_min_angstrom) ** 3
    work = max(n_box, n_refl * max(len(phase.sites), 1))
    if work > MAX_REFLECTION_WORK:
        raise AnalysisError(
            f"phase {phase.name!r}: a cell of {phase.volume_angstrom3:.3g} A^3 with {len(phase.sites)} atoms "
            f"has ~{n_refl:.2g} reflections with d >= {d_min_angstrom:.3g} A; that is beyond what can be "
            f"indexed (limit {MAX_REFLECTION_WORK:.0e} reflections x atoms): check the CIF's cell or raise d_min",
            phase.source if phase.source not in (None, "built-in") else None)


# ------------------------------------------------------------- zone axes
def _primitive(v) -> tuple[int, ...]:
    v = [int(x) for x in v]
    g = reduce(math.gcd, [abs(x) for x in v]) or 1
    return tuple(x // g for x in v)


def _zone_key(v):
    nonneg = all(x >= 0 for x in v)
    return (nonneg, sum(x > 0 for x in v), tuple(v))


def equivalent_zone_axes(phase: Phase, uvw) -> set[tuple[int, int, int]]:
    """All directions equivalent to ``[uvw]`` under the Laue group of the phase."""
    v = np.asarray(_primitive(uvw))
    return set(map(tuple, (phase.laue_rotations() @ v).tolist()))


def _canonical_zone(phase: Phase, uvw) -> tuple[int, int, int]:
    orbit = equivalent_zone_axes(phase, uvw)
    cands = sorted(orbit, key=_zone_key, reverse=True)
    best = cands[0]
    # single-axis cubic-type directions read best as [001]
    if sum(x != 0 for x in best) == 1:
        for c in orbit:
            if c[2] > 0 and c[0] == 0 and c[1] == 0:
                return c
    return best


def same_zone_axis(phase: Phase, uvw1, uvw2) -> bool:
    """True when the two directions are equivalent by the phase's Laue symmetry.

    Examples
    --------
    >>> same_zone_axis(get_phase("SrTiO3"), (1, 1, 0), (0, -1, 1))
    True
    """
    return _primitive(uvw2) in equivalent_zone_axes(phase, uvw1)


def unique_zone_axes(phase: Phase, max_index: int = 3) -> list[tuple[int, int, int]]:
    """Symmetry-unique zone axes with |u|, |v|, |w| <= ``max_index`` (Laue-group reduced).

    Sorted by the length of the direction (low-index axes first).

    Examples
    --------
    >>> unique_zone_axes(get_phase("SrTiO3"), 1)
    [(0, 0, 1), (1, 1, 0), (1, 1, 1)]
    """
    key = ("zones", int(max_index))
    if key in phase._cache:
        return phase._cache[key]
    seen, out = set(), []
    n = int(max_index)
    A = phase.direct_matrix
    for u in range(-n, n + 1):
        for v in range(-n, n + 1):
            for w in range(-n, n + 1):
                if (u, v, w) == (0, 0, 0) or _primitive((u, v, w)) != (u, v, w):
                    continue
                if (u, v, w) in seen:
                    continue
                orbit = equivalent_zone_axes(phase, (u, v, w))
                seen |= orbit
                out.append(_canonical_zone(phase, (u, v, w)))
    out.sort(key=lambda z: (float(np.linalg.norm(np.asarray(z) @ A)), tuple(-abs(x) for x in z)))
    phase._cache[key] = out
    return out


def zone_axis_of(hkl1, hkl2) -> tuple[int, int, int]:
    """The zone axis [uvw] containing two reflections (cross product of the indices, reduced).

    Examples
    --------
    >>> zone_axis_of((1, -1, 0), (0, 1, -1))
    (1, 1, 1)
    """
    u = np.cross(_as_hkl(hkl1), _as_hkl(hkl2))
    if not np.any(u):
        raise AnalysisError("the two reflections are parallel: they define no zone axis")
    u = _primitive(u)
    if sum(x < 0 for x in u) > sum(x > 0 for x in u):
        u = tuple(-x for x in u)
    return u


def angle_between_reflections(phase: Phase, hkl1, hkl2) -> float:
    """Angle between two reciprocal-lattice vectors in degrees (metric tensor).

    Examples
    --------
    >>> round(angle_between_reflections(get_phase("SrTiO3"), (1, 0, 0), (1, 1, 0)), 6)
    45.0
    """
    g1, g2 = g_cartesian(phase, hkl1), g_cartesian(phase, hkl2)
    c = float(g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def zone_frame(phase: Phase, uvw, hkl_first=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal in-plane basis (e1, e2) and beam direction n of zone [uvw] (Cartesian).

    e1 lies along ``hkl_first`` (default: the shortest in-zone reciprocal vector);
    e2 = n x e1, so (e1, e2, n) is right-handed.
    """
    n = np.asarray(_primitive(uvw), float) @ phase.direct_matrix
    n /= np.linalg.norm(n)
    if hkl_first is None:
        tab = _reflection_table(phase, 0.5, DEFAULT_BEAM_ENERGY_KV)
        inz = tab["hkl"] @ np.asarray(_primitive(uvw)) == 0
        hkl_first = tab["hkl"][np.nonzero(inz)[0][0]]
    e1 = g_cartesian(phase, hkl_first)
    e1 = e1 - (e1 @ n) * n
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    return e1, e2, n


def zone_axis_reflections(phase: Phase, zone_axis, *, d_min_angstrom: float = 1.0, g_max_inv_nm: float | None = None,
                          beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV, include_extinct: bool = False):
    """Reflections of the zero-order Laue zone of ``[uvw]`` with d >= ``d_min_angstrom``.

    ``g_max_inv_nm`` (|g| <= g_max in 1/nm), when given, replaces ``d_min_angstrom = 10 / g_max``.

    Returns a DataFrame (both Friedel mates) with h, k, l, d_angstrom, g_inv_nm, gx_inv_nm,
    gy_inv_nm (in-plane coordinates, x along the shortest allowed reflection), angle_deg
    (azimuth in that frame), F_abs, intensity_rel, allowed, extinction_kind, extinction_reason.
    For a hexagonal phase the 4-index (hkil) is added as column ``hkil``.

    Examples
    --------
    >>> z = zone_axis_reflections(get_phase("MAPbBr3"), (1, 1, 1), d_min_angstrom=4.0)
    >>> len(z), round(float(z.d_angstrom.iloc[0]), 3)
    (6, 4.195)
    """
    import pandas as pd

    uvw = np.asarray(_primitive(zone_axis))
    if g_max_inv_nm is not None:
        d_min_angstrom = 10.0 / float(g_max_inv_nm)
    tab = _reflection_table(phase, d_min_angstrom, beam_energy_kv)
    inz = tab["hkl"] @ uvw == 0
    keep = inz & (tab["allowed"] | include_extinct)
    idx = np.nonzero(keep)[0]
    if idx.size == 0:
        return pd.DataFrame(columns=["h", "k", "l", "d_angstrom", "g_inv_nm", "gx_inv_nm", "gy_inv_nm",
                                     "angle_deg", "F_abs", "intensity_rel", "allowed", "extinction_kind",
                                     "extinction_reason"])
    first_allowed = np.nonzero(inz & tab["allowed"])[0]
    first = tab["hkl"][first_allowed[0] if first_allowed.size else idx[0]]
    e1, e2, _ = zone_frame(phase, uvw, first)
    g = tab["g_cart"][idx] * 10.0
    gx, gy = g @ e1, g @ e2
    hkl = tab["hkl"][idx]
    df = pd.DataFrame({
        "h": hkl[:, 0], "k": hkl[:, 1], "l": hkl[:, 2],
        "d_angstrom": tab["d"][idx], "g_inv_nm": 10.0 / tab["d"][idx],
        "gx_inv_nm": gx, "gy_inv_nm": gy, "angle_deg": np.degrees(np.arctan2(gy, gx)),
        "F_abs": tab["F_abs"][idx], "intensity_rel": tab["intensity_rel"][idx],
        "allowed": tab["allowed"][idx],
        "extinction_kind": [tab["kind"][i] for i in idx],
        "extinction_reason": [tab["reason"][i] for i in idx],
    })
    if phase.is_hexagonal:
        df["hkil"] = [hkl_to_hkil(h) for h in hkl]
    return df


# ------------------------------------------------------- 4-index notation
def hkl_to_hkil(hkl) -> tuple[int, int, int, int]:
    """Miller-Bravais (hkil) of a hexagonal plane (hkl): i = -(h + k).

    Examples
    --------
    >>> hkl_to_hkil((1, 0, 1))
    (1, 0, -1, 1)
    """
    h, k, l = (int(v) for v in _as_hkl_raw(hkl)[:3])
    return (h, k, -(h + k), l)


def uvw_to_uvtw(uvw) -> tuple[int, int, int, int]:
    """Four-index direction [UVTW] of a three-index hexagonal direction [uvw] (reduced to integers).

    U = (2u - v)/3, V = (2v - u)/3, T = -(u + v)/3, W = w.

    Examples
    --------
    >>> uvw_to_uvtw((1, 0, 0))
    (2, -1, -1, 0)
    >>> uvw_to_uvtw((1, 1, 0))
    (1, 1, -2, 0)
    """
    u, v, w = (int(x) for x in _as_hkl_raw(uvw)[:3])
    U, V, T, W = 2 * u - v, 2 * v - u, -(u + v), 3 * w
    return _primitive((U, V, T, W))  # type: ignore[return-value]
