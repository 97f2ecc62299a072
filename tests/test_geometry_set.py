"""GeometrySet: scans, geometry files, round trips, reference energies and the PES plot (no training)."""

import dataclasses

import numpy as np
import pytest
import yaml

from qmczoo.errors import ConfigError, QmczooError, SystemSpecError
from qmczoo.chemistry.geometry_set import MAX_GEOMETRIES, GeometrySet, geometry_set
from qmczoo.chemistry.reference_curves import interpolate_reference, reference_curve, reference_energies
from qmczoo.chemistry.scans import parse_scan
from qmczoo.chemistry.geometry_files import read_geometry_file
from qmczoo.runs.plotting import plot_pes
from qmczoo.chemistry.systems import BOHR_PER_ANGSTROM, get_system

H2_EXACT_1_4 = -1.174475714


@pytest.fixture(scope="module")
def h2():
    return get_system("H2")


@pytest.fixture(scope="module")
def h2o():
    return get_system("H2O")


def _bond_lengths(gset):
    return np.linalg.norm(gset.positions[:, 1] - gset.positions[:, 0], axis=-1)


# --------------------------------------------------------------------------- scans


def test_bond_scan_17_points(h2):
    gset = parse_scan(h2, "bond=0.8:4.0:17")
    assert gset.n_geometries == 17
    assert gset.positions.shape == (17, 2, 3) and gset.positions.dtype == np.float64
    assert gset.coordinate == "bond"
    assert gset.values[0] == 0.8 and gset.values[-1] == 4.0
    np.testing.assert_allclose(gset.values, np.linspace(0.8, 4.0, 17), atol=1e-12)
    np.testing.assert_allclose(_bond_lengths(gset), gset.values, atol=1e-12)
    np.testing.assert_array_equal(gset.positions[:, 0], np.zeros((17, 3)))  # atom 0 fixed
    np.testing.assert_allclose(gset.positions[:, 1, 1:], 0.0, atol=1e-15)  # along the x bond
    assert gset.labels[3] == "bond=1.400" and len(set(gset.labels)) == 17
    np.testing.assert_array_equal(gset.system.positions, gset.positions[0])
    assert (gset.system.n_up, gset.system.n_down, gset.system.name) == (1, 1, "H2")


