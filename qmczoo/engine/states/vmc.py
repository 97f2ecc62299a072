"""The VMC machinery for ``k`` states: :class:`StatesVMC`, and :func:`make_vmc`, which picks it.

A :class:`StatesVMC` is a :class:`~qmczoo.engine.vmc.VMC` whose walkers hold ``k`` electron
sets (``[B, k*N, 3]``, :mod:`qmczoo.engine.states.total`) and whose loss is NES-VMC's or the
penalty method's (:mod:`qmczoo.engine.states.loss`). The step (KFAC or optax, the NaN guard),
burn-in, the monitor chain and compilation beside pretraining are the ground state's, unchanged;
only the objective, the walkers and the pretraining targets differ. The ansatz is any
:class:`~qmczoo.wavefunction.Wavefunction`, made ``k`` states by copying its parameters
(:func:`qmczoo.wavefunction.states`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.engine.config import DEFAULT_PRETRAIN_BASIS, TrainConfig
from qmczoo.engine.hamiltonian import default_chunk_size, map_in_chunks
from qmczoo.engine.sampler import init_walkers, make_mcmc, psi_squared
from qmczoo.engine.states.local_energy import make_batch_energy_matrix, make_own_local_energies
from qmczoo.engine.states.loss import make_nes_loss, make_penalty_loss
from qmczoo.engine.states.total import batch, initial_walkers, product_log_psi, state_matrix, total_signed_log_psi
from qmczoo.engine.vmc import VMC
from qmczoo.errors import ConfigError
from qmczoo.wavefunction import StateSet, states as make_states


STATES_WITH_ECP = ("--states {k} with an effective core potential (--ecp) is not supported: the states' local "
                   "energies have no nonlocal ECP term yet; train each state's system all-electron, or one state")


def state_energies(matrix) -> np.ndarray:
    """The state energies of a mean local-energy matrix ``[k, k]``: its eigenvalues, lowest first
    (real parts; the matrix is a noisy estimate of ``S^-1 H``, whose eigenvalues are real). A
    matrix that is not finite (a step the NaN guard rejects) gives NaNs."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        return np.full(matrix.shape[0], np.nan)
    return np.sort(np.real(np.linalg.eigvals(matrix)))


