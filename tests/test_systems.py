"""Tests for qmczoo.chemistry.systems (molecule specifications) and qmczoo.errors."""

import math

import numpy as np
import pytest
import yaml

from qmczoo.errors import ConfigError, QmczooError, SystemSpecError
from qmczoo.chemistry.systems import (
    BOHR_PER_ANGSTROM,
    System,
    get_system,
    molecule_names,
    unit_to_bohr,
)

# name -> (n_up, n_down) as in shared/reference/energies.yaml
REQUIRED = {
    "H": (1, 0),
    "He": (1, 1),
    "H2": (1, 1),
    "Li": (2, 1),
    "LiH": (2, 2),
    "Be": (2, 2),
    "B": (3, 2),
    "C": (4, 2),
    "N2": (7, 7),
}


# ----------------------------------------------------------------------------- errors


def test_error_hierarchy():
    assert issubclass(SystemSpecError, QmczooError)
    assert issubclass(SystemSpecError, ValueError)
    assert issubclass(ConfigError, QmczooError)
    assert issubclass(QmczooError, ValueError)


# ----------------------------------------------------------------------------- named


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_required_named_molecules(name):
    s = get_system(name)
    assert s.name == name
    assert (s.n_up, s.n_down) == REQUIRED[name]
    assert s.spin == REQUIRED[name][0] - REQUIRED[name][1]
    assert s.charge == 0
    assert s.reference_energy is not None and s.reference_energy < 0
    assert s.reference_source


def test_molecules_yaml_matches_reference_file():
    names = molecule_names()
    for name in REQUIRED:
        assert name in names
    assert "H4_rectangle" not in names
    assert not any("C4H4" in n for n in names)
    assert get_system("H2").positions[1, 0] == pytest.approx(1.4)
    assert get_system("LiH").positions[1, 0] == pytest.approx(3.015)
    assert get_system("N2").positions[1, 0] == pytest.approx(2.068)
    assert get_system("LiH").reference_energy == pytest.approx(-8.070548)


@pytest.mark.parametrize("name", molecule_names())
def test_all_named_molecules_build(name):
    s = get_system(name)
    assert s.n_electrons == round(sum(s.charges)) - s.charge
    assert s.positions.shape == (s.n_nuclei, 3)
    counts = s.atom_electron_counts()
    assert len(counts) == s.n_nuclei
    assert sum(u for u, _ in counts) == s.n_up
    assert sum(d for _, d in counts) == s.n_down
    assert all(u >= 0 and d >= 0 for u, d in counts)


@pytest.mark.parametrize("spec", ["lih", "LIH", "LiH", "  lih  "])
def test_case_insensitive_names(spec):
    s = get_system(spec)
    assert s.name == "LiH"
    assert (s.n_up, s.n_down) == (2, 2)


def test_exact_element_symbol_beats_case_insensitive_name():
    assert get_system("CO").n_nuclei == 2  # carbon monoxide
    assert get_system("co").n_nuclei == 2
    cobalt = get_system("Co")
    assert cobalt.symbols == ("Co",) and cobalt.n_electrons == 27


@pytest.mark.parametrize("symbol,n_el,spin", [("Na", 11, 1), ("Ar", 18, 0), ("S", 16, 2), ("Fe", 26, 4)])
def test_bare_element(symbol, n_el, spin):
    s = get_system(symbol)
    assert s.symbols == (symbol,)
    assert s.coords == ((0.0, 0.0, 0.0),)
    assert s.n_electrons == n_el and s.spin == spin
    assert get_system(symbol.lower()).symbols == (symbol,)


def test_named_overrides():
    s = get_system("LiH", charge=1, spin=1)
    assert (s.n_up, s.n_down) == (2, 1)
    assert s.charge == 1
    assert s.reference_energy is None  # a different state than the reference
    c = get_system("C", spin=0)
    assert (c.n_up, c.n_down) == (3, 3) and c.reference_energy is None
    assert get_system("C", spin=2).reference_energy is not None  # same state
    cation = get_system("C", charge=1)  # spin defaults to n_electrons % 2
    assert (cation.n_up, cation.n_down) == (3, 2)
    # named geometries are in bohr whatever `unit` says
    assert get_system("H2", unit="angstrom").positions[1, 0] == pytest.approx(1.4)


