"""Antisymmetrizers: from orbital matrices to the sign and log-magnitude of psi.

An orbital matrix ``phi[k, i, j]`` holds orbital ``j`` of determinant ``k`` evaluated for
electron ``i``. A wavefunction is a sum of determinants, each a product over spin blocks:

    psi = sum_k prod_blocks det(phi_block[k])

computed in log space: signed log-determinants per block, summed over blocks, then a
signed log-sum-exp over ``k``. A 1x1 block (a lone electron of one spin with block-diagonal
determinants) is kept in linear scale and multiplies the exponentials inside the sum, so that
its zeros (a node of that orbital) never pass through ``log 0``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def signed_logsumexp(signs: jnp.ndarray, logs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``log|sum_k s_k e^{l_k}|`` and its sign, stably. Inputs ``[K]``; outputs scalars.

    ``signs`` may be any real weights (signs, or signs times linear-scale factors).
    """
    shift = jax.lax.stop_gradient(jnp.max(logs))
    total = jnp.sum(signs * jnp.exp(logs - shift))
    return jnp.sign(total), jnp.log(jnp.abs(total)) + shift


def multi_determinant(blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sign and log|psi| of ``sum_k prod_b det(blocks[b][k])``.

    Args:
      blocks: orbital matrices, each ``[K, n_b, n_b]`` (same ``K``); one block for a dense
        determinant over all electrons, two (up, down) for block-diagonal determinants.
        Empty blocks (``n_b = 0``) must be left out by the caller.

    Returns:
      ``(sign, logabs)``, scalars.
    """
    linear, sign, logdet = 1.0, 1.0, 0.0
    for block in blocks:
        if block.shape[-1] == 1:
            linear = linear * block[..., 0, 0]
        else:
            s, l = jnp.linalg.slogdet(block)
            sign, logdet = sign * s, logdet + l
    return signed_logsumexp(sign * linear, logdet + jnp.zeros_like(blocks[0][..., 0, 0]))
