"""The walkers of ``k`` states and the wavefunctions they sample.

A walker of a ``k``-state run holds ``k`` electron sets: ``r`` ``[k * N, 3]``, set ``j`` is
``r[j*N:(j+1)*N]`` (each set spin-up electrons first). Flattened this way the walkers are
ordinary ``[B, k*N, 3]`` arrays, so the one Metropolis sampler moves them unchanged.

* NES-VMC samples ``|Psi|^2`` of the *total ansatz* ``Psi(x^1 ... x^k) = det A``,
  ``A[j, i] = psi_i(x^j)`` (rows: electron sets, columns: states), Pfau et al., Science 2024.
* The penalty method samples each state from its own density: set ``i`` follows
  ``|psi_i|^2``, i.e. the product density ``prod_i |psi_i(x^i)|^2``.

Everything here takes a :class:`~qmczoo.wavefunction.StateSet` and one walker; the batched
versions are mapped over walkers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def electron_sets(r: jnp.ndarray, k: int) -> jnp.ndarray:
    """``r`` ``[k*N, 3]`` -> the ``k`` electron sets ``[k, N, 3]``."""
    return r.reshape(k, r.shape[0] // k, 3)


def state_matrix(states, params, r: jnp.ndarray, R: jnp.ndarray):
    """Every state at every electron set of one walker ``r`` ``[k*N, 3]``.

    Returns ``(sign [k, k], log|psi| [k, k])`` with entry ``[j, i]`` = state ``i`` at set ``j``.
    Each state is mapped (``vmap``) over the sets, so KFAC sees one tag per layer and state,
    with the ``k`` sets as repeats.
    """
    x = electron_sets(r, states.k)
    columns = [jax.vmap(lambda xj, p=p: states.wf.signed_log_psi(p, xj, R))(x) for p in params]
    return jnp.stack([c[0] for c in columns], axis=1), jnp.stack([c[1] for c in columns], axis=1)


def scaled_matrix(sign: jnp.ndarray, logabs: jnp.ndarray):
    """``A`` from its signs and logs, each row divided by its largest entry: ``(A' [k, k], shift [k])``
    with ``A = diag(exp(shift)) A'``.

    Dividing a row (an electron set) by a number changes ``det A`` by that factor and leaves
    ``A^-1 (A * e)`` unchanged, so the scaled matrix serves both without overflow.
    """
    shift = jax.lax.stop_gradient(jnp.max(logabs, axis=1))
    return sign * jnp.exp(logabs - shift[:, None]), shift


def log_det_from_matrix(sign: jnp.ndarray, logabs: jnp.ndarray):
    """``(sign, log|det A|)`` of ``A[j, i] = sign * exp(logabs)`` ``[k, k]``, computed stably."""
    scaled, shift = scaled_matrix(sign, logabs)
    s, log_det = jnp.linalg.slogdet(scaled)
    return s, log_det + jnp.sum(shift)


def total_signed_log_psi(states, params, r: jnp.ndarray, R: jnp.ndarray):
    """NES-VMC's total ansatz at one walker ``r`` ``[k*N, 3]``: ``(sign, log|det A|)``.

    Antisymmetric under exchanging two electron sets (two rows of ``A``) and, because every
    state is, under exchanging two same-spin electrons within a set. For ``k = 1`` it is the
    ansatz itself.
    """
    return log_det_from_matrix(*state_matrix(states, params, r, R))


def product_log_psi(states, params, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
    """The penalty method's walker: ``sum_i log|psi_i(x^i)|`` at one walker (each set ``i``
    samples its own state), a scalar."""
    x = electron_sets(r, states.k)
    return sum(states.wf.signed_log_psi(p, x[i], R)[1] for i, p in enumerate(params))


def batch(fn):
    """Map ``fn(states, params, r [k*N,3], R)`` over walkers ``r`` ``[B, k*N, 3]``."""

    def batched(states, params, r, R):
        return jax.vmap(lambda x: fn(states, params, x, R))(r)

    return batched


def initial_walkers(init_walkers, key, system, k: int, count: int, **kwargs):
    """``count`` walkers of ``k`` electron sets, ``[count, k*N, 3]``: each set drawn as a walker
    of one state is (``init_walkers`` is :func:`qmczoo.engine.sampler.init_walkers`)."""
    walkers = init_walkers(key, system, count * k, **kwargs)
    n = walkers.r.shape[1]
    return walkers.replace(r=walkers.r.reshape(count, k * n, 3))
