"""The Metropolis sampler: the hydrogen 1s density, step-size adaptation, initial walkers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.engine.sampler import WalkerState, init_walkers, initial_positions, make_mcmc, psi_squared
from qmczoo.engine.statistics import reblock
from qmczoo.chemistry.systems import get_system


N_WALKERS = 2000  # one batch size for every call of the shared sampler: compiled once


def batch_log_psi_1s(params, r, R):
    """Exact hydrogen 1s, log psi = -|r - R| for walkers ``r`` ``[B, 1, 3]`` -> ``[B]``."""
    return -jnp.linalg.norm(r[:, 0, :] - R[0], axis=-1)


@pytest.fixture(scope="module")
def h_atom():
    system = get_system("H")
    return system, jnp.asarray(system.positions)


@pytest.fixture(scope="module")
def mcmc_1s():
    return jax.jit(make_mcmc(psi_squared(batch_log_psi_1s), n_steps=10))


def _mean_radius(state, R):
    return float(jnp.mean(jnp.linalg.norm(state.r[:, 0, :] - R[0], axis=-1)))


def test_sampler_reproduces_hydrogen_1s_mean_radius(h_atom, mcmc_1s):
    system, R = h_atom
    state = init_walkers(jax.random.PRNGKey(0), system, N_WALKERS, step_size=0.5, dtype=jnp.float64)
    key = jax.random.PRNGKey(1)
    for _ in range(30):  # burn in (and adapt the step size)
        key, sub = jax.random.split(key)
        state = mcmc_1s(None, state, sub, R)
    means = []
    for _ in range(64):
        key, sub = jax.random.split(key)
        state = mcmc_1s(None, state, sub, R)
        means.append(_mean_radius(state, R))
    est = reblock(np.asarray(means))
    exact = 1.5  # <r> = 3 / (2 Z) bohr for the 1s state
    assert 0 < est.error < 0.02
    assert abs(est.mean - exact) < 3 * est.error, (est.mean, est.error)
    assert abs(est.mean - exact) < 0.05
    # The second moment too: <r^2> = 3 bohr^2.
    r2 = float(jnp.mean(jnp.sum((state.r[:, 0, :] - R[0]) ** 2, axis=-1)))
    assert abs(r2 - 3.0) < 0.25


def test_sampler_moves_away_from_a_bad_start(h_atom, mcmc_1s):
    """Walkers started far too wide relax to the 1s density."""
    system, R = h_atom
    state = init_walkers(jax.random.PRNGKey(3), system, N_WALKERS, step_size=0.5, width=6.0, dtype=jnp.float64)
    assert _mean_radius(state, R) > 5.0
    key = jax.random.PRNGKey(4)
    for _ in range(40):
        key, sub = jax.random.split(key)
        state = mcmc_1s(None, state, sub, R)
    assert abs(_mean_radius(state, R) - 1.5) < 0.1


def test_step_size_adapts_toward_target_acceptance(h_atom, mcmc_1s):
    system, R = h_atom
    state = init_walkers(jax.random.PRNGKey(5), system, N_WALKERS, step_size=0.01, dtype=jnp.float64)
    key = jax.random.PRNGKey(6)
    first = None
    for i in range(50):
        key, sub = jax.random.split(key)
        state = mcmc_1s(None, state, sub, R)
        if i == 0:
            first = float(state.acceptance)
    assert first > 0.9  # tiny steps are almost always accepted
    assert 0.35 <= float(state.acceptance) <= 0.65
    assert float(state.step_size) > 0.3  # grew from 0.01
    assert state.step_size.dtype == jnp.float64 and state.r.dtype == jnp.float64


def test_step_size_fixed_without_adaptation_float32(h_atom):
    """adapt=False keeps the step size; float32 walkers stay float32 (x64 is on in tests)."""
    system, R = h_atom
    mcmc = jax.jit(make_mcmc(psi_squared(batch_log_psi_1s), n_steps=5, adapt=False))
    state = init_walkers(jax.random.PRNGKey(7), system, 200, step_size=0.01, dtype=jnp.float32)
    new = mcmc(None, state, jax.random.PRNGKey(8), R.astype(jnp.float32))
    assert float(new.step_size) == np.float32(0.01)
    assert new.r.dtype == new.step_size.dtype == new.acceptance.dtype == jnp.float32
    assert 0.5 < float(new.acceptance) <= 1.0  # small steps: mostly accepted
    assert new.r.shape == state.r.shape
    assert not np.allclose(new.r, state.r)
    again = mcmc(None, state, jax.random.PRNGKey(8), R.astype(jnp.float32))
    np.testing.assert_array_equal(again.r, new.r)  # same key, same walkers


def test_initial_positions_near_the_right_atoms():
    lih = get_system("LiH")  # Li (2 up, 1 down) + H (1 down): electrons 0, 1, 2 on Li, 3 on H
    r = initial_positions(jax.random.PRNGKey(0), lih, 4000, dtype=jnp.float64)
    assert r.shape == (4000, 4, 3) and r.dtype == jnp.float64
    r = np.asarray(r)
    li, h = np.asarray(lih.positions)
    mean = r.mean(axis=0)  # [N, 3]
    for i in range(3):
        np.testing.assert_allclose(mean[i], li, atol=0.1, err_msg=f"electron {i}")
    np.testing.assert_allclose(mean[3], h, atol=0.1)
    # isotropic Gaussian of standard deviation `width`
    np.testing.assert_allclose((r - np.stack([li, li, li, h])).std(axis=0), 1.0, atol=0.05)
    narrow = np.asarray(initial_positions(jax.random.PRNGKey(0), lih, 4000, width=0.1, dtype=jnp.float64))
    np.testing.assert_allclose((narrow[:, 3] - h).std(axis=0), 0.1, atol=0.005)


def test_init_walkers_state():
    li = get_system("Li")
    state = init_walkers(jax.random.PRNGKey(0), li, 16, step_size=0.3)
    assert isinstance(state, WalkerState)
    assert state.r.shape == (16, 3, 3) and state.r.dtype == jnp.float32
    assert float(state.step_size) == pytest.approx(0.3) and float(state.acceptance) == 0.0

