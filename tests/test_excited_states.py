"""Several states at once (issue 32): the local-energy matrix of exact states, the total ansatz's
antisymmetry, the k-state Laplacian, HF excitations, the objectives' gradients and a tiny NES run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.chemistry.excitations import count_determinants, enumerate_determinants, lowest_determinants
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.states.evaluate import eigen_series
from qmczoo.engine.states.local_energy import (
    make_batch_energy_matrix,
    make_energy_matrix,
    make_local_spin_squared,
    make_state_local_energies,
)
from qmczoo.engine.states.total import (
    electron_sets,
    product_log_psi,
    state_matrix,
    total_signed_log_psi,
)
from qmczoo.registry import get_ansatz
from qmczoo.testing import random_configuration, to_float64
from qmczoo.wavefunction import StateSet, Wavefunction, states

# ------------------------------------------------------------------ exact hydrogen states
#
# One ansatz whose parameters are the coefficients of the exact 1s, 2s and 2p_z states of the
# hydrogen atom, psi = c_1s exp(-r) + c_2s (1 - r/2) exp(-r/2) + c_2p z exp(-r/2), energies
# -1/2, -1/8, -1/8. Three copies with one-hot coefficients are the three exact states.

EXACT = np.array([-0.5, -0.125, -0.125])


def hydrogen_combination() -> Wavefunction:
    def signed_log_psi(params, r, R):
        d = r[0] - R[0]
        dist = jnp.linalg.norm(d)
        c = params["c"]
        psi = c[0] * jnp.exp(-dist) + (c[1] * (1 - dist / 2) + c[2] * d[2]) * jnp.exp(-dist / 2)
        return jnp.sign(psi), jnp.log(jnp.abs(psi))

    return Wavefunction(init=lambda key, r, R: {"c": jax.random.normal(key, (3,), r.dtype)},
                        signed_log_psi=signed_log_psi, n_up=1, n_down=0, name="hydrogen_1s_2s_2p")


def _walkers(k, n, seed=0, spread=3.0):
    """``n`` walkers of ``k`` one-electron sets ``[n, k, 3]`` around the origin."""
    return jnp.asarray(np.random.default_rng(seed).normal(scale=spread, size=(n, k, 3)))


@pytest.fixture(scope="module")
def hydrogen():
    system = get_system("H")
    return system, jnp.asarray(system.positions), states(hydrogen_combination(), 3)


def test_exact_states_give_a_diagonal_local_energy_matrix_with_zero_variance(hydrogen):
    system, R, three = hydrogen
    params = tuple({"c": jnp.asarray(row)} for row in np.eye(3))  # state i = exact eigenstate i
    r = _walkers(3, 40, seed=1)
    matrices = np.asarray(jax.jit(make_batch_energy_matrix(three, system.atomic_charges))(params, r, R))
    assert matrices.shape == (40, 3, 3)
    np.testing.assert_allclose(matrices, np.broadcast_to(np.diag(EXACT), matrices.shape), atol=1e-9)
    assert np.max(np.var(matrices, axis=0)) < 1e-18  # zero variance: the same matrix at every walker


def test_mixed_exact_states_give_the_exact_energies_at_every_walker(hydrogen):
    """Any three independent combinations of the exact states span the same space: A = Phi C, so
    E_L = C^-1 diag(E) C at every walker, whose eigenvalues are exact (NES needs no orthogonal states)."""
    system, R, three = hydrogen
    c = np.array([[1.0, 0.3, -0.2], [0.4, 1.0, 0.5], [-0.3, 0.2, 1.0]])  # columns: the states' coefficients
    params = tuple({"c": jnp.asarray(c[:, i])} for i in range(3))
    matrices = np.asarray(jax.jit(make_batch_energy_matrix(three, system.atomic_charges))(params, _walkers(3, 30, 2), R))
    expected = np.linalg.inv(c) @ np.diag(EXACT) @ c
    np.testing.assert_allclose(matrices, np.broadcast_to(expected, matrices.shape), atol=1e-9)
    values = np.sort(np.linalg.eigvals(matrices.mean(axis=0)).real)
    np.testing.assert_allclose(values, np.sort(EXACT), atol=1e-9)


def test_delta_method_series_of_exact_states_is_constant(hydrogen):
    system, R, three = hydrogen
    params = tuple({"c": jnp.asarray(row)} for row in np.eye(3))
    energy = jax.jit(make_batch_energy_matrix(three, system.atomic_charges))
    steps = np.stack([np.asarray(energy(params, _walkers(3, 8, seed), R)).mean(axis=0) for seed in range(4)])
    values, x = eigen_series(steps.mean(axis=0), steps)
    np.testing.assert_allclose(values, np.sort(EXACT), atol=1e-9)
    np.testing.assert_allclose(x, np.broadcast_to(np.sort(EXACT), x.shape), atol=1e-9)


# ------------------------------------------------------------------ the total ansatz


@pytest.fixture(scope="module")
def helium_triplet():
    """He with both electrons up (a same-spin pair in every set), FermiNet tiny, two states, float64."""
    system = get_system("He", spin=2)
    assert (system.n_up, system.n_down) == (2, 0)
    wf = get_ansatz("ferminet", "tiny").build(system)
    two = states(wf, 2)
    R = jnp.asarray(system.positions, jnp.float64)
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    r = jnp.concatenate([random_configuration(k, system, jnp.float64) for k in keys])  # [2N, 3]
    params = to_float64(two.init(jax.random.PRNGKey(4), r[:2], R))
    return system, two, params, r, R


def test_states_are_independent_copies_of_the_parameters(helium_triplet):
    _, two, params, r, R = helium_triplet
    assert isinstance(params, tuple) and len(params) == 2
    assert jax.tree.structure(params[0]) == jax.tree.structure(params[1])
    sign, logabs = two.signed_log_psi_states(params, r[:2], R)
    assert sign.shape == logabs.shape == (2,) and abs(float(logabs[0] - logabs[1])) > 1e-6
    for i in range(2):  # state i is the ansatz with its own parameters
        np.testing.assert_allclose(float(logabs[i]), float(two.wf.log_psi(params[i], r[:2], R)), rtol=1e-12)


def _assert_sign_flips(two, params, r, swapped, R):
    """The total ansatz at ``swapped`` is minus its value at ``r`` (same log|Psi|, opposite sign)."""
    sign, log_psi = total_signed_log_psi(two, params, r, R)
    sign_s, log_s = total_signed_log_psi(two, params, swapped, R)
    np.testing.assert_allclose(float(log_s), float(log_psi), rtol=1e-12)
    assert float(sign_s) == -float(sign)


def test_total_ansatz_is_antisymmetric_under_swapping_electron_sets(helium_triplet):
    _, two, params, r, R = helium_triplet
    _assert_sign_flips(two, params, r, jnp.concatenate([r[2:], r[:2]]), R)


def test_total_ansatz_is_antisymmetric_under_swapping_same_spin_electrons_in_a_set(helium_triplet):
    _, two, params, r, R = helium_triplet
    for a, b in ((0, 1), (2, 3)):  # the two up electrons of set 0, of set 1
        _assert_sign_flips(two, params, r, r.at[a].set(r[b]).at[b].set(r[a]), R)


def test_total_ansatz_is_the_determinant_of_the_state_matrix(helium_triplet):
    _, two, params, r, R = helium_triplet
    sign, logabs = state_matrix(two, params, r, R)
    x = electron_sets(r, 2)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(float(logabs[j, i]), float(two.wf.log_psi(params[i], x[j], R)), rtol=1e-12)
    det = np.linalg.det(np.asarray(sign * jnp.exp(logabs)))
    s, log_det = total_signed_log_psi(two, params, r, R)
    np.testing.assert_allclose(float(log_det), np.log(abs(det)), rtol=1e-10)
    assert float(s) == np.sign(det)
    np.testing.assert_allclose(float(product_log_psi(two, params, r, R)),
                               float(logabs[0, 0] + logabs[1, 1]), rtol=1e-12)


def test_k_state_laplacian_equals_the_hessian_trace(helium_triplet):
    system, two, params, r, R = helium_triplet
    folx = jax.jit(make_state_local_energies(two, system.atomic_charges, "folx"))(params, r, R)
    hessian = jax.jit(make_state_local_energies(two, system.atomic_charges, "hessian"))(params, r, R)
    assert folx.shape == (2, 2) and len(set(np.round(np.asarray(folx).ravel(), 8))) == 4
    np.testing.assert_allclose(np.asarray(folx), np.asarray(hessian), rtol=1e-9)
    matrix = {m: np.asarray(jax.jit(make_energy_matrix(two, system.atomic_charges, m))(params, r, R))
              for m in ("folx", "hessian")}
    np.testing.assert_allclose(matrix["folx"], matrix["hessian"], rtol=1e-8)


def test_one_state_is_the_ansatz_itself(helium_triplet):
    system, two, params, r, R = helium_triplet
    one = StateSet(two.wf, 1)
    sign, log_psi = total_signed_log_psi(one, params[:1], r[:2], R)
    s0, l0 = two.wf.signed_log_psi(params[0], r[:2], R)
    np.testing.assert_allclose(float(log_psi), float(l0), rtol=1e-12)
    assert float(sign) == float(s0)


# ------------------------------------------------------------------ spin


def test_local_spin_squared_of_singlet_and_triplet_pairs():
    """Two electrons, one up one down: a spatially symmetric pair is a singlet (S^2 = 0), an
    antisymmetric one the M_s = 0 triplet (S^2 = 2), at every configuration."""
    phi = [lambda x: jnp.exp(-jnp.linalg.norm(x)), lambda x: (1 - jnp.linalg.norm(x) / 2) * jnp.exp(-jnp.linalg.norm(x) / 2)]

    def pair(sign_of_exchange):
        def signed_log_psi(params, r, R):
            psi = phi[0](r[0]) * phi[1](r[1]) + sign_of_exchange * phi[1](r[0]) * phi[0](r[1])
            return jnp.sign(psi), jnp.log(jnp.abs(psi))

        return make_local_spin_squared(signed_log_psi, 1, 1)

    r = jnp.asarray(np.random.default_rng(0).normal(size=(20, 2, 3)))
    for sign, expected in ((1.0, 0.0), (-1.0, 2.0)):
        values = jax.vmap(lambda x: pair(sign)(None, x, None))(r)
        np.testing.assert_allclose(np.asarray(values), expected, atol=1e-10)
    one_up = make_local_spin_squared(lambda p, r, R: (1.0, -jnp.linalg.norm(r[0])), 1, 0)
    assert float(one_up(None, r[0, :1], None)) == pytest.approx(0.75)


# ------------------------------------------------------------------ Hartree-Fock excitations


def test_lowest_helium_determinants_are_ground_and_the_two_1s_2s_singles():
    dets, solutions = lowest_determinants(get_system("He"), "ccpvdz", 3)
    assert [d.level for d in dets] == [0, 1, 1]
    assert {(d.occ_up, d.occ_down) for d in dets[1:]} == {((1,), (0,)), ((0,), (1,))}
    assert dets[0].orbital_energy < dets[1].orbital_energy == pytest.approx(dets[2].orbital_energy, abs=1e-6)
    assert all(s.coeff_up.shape[1] == 1 and s.coeff_down.shape[1] == 1 for s in solutions)


def test_determinants_are_counted_and_ordered():
    energies = np.array([-1.0, 0.5, 0.7])
    dets = enumerate_determinants(2, 1, energies, energies)
    assert len(dets) == count_determinants(2, 1, 3)
    assert dets[0].level == 0 and dets[0].occ_up == (0, 1) and dets[0].occ_down == (0,)
    sums = [d.orbital_energy for d in dets]
    assert sums == sorted(sums)
    assert len({(d.occ_up, d.occ_down) for d in dets}) == len(dets)


# ------------------------------------------------------------------ the objectives' gradients


def _hydrogen_batch(three, n=24, seed=5):
    r = _walkers(3, n, seed=seed, spread=2.0)  # [n, 3 sets, 3]: one electron per set
    params = tuple({"c": jnp.asarray(v)} for v in np.random.default_rng(seed).normal(size=(3, 3)) + 2 * np.eye(3))
    return params, r


def test_nes_gradient_is_the_centred_estimator_of_the_total_ansatz(hydrogen):
    """Without clipping, d<tr E_L> = 2 < (tr E_L - <tr E_L>) d log|det A| > (the custom jvp), for any
    direction in the parameters of all states."""
    from qmczoo.engine.states.loss import make_nes_loss
    from qmczoo.engine.states.total import batch

    system, R, three = hydrogen
    params, r = _hydrogen_batch(three)
    total = lambda p, x, R_: batch(total_signed_log_psi)(three, p, x, R_)[1]  # noqa: E731
    energy = make_batch_energy_matrix(three, system.atomic_charges)
    loss = make_nes_loss(total, energy, clip_scale=0.0)
    grads = jax.grad(lambda p: loss(p, None, (r, R))[0])(params)
    e_l = np.trace(np.asarray(energy(params, r, R)), axis1=1, axis2=2)
    per_walker = jax.jacobian(lambda p: total(p, r, R))(params)
    expected = jax.tree.map(lambda g: 2 * np.mean((e_l - e_l.mean())[:, None] * np.asarray(g), axis=0), per_walker)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12)


def test_penalty_gradient_is_the_derivative_of_the_reweighted_overlap_estimate(hydrogen):
    """The penalty's gradient at the sampled parameters p0 equals the derivative of its estimate from
    the same walkers reweighted to p: a_ij(p) = sum_b w_b rho_b / sum_b w_b, w_b = psi_i^2(p) / psi_i^2(p0)."""
    from qmczoo.engine.states.loss import make_penalty_loss, overlap_penalty, ratio_matrix
    from qmczoo.engine.states.total import batch

    system, R, three = hydrogen
    params, r = _hydrogen_batch(three, seed=7)
    matrix = lambda p, x, R_: batch(state_matrix)(three, p, x, R_)  # noqa: E731
    no_energy = lambda p, x, R_: jnp.zeros((x.shape[0], 3), x.dtype)  # noqa: E731
    loss = make_penalty_loss(matrix, no_energy, alpha=1.3, clip_scale=0.0)
    direction = tuple({"c": jnp.asarray(v)} for v in np.random.default_rng(9).normal(size=(3, 3)))
    _, slope = jax.jvp(lambda p: loss(p, None, (r, R))[0], (params,), (direction,))

    sign0, log0 = matrix(params, r, R)
    own0 = np.diagonal(np.asarray(log0), axis1=1, axis2=2)

    def reweighted(h):
        p = jax.tree.map(lambda a, d: a + h * d, params, direction)
        sign, logabs = matrix(p, r, R)
        w = np.exp(2 * (np.diagonal(np.asarray(logabs), axis1=1, axis2=2) - own0))  # [B, k]
        a = np.sum(np.asarray(ratio_matrix(sign, logabs)) * w[:, :, None], axis=0) / np.sum(w, axis=0)[:, None]
        return float(overlap_penalty(jnp.asarray(a), 1.3)[0])

    h = 1e-5
    np.testing.assert_allclose(float(slope), (reweighted(h) - reweighted(-h)) / (2 * h), rtol=1e-6)
    assert abs(float(slope)) > 1e-3  # the test would pass trivially at a flat point


# ------------------------------------------------------------------ the evaluator on exact states


@pytest.mark.parametrize("objective", ["nes", "penalty"])
def test_evaluating_exact_states_gives_exact_energies_spins_and_overlaps(objective):
    """Mixed exact hydrogen states (columns of C). NES: states 0 and 1 mix 1s and 2s, and the eigenvalues
    are still the exact energies, with zero error bars, and the ground eigenstate is orthogonal to the
    others. Penalty method (each state sampled alone): states 1 and 2 mix 2s and 2p_z, still exact
    eigenstates. For both, <S^2> = 3/4 and the squared overlaps are those of the Gram matrix C^T D C
    (D: the norms pi, 8 pi, 32 pi of 1s, 2s, 2p_z)."""
    from qmczoo.engine.config import TrainConfig
    from qmczoo.engine.states import StatesVMC
    from qmczoo.engine.states.evaluate import evaluate_states

    system = get_system("H")
    config = TrainConfig(states=3, objective=objective, batch_size=256, mcmc_steps=5, dtype="float64",
                         optimizer="adam", monitor_walkers=0)
    vmc = StatesVMC(system, hydrogen_combination(), config)
    if objective == "nes":
        c = np.array([[1.0, 0.3, 0.0], [0.2, 1.0, 0.0], [0.0, 0.0, 1.0]])
    else:
        c = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.3], [0.0, 0.4, 1.0]])
    params = tuple({"c": jnp.asarray(c[:, i])} for i in range(3))
    walkers = vmc._walkers(jax.random.PRNGKey(0), 256)
    result = evaluate_states(vmc, params, walkers, 40, jax.random.PRNGKey(1), burn_in=30)
    np.testing.assert_allclose([s["energy"] for s in result.states], np.sort(EXACT), atol=1e-8)
    assert max(s["energy_error"] for s in result.states) < 1e-8
    np.testing.assert_allclose([s["spin_squared"] for s in result.states], 0.75, atol=1e-10)
    np.testing.assert_allclose([e for e, _ in result.excitation_energies], [0.375, 0.375], atol=1e-8)
    assert max(err for _, err in result.excitation_energies) < 1e-8
    gram = c.T @ np.diag([np.pi, 8 * np.pi, 32 * np.pi]) @ c
    cos2 = gram**2 / np.outer(np.diag(gram), np.diag(gram))
    pair = (0, 1) if objective == "nes" else (1, 2)
    assert cos2[pair] > 0.1  # two states overlap: the check is not of zeros only
    np.testing.assert_allclose(result.overlaps, cos2, atol=0.03)  # (the degenerate 1, 2 may swap: symmetric)
    if objective == "nes":
        overlaps = np.asarray(result.eigenstate_overlaps)  # states 1 and 2 are degenerate: any split of them
        assert overlaps[0, 1] < 0.02 and overlaps[0, 2] < 0.02  # is right, but the ground state is orthogonal
    else:
        assert result.eigenstate_overlaps is None


def test_state_energies_are_the_sorted_eigenvalues_and_nan_for_a_rejected_step():
    from qmczoo.engine.states import state_energies

    c = np.array([[1.0, 0.5], [0.2, 1.0]])
    matrix = np.linalg.inv(c) @ np.diag([-0.5, -2.0]) @ c
    np.testing.assert_allclose(state_energies(matrix), [-2.0, -0.5], atol=1e-12)
    assert np.all(np.isnan(state_energies(np.array([[np.nan, 0.0], [0.0, 1.0]]))))
