"""The VMC loop shared by every ansatz.

:class:`VMC` holds the jitted pieces for one (system, wavefunction, settings) triple:
walker initialisation, Hartree–Fock pretraining, burn-in and the optimisation step (MCMC
then KFAC or an optax optimizer on the clipped-energy gradient). :func:`iterate_steps` drives it;
run folders (progress, a CSV log, checkpoints and resume) are :mod:`qmczoo.runs.lifecycle`.
The settings are :class:`~qmczoo.engine.config.TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Iterator

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qmczoo.engine.background import BackgroundWork
from qmczoo.engine.config import DEFAULT_LEARNING_RATE, DEFAULT_PRETRAIN_BASIS, OPTIMIZERS, TrainConfig  # noqa: F401  (re-exported)
from qmczoo.distributed import fields_from_main
from qmczoo.engine.devices import check_walker_counts, resolve_device_count, walker_sharding
from qmczoo.engine.hamiltonian import default_chunk_size, make_batch_local_energy
from qmczoo.engine.loss import make_energy_loss
from qmczoo.engine.pseudopotential import PseudopotentialTerms
from qmczoo.engine.sampler import WalkerState, init_walkers, make_mcmc, psi_squared
from qmczoo.engine.threads import limit_blas_threads

log = logging.getLogger(__name__)


# fold_in tags of the non-step phases (optimisation steps use fold_in(key, step))
_PRETRAIN, _PRETRAIN_OPT, _BURN_IN, _MONITOR = 2**31 + 1, 2**31 + 2, 2**31 + 3, 2**31 + 4
EVALUATION_KEY_TAG = 2**31 + 7  # fold_in tag of the key an evaluation after training uses
ECP_QUADRATURE_TAG = 2**31 + 11  # fold_in tag of the rotations of an ECP's quadrature (monitor, evaluation)
# a Hartree-Fock solution's numbers, taken from process 0 in a distributed run (pyscf's last digits can
# differ between machines; the pretraining targets of the processes must not)
HF_FIELDS = ("coeff_up", "coeff_down", "energy")


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly: checkpointed as one tree."""

    step: jnp.ndarray  # int32 scalar: optimisation steps done
    params: Any
    opt_state: Any
    walkers: WalkerState
    key: jnp.ndarray  # the run's base key; step keys are fold_in(key, step)
    n_rejected: jnp.ndarray  # int32 scalar: steps rejected by the NaN guard
    monitor: WalkerState | None = None  # the monitor chain (never used for an update)


@dataclasses.dataclass
class StepStats:
    """Host-side statistics of one optimisation step."""

    step: int
    energy: float
    variance: float
    acceptance: float
    step_size: float
    rejected: bool
    monitor_energy: float | None = None  # mean E_L of the monitor chain (when measured)
    geometry_energy: list[float] | None = None  # per geometry (a run over several geometries)
    geometry_variance: list[float] | None = None
    geometry_step_size: list[float] | None = None
    state_energies: list[float] | None = None  # a run of several states: each state's energy, lowest first
    overlap_penalty: float | None = None  # the penalty method's overlap term


