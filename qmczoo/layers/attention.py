"""Multi-head self-attention over electrons and a layer norm, with KFAC curvature for every parameter.

Functional pieces used by the Psiformer embedding (:mod:`qmczoo.layers.psiformer_embedding`)
and open to any other attention layer. Every call is on ONE configuration: ``h`` is ``[N, D]``
(one row per electron). Self-attention treats the rows as a set: permuting the electrons
permutes the output rows the same way (it is permutation-equivariant over all electrons).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense, scale_and_shift


class LayerNorm(nn.Module):
    """Normalise each row to zero mean and unit variance, then a learned scale and shift.

    Call: ``x`` ``[..., D]`` -> ``[..., D]``. The scale (init 1) and shift (init 0) share one
    per-walker scale-and-shift KFAC block.
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        d = x.shape[-1]
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        normed = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        gain = self.param("scale", nn.initializers.ones, (d,))
        shift = self.param("shift", nn.initializers.zeros, (d,))
        return scale_and_shift(normed, gain, shift)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, ``softmax(Q K^T / sqrt(d)) V``, then a projection.

    Attributes:
      heads: number of heads ``H``.
      head_dim: width of each head's query, key and value ``d``.
      features: output width (default: the input width).

    Call: ``h`` ``[N, D]`` -> ``[N, features]``. Queries, keys and values are bias-free
    registered dense maps of ``h``; the output projection has a bias.
    """

    heads: int = 4
    head_dim: int = 16
    features: int | None = None

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        n = h.shape[0]
        width = self.heads * self.head_dim

        def project(name):
            return Dense(width, use_bias=False, name=name)(h).reshape(n, self.heads, self.head_dim)

        q, k, v = project("query"), project("key"), project("value")
        logits = jnp.einsum("ihd,jhd->hij", q, k) / jnp.sqrt(jnp.asarray(self.head_dim, h.dtype))
        weights = jax.nn.softmax(logits, axis=-1)
        mixed = jnp.einsum("hij,jhd->ihd", weights, v).reshape(n, width)
        return Dense(self.features or h.shape[-1], name="output")(mixed)