def test_bond_scan_keeps_direction_and_atom0():
    mol = get_system("Li 1 2 3; H 1 2 6", unit="bohr")
    gset = parse_scan(mol, "bond=2,4")
    np.testing.assert_array_equal(gset.positions[:, 0], [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_allclose(gset.positions[:, 1], [[1, 2, 5], [1, 2, 7]])
    assert gset.values == (2.0, 4.0)


def test_bond_scan_angstrom(h2):
    gset = parse_scan(h2, "bond=0.5:1.0:3", unit="angstrom")
    expected = np.array([0.5, 0.75, 1.0]) * BOHR_PER_ANGSTROM
    np.testing.assert_allclose(gset.values, expected, rtol=1e-12)
    np.testing.assert_allclose(_bond_lengths(gset), expected, rtol=1e-12)
    assert parse_scan(h2, "bond=1.0", unit="A").values == pytest.approx((BOHR_PER_ANGSTROM,))


def test_scale_scan(h2o):
    gset = parse_scan(h2o, "scale=0.9:1.1:3", unit="angstrom")  # unit ignored for scale
    assert gset.coordinate == "scale" and gset.values == pytest.approx((0.9, 1.0, 1.1))
    centre = h2o.positions.mean(axis=0)
    for g, s in enumerate(gset.values):
        np.testing.assert_allclose(gset.positions[g], centre + s * (h2o.positions - centre), atol=1e-12)
        np.testing.assert_allclose(gset.positions[g].mean(axis=0), centre, atol=1e-12)
    np.testing.assert_allclose(gset.positions[1], h2o.positions, atol=1e-12)
    assert gset.labels == ("scale=0.900", "scale=1.000", "scale=1.100")


def test_comma_list_single_value_and_spacing(h2):
    gset = parse_scan(h2, " Bond = 1.0 , 1.4,2.5 ")
    assert gset.values == (1.0, 1.4, 2.5)
    np.testing.assert_allclose(_bond_lengths(gset), [1.0, 1.4, 2.5])
    one = parse_scan(h2, "bond=2.0")
    assert one.n_geometries == 1 and one.values == (2.0,)
    down = parse_scan(h2, "bond=3:1:3")  # STOP below START is allowed
    assert down.values == (3.0, 2.0, 1.0)


def test_labels_tell_close_values_apart(h2):
    gset = parse_scan(h2, "bond=1.4,1.4001")
    assert len(set(gset.labels)) == 2


@pytest.mark.parametrize(
    "spec, exc, phrase",
    [
        ("", ConfigError, "empty scan"),
        ("   ", ConfigError, "empty scan"),
        ("bond", ConfigError, "no '='"),
        ("angle=1:2:3", ConfigError, "known coordinates are bond, scale"),
        ("bond=", ConfigError, "no values"),
        ("bond=a:2:3", ConfigError, "as a number"),
        ("bond=1,x", ConfigError, "as a number"),
        ("bond=1,,2", ConfigError, "as a number"),
        ("bond=nan", ConfigError, "not a finite number"),
        ("bond=1:2", ConfigError, "three fields"),
        ("bond=1:2:3:4", ConfigError, "three fields"),
        ("bond=1:2:2.5", ConfigError, "COUNT must be an integer >= 2"),
        ("bond=1:2:x", ConfigError, "COUNT must be an integer >= 2"),
        ("bond=1:2:1", ConfigError, "COUNT must be an integer >= 2"),
        ("bond=1:2:0", ConfigError, "COUNT must be an integer >= 2"),
        ("bond=1.4:1.4:5", ConfigError, "START and STOP"),
        ("bond=-1:2:4", ConfigError, "must be positive"),
        ("bond=0,1", ConfigError, "must be positive"),
        ("scale=0", ConfigError, "scale factor must be positive"),
        ("bond=1:2:1001", ConfigError, f"at most {MAX_GEOMETRIES}"),
        ("bond=1,2,1", ConfigError, "twice"),
        ("bond=0.05:1:3", SystemSpecError, "geometry 0 (bond=0.050)"),
    ],
)
def test_scan_errors(h2, spec, exc, phrase):
    with pytest.raises(exc) as info:
        parse_scan(h2, spec)
    assert phrase in str(info.value)
    assert isinstance(info.value, QmczooError)


def test_scan_errors_about_the_molecule(h2o):
    with pytest.raises(ConfigError, match="exactly two nuclei, but H2O has 3"):
        parse_scan(h2o, "bond=1:2:3")
    with pytest.raises(ConfigError, match="at least two nuclei"):
        parse_scan(get_system("He"), "scale=1:2:3")
    with pytest.raises(ConfigError, match="more than|at most 1000"):
        parse_scan(h2o, "scale=" + ",".join(str(1 + k / 1e4) for k in range(1001)))
    with pytest.raises(SystemSpecError, match="geometry 0"):
        parse_scan(h2o, "scale=0.01")
    with pytest.raises(SystemSpecError, match="unknown length unit"):
        parse_scan(get_system("H2"), "bond=1:2:3", unit="parsec")


# --------------------------------------------------------------------------- GeometrySet itself


def test_positions_read_only_and_copied(h2):
    pos = np.array([h2.positions, h2.positions * 1.5])
    gset = GeometrySet(h2, pos, None, (0, 1), ("a", "b"))
    pos[1, 1, 0] = 99.0
    assert gset.positions[1, 1, 0] == pytest.approx(2.1)
    with pytest.raises(ValueError):
        gset.positions[0, 0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        gset.labels = ("c", "d")
    assert gset.values == (0.0, 1.0)


def test_validation(h2):
    good = h2.positions[None]
    with pytest.raises(SystemSpecError, match="shape"):
        GeometrySet(h2, np.zeros((1, 3, 3)), None, (0.0,), ("x",))
    with pytest.raises(SystemSpecError, match="shape"):
        GeometrySet(h2, np.zeros((0, 2, 3)), None, (), ())
    with pytest.raises(SystemSpecError, match="non-finite"):
        GeometrySet(h2, np.array([h2.positions, [[0, 0, 0], [np.nan, 0, 0]]]), None, (0, 1), ("a", "b"))
    with pytest.raises(SystemSpecError, match="one value and one label"):
        GeometrySet(h2, good, None, (0.0, 1.0), ("x",))
    with pytest.raises(SystemSpecError, match=r"geometry 1 \(squashed\).*apart"):
        GeometrySet(h2, np.array([h2.positions, [[0, 0, 0], [0.01, 0, 0]]]), None, (0, 1), ("ok", "squashed"))
    with pytest.raises(SystemSpecError, match="first geometry"):
        GeometrySet(h2, h2.positions[None] * 2, None, (0.0,), ("x",))
    with pytest.raises(ConfigError, match="unknown scan coordinate"):
        GeometrySet(h2, good, "angle", (0.0,), ("x",))


def test_round_trip_and_equality(h2, h2o):
    for gset in (parse_scan(h2, "bond=0.8:4.0:17"), parse_scan(h2o, "scale=0.9,1.2"), geometry_set(h2)):
        d = gset.to_dict()
        text = yaml.safe_dump(d)  # YAML-safe: plain types only
        back = GeometrySet.from_dict(yaml.safe_load(text))
        assert back == gset and hash(back) == hash(gset)
        np.testing.assert_array_equal(back.positions, gset.positions)
    a, b = parse_scan(h2, "bond=1,2"), parse_scan(h2, "bond=1,2.5")
    assert a != b
    with pytest.raises(ConfigError, match="unknown key"):
        GeometrySet.from_dict({**a.to_dict(), "extra": 1})
    with pytest.raises(ConfigError, match="missing key"):
        GeometrySet.from_dict({k: v for k, v in a.to_dict().items() if k != "labels"})


def test_system_at(h2):
    gset = parse_scan(h2, "bond=1.0,1.4,1.5")
    s = gset.system_at(1)
    assert s.name == "H2" and (s.n_up, s.n_down) == (1, 1)
    np.testing.assert_array_equal(s.positions, gset.positions[1])
    assert s.reference_energy == pytest.approx(H2_EXACT_1_4)
    assert gset.system_at(2).reference_energy is None
    assert gset.system_at(-1) == gset.system_at(2)
    with pytest.raises(IndexError):
        gset.system_at(3)
    water = parse_scan(get_system("H2O"), "scale=1.0,1.1")
    assert water.system_at(0).reference_energy == get_system("H2O").reference_energy
    assert water.system_at(1).reference_energy is None


def test_geometry_set_entry_point(h2, tmp_path):
    only = geometry_set(h2)
    assert only.n_geometries == 1 and only.coordinate is None
    assert only.labels == ("given geometry",) and only.values == (0.0,)
    assert only.system == h2
    assert geometry_set(h2, scan="bond=1:2:3").coordinate == "bond"
    assert geometry_set(h2, scan="bond=1", unit="angstrom").values == pytest.approx((BOHR_PER_ANGSTROM,))
    path = tmp_path / "g.yaml"
    path.write_text("geometries:\n  - atoms: [[H, 0, 0, 0], [H, 2, 0, 0]]\n")
    assert geometry_set(h2, geometries=path).values == (0.0,)
    with pytest.raises(ConfigError, match="not both"):
        geometry_set(h2, scan="bond=1:2:3", geometries=path)


# --------------------------------------------------------------------------- geometry files


def test_yaml_file(tmp_path, h2):
    path = tmp_path / "h2.yaml"
    path.write_text(
        "units: bohr\n"
        "geometries:\n"
        "  - label: R=1.4\n"
        "    atoms: [[H, 0, 0, 0], [H, 1.4, 0, 0]]\n"
        "  - atoms: [[H, 0, 0, 0], [H, 2.0, 0, 0]]\n"
    )
    gset = read_geometry_file(path)
    assert gset.n_geometries == 2 and gset.coordinate is None
    assert gset.labels == ("R=1.4", "geometry 1") and gset.values == (0.0, 1.0)
    np.testing.assert_allclose(_bond_lengths(gset), [1.4, 2.0])
    assert gset.system.name == "h2" and (gset.system.n_up, gset.system.n_down) == (1, 1)
    assert gset.system.reference_energy == pytest.approx(H2_EXACT_1_4)
    with_system = read_geometry_file(path, h2)
    assert with_system.system == h2 and with_system.system_at(1).name == "H2"


def test_yaml_units_and_default_spin(tmp_path):
    path = tmp_path / "lih.yml"
    path.write_text("units: angstrom\ngeometries:\n  - atoms: [[Li, 0, 0, 0], [H, 1.6, 0, 0]]\n")
    gset = read_geometry_file(path, unit="bohr")  # the file's own units win
    assert _bond_lengths(gset)[0] == pytest.approx(1.6 * BOHR_PER_ANGSTROM)
    path.write_text("geometries:\n  - atoms: [[Li, 0, 0, 0], [H, 1.6, 0, 0]]\n  - atoms: [[Li, 0, 0, 0], [H, 3, 0, 0]]\n")
    assert _bond_lengths(read_geometry_file(path, unit="angstrom"))[1] == pytest.approx(3 * BOHR_PER_ANGSTROM)
    assert _bond_lengths(read_geometry_file(path))[1] == pytest.approx(3.0)  # default bohr
    li = tmp_path / "li.yaml"
    li.write_text("geometries:\n  - atoms: [[Li, 0, 0, 0], [Li, 5, 0, 0], [H, 0, 3, 0]]\n")
    s = read_geometry_file(li).system
    assert (s.n_up, s.n_down, s.charge) == (4, 3, 0)


def test_xyz_file(tmp_path, h2):
    path = tmp_path / "scan.xyz"
    path.write_text(
        "2\nR = 0.74 A\nH 0 0 0\nH 0.74 0 0\n\n"
        "2\n\nH 0 0 0\nH 1.0 0 0\n"
        "2\nstretched\nH 0 0 0\nH 0 0 2.0\n"
    )
    gset = read_geometry_file(path, h2)
    assert gset.labels == ("R = 0.74 A", "geometry 1", "stretched")
    np.testing.assert_allclose(_bond_lengths(gset), np.array([0.74, 1.0, 2.0]) * BOHR_PER_ANGSTROM)
    assert gset.values == (0.0, 1.0, 2.0) and gset.system.name == "H2"
    in_bohr = read_geometry_file(path, h2, unit="bohr")
    np.testing.assert_allclose(_bond_lengths(in_bohr), [0.74, 1.0, 2.0])
    no_suffix = tmp_path / "frames.txt"
    no_suffix.write_text(path.read_text())
    assert read_geometry_file(no_suffix).n_geometries == 3


def test_element_mismatch(tmp_path, h2):
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "geometries:\n"
        "  - atoms: [[H, 0, 0, 0], [H, 1.4, 0, 0]]\n"
        "  - label: wrong\n    atoms: [[H, 0, 0, 0], [He, 1.4, 0, 0]]\n"
    )
    with pytest.raises(SystemSpecError, match=r"geometry 1 \(wrong\).*H He.*geometry 0 has H H"):
        read_geometry_file(path)
    lih = tmp_path / "lih.xyz"
    lih.write_text("2\n\nLi 0 0 0\nH 1.6 0 0\n")
    with pytest.raises(SystemSpecError, match="the system H2 has H H"):
        read_geometry_file(lih, h2)
    three = tmp_path / "three.xyz"
    three.write_text("2\n\nH 0 0 0\nH 1 0 0\n3\n\nH 0 0 0\nH 1 0 0\nH 2 0 0\n")
    with pytest.raises(SystemSpecError, match="geometry 1"):
        read_geometry_file(three)


@pytest.mark.parametrize(
    "name, text, exc, phrase",
    [
        ("bad.yaml", "geometries: [\n", ConfigError, "not valid YAML"),
        ("list.yaml", "- atoms: [[H, 0, 0, 0]]\n", ConfigError, "must be a mapping"),
        ("empty.yaml", "geometries: []\n", ConfigError, "non-empty 'geometries'"),
        ("nothing.yaml", "", ConfigError, "must be a mapping"),
        ("key.yaml", "geometries: [{atoms: [[H, 0, 0, 0]]}]\nunit: bohr\n", ConfigError, "unknown key"),
        ("entry.yaml", "geometries: [{label: a}]\n", ConfigError, "geometry 0"),
        ("row.yaml", "geometries:\n  - atoms: [[H, 0, 0, 0]]\n  - atoms: [[H, 0, 0]]\n",
         SystemSpecError, "geometry 1"),
        ("elem.yaml", "geometries: [{atoms: [[Xx, 0, 0, 0]]}]\n", SystemSpecError, "unknown element"),
        ("unit.yaml", "units: furlong\ngeometries: [{atoms: [[H, 0, 0, 0]]}]\n", SystemSpecError, "unknown length unit"),
        ("overlap.yaml", "geometries: [{atoms: [[H, 0, 0, 0], [H, 0, 0, 0.01]]}]\n", SystemSpecError,
         "geometry 0 of"),
        ("short.xyz", "2\ncomment\nH 0 0 0\n", ConfigError, "only 1 atom line"),
        ("head.xyz", "2\n\nH 0 0 0\nH 1 0 0\nnot a count\n", ConfigError, "geometry 1"),
        ("atom.xyz", "2\n\nH 0 0 0\nH 1 0 zero\n", SystemSpecError, "geometry 0"),
        ("blank.xyz", "\n\n", ConfigError, "no geometries"),
    ],
)
def test_file_errors(tmp_path, name, text, exc, phrase):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(exc) as info:
        read_geometry_file(path)
    assert phrase in str(info.value)
    assert name in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="geometry file not found.*nope.yaml"):
        read_geometry_file(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- reference energies


def test_reference_curve():
    r, e, source = reference_curve()
    assert r.shape == e.shape == (17,)
    assert np.all(np.diff(r) > 0)
    assert e[np.flatnonzero(np.isclose(r, 1.4))[0]] == pytest.approx(H2_EXACT_1_4, abs=1e-12)
    assert "Sims" in source
    with pytest.raises(ConfigError, match="known curves are h2_dissociation"):
        reference_curve("n2")


def test_reference_energies(h2, h2o):
    gset = parse_scan(h2, "bond=0.8:4.0:17")
    refs = reference_energies(gset)
    table = dict(zip(*(a.tolist() for a in reference_curve()[:2])))
    for value, ref in zip(gset.values, refs):
        match = [t for t in table if abs(t - value) <= 1e-6]
        if match:
            assert ref == table[match[0]]
        else:
            assert ref is None
    assert refs[3] == pytest.approx(H2_EXACT_1_4)
    assert [v for v, ref in zip(gset.values, refs) if ref is None] == pytest.approx([3.4, 3.6, 3.8])
    assert reference_energies(parse_scan(h2, "bond=1.4000005,1.40001"))[0] is not None
    assert reference_energies(parse_scan(h2, "bond=1.4000005,1.40001"))[1] is None
    assert reference_energies(parse_scan(h2o, "scale=1,1.1")) == [None, None]
    cation = get_system("H 0 0 0; H 1.4 0 0", unit="bohr", charge=1)
    assert reference_energies(parse_scan(cation, "bond=1.4")) == [None]


def test_interpolate_reference():
    r, e, _ = reference_curve()
    out = interpolate_reference([0.5, 0.6, 1.4, 1.45, 6.0, 7.0], r, e)
    assert np.isnan(out[0]) and np.isnan(out[-1])
    assert out[1] == e[0] and out[2] == pytest.approx(H2_EXACT_1_4) and out[4] == e[-1]
    assert e[4] < out[3] < e[5]  # 1.45 bohr: between the 1.4 minimum and 1.6


# --------------------------------------------------------------------------- plot


def test_plot_pes(tmp_path):
    r, e, source = reference_curve()
    x = np.linspace(0.8, 4.0, 9)
    energies = interpolate_reference(x, r, e) + 1e-3
    errors = np.full(x.shape, 2e-4)
    energies[2] = np.nan  # a failed geometry is left out
    with_ref = plot_pes(x, energies, errors, tmp_path / "pes.png", reference=(r, e, source), title="H2")
    assert with_ref == tmp_path / "pes.png"
    assert with_ref.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = plot_pes([0.9, 1.0, 1.1], [-76.1, -76.2, -76.15], None, str(tmp_path / "plain.png"),
                     xlabel="scale factor", label="psiformer")
    assert plain.stat().st_size > 1000
    far = plot_pes([7.0, 8.0], [-1.0, -1.0], [0.0, 0.0], tmp_path / "far.png", reference=(r, e, source))
    assert far.is_file()
