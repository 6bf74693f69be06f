"""Part of :mod:`_phases` (see its docstring): reflections."""

from __future__ import annotations

import math

import numpy as np

from ..errors import AnalysisError
from ._scattering import electron_scattering_factor, relativistic_gamma
from ._structure import _CENTRING_RULES, DEFAULT_BEAM_ENERGY_KV, EXTINCTION_REL_TOL, MAX_REFLECTION_WORK, Phase


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
    >>> from latticefit.crystal import get_phase, d_spacing
    >>> round(float(d_spacing(get_phase("CdSe-wz"), (0, 0, 2))), 3)
    3.505
    """
    g = np.linalg.norm(g_cartesian(phase, hkl), axis=-1)
    with np.errstate(divide="ignore"):
        d = np.where(g > 0, 1.0 / np.where(g > 0, g, 1.0), np.inf)
    return d if d.ndim else float(d)


def structure_factor(
    phase: Phase,
    hkl,
    *,
    beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
    debye_waller_b: float | dict = 0.0,
    return_scale: bool = False,
):
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
    >>> from latticefit.crystal import get_phase, structure_factor
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
        Rs = np.array([R for R, _ in ops])  # (n, 3, 3)
        ts = np.array([t for _, t in ops])  # (n, 3)
        dets = np.array([round(np.linalg.det(R)) for R, _ in ops])
        hr = hkl[rest]
        hR = np.einsum("ei,nij->enj", hr, Rs)  # (E, n, 3)
        inv = np.all(hR == hr[:, None, :], axis=2)  # (E, n)
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
            out.append(
                (
                    "special-position",
                    "atoms on special positions cancel in this structure (can appear by double diffraction)",
                )
            )
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
    >>> from latticefit.crystal import get_phase, extinction_reason
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


def reflections(
    phase: Phase,
    *,
    d_min_angstrom: float = 1.0,
    beam_energy_kv: float = DEFAULT_BEAM_ENERGY_KV,
    include_extinct: bool = True,
):
    """Every reflection with d >= ``d_min_angstrom`` (both Friedel mates), as a DataFrame.

    Columns: h, k, l, d_angstrom, g_abs_inv_nm, F_abs (Å), intensity_rel (|F|^2 over the strongest
    allowed), allowed, extinction_kind, extinction_reason.

    Examples
    --------
    >>> from latticefit.crystal import get_phase, reflections
    >>> t = reflections(get_phase("PbS"), d_min_angstrom=2.0)
    >>> sorted(set(map(tuple, t.loc[t.allowed, ["h", "k", "l"]].abs().to_numpy().tolist())))[:3]
    [(0, 0, 2), (0, 2, 0), (0, 2, 2)]
    """
    import pandas as pd

    tab = _reflection_table(phase, d_min_angstrom, beam_energy_kv)
    keep = np.ones(len(tab["hkl"]), bool) if include_extinct else tab["allowed"]
    hkl = tab["hkl"][keep]
    return pd.DataFrame(
        {
            "h": hkl[:, 0],
            "k": hkl[:, 1],
            "l": hkl[:, 2],
            "d_angstrom": tab["d"][keep],
            "g_abs_inv_nm": 10.0 / tab["d"][keep],
            "F_abs": tab["F_abs"][keep],
            "intensity_rel": tab["intensity_rel"][keep],
            "allowed": tab["allowed"][keep],
            "extinction_kind": [tab["kind"][i] for i in np.nonzero(keep)[0]],
            "extinction_reason": [tab["reason"][i] for i in np.nonzero(keep)[0]],
        }
    )


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
    tab = {
        "hkl": hkl,
        "g_cart": g,
        "d": 1.0 / gn,
        "F_abs": Fa,
        "intensity_rel": Fa**2 / imax,
        "allowed": allowed,
        "kind": kinds,
        "reason": reasons,
    }
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
            phase.source if phase.source not in (None, "built-in") else None,
        )
