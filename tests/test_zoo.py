"""The zoo: every ansatz is slots filled through the registry; swaps, claims, the CLI, training."""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from qmczoo import testing
from qmczoo.cli import app
from qmczoo.errors import ConfigError
from qmczoo.registry import get_ansatz, list_ansatze, list_layers
from qmczoo.chemistry.systems import get_system

runner = CliRunner()
ZOO = ["ferminet", "paulinet", "hybrid", "deepwf", "pair_product", "psiformer", "pesnet"]


def test_the_zoo_is_registered_with_descriptions_and_papers():
    ansatze = list_ansatze()
    for name in ZOO:
        assert name in ansatze
        assert ansatze[name]["description"].strip() and ansatze[name]["paper"].strip()
        assert set(ansatze[name]["presets"]) >= {"tiny", "small", "paper"}
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ZOO:
        assert name in result.output


@pytest.mark.parametrize("name", ZOO)
def test_info_shows_every_slot_and_its_filler(name):
    result = runner.invoke(app, ["info", name])
    assert result.exit_code == 0, result.output
    spec = get_ansatz(name)
    assert "slots" in result.output
    for slot, filler in spec.slots.items():
        assert re.search(rf"^\s+{slot}\b.*\b{filler}\b", result.output, re.M), (slot, filler, result.output)


def test_info_of_a_layer_shows_slot_claims_options_and_users():
    result = runner.invoke(app, ["info", "schnet_embedding"])
    assert result.exit_code == 0, result.output
    for words in ("slot: embedding", "rotation", "electron_nuclear", "width=64", "paulinet"):
        assert words in result.output, words
    result = runner.invoke(app, ["list", "--layers"])
    assert result.exit_code == 0 and "hartree_fock_orbitals" in result.output


def test_every_slot_option_names_a_registered_layer_of_its_kind():
    layers = list_layers()
    for name, entry in list_ansatze().items():
        for option, kind in (entry.get("slots") or {}).items():
            filler = get_ansatz(name).options[option]
            assert filler == "none" or layers[filler]["slot"] == kind, (name, option, filler)


def test_a_swapped_slot_drops_the_old_fillers_options_and_takes_the_new_ones_defaults():
    spec = get_ansatz("ferminet", preset="tiny", embedding="schnet_embedding", **{"embedding.width": 8})
    assert spec.slots["embedding"] == "schnet_embedding"
    assert "embedding.hidden_dims" not in spec.options
    assert spec.options["embedding.width"] == 8
    assert spec.options["embedding.n_interactions"] == list_layers()["schnet_embedding"]["options"]["n_interactions"]
    # the same filler keeps the preset's options
    assert get_ansatz("ferminet", preset="tiny", embedding="ferminet_embedding").options[
        "embedding.hidden_dims"] == [[16, 4], [16, 4]]
    with pytest.raises(ConfigError, match="does not accept option 'hidden_dims'"):
        get_ansatz("ferminet", embedding="schnet_embedding", **{"embedding.hidden_dims": [[8, 2]]})


def test_claims_survive_a_swap_only_if_the_new_filler_claims_as_much():
    assert set(get_ansatz("paulinet").claims["cusp"]) == {"electron_electron", "electron_nuclear"}
    assert get_ansatz("paulinet", neural_jastrow="none").claims  # an empty slot claims nothing it must keep
    assert get_ansatz("paulinet", jastrow="none").claims == {"cusp": ["electron_nuclear"]}  # the orbitals keep theirs
    assert get_ansatz("paulinet", baseline="hartree_fock_orbitals").claims == {}  # Gaussian orbitals: no e-n cusp
    assert get_ansatz("paulinet", embedding="hybrid_embedding").claims == {}  # not smooth at coalescence
    assert get_ansatz("ferminet").claims == {}


@pytest.mark.parametrize("name", sorted(list_layers()))
def test_every_registered_layer_keeps_its_claims(name):
    testing.check_layer(name)


def test_check_layer_catches_a_false_claim(monkeypatch):
    from qmczoo import registry

    entry = dict(registry._load()["layers"]["ferminet_embedding"])
    entry["claims"] = {"invariant": ["rotation"]}  # FermiNet sees raw displacement vectors
    monkeypatch.setitem(registry._load()["layers"], "false_claim_embedding", entry)
    with pytest.raises(AssertionError, match="not rotation-invariant"):
        testing.check_layer("false_claim_embedding")
    entry["claims"] = {"smooth": ["electron_nuclear"]}  # |r - R| in its inputs has a kink
    with pytest.raises(AssertionError, match="not smooth"):
        testing.check_layer("false_claim_embedding")


