"""What an ansatz imposes on psi by symmetry (issue 28, item 3): derived from its slot fillers,
checked on psi (rotate / invert the electrons about an atom, nuclei fixed), shown by
`qmczoo info`, and warned about when a system's Hartree–Fock state lacks the symmetry."""

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from qmczoo import registry, testing
from qmczoo.cli import app
from qmczoo.errors import ConfigError
from qmczoo.registry import claim_variants, get_ansatz, layer_claims, list_layers
from qmczoo.registry.state_check import hartree_fock_changes, symmetry_warnings
from qmczoo.registry.symmetry import Imposed, system_kind, system_operations
from qmczoo.chemistry.systems import get_system
from qmczoo.testing.imposed import check_imposed_symmetry

runner = CliRunner()
BOTH = ["rotation_invariant", "inversion_even"]


@pytest.mark.parametrize("name, options, general, on_atom", [
    ("ferminet", {}, [], []),  # raw displacement vectors in its stream inputs
    ("ferminet", {"embedding": "schnet_embedding"}, BOTH, BOTH),
    ("ferminet", {"embedding": "schnet_embedding", "jastrow": "neural_jastrow"}, BOTH, BOTH),
    ("ferminet", {"embedding": "schnet_embedding", "jastrow": "cusp_jastrow"}, BOTH, BOTH),
    # the full envelope has axes but no sense: it keeps inversion invariance (even parity only)
    ("ferminet", {"embedding": "schnet_embedding", "envelope": "full_envelope"}, ["inversion_even"],
     ["inversion_even"]),
    ("ferminet", {"embedding": "e3nn_embedding"}, [], []),  # the raw irreps components reach the head
    ("ferminet", {"embedding": "e3nn_embedding", "embedding.readout": "invariant"}, BOTH, BOTH),
    ("ferminet", {"embedding": "e3nn_embedding", "embedding.lmax": 0}, BOTH, BOTH),
    ("paulinet", {}, [], []),  # its Hartree–Fock baseline hands on p orbitals
    ("hybrid", {}, [], []),
    ("psiformer", {}, [], []),
    ("deepwf", {}, [], []),
    ("pair_product", {}, [], []),
    ("pesnet", {}, ["rotation_invariant"], BOTH),  # declared: the frame; spherical on an atom
    ("pesnet", {"embedding": "e3nn_embedding"}, [], []),  # the swap drops the declared claim
    ("pesnet", {"embedding": "schnet_embedding"}, BOTH, BOTH),
])
def test_what_an_ansatz_imposes_is_derived_from_its_fillers(name, options, general, on_atom):
    spec = get_ansatz(name, "tiny", **options)
    assert spec.imposes().to_list() == general
    assert spec.imposes(get_system("B")).to_list() == on_atom
    assert spec.imposes("atom").to_list() == on_atom
    # the derived invariance is a claim that check_spec runs on the whole molecule
    assert set(spec.imposes().invariant) <= set(spec.claims_for(get_system("LiH")).get("invariant", []))


@pytest.mark.parametrize("name, options", [
    ("ferminet", {}),
    ("paulinet", {}),  # nothing imposed: its Hartree–Fock baseline's p orbital points
    ("pesnet", {}),  # declared: rotations, and on an atom inversion
    ("ferminet", {"embedding": "e3nn_embedding"}),
    ("ferminet", {"embedding": "e3nn_embedding", "embedding.readout": "invariant"}),
    ("ferminet", {"embedding": "schnet_embedding", "envelope": "full_envelope"}),
])
def test_psi_on_boron_changes_under_rotation_and_inversion_exactly_when_nothing_is_imposed(name, options):
    """Rotate / invert the five electrons of B about the nucleus (nucleus fixed): log|psi| and its
    sign are unchanged for what the ansatz imposes, and change for the rest (B's ground state,
    2P°, needs both: L = 1 and odd parity). The parameters are perturbed from their initial
    values: the full envelope starts isotropic, but it does not impose rotation invariance."""
    spec = get_ansatz(name, "tiny", **options)
    changes = check_imposed_symmetry(spec, get_system("B"))
    assert len(changes) == 2