@pytest.mark.parametrize(
    "spec,kwargs",
    [
        ("LiH", dict(charge=1, spin=1)),
        ("LiH", dict(charge=-1, spin=1)),
        ("LiH", dict(spin=-2)),
        ("N2", dict(spin=2)),
        ("N2", dict(charge=2)),
        ("H2", dict(charge=1)),
        ("H10_chain", dict(spin=-4)),
        ("CH4", dict(charge=-2, spin=0)),
        ("Li", dict(spin=-1)),
        ("Ne", dict(charge=8, spin=2)),
        ("O", dict(spin=0)),
    ],
)
def test_atom_electron_counts_charged_and_spin_changed(spec, kwargs):
    s = get_system(spec, **kwargs)
    counts = s.atom_electron_counts()
    assert sum(u for u, _ in counts) == s.n_up
    assert sum(d for _, d in counts) == s.n_down
    assert all(u >= 0 and d >= 0 for u, d in counts)


def test_atom_electron_counts_shapes():
    assert get_system("H2").atom_electron_counts() == [(1, 0), (0, 1)]
    assert get_system("N2").atom_electron_counts() == [(5, 2), (2, 5)]
    assert get_system("C").atom_electron_counts() == [(4, 2)]
    assert get_system("Li", spin=-1).atom_electron_counts() == [(1, 2)]


# ----------------------------------------------------------------------------- geometry input


def test_inline_bohr():
    s = get_system("H 0 0 0; H 0 0 1.4", unit="bohr")
    assert s.name == "custom"
    assert s.symbols == ("H", "H")
    np.testing.assert_allclose(s.positions, [[0, 0, 0], [0, 0, 1.4]])
    assert s.positions.dtype == np.float64
    assert (s.n_up, s.n_down) == (1, 1)
    assert s.nuclear_repulsion == pytest.approx(1 / 1.4)


@pytest.mark.parametrize("unit", ["angstrom", "Angstrom", "ang", "A", "a"])
def test_inline_angstrom(unit):
    s = get_system("H 0 0 0\nH 0, 0, 0.74", unit=unit)
    assert s.positions[1, 2] == pytest.approx(0.74 * 1.8897261246)
    assert BOHR_PER_ANGSTROM == 1.8897261246


@pytest.mark.parametrize("unit", ["bohr", "BOHR", "b", "B"])
def test_unit_bohr_aliases(unit):
    assert unit_to_bohr(unit) == 1.0


def test_inline_options():
    s = get_system("li 0 0 0; H 3.015 0 0;", charge=1, spin=1, unit="bohr")
    assert s.symbols == ("Li", "H")
    assert (s.n_up, s.n_down) == (2, 1)
    assert get_system("O 0 0 0").spin == 0  # default spin for geometries: n_electrons % 2
    assert get_system("H 0 0 0; H 0 0 1.4", spin=-2).n_down == 2
    s3 = get_system([("H", 0, 0, 0), ("H", (0, 0, 1.4))], unit="bohr")
    assert s3.nuclear_repulsion == pytest.approx(1 / 1.4)


def test_h2_nuclear_repulsion():
    assert get_system("H2").nuclear_repulsion == pytest.approx(1 / 1.4)
    assert get_system("He").nuclear_repulsion == 0.0


def test_xyz_file_with_header(tmp_path):
    path = tmp_path / "water.xyz"
    path.write_text("3\nwater, angstrom\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n")
    s = get_system(str(path), unit="angstrom")
    assert s.name == "water"
    assert s.symbols == ("O", "H", "H")
    assert (s.n_up, s.n_down) == (5, 5)
    assert s.positions[1, 1] == pytest.approx(0.7572 * BOHR_PER_ANGSTROM)
    assert get_system(path, unit="angstrom") == s  # pathlib.Path works too


def test_xyz_file_without_header(tmp_path):
    path = tmp_path / "lih.xyz"
    path.write_text("Li 0 0 0\nH 3.015 0 0\n")
    s = get_system(str(path), unit="bohr")
    assert s.symbols == ("Li", "H")
    assert s.positions[1, 0] == pytest.approx(3.015)