def _tree_all_finite(tree) -> jnp.ndarray:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def walkers_per_geometry(batch_size: int, n_geometries: int) -> int:
    """Walkers at each geometry when ``batch_size`` walkers are shared by ``n_geometries``
    (rounded up, so that every geometry has as many)."""
    return -(-batch_size // n_geometries)


class VMC:
    """The jitted machinery for one system, wavefunction and :class:`TrainConfig`.

    Args:
      system: a :class:`~qmczoo.chemistry.systems.System` (its geometry, or the first of ``geometries``).
      wf: a :class:`~qmczoo.wavefunction.Wavefunction`.
      config: the run's settings.
      geometries: ``[G, M, 3]`` nuclear positions (bohr) to train on at once, or None for the
        system's own geometry. With ``G > 1`` the walkers are grouped by geometry
        (``config.batch_size`` rounded up to a multiple of ``G``), each geometry has its own
        step size, Hartree–Fock solution and energy, and ``self.R`` is ``[G, M, 3]``; with one
        geometry everything is as it was (``self.R`` ``[M, 3]``).
      devices: how many devices the walkers are spread over (:mod:`qmczoo.engine.devices`;
        None: every device there is). The batch (and the monitor chain) must divide by it. With
        one device nothing is placed and the programs are the one-device programs; with more,
        :meth:`initial_state`, :meth:`pretrain` and :meth:`place` shard the walkers and
        replicate everything else, and the jitted functions run unchanged on such arrays.
    """

    def __init__(self, system, wf, config: TrainConfig, geometries=None, devices: int | None = None):
        # kfac-jax (and jax's default dtypes) need the global x64 switch to match the run's
        # precision: a float64 run turns it on, a float32 run turns it off.
        jax.config.update("jax_enable_x64", config.dtype == "float64")
        limit_blas_threads()
        self.system, self.wf, self.config = system, wf, config
        self.dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
        if geometries is not None and np.shape(geometries)[0] == 1:
            geometries = None if np.allclose(np.asarray(geometries)[0], system.positions) else geometries
        self.geometries = None if geometries is None else np.asarray(geometries, dtype=np.float64)
        self.n_geometries = 1 if self.geometries is None else self.geometries.shape[0]
        if self.geometries is None:
            self.R = jnp.asarray(system.positions, self.dtype)
            self.batch_size, self.monitor_walkers = config.batch_size, config.monitor_walkers
        else:
            self.R = jnp.asarray(self.geometries, self.dtype)
            self.batch_size = self.n_geometries * walkers_per_geometry(config.batch_size, self.n_geometries)
            self.monitor_walkers = self.n_geometries * walkers_per_geometry(config.monitor_walkers, self.n_geometries)
        self.devices = resolve_device_count(devices)
        check_walker_counts(self.batch_size, self.monitor_walkers, self.devices)
        self.sharding = walker_sharding(self.devices)  # None on one device
        if self.sharding is not None:
            self.R = self.sharding.replicate(self.R)
        # with an ECP: the ECP's terms (None without one); the objective then uses the effective
        # charges and a local energy that takes a key
        self.pseudopotential = PseudopotentialTerms.from_system(system)
        self._build_objective()
        self._monitor_step = jax.jit(self._make_monitor_step())
        self._copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))  # kfac-jax donates what it is given
        self.schedule = lambda t: config.lr / (1.0 + t / config.lr_delay) ** config.lr_decay
        if config.optimizer == "kfac":
            self._build_kfac()
        else:
            self._build_optax()

    # -- construction -----------------------------------------------------------------
    def _build_objective(self):
        """The local energy, the loss and the sampler (a run of several states replaces them:
        :class:`qmczoo.engine.states.vmc.StatesVMC`)."""
        system, wf, config = self.system, self.wf, self.config
        self.batch_local_energy = make_batch_local_energy(
            wf, system.effective_charges, config.laplacian,
            chunk_size=config.local_energy_chunk or default_chunk_size(system.n_electrons),
            pseudopotential=self.pseudopotential)
        self.loss = make_energy_loss(wf.gradient_log_psi, self.batch_local_energy, config.clip_scale,
                                     config.clip_centre, local_energy_key=self.pseudopotential is not None)
        self.mcmc = jax.jit(make_mcmc(psi_squared(wf.batch_log_psi), config.mcmc_steps,
                                      config.target_acceptance))

    def _build_kfac(self):
        import kfac_jax

        c = self.config
        # the curvature factors are symmetric positive definite after damping: Cholesky
        # inverts them faster than kfac-jax's default LU (a process-wide kfac-jax setting)
        kfac_jax.utils.set_use_cholesky_inversion(True)
        self.kfac = kfac_jax.Optimizer(
            value_and_grad_func=jax.value_and_grad(self.loss, has_aux=True),
            l2_reg=0.0,
            norm_constraint=c.norm_constraint,
            value_func_has_aux=True,
            value_func_has_rng=True,
            learning_rate_schedule=self.schedule,
            curvature_ema=c.curvature_ema,
            inverse_update_period=c.inverse_update_period,
            min_damping=1e-4,
            num_burnin_steps=0,
            estimation_mode="fisher_exact",
            multi_device=False,
            layer_tag_to_block_ctor=self._kfac_block_types(),
        )
        self._finite = jax.jit(lambda params, energy: _tree_all_finite(params) & jnp.isfinite(energy))

    def _kfac_block_types(self) -> dict:
        """kfac-jax's block class per tag variant, where it differs from kfac-jax's own choice:
        :data:`~qmczoo.engine.kfac_blocks.BLOCKS` (a layer without gradient gets a zero update,
        not NaN)."""
        from qmczoo.engine.kfac_blocks import BLOCKS

        return dict(BLOCKS)

    def _build_optax(self):
        c = self.config
        make = {"adam": optax.adam, "sgd": optax.sgd}[c.optimizer]
        self.tx = optax.chain(optax.clip_by_global_norm(1.0), make(self.schedule))
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)

        @jax.jit
        def update(params, opt_state, key, batch):
            (energy, stats), grads = grad_fn(params, key, batch)
            updates, new_opt_state = self.tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            # check the parameters the step would write too: a huge or infinite learning rate
            # turns finite gradients into non-finite parameters
            ok = jnp.isfinite(energy) & _tree_all_finite(grads) & _tree_all_finite(new_params)
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
            return keep(new_params, params), keep(new_opt_state, opt_state), energy, stats, ok

        self._optax_update = update

    def _make_monitor_step(self):
        mcmc = make_mcmc(psi_squared(self.wf.batch_log_psi), self.config.mcmc_steps, self.config.target_acceptance)

        def monitor_step(params, walkers, key, R):
            walkers = mcmc(params, walkers, key, R)
            return walkers, jnp.mean(self.batch_local_energy(params, walkers.r, R, *self.local_energy_key(key)))

        return monitor_step

    def local_energy_key(self, key) -> tuple:
        """The extra arguments of :attr:`batch_local_energy` in a function keyed by ``key``: none for
        an all-electron system (so its programs stay as they were); with an ECP, the key of the
        quadrature's rotations, folded from ``key`` (independent of the moves drawn from ``key``)."""
        return () if self.pseudopotential is None else (jax.random.fold_in(key, ECP_QUADRATURE_TAG),)

    # -- state ------------------------------------------------------------------------
    @property
    def first_geometry(self) -> jnp.ndarray:
        """The nuclear positions ``[M, 3]`` of the (first) geometry."""
        return self.R if self.R.ndim == 2 else self.R[0]

    def _walkers(self, key, count: int) -> WalkerState:
        return init_walkers(key, self.system, count, step_size=self.config.step_size, dtype=self.dtype,
                            geometries=self.geometries)

    def init_params(self, key):
        r0 = init_walkers(key, self.system, 1, dtype=self.dtype, geometries=None if self.geometries is None
                          else self.geometries[:1]).r[0]
        # jitted: initialising a large model op by op takes seconds (PESNet `tiny`: 16 s eager, 9 s jitted)
        params = jax.jit(self.wf.init)(key, r0, self.first_geometry)
        return jax.tree.map(lambda x: x.astype(self.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                            params)

    def initial_state(self, key=None, optimizer: bool = True) -> TrainState:
        """Fresh parameters, walkers and optimizer state (no pretraining, no burn-in).

        ``optimizer=False`` leaves ``opt_state`` None, for a state that :meth:`pretrain` takes
        next: pretraining initialises the optimizer state itself (for the pretrained
        parameters), so a first one would be thrown away.
        """
        key = jax.random.PRNGKey(self.config.seed) if key is None else key
        k_params, k_walkers, k_opt, k_run = jax.random.split(key, 4)
        params = self.init_params(k_params)
        walkers = self._walkers(k_walkers, self.batch_size)
        monitor = None
        if self.monitor_walkers:
            monitor = self._walkers(jax.random.fold_in(k_walkers, _MONITOR), self.monitor_walkers)
        if self.sharding is not None:
            params = self.sharding.replicate(params)
            walkers, monitor = self.sharding.place_walkers(walkers), self.sharding.place_walkers(monitor)
        opt_state = self.init_opt_state(params, walkers, k_opt) if optimizer else None
        return self.place(TrainState(step=jnp.asarray(0, jnp.int32), params=params, opt_state=opt_state,
                                     walkers=walkers, key=k_run, n_rejected=jnp.asarray(0, jnp.int32),
                                     monitor=monitor))

    def place_walkers(self, walkers: WalkerState) -> WalkerState:
        """Walkers on this VMC's devices (sharded); one device: ``walkers``."""
        return walkers if self.sharding is None else self.sharding.place_walkers(walkers)

    def place_params(self, params):
        """Parameters on every device of this VMC; one device: ``params``."""
        return params if self.sharding is None else self.sharding.replicate(params)

    def place(self, state: TrainState) -> TrainState:
        """``state`` on this VMC's devices (walkers sharded, the rest replicated): a state read
        from a checkpoint, or one made for another number of devices. One device: ``state``."""
        return state if self.sharding is None else self.sharding.place_state(state)

    def init_opt_state(self, params, walkers, key):
        if self.config.optimizer == "kfac":
            return self.kfac.init(self._copy(params), key, (walkers.r, self.R))
        return self.tx.init(params)

    def system_at(self, g: int):
        """The :class:`~qmczoo.chemistry.systems.System` at geometry ``g``."""
        if self.geometries is None:
            return self.system
        return dataclasses.replace(self.system, coords=tuple(map(tuple, self.geometries[g])), reference_energy=None,
                                   reference_source=None)

    # -- phases -----------------------------------------------------------------------
    def pretrain(self, state: TrainState, steps: int | None = None, progress=None) -> tuple[TrainState, list[float]]:
        """Hartree–Fock pretraining of the orbitals; returns the new state and the losses.

        ``progress(i, loss)`` is called after each step when given. The optimizer state is
        re-initialised afterwards (curvature estimates of the old parameters are stale).
        """
        steps = self.config.pretrain_steps if steps is None else steps
        k_opt = jax.random.fold_in(state.key, _PRETRAIN_OPT)
        if steps <= 0 or self.wf.orbitals is None:
            if steps > 0:  # e.g. PauliNet: it starts at its own (CASSCF) reference
                log.info("%s has no orbitals() to fit: no Hartree-Fock pretraining", self.wf.name)
            if state.opt_state is None:
                state = state.replace(opt_state=self.init_opt_state(state.params, state.walkers, k_opt))
            return state, []
        # the training step's compilation needs only shapes: it runs on copies beside
        # Hartree-Fock and pretraining, and is joined before the main thread calls any of its
        # functions (jax does not share a compilation in flight between threads)
        # On several devices the step compiles at its first call instead: programs with collectives
        # running from two threads at once can deadlock on GPUs.
        compiling = None
        if self.sharding is None:
            example = self._copy(state)
            compiling = BackgroundWork(lambda: self.compile_step(example), name="qmczoo-compile-step")
        params, walkers, losses = self._pretrain_loop(state, steps, progress)  # an error leaves the daemon
        if compiling is not None:
            compiling.join()
            log.debug("training step compiled beside pretraining in %.1f s", compiling.seconds)
        walkers = walkers.replace(step_size=jnp.full(walkers.step_size.shape, self.config.step_size, self.dtype))
        state = self.place(state.replace(params=params, walkers=walkers))
        return state.replace(opt_state=self.init_opt_state(state.params, state.walkers, k_opt)), losses

    def _pretrain_loop(self, state: TrainState, steps: int, progress) -> tuple[Any, WalkerState, list[float]]:
        """Hartree–Fock, then ``steps`` pretraining steps; returns parameters, walkers, losses."""
        from qmczoo.engine.pretrain import make_pretrainer, run_hartree_fock

        basis = self.config.pretrain_basis or DEFAULT_PRETRAIN_BASIS
        if self.geometries is None:
            hf = fields_from_main(run_hartree_fock(self.system, basis), HF_FIELDS)
        else:  # one Hartree-Fock solution per geometry
            hf = [fields_from_main(run_hartree_fock(self.system_at(g), basis), HF_FIELDS)
                  for g in range(self.n_geometries)]
        init_opt, step = make_pretrainer(self.wf, hf, self.R, learning_rate=self.config.pretrain_learning_rate,
                                         hf_fraction=self.config.pretrain_hf_fraction)
        return self._run_pretrainer(init_opt, step, state, steps, progress)

    def _run_pretrainer(self, init_opt, step, state: TrainState, steps: int, progress):
        """``steps`` calls of a pretraining ``step`` from ``state``'s parameters and walkers (the
        optimizer state from ``init_opt``); returns parameters, walkers and the losses."""
        params, walkers = state.params, state.walkers
        opt_state = init_opt(params)
        key = jax.random.fold_in(state.key, _PRETRAIN)
        losses = []
        for i in range(steps):
            params, opt_state, walkers, loss = step(params, opt_state, walkers, jax.random.fold_in(key, i))
            losses.append(float(loss))
            if progress is not None:
                progress(i, losses[-1])
        return params, walkers, losses

    def _kfac_update(self, params, opt_state, key, batch):
        """One kfac-jax step (consumes ``params`` and ``opt_state``): the one call that
        :meth:`step` makes and :meth:`compile_step` compiles."""
        return self.kfac.step(params, opt_state, key, batch=batch, momentum=jnp.asarray(0.0, self.dtype),
                              damping=jnp.asarray(self.config.damping, self.dtype))

    def compile_step(self, example: TrainState) -> None:
        """Compile (by running once) every jitted function of :meth:`step` and the optimizer
        state's initialisation, on ``example``, a state whose arrays this call may consume
        (kfac-jax donates its inputs). Results are dropped; only jax's caches keep something.
        With ``example.opt_state`` None the optimizer state is initialised from it first."""
        key = jax.random.PRNGKey(0)
        params = example.params
        opt_state = example.opt_state
        if opt_state is None:
            opt_state = self.init_opt_state(self._copy(params), example.walkers, key)
        walkers = self.mcmc(params, example.walkers, key, self.R)
        batch = (walkers.r, self.R)
        if self.config.optimizer == "kfac":
            self._copy((params, opt_state))
            new_params, _, out = self._kfac_update(params, opt_state, key, batch)
            jax.block_until_ready(self._finite(new_params, out["loss"]))
            params = new_params
        else:
            jax.block_until_ready(self._optax_update(params, opt_state, key, batch))
        if example.monitor is not None:
            jax.block_until_ready(self._monitor_step(params, example.monitor, key, self.R))

    def burn_in(self, state: TrainState, steps: int | None = None) -> TrainState:
        """Metropolis steps with fixed parameters (in calls of ``mcmc_steps`` each), for the
        training walkers and the monitor chain."""
        steps = self.config.burn_in if steps is None else steps
        walkers, key = state.walkers, jax.random.fold_in(state.key, _BURN_IN)
        monitor, monitor_key = state.monitor, jax.random.fold_in(key, _MONITOR)
        for i in range(-(-steps // self.config.mcmc_steps)):
            walkers = self.mcmc(state.params, walkers, jax.random.fold_in(key, i), self.R)
            if monitor is not None:
                monitor = self.mcmc(state.params, monitor, jax.random.fold_in(monitor_key, i), self.R)
        return state.replace(walkers=walkers, monitor=monitor)

    def step(self, state: TrainState) -> tuple[TrainState, StepStats]:
        """One optimisation step: ``mcmc_steps`` Metropolis steps, then an optimizer update.

        A step whose energy or new parameters are not finite is rejected (parameters and
        optimizer state stay as they were) and counted in ``n_rejected``.
        """
        step = int(state.step)
        k_mcmc, k_opt = jax.random.split(jax.random.fold_in(state.key, step))
        walkers = self.mcmc(state.params, state.walkers, k_mcmc, self.R)
        batch = (walkers.r, self.R)
        if self.config.optimizer == "kfac":
            backup = self._copy((state.params, state.opt_state))
            params, opt_state, out = self._kfac_update(state.params, state.opt_state, k_opt, batch)
            energy, stats = out["loss"], out["aux"]
            ok = bool(self._finite(params, energy))
            if not ok:
                params, opt_state = backup
        else:
            params, opt_state, energy, stats, ok = self._optax_update(state.params, state.opt_state, k_opt, batch)
            ok = bool(ok)
        monitor, monitor_energy = state.monitor, None
        if monitor is not None and (step + 1) % self.config.monitor_every == 0:
            k_monitor = jax.random.fold_in(jax.random.fold_in(state.key, _MONITOR), step)
            monitor, monitor_energy = self._monitor_step(params, monitor, k_monitor, self.R)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, walkers=walkers,
                                  n_rejected=state.n_rejected + (0 if ok else 1), monitor=monitor)
        host = jax.device_get((energy, stats.variance, walkers.acceptance, walkers.step_size, monitor_energy,
                               stats.geometry_energy, stats.geometry_variance))
        per_geometry = {}
        if host[5] is not None:
            per_geometry = dict(geometry_energy=[float(x) for x in host[5]],
                                geometry_variance=[float(x) for x in host[6]],
                                geometry_step_size=[float(x) for x in host[3]])
        return new_state, StepStats(step=step + 1, energy=float(host[0]), variance=float(host[1]),
                                    acceptance=float(np.mean(host[2])), step_size=float(np.mean(host[3])),
                                    rejected=not ok, monitor_energy=None if host[4] is None else float(host[4]),
                                    **per_geometry, **self._step_extras(stats))

    def _step_extras(self, stats) -> dict:
        """More :class:`StepStats` fields from the loss's statistics (none for one state)."""
        return {}


def iterate_steps(vmc: VMC, state: TrainState, n_steps: int | None = None) -> Iterator[tuple[TrainState, StepStats]]:
    """The one stepping loop: ``(state, stats)`` after each of ``n_steps`` optimisation steps
    (without end if ``None``; the caller stops). Run folders (:func:`qmczoo.runs.lifecycle.train`), the
    benchmark and :func:`run_steps` all drive the VMC through it."""
    count = 0
    while n_steps is None or count < n_steps:
        state, stats = vmc.step(state)
        count += 1
        yield state, stats


def run_steps(vmc: VMC, state: TrainState, n_steps: int,
              on_step: Callable[[StepStats, float], None] | None = None) -> tuple[TrainState, list[StepStats]]:
    """Take ``n_steps`` optimisation steps; ``on_step(stats, elapsed_seconds)`` after each."""
    history, start = [], time.perf_counter()
    for state, stats in iterate_steps(vmc, state, n_steps):
        history.append(stats)
        if on_step is not None:
            on_step(stats, time.perf_counter() - start)
    return state, history