@pytest.mark.parametrize("options, invariant", [({}, False), ({"embedding": "schnet_embedding"}, True)])
def test_on_a_linear_molecule_an_invariant_ansatz_imposes_sigma_plus(options, invariant):
    lih = get_system("LiH")
    assert system_kind(lih) == "linear"
    spec = get_ansatz("ferminet", "tiny", **options)
    changes = check_imposed_symmetry(spec, lih)
    assert set(changes) == {op.name for op in system_operations(lih)}
    assert [op.meaning for op in spec.imposes(lih).on(lih)] == (["Λ = 0, Σ", "Σ⁺"] if invariant else [])


def test_an_undeclared_imposed_symmetry_is_caught(monkeypatch):
    """SchNet's embedding stripped of its invariance claims: the derivation then says FermiNet
    with it imposes nothing, but psi does not change under rotations of B's electrons."""
    entry = dict(registry._load()["layers"]["schnet_embedding"])
    entry["claims"] = {"equivariant": ["permutation"], "invariant": ["translation"]}
    monkeypatch.setitem(registry._load()["layers"], "schnet_embedding", entry)
    spec = get_ansatz("ferminet", "tiny", embedding="schnet_embedding")
    assert not spec.imposes(get_system("B"))
    with pytest.raises(AssertionError, match="did not change"):
        check_imposed_symmetry(spec, get_system("B"))


@pytest.mark.parametrize("layer, options, claims, message", [
    # e3nn's components readout rotates
    ("e3nn_embedding", {}, {"invariant": ["rotation"]}, "not rotation-invariant"),
])
def test_false_symmetry_claims_of_layers_are_caught(monkeypatch, layer, options, claims, message):
    entry = dict(registry._load()["layers"][layer])
    entry["options"] = {**entry["options"], **options}
    entry["claims"] = claims
    entry.pop("claims_when", None)
    monkeypatch.setitem(registry._load()["layers"], layer, entry)
    with pytest.raises(AssertionError, match=message):
        testing.check_layer(layer)


def test_a_head_that_reads_the_irreps_does_not_preserve_invariance(monkeypatch):
    """The `preserves` check feeds a rotating irreps part: a head that reads it is caught."""
    from qmczoo.layers.orbitals import OrbitalMatrices

    class IrrepsHead(nn.Module):
        n_up: int
        n_down: int
        envelope: object
        determinants: int = 1
        full_det: bool = True

        @nn.compact
        def __call__(self, embedding, features):
            extra = embedding.irreps.array if embedding.irreps is not None else jnp.zeros((embedding.h.shape[0], 3))
            return OrbitalMatrices(self.n_up, self.n_down, self.envelope, self.determinants, self.full_det,
                                   name="inner")(embedding.replace(h=jnp.concatenate([embedding.h, extra], -1)),
                                                 features)

    entry = dict(slot="orbitals", factory=IrrepsHead, description="", options={},
                 claims={"equivariant": ["permutation"], "preserves": ["rotation"]})
    monkeypatch.setitem(registry._load()["layers"], "irreps_head", entry)
    with pytest.raises(AssertionError, match="reads a direction"):
        testing.check_layer("irreps_head")


@pytest.mark.parametrize("name, options", [(name, o) for name in sorted(list_layers())
                                           for o in claim_variants(name)[1:]])
def test_every_conditional_claim_is_checked(name, options):
    """The claims that hold only for an option value (`claims_when`); the defaults are checked by
    test_zoo's test_every_registered_layer_keeps_its_claims."""
    testing.check_layer(name, options=options)


def test_claims_when_resolves_option_values_and_refuses_unknown_options(monkeypatch):
    assert "rotation" not in layer_claims("e3nn_embedding").get("invariant", [])
    assert layer_claims("e3nn_embedding", {"readout": "invariant"})["invariant"] == ["translation", "rotation",
                                                                                    "inversion"]
    assert "rotation" in layer_claims("e3nn_embedding", {"lmax": 0})["invariant"]
    assert "preserves" not in layer_claims("pair_orbitals")
    assert layer_claims("pair_orbitals", {"pair_inputs": False})["preserves"] == ["rotation", "inversion"]
    assert claim_variants("e3nn_embedding") == [{}, {"readout": "invariant"}, {"lmax": 0}]
    entry = dict(registry._load()["layers"]["raw_embedding"], claims_when={"width=3": {"invariant": ["rotation"]}})
    monkeypatch.setitem(registry._load()["layers"], "raw_embedding", entry)
    with pytest.raises(ConfigError, match="width=3"):
        layer_claims("raw_embedding")


