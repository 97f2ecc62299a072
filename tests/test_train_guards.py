"""The trainer's NaN guard and the evaluator on an exactly solvable case."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.engine.evaluate import evaluate
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.vmc import VMC
from qmczoo.wavefunction import Wavefunction


@pytest.mark.parametrize("optimizer", ["adam", "kfac"])
def test_a_step_with_a_nan_energy_is_rejected_and_counted(optimizer):
    system = get_system("H2")
    vmc = VMC(system, get_ansatz("ferminet", preset="tiny").build(system),
              TrainConfig(batch_size=16, optimizer=optimizer, pretrain_steps=0, burn_in=0, mcmc_steps=2))
    state = vmc.initial_state()
    state, stats = vmc.step(state)
    assert not stats.rejected and int(state.n_rejected) == 0
    before = jax.tree.map(np.array, state.params)
    poisoned = state.walkers.r.at[0, 0, 0].set(jnp.nan)  # one walker with a NaN position
    state = state.replace(walkers=state.walkers.replace(r=poisoned))
    state, stats = vmc.step(state)
    assert stats.rejected and int(state.n_rejected) == 1 and int(state.step) == 2
    after = jax.tree.map(np.array, state.params)
    jax.tree.map(np.testing.assert_array_equal, before, after)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(after))


def _hydrogen_1s():
    def signed_log_psi(params, r, R):
        return jnp.ones((), r.dtype), -params["zeta"] * jnp.linalg.norm(r[0] - R[0])

    return Wavefunction(init=lambda key, r, R: {"zeta": jnp.ones((), r.dtype)},
                        signed_log_psi=signed_log_psi, n_up=1, n_down=0, name="hydrogen_1s")


def test_evaluating_the_exact_hydrogen_ground_state_gives_minus_half_with_no_variance():
    system = get_system("H")
    vmc = VMC(system, _hydrogen_1s(), TrainConfig(batch_size=64, optimizer="adam", dtype="float64"))
    state = vmc.burn_in(vmc.initial_state(), 50)
    ev = evaluate(vmc, state.params, state.walkers, 20, jax.random.PRNGKey(0))
    assert ev.energy == pytest.approx(-0.5, abs=1e-9)
    assert ev.variance < 1e-16 and ev.energy_error < 1e-9
    assert 0.2 < ev.acceptance < 0.8


def test_training_a_wrong_exponent_moves_it_to_the_exact_one():
    """VMC on psi = exp(-zeta r) for H: E(zeta) = zeta^2/2 - zeta, minimum at zeta = 1."""
    system = get_system("H")
    vmc = VMC(system, _hydrogen_1s(), TrainConfig(batch_size=256, optimizer="adam", learning_rate=0.05,
                                                 dtype="float64", pretrain_steps=0))
    state = vmc.initial_state()
    state = state.replace(params={"zeta": jnp.asarray(0.6)})
    state = vmc.burn_in(state, 50)
    for _ in range(150):
        state, stats = vmc.step(state)
    assert float(state.params["zeta"]) == pytest.approx(1.0, abs=0.05)
    assert stats.energy == pytest.approx(-0.5, abs=0.005)


def test_kfac_gives_a_layer_without_gradient_a_zero_update_not_nan():
    """A repeated-dense layer whose output does not reach log|psi| (every derivative exactly 0,
    as PESNet's encoder ``global`` map before pretraining: it feeds only heads that start at
    zero) made kfac-jax's curvature scale 1/0 and every parameter of the update NaN, so every
    step was rejected (issue 29). Now the step is accepted and the dead layer does not move."""
    import flax.linen as nn

    from qmczoo.layers.curvature import Dense
    from qmczoo.wavefunction import from_module

    class WithDeadLayer(nn.Module):
        @nn.compact
        def __call__(self, r, R):
            d = r[:, None, :] - R[None]  # [N, M, 3]
            live = jnp.sum(jnp.tanh(Dense(4, name="live")(d)))
            dead = Dense(4, name="dead")(d)
            logabs = -jnp.sum(jnp.linalg.norm(d, axis=-1)) + 0.1 * live + 0.0 * jnp.sum(dead)
            return jnp.ones((), r.dtype), logabs

    system = get_system("H")
    vmc = VMC(system, from_module(WithDeadLayer(), system.n_up, system.n_down),
              TrainConfig(batch_size=16, optimizer="kfac", pretrain_steps=0, burn_in=0, mcmc_steps=2,
                          dtype="float64"))
    state = vmc.initial_state()
    dead_before = jax.tree.map(np.array, state.params["params"]["dead"])
    for _ in range(2):
        state, stats = vmc.step(state)
        assert not stats.rejected, "a layer without gradient made the KFAC update non-finite"
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))
    jax.tree.map(np.testing.assert_array_equal, dead_before, jax.tree.map(np.array, state.params["params"]["dead"]))