def test_coordinates_default_to_angstrom_named_molecules_stay_in_bohr(tmp_path):
    """xyz files, inline strings and atom lists are in angstrom unless told (as in pyscf)."""
    from qmczoo.chemistry.systems import GeometryWarning, read_system

    path = tmp_path / "h2.xyz"
    path.write_text("2\nH2 in angstrom\nH 0 0 0\nH 0 0 0.74\n")
    for spec in (str(path), path, "H 0 0 0; H 0 0 0.74", [("H", 0, 0, 0), ("H", 0, 0, 0.74)]):
        s, unit = read_system(spec)
        assert unit == "angstrom"
        assert s.positions[1, 2] == pytest.approx(0.74 * BOHR_PER_ANGSTROM)
        with pytest.warns(GeometryWarning):  # 0.74 bohr is no bond
            assert read_system(spec, unit="bohr")[1] == "bohr"
    s, unit = read_system("H2", unit="angstrom")
    assert unit == "bohr" and s.positions[1, 0] == pytest.approx(1.4)


def test_implausibly_short_bond_warns_but_builds():
    from qmczoo.chemistry.systems import GeometryWarning

    with pytest.warns(GeometryWarning, match=r"0\.74 bohr apart \(coordinates read in bohr\).*--unit angstrom"):
        s = get_system("H 0 0 0; H 0 0 0.74", unit="bohr")
    assert s.positions[1, 2] == pytest.approx(0.74)
    with pytest.warns(GeometryWarning, match="C.*C"):
        get_system("C 0 0 0; C 0 0 1.5", unit="bohr")  # 0.79 angstrom: no C-C bond is that short
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_system("H 0 0 0; H 0 0 0.74")  # angstrom: fine
        get_system("H2")  # named molecules are not checked
        get_system("N 0 0 0; N 0 0 2.07", unit="bohr")  # N2 in bohr: fine


def test_a_huge_anion_is_refused():
    _raises(["charge -1000", "extra electrons"], "H2", charge=-1000)
    assert get_system("H2", charge=-2).n_electrons == 4


def test_xyz_text_inline_with_header():
    s = get_system("2\n\nH 0 0 0\nH 0 0 1.4")
    assert s.n_nuclei == 2


def test_pyscf_round_trip():
    s = get_system("LiH")
    mol = s.to_pyscf(basis="sto-3g")
    assert mol.unit.lower().startswith("b")
    assert mol.nelec == (2, 2)
    assert mol.spin == 0 and mol.charge == 0 and mol.verbose == 0
    np.testing.assert_allclose(mol.atom_coords(), s.positions)
    back = get_system(mol)
    assert back.symbols == s.symbols
    assert (back.n_up, back.n_down) == (s.n_up, s.n_down)
    np.testing.assert_allclose(back.positions, s.positions, atol=1e-12)
    assert back.nuclear_repulsion == pytest.approx(mol.energy_nuc())

    c = get_system("C").to_pyscf(basis="sto-3g")
    assert c.nelec == (4, 2)
    ion = get_system("LiH", charge=1, spin=-1).to_pyscf(basis="sto-3g")
    assert ion.nelec == (1, 2) and get_system(ion).spin == -1


def test_pyscf_mole_in_angstrom():
    from pyscf import gto

    mol = gto.M(atom="H 0 0 0; H 0 0 0.74", unit="Angstrom", basis="sto-3g", verbose=0)
    s = get_system(mol)
    assert s.positions[1, 2] == pytest.approx(0.74 * BOHR_PER_ANGSTROM, rel=1e-6)


def test_system_passthrough_and_dict_round_trip():
    s = get_system("N2", spin=2)
    assert get_system(s) is s
    d = s.to_dict()
    assert yaml.safe_load(yaml.safe_dump(d)) == d  # plain Python types only
    back = System.from_dict(d)
    assert back == s
    assert hash(back) == hash(s)
    assert get_system(d) == s
    named = get_system("LiH")
    assert System.from_dict(named.to_dict()).reference_energy == named.reference_energy


def test_describe_and_properties():
    s = get_system("LiH")
    assert s.describe() == "LiH: 2 nuclei, 4 electrons (2 up, 2 down)"
    assert get_system("H").describe() == "H: 1 nucleus, 1 electron (1 up, 0 down)"
    assert "charge +1" in get_system("LiH", charge=1, spin=1).describe()
    assert s.n_nuclei == 2 and s.n_electrons == 4
    assert isinstance(s.charges[0], float)
    p = s.positions
    p[0, 0] = 99.0  # a copy: the system is not changed
    assert s.positions[0, 0] == 0.0
    with pytest.raises(Exception):
        s.n_up = 3  # frozen