def test_hartree_fock_states_with_and_without_the_symmetry_of_an_s_state():
    """B (2P°) changes under rotations and inversion, N (4S°) only under inversion (odd
    parity), Be (1S) and LiH (1Σ+) under none of their operations."""
    def broken(name):
        s = get_system(name)
        return sorted(op.kind for op, _ in hartree_fock_changes(s, system_operations(s), basis="sto-3g"))

    assert broken("B") == ["inversion", "rotation"]
    assert broken("N") == ["inversion"]
    assert broken("Be") == []
    assert broken("LiH") == []


def test_warnings_name_the_conflict_and_need_no_hartree_fock_when_nothing_is_imposed(monkeypatch):
    B = get_system("B")
    lines = symmetry_warnings(B, get_ansatz("ferminet", "tiny", embedding="schnet_embedding"), basis="sto-3g")
    assert len(lines) == 1
    assert "embedding=schnet_embedding" in lines[0] and "L > 0" in lines[0] and "odd parity" in lines[0]
    assert symmetry_warnings(get_system("Be"), get_ansatz("ferminet", "tiny", embedding="schnet_embedding"),
                             basis="sto-3g") == []

    def no_scf(*args, **kwargs):
        raise AssertionError("Hartree-Fock run for an ansatz that imposes nothing")

    monkeypatch.setattr("qmczoo.chemistry.hartree_fock.run_hartree_fock", no_scf)
    assert symmetry_warnings(B, get_ansatz("ferminet", "tiny"), basis="sto-3g") == []
    assert symmetry_warnings(B, get_ansatz("ferminet", "tiny", embedding="e3nn_embedding"), basis="sto-3g") == []


def test_qmczoo_info_shows_what_an_ansatz_imposes():
    out = runner.invoke(app, ["info", "ferminet"]).output
    assert "imposes: nothing" in out
    out = runner.invoke(app, ["info", "pesnet"]).output
    assert "imposes: invariance under rotations" in out and "imposes on an atom: only L = 0, even parity" in out
    out = runner.invoke(app, ["info", "e3nn_embedding"]).output
    assert "claims when readout=invariant: invariant: rotation, inversion" in out


