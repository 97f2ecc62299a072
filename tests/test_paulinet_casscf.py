"""PauliNet's CASSCF determinants: active spaces, the CI expansion in real space, the choice of
determinants, and a gradient for every determinant's parameters at step 0 (float64)."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.chemistry import casscf
from qmczoo.chemistry.casscf import default_active_space, multi_reference, run_casscf, select_determinants
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.hamiltonian import make_batch_local_energy
from qmczoo.engine.sampler import initial_positions
from qmczoo.errors import ConfigError
from qmczoo.registry import get_ansatz
from qmczoo.testing import to_float64

# the baseline alone: no backflow, no Jastrows, plain Gaussian orbitals (pyscf's)
BARE = {"backflow": "none", "jastrow": "none", "neural_jastrow": "none", "baseline.cusp_correction": False}


@pytest.mark.parametrize("name, n_mo, expected", [
    ("H", 5, (1, 1)), ("He", 5, (1, 2)), ("H2", 10, (2, 2)), ("Li", 14, (4, 1)), ("LiH", 19, (5, 2)),
    ("Be", 14, (4, 2)), ("N2", 28, (8, 10)), ("LiH", 3, (2, 2)),  # a basis too small for the whole valence space
])
def test_the_default_active_space_is_the_valence_space(name, n_mo, expected):
    assert default_active_space(get_system(name), n_mo) == expected


def test_a_large_valence_space_is_cut_to_a_window_around_the_highest_occupied_orbital():
    benzene_like = get_system("C 0 0 0; C 2.5 0 0; C 5 0 0; C 7.5 0 0", unit="bohr", spin=0)  # 16 valence orbitals
    ncas, nelecas = default_active_space(benzene_like, 60)
    assert ncas == casscf.MAX_DEFAULT_ORBITALS and nelecas == 8  # 4 occupied + 4 virtual orbitals


@pytest.mark.parametrize("orbitals, electrons, match", [
    (4, 0, "both"), (0, 2, "both"), (4, 3, "pair up"), (4, 12, "pair up"), (1, 4, "do not fit"),
    (40, 2, "exceed the basis"),
])
def test_impossible_active_spaces_are_config_errors(orbitals, electrons, match):
    with pytest.raises(ConfigError, match=match):
        casscf.active_space(get_system("LiH"), 19, orbitals, electrons)


def test_the_cli_turns_a_bad_active_space_into_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from qmczoo.cli import app

    result = CliRunner().invoke(app, ["train", "--system", "LiH", "--ansatz", "paulinet", "--preset", "tiny",
                                      "--steps", "1", "--no-progress", "--out", str(tmp_path / "run"),
                                      "--set", "cas_orbitals=1", "--set", "cas_electrons=4"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and "do not fit" in lines[-1], result.output


def test_determinants_are_chosen_by_magnitude_and_degenerate_groups_stay_whole():
    c = np.array([0.9, -0.1, 0.05, 0.05, 0.02, 0.0001])
    chosen, note = select_determinants(c, 3, 0.01)  # the tied pair (0.05, 0.05) straddles the cut
    assert list(chosen) == [0, 1] and "dropped whole" in note
    chosen, note = select_determinants(c, 4, 0.01)
    assert list(chosen) == [0, 1, 2, 3] and note == ""
    chosen, note = select_determinants(c, 10, 0.01)  # fewer above the cutoff than asked for
    assert list(chosen) == [0, 1, 2, 3, 4] and "5 configurations" in note
    chosen, _ = select_determinants(np.array([-0.6, 0.6, 0.3]), 1, 0.01)  # a tied leading group is kept whole
    assert sorted(chosen) == [0, 1]


def ci_wavefunction(solution, r):
    """pyscf's CASSCF wavefunction at configurations ``r [B, N, 3]``, written out independently:
    every (alpha string, beta string) of the CI vector, the string's set bits in ascending order
    after the core orbitals, ``det(up) det(down)`` of pyscf's own orbital values."""
    from pyscf.fci import cistring

    mol, n_up = solution.mol, sum(solution.nelecas[:1]) + solution.ncore
    b, n = r.shape[:2]
    mo = (mol.eval_gto("GTOval_sph", r.reshape(-1, 3)) @ solution.mo_coeff).reshape(b, n, -1)
    core = list(range(solution.ncore))

    def occupied(string):
        return core + [solution.ncore + i for i in range(solution.ncas) if string >> i & 1]

    alphas = cistring.make_strings(range(solution.ncas), solution.nelecas[0])
    betas = cistring.make_strings(range(solution.ncas), solution.nelecas[1])
    psi = np.zeros(b)
    for ia, sa in enumerate(alphas):
        for ib, sb in enumerate(betas):
            up = np.linalg.det(mo[:, :n_up][:, :, occupied(sa)])
            down = np.linalg.det(mo[:, n_up:][:, :, occupied(sb)]) if n > n_up else 1.0
            psi += solution.ci[ia, ib] * up * down
    return psi


