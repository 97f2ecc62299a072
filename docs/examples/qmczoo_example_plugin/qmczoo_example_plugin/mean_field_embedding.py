"""A small embedding layer for qmczoo's ``embedding`` slot.

``h_i`` starts as a dense map of electron ``i``'s distances to the nuclei; each layer adds
``tanh(Dense([h_i, mean of h over spin-up electrons, mean over spin-down electrons]))``.
Distances only, and means over electrons of a spin: the output is invariant under translations
and rotations and equivariant under same-spin permutations (what the registry entry claims, and
what ``qmczoo.testing.check_layer`` checks).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense  # a dense map with its KFAC block registered
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput


class MeanFieldEmbedding(nn.Module):
    """Mean-field (deep-set) electron embedding.

    Attributes:
      n_up: spin-up electrons (rows ``[:n_up]``); handed over by the ansatz (slot context).
      width: features per electron.
      layers: number of mean-field layers.

    Call: ``features`` (:class:`~qmczoo.layers.slots.ElectronFeatures`; uses ``en_dist``
    ``[N, M, 1]``). Returns :class:`~qmczoo.layers.slots.EmbeddingOutput` with ``h`` ``[N, width]``.
    """

    n_up: int
    width: int = 16
    layers: int = 2

    @nn.compact
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        n = features.en_dist.shape[0]
        h = jnp.tanh(Dense(self.width, name="input")(features.en_dist[..., 0]))  # [N, width]
        for layer in range(self.layers):
            means = [h[rows].mean(axis=0) for rows in (slice(0, self.n_up), slice(self.n_up, n))
                     if rows.stop > rows.start]
            context = jnp.broadcast_to(jnp.concatenate(means), (n, self.width * len(means)))
            h = h + jnp.tanh(Dense(self.width, name=f"layer_{layer}")(jnp.concatenate([h, context], axis=-1)))
        return EmbeddingOutput(h=h)
