"""Phases, electron scattering factors, structure factors, extinctions and zone-axis reflections."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latticefit.crystal import (
    Phase,
    angle_between_reflections,
    d_spacing,
    electron_scattering_factor,
    electron_wavelength_angstrom,
    equivalent_zone_axes,
    extinction_reason,
    get_phase,
    hkl_to_hkil,
    library_names,
    load_cif,
    reflections,
    relativistic_gamma,
    resolve_phases,
    same_zone_axis,
    scattering_coefficients,
    structure_factor,
    unique_zone_axes,
    uvw_to_uvtw,
    zone_axis_of,
    zone_axis_reflections,
)
from latticefit.errors import AnalysisError, FileReadError

# f_e(0) = sum a_i of the *other* published Peng et al. (1996) fit (0 <= s <= 2 1/Å, Acta Cryst. A52
# Table 1); the module uses the 0 <= s <= 6 1/Å fit, so this checks the transcription against an
# independent column of the paper (the two fits agree at s = 0 to ~0.1 %).
PENG_0_2_F0 = {
    "C": 2.5088,
    "O": 1.9834,
    "S": 5.1604,
    "Si": 5.8268,
    "Ti": 8.7742,
    "Sr": 13.1098,
    "Au": 10.5714,
    "Pb": 12.5943,
}


@pytest.mark.parametrize("el", sorted(PENG_0_2_F0))
def test_scattering_factor_at_zero_matches_published_fit(el):
    assert electron_scattering_factor(el, 0.0) == pytest.approx(PENG_0_2_F0[el], rel=3e-3)


def test_scattering_factor_shape_and_relativistic_factor():
    s = np.linspace(0, 2, 50)
    f = electron_scattering_factor("Pb", s)
    assert f.shape == s.shape and np.all(np.diff(f) < 0)
    assert electron_scattering_factor("Pb", 0.3, beam_energy_kv=200) == pytest.approx(
        relativistic_gamma(200) * electron_scattering_factor("Pb", 0.3)
    )
    # textbook values: gamma(200 kV) = 1.3914, lambda(200 kV) = 2.508 pm, lambda(300 kV) = 1.969 pm
    assert relativistic_gamma(200) == pytest.approx(1.39139, abs=1e-4)
    assert electron_wavelength_angstrom(200) == pytest.approx(0.02508, abs=2e-5)
    assert electron_wavelength_angstrom(300) == pytest.approx(0.01969, abs=2e-5)


def test_required_elements_and_pseudo_atom():
    for el in "H C N O S Se Cd Cs Pb Br Sr Ti Si Au Ga As Zn Te I Cl".split():
        a, b = scattering_coefficients(el)
        assert a.shape == (5,) and np.all(b > 0)
    ma = electron_scattering_factor("MA", 0.2)
    parts = sum(n * electron_scattering_factor(e, 0.2) for e, n in (("C", 1), ("N", 1), ("H", 6)))
    assert ma == pytest.approx(parts)
    assert electron_scattering_factor("Pb2+", 0.1) == electron_scattering_factor("Pb", 0.1)
    with pytest.raises(AnalysisError):
        scattering_coefficients("Xx")


def test_library_contents():
    names = library_names()
    for n in ["MAPbBr3", "CsPbBr3", "PbS", "PbSe", "CdSe-zb", "CdSe-wz", "Si", "Au", "SrTiO3"]:
        assert n in names
    assert get_phase("PbS").space_group == "Fm-3m" and get_phase("Si").space_group == "Fd-3m"
    assert get_phase("CdSe-zb").space_group == "F-43m" and get_phase("CdSe-wz").space_group == "P63mc"
    wz = get_phase("CdSe-wz")
    assert (wz.a, wz.c, wz.gamma) == (4.30, 7.01, 120.0) and wz.is_hexagonal
    assert len(get_phase("PbS").sites) == 8 and len(get_phase("Si").sites) == 8
    with pytest.raises(AnalysisError, match="unknown phase"):
        get_phase("unobtainium")
    assert [p.name for p in resolve_phases()] == names


def test_d_spacings_cubic_and_hexagonal():
    assert d_spacing(get_phase("MAPbBr3"), (1, 1, 0)) == pytest.approx(5.933 / math.sqrt(2))
    assert d_spacing(get_phase("PbS"), (2, 2, 0)) == pytest.approx(5.936 / math.sqrt(8))
    wz = get_phase("CdSe-wz")
    # hexagonal: 1/d^2 = 4/3 (h^2 + hk + k^2)/a^2 + l^2/c^2
    for hkl in [(1, 0, 0), (1, 1, 0), (1, 0, 1), (1, 0, 3), (2, -1, 2)]:
        h, k, l = hkl
        expect = 1 / math.sqrt(4 / 3 * (h * h + h * k + k * k) / 4.30**2 + l * l / 7.01**2)
        assert d_spacing(wz, hkl) == pytest.approx(expect)
    assert d_spacing(wz, (1, 0, -1, 0)) == pytest.approx(d_spacing(wz, (1, 0, 0)))  # 4-index accepted
    assert angle_between_reflections(wz, (1, 0, 0), (0, 1, 0)) == pytest.approx(60.0)
    assert angle_between_reflections(wz, (1, 0, 0), (0, 0, 1)) == pytest.approx(90.0)


def test_hexagonal_index_conversions():
    assert hkl_to_hkil((1, 1, 0)) == (1, 1, -2, 0)
    assert uvw_to_uvtw((1, 0, 0)) == (2, -1, -1, 0)
    assert uvw_to_uvtw((0, 0, 1)) == (0, 0, 0, 1)
    wz = get_phase("CdSe-wz")
    # [110] (= [11-20]) is perpendicular to (1-100) = (1-10) and to (0001)
    assert angle_between_reflections(wz, (1, -1, 0), (0, 0, 1)) == pytest.approx(90.0)
    z = zone_axis_reflections(wz, (1, 1, 0), d_min_angstrom=2.0, include_extinct=True)
    assert "hkil" in z.columns
    assert np.all(z[["h", "k", "l"]].to_numpy() @ np.array([1, 1, 0]) == 0)


def test_fcc_mixed_parity_extinct_by_centring():
    pbs = get_phase("PbS")
    for hkl in [(1, 0, 0), (1, 1, 0), (2, 1, 0), (2, 2, 1)]:
        kind, text = extinction_reason(pbs, hkl)
        assert kind == "centring"
        assert "F-centring requires h,k,l all even or all odd" in text
    assert (
        extinction_reason(pbs, (1, 1, 0))[1]
        == "(110) extinct in PbS Fm-3m: F-centring requires h,k,l all even or all odd"
    )
    for hkl in [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1)]:
        assert extinction_reason(pbs, hkl) is None


def test_diamond_200_and_222_extinct_but_not_by_centring():
    si = get_phase("Si")
    kind, text = extinction_reason(si, (2, 0, 0))
    assert kind in ("glide", "screw") and "double diffraction" in text
    assert extinction_reason(si, (2, 2, 2))[0] == "special-position"
    assert extinction_reason(si, (1, 1, 0))[0] == "centring"
    for hkl in [(1, 1, 1), (2, 2, 0), (3, 1, 1), (4, 0, 0)]:
        assert extinction_reason(si, hkl) is None


def test_bcc_h_plus_k_plus_l_odd_extinct():
    fe = Phase.from_space_group("Fe", 229, (2.8665,), [("Fe", (0, 0, 0))])
    assert fe.centring == "I"
    for hkl in [(1, 0, 0), (1, 1, 1), (2, 1, 0)]:
        kind, text = extinction_reason(fe, hkl)
        assert kind == "centring" and "h+k+l even" in text
    for hkl in [(1, 1, 0), (2, 0, 0), (2, 1, 1)]:
        assert extinction_reason(fe, hkl) is None


def test_wurtzite_and_hcp_000l_odd_extinct_by_screw():
    wz = get_phase("CdSe-wz")
    for l in (1, 3, 5):
        kind, text = extinction_reason(wz, (0, 0, l))
        assert kind in ("glide", "screw") and "screw-axis" in text
    for hkl in [(0, 0, 2), (1, 0, 0), (1, 0, 1), (1, 1, 0)]:
        assert extinction_reason(wz, hkl) is None
    mg = Phase.from_space_group("Mg", 194, (3.209, 5.211), [("Mg", (1 / 3, 2 / 3, 0.25))])
    assert extinction_reason(mg, (0, 0, 1)) is not None
    assert extinction_reason(mg, (0, 0, 2)) is None
    # hcp (1 1 -2 1) = (111): h - k = 3n and l odd: special-position absence
    assert extinction_reason(mg, (1, 1, 1)) is not None


def test_relative_intensities_sane():
    pbs = get_phase("PbS")
    F = np.abs(structure_factor(pbs, [(1, 1, 1), (2, 0, 0), (2, 2, 0)]))
    assert F[1] > F[0]  # (200): Pb + S in phase; (111): Pb - S
    s111 = 0.5 / d_spacing(pbs, (1, 1, 1))
    fpb, fs = (electron_scattering_factor(e, s111, beam_energy_kv=200) for e in ("Pb", "S"))
    assert F[0] == pytest.approx(4 * abs(fpb - fs), rel=1e-9)
    gaas = get_phase("GaAs")  # (200) weak in zinc blende with Ga ~ As
    Fg = np.abs(structure_factor(gaas, [(1, 1, 1), (2, 0, 0), (2, 2, 0)]))
    assert Fg[1] < 0.1 * Fg[0]
    s1 = 0.5 / d_spacing(gaas, (1, 1, 1))
    fga, fas = (electron_scattering_factor(e, s1, beam_energy_kv=200) for e in ("Ga", "As"))
    assert Fg[0] == pytest.approx(4 * abs(fga - 1j * fas), rel=1e-9)  # As at (1/4,1/4,1/4): phase i^3
    # Debye-Waller damps high angles more
    F0 = abs(structure_factor(pbs, (4, 0, 0)))
    Fb = abs(structure_factor(pbs, (4, 0, 0), debye_waller_b=1.0))
    assert Fb < F0


def test_reflection_table_and_zone_lists():
    t = reflections(get_phase("SrTiO3"), d_min_angstrom=1.3)
    assert t.allowed.all()  # primitive perovskite: nothing exactly extinct
    z = zone_axis_reflections(get_phase("MAPbBr3"), (1, 1, 1), d_min_angstrom=4.0)
    assert len(z) == 6 and np.allclose(z.d_angstrom, 5.933 / math.sqrt(2))
    az = np.sort(np.mod(z.angle_deg, 360))
    assert np.allclose(np.diff(az), 60.0)
    zp = zone_axis_reflections(get_phase("PbS"), (1, 1, 1), g_max_inv_nm=5.0)  # d >= 2 Å
    assert len(zp) == 6 and np.allclose(zp.d_angstrom, 5.936 / math.sqrt(8))
    zx = zone_axis_reflections(get_phase("PbS"), (1, 1, 1), d_min_angstrom=4.0, include_extinct=True)
    assert len(zx) == 6 and not zx.allowed.any()
    assert zx.extinction_kind.eq("centring").all()


def test_zone_axes_reduced_by_laue_group():
    sto = get_phase("SrTiO3")
    zones = unique_zone_axes(sto, 3)
    assert len(zones) == 13 and zones[:3] == [(0, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert len(equivalent_zone_axes(sto, (1, 1, 0))) == 12
    assert same_zone_axis(sto, (1, 0, 1), (0, -1, -1))
    wz = get_phase("CdSe-wz")
    assert not same_zone_axis(wz, (0, 0, 1), (1, 0, 0))
    assert same_zone_axis(wz, (1, 0, 0), (1, 1, 0))  # a1 and a1 + a2 are both <2-1-10>
    assert zone_axis_of((1, -1, 0), (1, 0, -1)) == (1, 1, 1)


CIF_NACL = """data_NaCl
_cell_length_a 5.6402
_cell_length_b 5.6402
_cell_length_c 5.6402
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""