def test_qmczoo_train_prints_a_warning_line_before_training(monkeypatch, tmp_path):
    """The warning comes before any training (runs.train is replaced by a stop here)."""
    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr("qmczoo.runs.train", stop)
    result = runner.invoke(app, ["train", "-s", "B", "-a", "ferminet", "-p", "tiny", "--set",
                                 "embedding=schnet_embedding", "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, Stop)
    assert "warning: ferminet (embedding=schnet_embedding) can only represent states invariant" in result.output
    result = runner.invoke(app, ["train", "-s", "B", "-a", "ferminet", "-p", "tiny", "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, Stop) and "warning:" not in result.output


def test_the_bench_warns_once_per_ansatz_and_system(capsys):
    from qmczoo.runs.bench import BenchSettings, parse_ansatze
    from qmczoo.runs.bench.cells import warn_symmetry

    variants = parse_ansatze("ferminet,ferminet:embedding=schnet_embedding")
    settings = BenchSettings(ansatze=[v.label for v in variants], systems=["B", "Be"], seeds=[0], preset="tiny")
    warn_symmetry(variants, [get_system("B"), get_system("Be")], settings)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "of B changes" in lines[0]


def test_imposed_describes_atoms_and_molecules():
    assert Imposed().describe().startswith("nothing")
    text = Imposed(("rotation", "inversion")).describe()
    assert "on an atom only L = 0, even parity states" in text and "Σ⁺" in text
    assert Imposed(("rotation",)).consequences("linear") == ["Λ = 0 (Σ)"]
    assert system_kind(get_system("H 0 0 0; H 0 0 1.4; H 0 1.2 0", unit="bohr")) == "planar"


def test_the_e3nn_components_readout_transforms_with_its_learned_lab_vectors():
    """FermiNet with e3nn's components readout is not invariant, but consistent: psi at rotated
    electrons and nuclei equals psi with the orbital head's coefficient vectors rotated back by
    the Wigner-D matrices of the features (the layers themselves are exactly equivariant)."""
    from qmczoo.layers.e3nn_embedding import hidden_irreps
    from qmczoo.testing.contract import random_rotation

    system = get_system("B")
    spec = get_ansatz("ferminet", "tiny", embedding="e3nn_embedding", **{"embedding.channels": 4})
    wf = spec.build(system)
    R = jnp.asarray(system.positions)
    r = testing.random_configuration(jax.random.PRNGKey(0), system)
    params = testing.to_float64(jax.jit(wf.init)(jax.random.PRNGKey(1), r, R))
    q = jnp.asarray(random_rotation(3))
    d = hidden_irreps(4, 1).D_from_matrix(q)  # h(Q r, Q R) = h(r, R) @ D^T
    head = params["params"]["orbital_matrices"]
    turned = jax.tree_util.tree_map(lambda x: x, params)
    for spin in ("head_up", "head_down"):
        w = head[spin]["per_electron"]["kernel"]
        turned["params"]["orbital_matrices"][spin]["per_electron"]["kernel"] = d.T @ w
        ws = head[spin]["shared"]["kernel"]  # spin means of h, up then down
        turned["params"]["orbital_matrices"][spin]["shared"]["kernel"] = jnp.concatenate(
            [d.T @ ws[: d.shape[0]], d.T @ ws[d.shape[0]:]])
    f = jax.jit(wf.signed_log_psi)
    s1, l1 = f(params, r @ q.T, R @ q.T)
    s2, l2 = f(turned, r, R)
    s0, l0 = f(params, r, R)
    assert float(s1) == float(s2) and abs(float(l1 - l2)) < 1e-10
    assert abs(float(l1 - l0)) > 1e-4  # not invariant: the direction of the p electron is kept


def test_e3nn_features_stay_bounded_far_away_and_vanish_like_r_to_the_l_at_coalescence():
    from qmczoo.layers.e3nn_embedding import E3nnEmbedding, bounded_harmonics
    from qmczoo.layers.features import ferminet_features

    x = jnp.asarray([[0.3, -0.4, 1.2]])
    for scale in (1e-4, 1e-2):  # S_l(t x) ~ t^l |x|^l Y_l / s^l near zero
        near = bounded_harmonics(2, scale * x, 1.0)
        solid = e3nn.spherical_harmonics("0e + 1o + 2e", scale * x, normalize=False, normalization="component")
        np.testing.assert_allclose(near.array, solid.array, rtol=2 * scale**2, atol=1e-300)
    far = bounded_harmonics(2, 1e6 * x, 1.0)
    unit = e3nn.spherical_harmonics("0e + 1o + 2e", x, normalize=True, normalization="component")
    np.testing.assert_allclose(far.array, unit.array, rtol=1e-9)

    system = get_system("B 0 0 0; H 0 0 2.329", unit="bohr")
    module = E3nnEmbedding(n_up=system.n_up, n_down=system.n_down, charges=tuple(system.charges), channels=4, lmax=2)
    R = jnp.asarray(system.positions)
    r = testing.random_configuration(jax.random.PRNGKey(0), system)
    params = testing.to_float64(jax.jit(lambda k, x: module.init(k, ferminet_features(x, R)))(jax.random.PRNGKey(1), r))
    apply = jax.jit(lambda x: module.apply(params, ferminet_features(x, R)).h)
    sizes = []
    for distance in (3.0, 30.0, 3000.0):  # one electron moved away along a fixed direction
        moved = r.at[0].set(jnp.asarray([0.6, -0.48, 0.64]) * distance)
        sizes.append(float(jnp.max(jnp.abs(apply(moved)))))
    assert all(np.isfinite(sizes)) and sizes[2] <= 1.01 * sizes[1] + 1e-9, sizes  # no growth beyond the cutoff
