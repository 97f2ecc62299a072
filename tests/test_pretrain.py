"""Hartree–Fock pretraining: pyscf orbitals on walkers, targets, and the fit itself."""

import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.engine.pretrain import run_hartree_fock, target_blocks
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.vmc import VMC


@pytest.fixture(scope="module")
def lih_hf():
    return run_hartree_fock(get_system("LiH"), basis="sto-3g")


def test_uhf_orbitals_match_pyscf_and_energy_is_hartree_fock(lih_hf):
    from pyscf import scf

    system = get_system("LiH")
    mf = scf.UHF(system.to_pyscf("sto-3g"))
    mf.verbose = 0
    assert lih_hf.energy == pytest.approx(mf.kernel(), abs=1e-6)
    assert lih_hf.energy > system.reference_energy  # HF lies above the exact energy
    r = np.random.default_rng(0).normal(size=(5, 4, 3))
    up, down = lih_hf.orbital_matrices(r)
    assert up.shape == (5, 2, 2) and down.shape == (5, 2, 2)
    ao = system.to_pyscf("sto-3g").eval_gto("GTOval_sph", r[1, 0][None])
    np.testing.assert_allclose(up[1, 0], (ao @ lih_hf.coeff_up)[0], rtol=1e-12)
    # occupied orbitals are orthonormal in the AO metric
    s = lih_hf.mol.intor("int1e_ovlp")
    np.testing.assert_allclose(lih_hf.coeff_up.T @ s @ lih_hf.coeff_up, np.eye(2), atol=1e-8)


def test_targets_follow_the_ansatz_block_structure():
    up, down = jnp.ones((2, 2)), 2 * jnp.ones((1, 1))
    (dense,) = target_blocks(up, down, [(4, 3, 3)])
    np.testing.assert_array_equal(dense, [[1, 1, 0], [1, 1, 0], [0, 0, 2]])
    blocks = target_blocks(up, down, [(4, 2, 2), (4, 1, 1)])
    assert [b.shape for b in blocks] == [(2, 2), (1, 1)]
    only_up = target_blocks(jnp.ones((1, 1)), jnp.ones((0, 0)), [(4, 1, 1)])
    assert [b.shape for b in only_up] == [(1, 1)]


@pytest.mark.parametrize("full_det", [True, False])
def test_pretraining_fits_the_orbitals(full_det):
    system = get_system("LiH")
    config = TrainConfig(batch_size=64, pretrain_steps=60, pretrain_basis="sto-3g",
                         pretrain_learning_rate=3e-3, optimizer="adam", dtype="float32")
    wf = get_ansatz("ferminet", preset="tiny", full_det=full_det).build(system)
    vmc = VMC(system, wf, config)
    state = vmc.initial_state()
    new_state, losses = vmc.pretrain(state)
    assert len(losses) == 60 and np.all(np.isfinite(losses))
    # the fan-in initialisation starts near the Hartree-Fock scale (misfit ~0.02-0.06 here, not
    # ~0.6 as before), so 60 steps remove a smaller share of a much smaller misfit
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    assert np.mean(losses[-10:]) < 0.05
    assert new_state.walkers.r.shape == state.walkers.r.shape
    assert np.all(np.isfinite(np.asarray(new_state.walkers.r)))


def test_ansatz_without_orbitals_skips_pretraining(caplog):
    from qmczoo.wavefunction import Wavefunction

    system = get_system("H")
    wf = Wavefunction(init=lambda key, r, R: {"z": jnp.ones(())},
                      signed_log_psi=lambda p, r, R: (jnp.ones(()), -p["z"] * jnp.linalg.norm(r[0] - R[0])),
                      n_up=1, n_down=0)
    vmc = VMC(system, wf, TrainConfig(batch_size=16, optimizer="adam", pretrain_steps=5))
    state = vmc.initial_state()
    with caplog.at_level("INFO"):
        same, losses = vmc.pretrain(state)
    assert losses == [] and same is state
    assert "orbitals" in caplog.text


def test_step_compiled_beside_pretraining_changes_no_number():
    """The training step compiles in a thread during pretraining (on copies); a state started
    without an optimizer state and one started with it reach the same numbers, bit for bit."""
    system = get_system("H2")
    config = TrainConfig(batch_size=16, pretrain_steps=5, pretrain_basis="sto-3g", burn_in=2, mcmc_steps=2,
                         monitor_walkers=8, monitor_every=1, dtype="float64")
    vmc = VMC(system, get_ansatz("ferminet", preset="tiny").build(system), config)
    runs = []
    for optimizer in (True, False):
        state = vmc.initial_state(optimizer=optimizer)
        assert (state.opt_state is None) is (not optimizer)
        state, losses = vmc.pretrain(state)
        state = vmc.burn_in(state)
        energies = []
        for _ in range(2):
            state, stats = vmc.step(state)
            energies.append((stats.energy, stats.monitor_energy))
        runs.append((losses, energies, np.asarray(state.walkers.r)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert all(np.isfinite(e) for pair in runs[0][1] for e in pair)


def test_failed_background_work_is_dropped_and_joined():
    from qmczoo.engine.background import BackgroundWork

    def boom():
        raise RuntimeError("compile failed")

    work = BackgroundWork(boom).join()
    assert isinstance(work.error, RuntimeError) and work.seconds is not None
