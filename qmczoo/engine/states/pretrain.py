"""Pretraining ``k`` states to ``k`` different Hartree–Fock determinants, so that they start apart.

State ``i``'s orbitals are fitted (least squares, Adam) to the orbitals of the ``i``-th lowest
determinant among UHF and its single and double excitations
(:func:`qmczoo.chemistry.excitations.lowest_determinants`), as FermiNet does for excited
states. Set ``i`` of each walker samples that determinant's density ``|D_i|^2``, mixed
geometrically with ``|psi_i|^2`` by ``hf_fraction`` as in ground-state pretraining
(:mod:`qmczoo.engine.pretrain`). The loss is the sum over states; the parameters of one state
only see their own determinant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from qmczoo.engine.pretrain import hf_orbitals_jax, pretraining_log_density, target_blocks
from qmczoo.engine.sampler import make_mcmc
from qmczoo.engine.states.total import electron_sets


def _log_abs_det(m: jnp.ndarray) -> jnp.ndarray:
    if m.shape[-1] == 0:
        return jnp.zeros(m.shape[:-2], m.dtype)
    return jnp.linalg.slogdet(m)[1]


def make_states_pretrainer(states, determinants: list, R: jnp.ndarray, *, learning_rate: float = 3e-4,
                           hf_fraction: float = 1.0, mcmc_steps: int = 1):
    """Build ``(init_opt, step)`` for pretraining a :class:`~qmczoo.wavefunction.StateSet`.

    Args:
      states: the ``k`` states (their ansatz must have ``orbitals``).
      determinants: ``k`` :class:`~qmczoo.chemistry.hartree_fock.HartreeFock` objects, the
        orbitals of each state's target determinant.
      R: nuclear positions ``[M, 3]`` (one geometry).

    ``step(params, opt_state, walkers, key) -> (params, opt_state, walkers, loss)``: walkers
    ``r`` ``[B, k*N, 3]`` take ``mcmc_steps`` Metropolis steps, then one Adam step.
    """
    k = states.k
    if states.wf.orbitals is None:
        raise ValueError("this ansatz has no orbitals() method; it cannot be pretrained")
    if len(determinants) != k:
        raise ValueError(f"{k} states but {len(determinants)} target determinants")
    target_orbitals = [hf_orbitals_jax(d, R) for d in determinants]

    def batch_log_target(r):  # sum_i log|D_i(x^i)| per walker [B]
        x = jax.vmap(lambda w: electron_sets(w, k))(r)
        total = 0.0
        for i, orbitals in enumerate(target_orbitals):
            up, down = orbitals(x[:, i])
            total = total + _log_abs_det(up) + _log_abs_det(down)
        return total

    def batch_log_states(params, r, R_):  # sum_i log|psi_i(x^i)| per walker [B]
        def one(w):
            x = electron_sets(w, k)
            return sum(states.wf.log_psi(p, x[i], R_) for i, p in enumerate(params))

        return jax.vmap(one)(r)

    mcmc = make_mcmc(pretraining_log_density(batch_log_target, batch_log_states, hf_fraction), mcmc_steps)
    optimizer = optax.adam(learning_rate)

    def loss_fn(params, x, targets):
        total = 0.0
        for i, p in enumerate(params):
            up, down = targets[i]

            def one(xi, u, d, p=p):
                blocks = states.wf.orbitals(p, xi, R)
                wanted = target_blocks(u, d, [b.shape for b in blocks])
                return sum(jnp.mean((b - t[None]) ** 2) for b, t in zip(blocks, wanted))

            total = total + jnp.mean(jax.vmap(one)(x[:, i], up, down))
        return total

    @jax.jit
    def step(params, opt_state, walkers, key):
        walkers = mcmc(params, walkers, key, R)
        x = jax.vmap(lambda w: electron_sets(w, k))(walkers.r)  # [B, k, N, 3]
        targets = [orbitals(x[:, i]) for i, orbitals in enumerate(target_orbitals)]
        loss, grads = jax.value_and_grad(loss_fn)(params, x, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, walkers, loss

    return optimizer.init, step