class StatesVMC(VMC):
    """:class:`~qmczoo.engine.vmc.VMC` for ``config.states`` states of ``wf`` (module docstring).

    Args:
      system: the :class:`~qmczoo.chemistry.system.System`.
      wf: a :class:`~qmczoo.wavefunction.Wavefunction` (made ``config.states`` states) or a
        :class:`~qmczoo.wavefunction.StateSet`.
      config: the run's settings (``states``, ``objective``, ``penalty``).
      geometries: must be None: several states are trained at one geometry.
      devices: as for :class:`VMC`.

    Raises:
      ConfigError: a scan over geometries, a StateSet of another ``k``, or a system with an
        effective core potential (the states' local energies have no nonlocal ECP term).

    Attributes beyond :class:`VMC`'s: ``states`` (the StateSet), ``k``, ``batch_log_psi``
    (``[B]``: the log of the square root of the sampled density), and for NES
    ``batch_energy_matrix`` (``[B, k, k]``); ``batch_local_energy`` is the trace (NES) or the
    sum of the states' own local energies (penalty), the energy the monitor chain logs.
    """

    def __init__(self, system, wf, config: TrainConfig, geometries=None, devices: int | None = None):
        if geometries is not None and np.shape(geometries)[0] > 1:
            raise ConfigError("several states are trained at one geometry; a scan over geometries is not supported")
        if getattr(system, "ecp", None) is not None:
            raise ConfigError(STATES_WITH_ECP.format(k=config.states))
        self.states = wf if isinstance(wf, StateSet) else make_states(wf, config.states)
        if self.states.k != config.states:
            raise ConfigError(f"the StateSet has {self.states.k} states but config.states is {config.states}")
        self.k = self.states.k
        super().__init__(system, self.states, config, geometries=None, devices=devices)

    def _build_objective(self):
        c, states, k = self.config, self.states, self.k
        charges = np.asarray(self.system.charges)
        chunk = c.local_energy_chunk or default_chunk_size(self.system.n_electrons * k)
        self.batch_state_matrix = batch(state_matrix)
        if c.objective == "nes":
            total = batch(total_signed_log_psi)
            self.batch_log_psi = lambda params, r, R: total(states, params, r, R)[1]
            self.batch_energy_matrix = make_batch_energy_matrix(states, charges, c.laplacian, chunk)
            self.batch_local_energy = lambda params, r, R: jnp.trace(
                self.batch_energy_matrix(params, r, R), axis1=1, axis2=2)
            self.loss = make_nes_loss(self.batch_log_psi, self.batch_energy_matrix, c.clip_scale, c.clip_centre)
        else:
            product = batch(product_log_psi)
            self.batch_log_psi = lambda params, r, R: product(states, params, r, R)
            own = make_own_local_energies(states, charges, c.laplacian)
            self.batch_own_local_energies = map_in_chunks(jax.vmap(own, in_axes=(None, 0, None)), chunk)
            self.batch_local_energy = lambda params, r, R: jnp.sum(self.batch_own_local_energies(params, r, R), axis=1)
            self.loss = make_penalty_loss(lambda params, r, R: self.batch_state_matrix(states, params, r, R),
                                          self.batch_own_local_energies, c.penalty, c.clip_scale, c.clip_centre)
        self.mcmc = jax.jit(make_mcmc(psi_squared(self.batch_log_psi), c.mcmc_steps, c.target_acceptance))

    def _kfac_block_types(self) -> dict:
        """Each state's network is mapped over the ``k`` electron sets of a walker, so a layer of one
        vector per configuration (kfac-jax's ``dense`` tag, e.g. FermiNet's spin-mean term) sees
        ``k`` vectors per walker: kfac-jax's repeated-dense block takes it (with one set it is the
        dense block's statistics exactly), in its zero-gradient-safe form."""
        from qmczoo.engine.kfac_blocks import RepeatedDense

        return {**super()._kfac_block_types(), "dense": RepeatedDense}

    def _make_monitor_step(self):
        mcmc = make_mcmc(psi_squared(self.batch_log_psi), self.config.mcmc_steps, self.config.target_acceptance)

        def monitor_step(params, walkers, key, R):
            walkers = mcmc(params, walkers, key, R)
            return walkers, jnp.mean(self.batch_local_energy(params, walkers.r, R))

        return monitor_step

    def _walkers(self, key, count: int):
        return initial_walkers(init_walkers, key, self.system, self.k, count, step_size=self.config.step_size,
                               dtype=self.dtype)

    def _pretrain_loop(self, state, steps: int, progress):
        """Pretraining to the ``k`` lowest Hartree–Fock determinants (:mod:`qmczoo.engine.states.pretrain`)."""
        from qmczoo.chemistry.excitations import lowest_determinants
        from qmczoo.engine.states.pretrain import make_states_pretrainer

        _, targets = lowest_determinants(self.system, self.config.pretrain_basis or DEFAULT_PRETRAIN_BASIS, self.k)
        init_opt, step = make_states_pretrainer(self.states, targets, self.R,
                                                learning_rate=self.config.pretrain_learning_rate,
                                                hf_fraction=self.config.pretrain_hf_fraction)
        return self._run_pretrainer(init_opt, step, state, steps, progress)

    def _step_extras(self, stats) -> dict:
        matrix, penalty = jax.device_get((stats.state_matrix, stats.penalty))
        return dict(state_energies=[float(e) for e in state_energies(matrix)],
                    overlap_penalty=None if penalty is None else float(penalty))


def make_vmc(system, wf, config: TrainConfig, geometries=None, devices: int | None = None) -> VMC:
    """The VMC machinery a run needs: :class:`StatesVMC` for ``config.states > 1``, else :class:`VMC`
    (``devices``: how many devices the walkers are spread over; None: all)."""
    if config.states > 1:
        return StatesVMC(system, wf, config, geometries=geometries, devices=devices)
    return VMC(system, wf, config, geometries=geometries, devices=devices)
