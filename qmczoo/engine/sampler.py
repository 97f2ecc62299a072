"""One Metropolis–Hastings sampler for every ansatz.

Walkers ``r`` ``[B, N, 3]`` follow a density ``p(r) ∝ exp(log_prob(r))``, by default
``|psi|^2`` (``log_prob = 2 log|psi|``). Each step proposes a Gaussian move of all electrons
of every walker at once and accepts it with probability ``min(1, p(r')/p(r))``. The step size
is adapted between calls toward a target acceptance. Everything is jittable; there is no
Python loop over walkers or steps.
"""

from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

BatchLogProb = Callable[..., jnp.ndarray]  # (params, r [B,N,3], R [M,3]) -> [B]


@flax.struct.dataclass
class WalkerState:
    """The sampler's state.

    Attributes:
      r: walker positions ``[B, N, 3]``.
      step_size: Gaussian proposal width (bohr): a scalar, or ``[G]``, one per geometry, for
        walkers grouped by geometry (``B = G * b``, see :mod:`qmczoo.wavefunction`).
      acceptance: acceptance ratio of the last call (same shape as ``step_size``).
    """

    r: jnp.ndarray
    step_size: jnp.ndarray
    acceptance: jnp.ndarray


def initial_positions(key, system, batch_size: int, width: float = 1.0, dtype=jnp.float32, geometries=None):
    """Walkers ``[B, N, 3]``: each electron near the atom it is assigned to.

    Electrons are distributed over atoms by ``system.electron_sites()`` (spin-up
    electrons first, as the ansatz contract wants) and displaced by an isotropic Gaussian of
    standard deviation ``width`` (bohr). With ``geometries`` ``[G, M, 3]``, the walkers are
    grouped: ``batch_size // G`` around each geometry in turn (``batch_size`` a multiple of G).
    """
    sites = system.electron_sites()
    noise = jax.random.normal(key, (batch_size, system.n_electrons, 3), dtype=dtype)
    if geometries is None:
        centres = np.asarray(system.positions)[sites][None]
    else:
        geometries = np.asarray(geometries)
        centres = np.repeat(geometries[:, sites], batch_size // geometries.shape[0], axis=0)
    return jnp.asarray(centres, dtype=dtype) + width * noise


def init_walkers(key, system, batch_size: int, step_size: float = 0.02, width: float = 1.0,
                 dtype=jnp.float32, geometries=None) -> WalkerState:
    """A fresh :class:`WalkerState` (see :func:`initial_positions`); with ``geometries``
    ``[G, M, 3]`` the walkers are grouped by geometry and each group has its own step size."""
    r = initial_positions(key, system, batch_size, width, dtype, geometries)
    shape = () if geometries is None else (np.shape(geometries)[0],)
    return WalkerState(r=r, step_size=jnp.full(shape, step_size, dtype), acceptance=jnp.zeros(shape, dtype))


def make_mcmc(batch_log_prob: BatchLogProb, n_steps: int, target_acceptance: float = 0.5,
              adapt: bool = True, max_step_size: float = 1.0):
    """Build ``mcmc(params, state, key, R) -> state``: ``n_steps`` Metropolis steps.

    ``batch_log_prob(params, r [B,N,3], R) -> [B]`` is the log of the (unnormalised)
    density. With ``adapt``, the step size is multiplied after the call by a factor in
    ``[0.75, 1.33]`` that moves the acceptance toward ``target_acceptance``. For walkers
    grouped by geometry (``state.step_size`` ``[G]``), each group has its own step size,
    acceptance and adaptation.
    """

    def mcmc(params, state: WalkerState, key, R):
        log_p = batch_log_prob(params, state.r, R)
        grouped = state.step_size.ndim == 1
        n_groups = state.step_size.shape[0] if grouped else 1
        # the proposal width of each walker, and the acceptance as a mean per group
        width = jnp.repeat(state.step_size, state.r.shape[0] // n_groups)[:, None, None] if grouped \
            else state.step_size
        group_mean = (lambda a: jnp.mean(a.reshape(n_groups, -1), axis=1)) if grouped else jnp.mean

        def one_step(i, carry):
            r, log_p, accepted = carry
            k_move, k_accept = jax.random.split(jax.random.fold_in(key, i))
            proposal = r + width * jax.random.normal(k_move, r.shape, r.dtype)
            log_p_new = batch_log_prob(params, proposal, R)
            log_u = jnp.log(jax.random.uniform(k_accept, log_p.shape, r.dtype))
            accept = log_u < log_p_new - log_p
            r = jnp.where(accept[:, None, None], proposal, r)
            log_p = jnp.where(accept, log_p_new, log_p)
            return r, log_p, accepted + group_mean(accept.astype(r.dtype))

        start = jnp.zeros(state.step_size.shape, state.r.dtype) if grouped else 0.0
        r, _, accepted = jax.lax.fori_loop(0, n_steps, one_step, (state.r, log_p, start))
        acceptance = accepted / n_steps
        step_size = state.step_size
        if adapt:
            factor = jnp.clip(acceptance / target_acceptance, 0.75, 1.33)
            step_size = jnp.clip(step_size * factor, 1e-4, max_step_size)
        return WalkerState(r=r, step_size=step_size.astype(state.step_size.dtype),
                           acceptance=acceptance.astype(state.acceptance.dtype))

    return mcmc


def psi_squared(batch_log_psi) -> BatchLogProb:
    """``log |psi|^2`` from a batched ``log|psi|``."""
    return lambda params, r, R: 2.0 * batch_log_psi(params, r, R)
