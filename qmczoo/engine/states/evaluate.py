"""Fixed-parameter evaluation of ``k`` states: energies with error bars, ``<S^2>`` and overlaps.

**NES-VMC.** Every step averages the local-energy matrix and the spin matrix over the walkers
(``E_t``, ``S_t`` ``[k, k]``); the energies are the eigenvalues ``lambda_m`` of ``E = mean_t E_t``
(right eigenvectors ``V``, ``W = V^-1``). Their error bars come from first-order perturbation
theory (the delta method) with reblocking: for a non-degenerate eigenvalue
``lambda_m(E + d) = lambda_m + (W d V)_mm + O(d^2)``, so the series ``x_t = (W E_t V)_mm`` has
mean ``lambda_m`` and the reblocked error of its mean is the eigenvalue's error, autocorrelation
included (:func:`qmczoo.engine.statistics.reblock`). A bootstrap of the matrices would give the
same to first order at many more diagonalisations, and would need blocks for the correlated
steps anyway. ``<S^2>`` of eigenstate ``m`` is ``(W S V)_mm`` (``S^-1 <S^2>`` in the basis of the
eigenstates), reblocked the same way. For degenerate eigenvalues (the three 2³P components
at ``k = 6``) the split between them is arbitrary and so are their individual ``<S^2>``.

**The penalty method.** Set ``i`` samples ``|psi_i|^2``: each state's energy and ``<S^2>`` are
plain means of its own local values, reblocked.

**Overlaps**, for both: the squared cosines ``|<psi_i|psi_j>|^2 / (<psi_i|psi_i> <psi_j|psi_j>)``
between the trained states, from a second chain of one electron set that samples the mixture
``q ∝ sum_m |psi_m|^2`` and averages ``G_ij = psi_i psi_j / sum_m psi_m^2`` (``G ∝ <psi_i|psi_j>``).
Every term of ``G`` is bounded by 1/2, so this estimator has a finite variance, unlike the
penalty method's ratio estimator ``E_{psi_i^2}[psi_j / psi_i]``, whose ratio is unbounded
where ``psi_i`` has a node that ``psi_j`` lacks (the penalty method still trains with the
talk's estimator). NES needs no orthogonal ``psi_i`` (only their span matters), and an overlap
near 1 there says two states have collapsed onto one; the overlaps of its energy eigenstates
``Phi_m = sum_i V_im psi_i``, ``(V^T G V)_mn`` normalised, are reported too and vanish when the
matrix estimate is consistent.

States are reported lowest first.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.engine.evaluate import Evaluation
from qmczoo.engine.sampler import make_mcmc, psi_squared
from qmczoo.engine.states.local_energy import make_own_local_energies, make_state_spins, matrix_of_local_values
from qmczoo.engine.states.total import batch, product_log_psi
from qmczoo.engine.statistics import reblock


@dataclasses.dataclass
class StatesEvaluation(Evaluation):
    """:class:`~qmczoo.engine.evaluate.Evaluation` of ``k`` states.

    The inherited ``energy``/``energy_error``/``variance``/``step_energies`` are those of the sum
    of the state energies (the trace; the loss's energy). Besides:

    Attributes:
      states: one dict per state, lowest first: ``energy``, ``energy_error``, ``block_size``,
        ``converged``, ``spin_squared``, ``spin_squared_error``, ``excitation_energy`` and
        ``excitation_error`` (above the lowest state; the error reblocked from the per-step
        differences, so the correlation of the two energies is accounted for).
      overlaps: ``[k, k]`` nested lists, the squared cosines between the trained states (diagonal 1;
        for the penalty method in the order of ``states``).
      eigenstate_overlaps: NES: the squared cosines between the energy eigenstates, lowest first;
        the penalty method: None.
      objective: ``"nes"`` or ``"penalty"``.
    """

    states: list = dataclasses.field(default_factory=list)
    overlaps: list = dataclasses.field(default_factory=list)
    eigenstate_overlaps: list | None = None
    objective: str = "nes"

    @property
    def excitation_energies(self) -> list[tuple[float, float]]:
        """``(E_m - E_0, error)`` for every state above the lowest."""
        return [(s["excitation_energy"], s["excitation_error"]) for s in self.states[1:]]


def eigen_series(mean: np.ndarray, series: np.ndarray, *others: np.ndarray, vectors: bool = False):
    """Eigenvalues of ``mean`` ``[k, k]`` (lowest first) and the delta-method series.

    Returns ``(values [k], x [T, k], *(y [T, k] for each of others))`` with
    ``x[t, m] = (W series[t] V)_mm`` and likewise for the ``others`` (same eigenbasis), and
    with ``vectors`` the eigenvectors ``V`` ``[k, k]`` (columns, lowest first) last. Complex
    parts (a noisy non-symmetric mean) are dropped.
    """
    values, v = np.linalg.eig(mean)
    order = np.argsort(values.real)
    values, v = values[order].real, v[:, order]
    inverse = np.linalg.inv(v)
    project = lambda m: np.real(np.einsum("mi,tij,jm->tm", inverse, m, v))  # noqa: E731
    return (values, project(series), *[project(o) for o in others], *([np.real(v)] if vectors else []))


def _state_row(series: np.ndarray, spins: np.ndarray, lowest: np.ndarray) -> dict:
    """One state's record from its per-step series ``[T]`` of energies and ``<S^2>``, and the
    lowest state's energies ``[T]``."""
    est, spin, gap = reblock(series), reblock(spins), reblock(series - lowest)
    return dict(energy=est.mean, energy_error=est.error, block_size=est.block_size, converged=est.converged,
                spin_squared=spin.mean, spin_squared_error=spin.error, excitation_energy=gap.mean,
                excitation_error=gap.error)


def squared_cosines(gram: np.ndarray) -> list:
    """``|G_ij|^2 / (G_ii G_jj)`` ``[k, k]`` of a Gram matrix (diagonal 1), as nested lists."""
    gram = np.asarray(gram, dtype=float)
    d = np.sqrt(np.abs(np.diag(gram)))
    return ((gram / np.outer(d, d)) ** 2).tolist()


def make_gram_chain(vmc):
    """``(adapting, measuring)`` jitted steps of the overlap chain: walkers ``[B, N, 3]`` (one
    electron set) sampling ``sum_m |psi_m|^2``; the measuring step returns the batch mean of
    ``G_ij = psi_i psi_j / sum_m psi_m^2`` ``[k, k]`` (module docstring)."""
    states, c, R = vmc.states, vmc.config, vmc.R

    def normalised(params, x, R_):  # psi_m / sqrt(sum_m psi_m^2) per walker, [B, k]
        sign, logabs = jax.vmap(lambda xi: states.signed_log_psi_states(params, xi, R_))(x)
        log_norm = 0.5 * jax.scipy.special.logsumexp(2.0 * logabs, axis=1, keepdims=True)
        return sign * jnp.exp(logabs - log_norm), log_norm[:, 0]

    log_mixture = lambda params, x, R_: normalised(params, x, R_)[1]  # noqa: E731
    adapting = jax.jit(make_mcmc(psi_squared(log_mixture), c.mcmc_steps, c.target_acceptance))
    mcmc = make_mcmc(psi_squared(log_mixture), c.mcmc_steps, c.target_acceptance, adapt=False)

    @jax.jit
    def measuring(params, walkers, key):
        walkers = mcmc(params, walkers, key, R)
        psi, _ = normalised(params, walkers.r, R)
        return walkers, jnp.mean(psi[:, :, None] * psi[:, None, :], axis=0)

    return lambda params, walkers, key: adapting(params, walkers, key, R), measuring


def make_states_sampling_steps(vmc):
    """The jitted per-step measurement for a :class:`~qmczoo.engine.states.vmc.StatesVMC`,
    ``(params, walkers, key) -> (walkers, measurements)``."""
    states, c, R = vmc.states, vmc.config, vmc.R
    spins = make_state_spins(states)
    product = batch(product_log_psi)
    product_mcmc = make_mcmc(psi_squared(lambda p, r, R_: product(states, p, r, R_)), c.mcmc_steps,
                             c.target_acceptance, adapt=False)

    if c.objective == "penalty":
        own = jax.vmap(make_own_local_energies(states, np.asarray(vmc.system.charges), c.laplacian),
                       in_axes=(None, 0, None))

        @jax.jit
        def penalty_step(params, walkers, key):
            walkers = product_mcmc(params, walkers, key, R)
            e_own = own(params, walkers.r, R)  # [B, k]
            s = jax.vmap(lambda w: jnp.diagonal(spins(params, w, R)))(walkers.r)  # own set's S^2, [B, k]
            return walkers, (jnp.mean(e_own, axis=0), jnp.mean(s, axis=0), jnp.sum(jnp.var(e_own, axis=0)))

        return penalty_step

    nes_mcmc = make_mcmc(psi_squared(vmc.batch_log_psi), c.mcmc_steps, c.target_acceptance, adapt=False)

    @jax.jit
    def nes_step(params, walkers, key):
        walkers = nes_mcmc(params, walkers, key, R)
        energy = vmc.batch_energy_matrix(params, walkers.r, R)  # [B, k, k]
        sign, logabs = vmc.batch_state_matrix(states, params, walkers.r, R)
        spin = jax.vmap(lambda s, l, w: matrix_of_local_values(s, l, spins(params, w, R)))(sign, logabs, walkers.r)
        trace = jnp.trace(energy, axis1=1, axis2=2)
        return walkers, (jnp.mean(energy, axis=0), jnp.mean(spin, axis=0), jnp.var(trace))

    return nes_step


def evaluate_states(vmc, params, walkers, steps: int, key, burn_in: int = 0, progress=None,
                    overlap_walkers=None) -> StatesEvaluation:
    """Evaluate ``k`` states with fixed ``params`` for ``steps`` steps (module docstring).

    Args:
      vmc: a :class:`~qmczoo.engine.states.vmc.StatesVMC`.
      params, walkers: the states' parameters and starting walkers ``[B, k*N, 3]``.
      steps: measurements (>= 2), each after ``mcmc_steps`` Metropolis steps.
      key: PRNG key.
      burn_in: unmeasured calls first, with step-size adaptation.
      progress: ``progress(i, running sum of energies)`` after each step.
      overlap_walkers: starting walkers ``[B', N, 3]`` of the overlap chain (default: the first
        electron set of ``walkers``; burnt in with adaptation either way).
    """
    if steps < 2:
        from qmczoo.errors import ConfigError

        raise ConfigError(f"evaluation needs at least 2 steps, got {steps}")
    main = make_states_sampling_steps(vmc)
    adapt_gram, gram_step = make_gram_chain(vmc)
    params, walkers = vmc.place_params(params), vmc.place_walkers(walkers)
    if overlap_walkers is not None:
        overlap_walkers = vmc.place_walkers(overlap_walkers)
    start = time.perf_counter()
    nes = vmc.config.objective == "nes"
    n = vmc.states.n_electrons
    gram_walkers = overlap_walkers
    if gram_walkers is None:
        gram_walkers = walkers.replace(r=walkers.r[:, :n])
    for i in range(max(burn_in, 20)):  # the overlap chain's density differs from the energy chain's: adapt it
        gram_walkers = adapt_gram(params, gram_walkers, jax.random.fold_in(key, 3 * steps + i))
    for i in range(burn_in):
        walkers = vmc.mcmc(params, walkers, jax.random.fold_in(key, steps + i), vmc.R)
    records, grams, acceptances = [], [], []
    for i in range(steps):
        k_main, k_overlap = jax.random.split(jax.random.fold_in(key, i))
        walkers, out = main(params, walkers, k_main)
        gram_walkers, gram = gram_step(params, gram_walkers, k_overlap)
        out, gram = jax.device_get((out, gram))
        records.append(out)
        grams.append(np.asarray(gram, dtype=float))
        acceptances.append(float(np.mean(walkers.acceptance)))
        if progress is not None:
            progress(i, float(np.mean([_trace_of(r, nes) for r in records])))
    if nes:
        energy_t = np.asarray([r[0] for r in records], dtype=float)  # [T, k, k]
        spin_t = np.asarray([r[1] for r in records], dtype=float)
        variance = float(np.mean([r[2] for r in records]))
        _, x, s, v = eigen_series(energy_t.mean(axis=0), energy_t, spin_t, vectors=True)
    else:
        x = np.asarray([r[0] for r in records], dtype=float)  # [T, k]
        s = np.asarray([r[1] for r in records], dtype=float)
        variance = float(np.mean([r[2] for r in records]))
        order = np.argsort(x.mean(axis=0))
        x, s = x[:, order], s[:, order]
    rows = [_state_row(x[:, m], s[:, m], x[:, 0]) for m in range(x.shape[1])]
    gram = np.mean(grams, axis=0)
    eigenstate_overlaps = squared_cosines(v.T @ gram @ v) if nes else None
    overlaps = squared_cosines(gram if nes else gram[np.ix_(order, order)])
    total = x.sum(axis=1)
    est = reblock(total)
    return StatesEvaluation(
        energy=est.mean, energy_error=est.error, variance=variance, acceptance=float(np.mean(acceptances)),
        steps=steps, batch_size=int(walkers.r.shape[0]), block_size=est.block_size, converged=est.converged,
        step_energies=total, seconds=time.perf_counter() - start, states=rows, overlaps=overlaps,
        eigenstate_overlaps=eigenstate_overlaps, objective=vmc.config.objective)


def _trace_of(record, nes: bool) -> float:
    return float(np.trace(record[0])) if nes else float(np.sum(record[0]))