def test_cif_loading_expands_space_group(tmp_path):
    p = tmp_path / "NaCl.cif"
    p.write_text(CIF_NACL)
    ph = load_cif(p)
    assert ph.name == "NaCl" and ph.space_group == "Fm-3m" and ph.space_group_number == 225
    assert len(ph.sites) == 8 and ph.a == pytest.approx(5.6402)
    assert extinction_reason(ph, (1, 1, 0))[0] == "centring"
    assert extinction_reason(ph, (2, 0, 0)) is None
    with pytest.raises(FileReadError, match="not found"):
        load_cif(tmp_path / "missing.cif")
    bad = tmp_path / "bad.cif"
    bad.write_text("this is not a cif\n")
    with pytest.raises(FileReadError, match="bad.cif"):
        load_cif(bad)


CIF_MIXED = """data_mixed
_cell_length_a 6.0
_cell_length_b 6.0
_cell_length_c 6.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P m -3 m'
_symmetry_Int_Tables_number 221
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Pb1 Pb 0 0 0 1
Br1 Br 0.5 0 0 1
Cs1 Cs 0.5 0.5 0.5 0.5
Rb1 Rb 0.5 0.5 0.5 0.5
"""


def test_cif_partial_occupancy_enters_structure_factor(tmp_path):
    p = tmp_path / "mixed.cif"
    p.write_text(CIF_MIXED)
    ph = load_cif(p)
    centre = sorted((s.element, s.occupancy) for s in ph.sites if s.xyz == (0.5, 0.5, 0.5))
    assert centre == [("Cs", 0.5), ("Rb", 0.5)] and len(ph.sites) == 6
    s = 0.5 / d_spacing(ph, (1, 0, 0))
    f = {e: electron_scattering_factor(e, s, beam_energy_kv=200) for e in ("Pb", "Br", "Cs", "Rb")}
    expect = f["Pb"] + f["Br"] - 0.5 * (f["Cs"] + f["Rb"])  # Br: -1 + 1 + 1; centre: e^{i pi}
    assert structure_factor(ph, (1, 0, 0)).real == pytest.approx(expect, rel=1e-9)
