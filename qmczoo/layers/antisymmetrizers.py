"""Antisymmetrizers: from orbital matrices to the sign and log-magnitude of psi.

An orbital matrix ``phi[k, i, j]`` holds orbital ``j`` of determinant ``k`` evaluated for
electron ``i``. A wavefunction is a sum of determinants, each a product over spin blocks:

    psi = sum_k prod_blocks det(phi_block[k])

computed in log space: signed log-determinants per block, summed over blocks, then a
signed log-sum-exp over ``k`` so that no determinant is ever formed in linear scale.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def signed_logsumexp(signs: jnp.ndarray, logs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``log|sum_k s_k e^{l_k}|`` and its sign, stably. Inputs ``[K]``; outputs scalars."""
    shift = jax.lax.stop_gradient(jnp.max(logs))
    total = jnp.sum(signs * jnp.exp(logs - shift))
    return jnp.sign(total), jnp.log(jnp.abs(total)) + shift


def _slogdet(matrices: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Batched sign/log|det| over the last two axes, with a closed form for 1x1."""
    if matrices.shape[-1] == 1:
        x = matrices[..., 0, 0]
        return jnp.sign(x), jnp.log(jnp.abs(x))
    return jnp.linalg.slogdet(matrices)


def multi_determinant(blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sign and log|psi| of ``sum_k prod_b det(blocks[b][k])``.

    Args:
      blocks: orbital matrices, each ``[K, n_b, n_b]`` (same ``K``); one block for a dense
        determinant over all electrons, two (up, down) for block-diagonal determinants.
        Empty blocks (``n_b = 0``) must be left out by the caller.

    Returns:
      ``(sign, logabs)``, scalars.
    """
    sign, logdet = 1.0, 0.0
    for block in blocks:
        s, l = _slogdet(block)
        sign, logdet = sign * s, logdet + l
    return signed_logsumexp(sign, logdet)
