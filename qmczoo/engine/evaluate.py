"""Fixed-parameter evaluation: the energy with an honest (reblocked) error bar."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.engine.statistics import reblock


@dataclasses.dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes:
      energy, energy_error: mean local energy (hartree) and its reblocked standard error.
      variance: mean over steps of the walker variance of the local energy (hartree^2).
      acceptance: mean Metropolis acceptance.
      steps, batch_size: evaluation steps (each ``mcmc_steps`` Metropolis steps) and walkers.
      block_size, converged: the reblocking level used and whether its criterion was met.
      step_energies: per-step walker-mean energies ``[steps]``.
      seconds: wall time.
      geometries: for walkers grouped over several geometries, one dict per geometry
        (``energy``, ``energy_error``, ``variance``, ``block_size``, ``converged``, each
        reblocked from that geometry's own per-step means); None for one geometry. The
        top-level energy is then the mean over geometries.
    """

    energy: float
    energy_error: float
    variance: float
    acceptance: float
    steps: int
    batch_size: int
    block_size: int
    converged: bool
    step_energies: np.ndarray
    seconds: float
    geometries: list | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["step_energies"] = [float(x) for x in self.step_energies]
        return d


def make_sampling_step(vmc):
    """Jitted ``(params, walkers, key) -> (walkers, mean E_L, var E_L)`` for a :class:`~qmczoo.engine.vmc.VMC`."""

    from qmczoo.engine.sampler import make_mcmc, psi_squared

    # the step size stays fixed while measuring, so the chain is a plain Metropolis chain
    mcmc = make_mcmc(psi_squared(vmc.wf.batch_log_psi), vmc.config.mcmc_steps,
                     vmc.config.target_acceptance, adapt=False)

    @jax.jit
    def sample(params, walkers, key):
        walkers = mcmc(params, walkers, key, vmc.R)
        e_l = vmc.batch_local_energy(params, walkers.r, vmc.R, *vmc.local_energy_key(key))
        if vmc.R.ndim == 2:
            return walkers, jnp.mean(e_l), jnp.var(e_l)
        grouped = e_l.reshape(vmc.R.shape[0], -1)  # walkers grouped by geometry: [G, b]
        return walkers, jnp.mean(grouped, axis=1), jnp.var(grouped, axis=1)

    return sample


def evaluate(vmc, params, walkers, steps: int, key, burn_in: int = 0,
             progress: Callable[[int, float], None] | None = None) -> Evaluation:
    """Sample ``|psi|^2`` with fixed ``params`` for ``steps`` steps and estimate the energy.

    Args:
      vmc: a :class:`~qmczoo.engine.vmc.VMC` (sampler, local energy).
      params: wavefunction parameters.
      walkers: starting :class:`~qmczoo.engine.sampler.WalkerState` (e.g. from training).
      steps: number of measurements, each after ``vmc.config.mcmc_steps`` Metropolis steps.
      key: PRNG key.
      burn_in: unmeasured steps first, with step-size adaptation (fixed while measuring).
      progress: ``progress(i, running_energy)`` after each measured step.
    """
    if steps < 2:
        from qmczoo.errors import ConfigError

        raise ConfigError(f"evaluation needs at least 2 steps, got {steps}")
    sample = make_sampling_step(vmc)
    params, walkers = vmc.place_params(params), vmc.place_walkers(walkers)
    start = time.perf_counter()
    for i in range(burn_in):
        walkers = vmc.mcmc(params, walkers, jax.random.fold_in(key, steps + i), vmc.R)
    energies, variances, acceptances = [], [], []
    for i in range(steps):
        walkers, e, v = sample(params, walkers, jax.random.fold_in(key, i))
        e, v, a = jax.device_get((e, v, walkers.acceptance))
        energies.append(np.asarray(e, dtype=float))
        variances.append(np.asarray(v, dtype=float))
        acceptances.append(float(np.mean(a)))
        if progress is not None:
            progress(i, float(np.mean(energies)))
    energies, variances = np.asarray(energies), np.asarray(variances)  # [steps] or [steps, G]
    per_geometry = None
    if energies.ndim == 2:
        per_geometry = []
        for g in range(energies.shape[1]):
            est_g = reblock(energies[:, g])
            per_geometry.append(dict(energy=est_g.mean, energy_error=est_g.error,
                                     variance=float(np.mean(variances[:, g])), block_size=est_g.block_size,
                                     converged=est_g.converged))
        energies, variances = energies.mean(axis=1), variances.mean(axis=1)
    est = reblock(energies)
    return Evaluation(
        energy=est.mean, energy_error=est.error, variance=float(np.mean(variances)),
        acceptance=float(np.mean(acceptances)), steps=steps, batch_size=int(walkers.r.shape[0]),
        block_size=est.block_size, converged=est.converged, step_energies=np.asarray(energies),
        seconds=time.perf_counter() - start, geometries=per_geometry,
    )