@pytest.mark.parametrize("name, basis", [("LiH", "ccpvdz"), ("B", "sto-3g")])  # closed shell; open shell (ROHF)
def test_the_multi_determinant_baseline_is_pyscfs_ci_wavefunction(name, basis):
    system = get_system(name)
    solution = run_casscf(system, basis)
    everything = solution.ci.size
    spec = get_ansatz("paulinet", preset="tiny", hf_basis=basis, determinants=everything, ci_cutoff=0.0, **BARE)
    wf = spec.build(system)
    R = jnp.asarray(system.positions)
    r = initial_positions(jax.random.PRNGKey(0), system, 64, dtype=jnp.float64)
    params = to_float64(wf.init(jax.random.PRNGKey(1), r[0], R))
    weights = np.asarray(spec.module(system).reference.weights)
    np.testing.assert_allclose(params["params"]["antisymmetrizer"]["weights"], weights, rtol=1e-7)  # float32 init
    params["params"]["antisymmetrizer"]["weights"] = jnp.asarray(weights)  # the CI coefficients in float64
    sign, logabs = jax.jit(jax.vmap(wf.signed_log_psi, in_axes=(None, 0, None)))(params, r, R)
    ours = np.asarray(sign * jnp.exp(logabs))
    theirs = ci_wavefunction(solution, np.asarray(r))
    ratio = ours / theirs
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-8)
    assert abs(abs(ratio[0]) - 1.0) < 1e-10  # the same normalisation: weights are the CI coefficients
    # the test can tell: one flipped weight (a wrong sign convention) breaks the proportionality
    w = params["params"]["antisymmetrizer"]["weights"]
    flipped = jax.tree_util.tree_map(lambda x: x, params)
    flipped["params"]["antisymmetrizer"]["weights"] = w.at[1].multiply(-1.0)
    sign, logabs = jax.jit(jax.vmap(wf.signed_log_psi, in_axes=(None, 0, None)))(flipped, r, R)
    assert np.std(np.asarray(sign * jnp.exp(logabs)) / theirs) > 1e-4


def test_determinants_start_at_their_own_orbitals_and_the_weights_at_the_ci_coefficients():
    system = get_system("LiH")
    spec = get_ansatz("paulinet", preset="tiny", **{"backflow.init_scale": 0.0, "baseline.cusp_correction": False})
    module = spec.module(system)
    ref = module.reference
    assert ref.determinants == 2 and not np.array_equal(ref.occ_up[0], ref.occ_up[1])
    wf = spec.build(system)
    R = jnp.asarray(system.positions)
    r = initial_positions(jax.random.PRNGKey(2), system, 1, dtype=jnp.float64)[0]
    params = to_float64(wf.init(jax.random.PRNGKey(0), r, R))
    np.testing.assert_allclose(params["params"]["antisymmetrizer"]["weights"], ref.weights, rtol=1e-7)  # float32 init
    blocks = module.apply(params, r, R, method=type(module).determinant_blocks)
    mo = ref.mol.eval_gto("GTOval_sph", np.asarray(r)) @ ref.coeff_up
    for block, rows, occ in zip(blocks, (slice(0, 2), slice(2, 4)), (ref.occ_up, ref.occ_down)):
        for k in range(2):
            np.testing.assert_allclose(block[k], mo[rows][:, occ[k]], rtol=1e-10, atol=1e-12)


def test_every_determinant_gets_an_energy_gradient_at_step_zero():
    """The old PauliNet had K copies of the HF determinant: weights [1, 0, ...] and zero backflows,
    so the backflows of determinants 2..K and the weights had no energy gradient."""
    system = get_system("LiH")
    spec = get_ansatz("paulinet", preset="tiny")
    wf = spec.build(system)
    R = jnp.asarray(system.positions)
    r = initial_positions(jax.random.PRNGKey(3), system, 64, dtype=jnp.float64)
    params = to_float64(wf.init(jax.random.PRNGKey(0), r[0], R))
    local_energy = jax.lax.stop_gradient(make_batch_local_energy(wf, system.charges)(params, r, R))

    def loss(p):  # the VMC energy gradient's surrogate: 2 <(E_L - <E_L>) d log|psi|>
        return 2.0 * jnp.mean((local_energy - jnp.mean(local_energy)) * wf.batch_log_psi(p, r, R))

    grads = jax.jit(jax.grad(loss))(params)["params"]
    weights = np.asarray(grads["antisymmetrizer"]["weights"])
    assert weights.shape == (2,) and np.all(np.abs(weights) > 1e-8), weights
    for spin in ("backflow_up", "backflow_down"):
        for k in range(2):
            layers = {name: g for name, g in grads[spin].items() if name.startswith(f"det_{k}_")}
            assert len(layers) == 3
            for name, g in layers.items():
                assert float(jnp.max(jnp.abs(g["kernel"]))) > 1e-10, f"{spin} {name}"


def test_fewer_determinants_than_asked_for_are_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="qmczoo.models.paulinet"):
        module = get_ansatz("paulinet", preset="small", hf_basis="sto-3g").module(get_system("Be"))
    assert module.determinants == 4  # 2s^2 and the three 2p^2 with equal weights (CAS(2e, 4o) has 4 nonzero)
    assert "4 of 8 determinants" in caplog.text
    one = get_ansatz("paulinet", preset="tiny", reference="hf").module(get_system("LiH"))
    assert one.determinants == 1
    with pytest.raises(ConfigError, match="reference=casscf"):
        get_ansatz("paulinet", reference="hf", cas_orbitals=3, cas_electrons=2).module(get_system("LiH"))


def test_casscf_is_cached_per_system_basis_and_active_space():
    system = get_system("H2")
    assert run_casscf(system, "sto-3g") is run_casscf(system, "sto-3g")
    assert multi_reference(system, "sto-3g", determinants=2) is multi_reference(system, "sto-3g", determinants=2)
    assert run_casscf(system, "sto-3g", 2, 2) is not run_casscf(system, "sto-3g")  # other key, same numbers