def test_a_slot_swapped_from_the_command_line_passes_the_invariance_suite():
    system = get_system("LiH")
    for options in ({"embedding": "schnet_embedding", "embedding.width": 8, "embedding.n_interactions": 1},
                    {"jastrow": "cusp_jastrow", "envelope": "full_envelope"}):
        testing.check_spec(get_ansatz("ferminet", preset="tiny", **options), system)


def test_no_ansatz_specific_code_outside_models_and_the_registry():
    root = Path(__file__).resolve().parents[1] / "qmczoo"
    names = "|".join(sorted(list_ansatze()))
    pattern = re.compile(rf"""(==|!=|\bin\b)\s*[(\[]?\s*["']({names})["']""")
    offenders = []
    for path in root.rglob("*.py"):
        if "models" in path.parts:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_hybrid_envelopes_start_from_the_hartree_fock_fit():
    from qmczoo.chemistry.hartree_fock import run_hartree_fock
    from qmczoo.layers.gaussian_orbitals import isotropic_envelope_from_hf

    system = get_system("LiH")
    wf = get_ansatz("hybrid", preset="tiny").build(system)
    R = jnp.asarray(system.positions)
    params = wf.init(jax.random.PRNGKey(0), jnp.zeros((4, 3)) + 0.1 * jnp.arange(4)[:, None], R)
    (pi_up, sigma_up), (pi_down, sigma_down) = isotropic_envelope_from_hf(run_hartree_fock(system, "ccpvdz"),
                                                                          np.asarray(system.positions))
    env = params["params"]["orbital_matrices"]
    n, k = system.n_electrons, 2
    sigma = np.asarray(env["envelope_up"]["sigma"]).reshape(2, k, n)  # [M, K, N orbitals]
    np.testing.assert_allclose(sigma[:, 0, : system.n_up], sigma_up, rtol=1e-6)
    np.testing.assert_allclose(sigma[:, 1, : system.n_up], sigma_up, rtol=1e-6)
    np.testing.assert_allclose(sigma[:, :, system.n_up:], 1.0)
    sigma = np.asarray(env["envelope_down"]["sigma"]).reshape(2, k, n)
    np.testing.assert_allclose(sigma[:, 0, system.n_up:], sigma_down, rtol=1e-6)
    assert not np.allclose(sigma_up, 1.0)


def test_paulinet_starts_at_its_reference_and_is_not_hartree_fock_pretrained():
    """PauliNet starts at its cusp-corrected CASSCF expansion (tests/test_paulinet_casscf.py); it
    has no orbitals() for the engine's pretraining, whose UHF targets would pull every determinant
    onto the Hartree–Fock one."""
    system = get_system("LiH")
    wf = get_ansatz("paulinet", preset="tiny").build(system)
    assert wf.orbitals is None


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in ZOO if name != "ferminet"])  # ferminet: test_train_e2e, test_cli
def test_each_ansatz_trains_and_evaluates_through_qmczoo_train(tmp_path, name):
    """The same command line for every ansatz (Adam here to keep it short; every parameter's
    KFAC block is checked by the contract tests)."""
    out = tmp_path / name
    result = runner.invoke(app, ["train", "--system", "H2", "--ansatz", name, "--preset", "tiny", "--steps", "3",
                                 "--pretrain-steps", "2", "--batch-size", "16", "--burn-in", "5", "--mcmc-steps", "2",
                                 "--eval-steps", "4", "--monitor-walkers", "0", "--optimizer", "adam",
                                 "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ansatz"] == name and np.isfinite(summary["energy"])
    assert summary["evaluation"]["energy"] is not None


@pytest.mark.parametrize("options", [
    pytest.param(("paulinet", {}), id="paulinet"),
    pytest.param(("ferminet", {"embedding": "e3nn_embedding"}), id="ferminet-e3nn"),
])  # both use spin_pair_filters (one test each: they can run on two workers)
def test_kfac_steps_are_accepted_with_one_electron_per_spin(options):
    """H2 (one electron per spin): a layer with a parameter that never gets a gradient (SchNet's
    same-spin filter had only the electrons' own, zero-cut pairs) made every KFAC step non-finite."""
    from qmczoo.engine.vmc import VMC
    from qmczoo.engine.config import TrainConfig

    system = get_system("H2")
    name, slots = options
    spec = get_ansatz(name, preset="tiny", **slots)
    vmc = VMC(system, spec.build(system),
              TrainConfig(batch_size=16, pretrain_steps=0, burn_in=4, monitor_walkers=0, mcmc_steps=2,
                          optimizer="kfac"))
    state = vmc.burn_in(vmc.initial_state())
    for _ in range(2):
        state, stats = vmc.step(state)
        assert not stats.rejected and np.isfinite(stats.energy)
