"""Part of :mod:`_phases` (see its docstring): structure."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnalysisError, FileReadError

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
    def from_space_group(
        cls, name, space_group, cellpar, basis, *, description="", source="built-in", setting=1
    ) -> Phase:
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
    def from_basis(cls, name, cellpar, sites, *, description="", source="built-in") -> Phase:
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
        return (
            abs(self.gamma - 120.0) < 1e-6
            and abs(self.a - self.b) < 1e-9
            and abs(self.alpha - 90.0) < 1e-6
            and abs(self.beta - 90.0) < 1e-6
        )

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
                self._cache["centring_translations"] = [
                    np.asarray(t, float) for t in sg.subtrans if np.any(np.abs(t) > 1e-9)
                ]
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
            "a_angstrom": self.a,
            "b_angstrom": self.b,
            "c_angstrom": self.c,
            "alpha_deg": self.alpha,
            "beta_deg": self.beta,
            "gamma_deg": self.gamma,
            "n_atoms_cell": len(self.sites),
            "elements": sorted({s.element for s in self.sites}),
            "description": self.description,
            "source": self.source,
        }

    to_dict = summary

    def __repr__(self) -> str:
        return (
            f"Phase({self.name!r}, {self.space_group or 'P1 basis'}, a={self.a:g} b={self.b:g} c={self.c:g} Å, "
            f"angles=({self.alpha:g}, {self.beta:g}, {self.gamma:g}), {len(self.sites)} atoms)"
        )


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

    add(
        "MAPbBr3",
        221,
        (5.933,),
        [("Pb", (0, 0, 0)), ("Br", (0.5, 0, 0)), ("MA", (0.5, 0.5, 0.5))],
        "CH3NH3PbBr3 cubic perovskite (room temperature). The disordered methylammonium cation is one "
        "pseudo-atom 'MA' (C + N + 6 H scattering) at the cube centre.",
    )
    add(
        "CsPbBr3",
        221,
        (5.874,),
        [("Pb", (0, 0, 0)), ("Br", (0.5, 0, 0)), ("Cs", (0.5, 0.5, 0.5))],
        "CsPbBr3 in its cubic (high-temperature / nanocrystal pseudo-cubic) form; the room-temperature "
        "bulk phase is orthorhombic Pnma (use a CIF for it).",
    )
    add("PbS", 225, (5.936,), [("Pb", (0, 0, 0)), ("S", (0.5, 0.5, 0.5))], "PbS galena, rock salt.")
    add("PbSe", 225, (6.124,), [("Pb", (0, 0, 0)), ("Se", (0.5, 0.5, 0.5))], "PbSe, rock salt.")
    add("CdSe-zb", 216, (6.077,), [("Cd", (0, 0, 0)), ("Se", (0.25, 0.25, 0.25))], "CdSe zinc blende.")
    add(
        "CdSe-wz",
        186,
        (4.30, 7.01),
        [("Cd", (1 / 3, 2 / 3, 0.0)), ("Se", (1 / 3, 2 / 3, 0.375))],
        "CdSe wurtzite (ideal u = 3/8).",
    )
    add("Si", 227, (5.431,), [("Si", (0, 0, 0))], "Silicon, diamond structure (origin choice 1).")
    add("GaAs", 216, (5.653,), [("Ga", (0, 0, 0)), ("As", (0.25, 0.25, 0.25))], "GaAs zinc blende.")
    add("Au", 225, (4.078,), [("Au", (0, 0, 0))], "Gold, fcc.")
    add(
        "SrTiO3",
        221,
        (3.905,),
        [("Sr", (0, 0, 0)), ("Ti", (0.5, 0.5, 0.5)), ("O", (0.5, 0.5, 0))],
        "SrTiO3 cubic perovskite (room temperature).",
    )
    return lib


#: name -> (space group number, cellpar, asymmetric unit, description)
PHASE_LIBRARY: dict = _library()
_ALIASES = {
    "cdse": "CdSe-zb",
    "cdse-zincblende": "CdSe-zb",
    "cdse-wurtzite": "CdSe-wz",
    "sto": "SrTiO3",
    "mapbbr3": "MAPbBr3",
    "ch3nh3pbbr3": "MAPbBr3",
}
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
    >>> from latticefit.crystal import get_phase
    >>> get_phase("srtio3").space_group
    'Pm-3m'
    """
    if isinstance(name, Phase):
        return name
    key = str(name).strip()
    lookup = {k.lower(): k for k in PHASE_LIBRARY}
    real = lookup.get(key.lower()) or _ALIASES.get(key.lower())
    if real is None:
        raise AnalysisError(f"unknown phase {name!r}; built-in phases: {', '.join(PHASE_LIBRARY)} (or give a CIF file)")
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
        raise FileReadError(
            f"CIF of {size / 2**20:.1f} MiB is far larger than a crystal structure "
            f"(limit {MAX_CIF_BYTES / 2**20:.0f} MiB): not read",
            path,
        )
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


def is_cif_path(obj) -> bool:
    """Whether a phase argument names a CIF file (by its extension, any case) rather than a library phase.

    Examples
    --------
    >>> from pathlib import Path
    >>> is_cif_path("MAPbBr3"), is_cif_path("data/PbS.CIF"), is_cif_path(Path("x.cif"))
    (False, True, True)
    """
    return not isinstance(obj, Phase) and str(obj).lower().endswith(".cif")


def as_phase(obj) -> Phase:
    """The one place that turns a phase argument into a :class:`Phase`: a Phase, a library name or a CIF path.

    Examples
    --------
    >>> as_phase("srtio3").name, as_phase(as_phase("PbS")).name
    ('SrTiO3', 'PbS')
    """
    if isinstance(obj, Phase):
        return obj
    return load_cif(str(obj)) if is_cif_path(obj) else get_phase(str(obj))


def resolve_phases(phases=None, cifs=()) -> list[Phase]:
    """Phases from names / Phase objects / CIF paths plus CIF paths; the whole library when both are empty."""
    out = [as_phase(p) for p in (phases or [])]
    out += [load_cif(c) for c in (cifs or [])]
    if not out:
        out = [get_phase(n) for n in PHASE_LIBRARY]
    return out
