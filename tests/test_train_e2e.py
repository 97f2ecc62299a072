"""End-to-end VMC runs of the tiny FermiNet on H2 (KFAC and Adam)."""

import math

import jax
import numpy as np
import pytest

from qmczoo.engine.evaluate import evaluate
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.vmc import VMC, run_steps

H2_EXACT = -1.174475714


def _train_h2(optimizer: str, steps: int, dtype: str = "float64"):
    system = get_system("H2")
    config = TrainConfig(steps=steps, batch_size=256, optimizer=optimizer, pretrain_steps=50, burn_in=50,
                         dtype=dtype, seed=1)
    vmc = VMC(system, get_ansatz("ferminet", preset="tiny").build(system), config)
    state = vmc.initial_state()
    state, losses = vmc.pretrain(state)
    state = vmc.burn_in(state)
    state, history = run_steps(vmc, state, steps)
    return vmc, state, losses, history


@pytest.mark.slow
def test_kfac_tiny_ferminet_h2_reaches_exact_energy_variationally():
    vmc, state, losses, history = _train_h2("kfac", 300)
    assert losses[-1] < losses[0], "pretraining must reduce the orbital misfit"
    assert all(not h.rejected for h in history)
    ev = evaluate(vmc, state.params, state.walkers, 300, jax.random.PRNGKey(5), burn_in=10)
    assert math.isfinite(ev.energy_error) and ev.energy_error < 3e-3
    assert abs(ev.energy - H2_EXACT) < 10e-3, f"{ev.energy} +- {ev.energy_error}"
    # the variational bound: not below the exact energy beyond 3 sigma
    assert ev.energy > H2_EXACT - 3 * ev.energy_error, f"{ev.energy} +- {ev.energy_error} below exact"
    assert 0.3 < ev.acceptance < 0.7
    # the variance of the local energy shrinks as the wavefunction improves
    assert np.mean([h.variance for h in history[-30:]]) < 0.2 * np.mean([h.variance for h in history[:10]])


@pytest.mark.slow
def test_adam_tiny_ferminet_h2_trains():
    vmc, state, _, history = _train_h2("adam", 150, dtype="float32")
    energies = np.array([h.energy for h in history])
    assert np.all(np.isfinite(energies))
    assert energies[-30:].mean() < energies[:10].mean()
    assert abs(energies[-30:].mean() - H2_EXACT) < 0.05