# ----------------------------------------------------------------------------- bad input


def _raises(match, *args, **kwargs):
    with pytest.raises(SystemSpecError) as info:
        get_system(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    for word in [match] if isinstance(match, str) else match:
        assert word in msg, msg
    return msg


def test_bad_unknown_element():
    _raises(["unknown element", "'Xx'", "atom 2"], "H 0 0 0; Xx 0 0 1")


def test_bad_unknown_element_in_xyz(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("2\ncomment\nH 0 0 0\nQq 0 0 1\n")
    _raises(["'Qq'", "line 4"], str(path))


def test_bad_unparsable_coordinate():
    _raises(["'abc'", "atom 2", "expected a number"], "H 0 0 0; H 0 abc 1.4")


def test_bad_wrong_field_count():
    _raises(["atom 1", "expected 'Symbol x y z'"], "H 0 0; H 0 0 1.4")


def test_bad_xyz_count_mismatch(tmp_path):
    path = tmp_path / "short.xyz"
    path.write_text("3\ncomment\nH 0 0 0\nH 0 0 1.4\n")
    _raises(["declares 3 atoms"], str(path))


def test_bad_xyz_line(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("H 0 0 0\nH 0 0 one\n")
    _raises(["'one'", "line 2"], str(path))


@pytest.mark.parametrize("spec", ["", "   ", ";", "\n\n"])
def test_bad_empty(spec):
    _raises("empty", spec)


def test_bad_empty_list_and_file(tmp_path):
    _raises("empty", [])
    path = tmp_path / "empty.xyz"
    path.write_text("\n")
    _raises("empty", str(path))


def test_bad_unknown_name():
    msg = _raises(["'Lithium'", "known molecules", "LiH", "N2"], "Lithium")
    assert "H2O" in msg
    _raises(["unknown system", "'lithium hydride'"], "lithium hydride")


def test_bad_missing_file():
    _raises(["not found", "nope.xyz"], "nope.xyz")


def test_bad_electron_count():
    _raises(["non-positive electron count", "0 electrons"], "H", charge=1)
    _raises(["non-positive electron count", "-2 electrons"], "LiH", charge=6)
    with pytest.raises(SystemSpecError, match="negative electron count"):
        System("x", ("H",), (1.0,), ((0.0, 0.0, 0.0),), n_up=-1, n_down=1)


def test_bad_spin():
    _raises(["spin 1", "parity", "4 electrons"], "LiH", spin=1)
    _raises(["spin 6", "4 electrons"], "LiH", spin=6)
    _raises(["spin -6"], "LiH", spin=-6)
    _raises(["spin 0", "parity"], "H 0 0 0", spin=0)


def test_bad_close_nuclei():
    _raises(["atoms 1 (H) and 2 (He)", "0.05 bohr"], "H 0 0 0; He 0 0 0.05", unit="bohr")
    # 0.05 angstrom = 0.0945 bohr is too close as well
    _raises(["0.0944863 bohr"], "H 0 0 0; H 0 0 0.05", unit="angstrom")


@pytest.mark.parametrize("unit", ["meter", "nm", "", "au"])
def test_bad_unit(unit):
    _raises(["unit", repr(unit)], "H2", unit=unit)


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_bad_non_finite_coordinate(bad):
    _raises(["non-finite", bad], f"H 0 0 0; H 0 0 {bad}")


def test_bad_non_finite_coordinate_list_and_dict():
    _raises("non-finite", [("H", 0.0, 0.0, math.nan)])
    d = get_system("H2").to_dict()
    d["coords"][1][0] = float("inf")
    with pytest.raises(SystemSpecError, match="non-finite"):
        System.from_dict(d)


def test_bad_dict_and_types():
    _raises("unknown key", {"symbols": ["H"], "coords": [[0, 0, 0]], "n_up": 1, "n_down": 0, "x": 1})
    _raises("missing", {"symbols": ["H"]})
    _raises("cannot build a system", 3.5)
    _raises(["charge must be an integer", "0.5"], "H 0 0 0; H 0 0 1.4", charge=0.5)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_to_pyscf_bad_basis():
    with pytest.raises(SystemSpecError, match="pyscf could not build"):
        get_system("He").to_pyscf(basis="no-such-basis")
