"""FermiNet's permutation-equivariant electron embedding (Pfau et al. 2020).

A one-electron stream ``h_i`` and a two-electron stream ``h_ij`` are updated layer by layer;
each one-electron update sees the electron's own features, the spin-wise means over all
electrons, and the spin-wise means of its pair features. The output is equivariant under
permutations of same-spin electrons.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense
from qmczoo.layers.spin_pooling import EquivariantDense, residual, symmetric_inputs


class FermiNetEmbedding(nn.Module):
    """Per-electron embedding from FermiNet's one-/two-electron streams.

    Attributes:
      n_up: number of spin-up electrons (rows ``[:n_up]`` of the inputs).
      hidden_dims: ``((d_one, d_two), ...)``, one pair per layer.
      activation: nonlinearity (default ``tanh``).

    Call:
      ``one`` ``[N, F1]`` one-electron inputs, ``two`` ``[N, N, F2]`` pair inputs.

    Returns:
      ``(h_one, shared, pair)``: the final one-electron stream ``[N, d_one]``, its spin means
      ``[c d_one]`` and the spin means of the final pair stream ``[N, c d_two]``; a head
      combines them with :class:`EquivariantDense` (FermiNet's final symmetric features).
    """

    n_up: int
    hidden_dims: Sequence[tuple[int, int]] = ((32, 8), (32, 8))
    activation: str = "tanh"

    @nn.compact
    def __call__(self, one: jnp.ndarray, two: jnp.ndarray):
        act = getattr(jnp, self.activation, None) or getattr(nn, self.activation)
        h_one, h_two = one, two
        for layer, (d_one, d_two) in enumerate(self.hidden_dims):
            h, shared, pair = symmetric_inputs(h_one, h_two, self.n_up)
            new_one = act(EquivariantDense(d_one, name=f"one_{layer}")(h, shared, pair))
            new_two = act(Dense(d_two, name=f"two_{layer}")(h_two))
            h_one, h_two = residual(new_one, h_one), residual(new_two, h_two)
        return symmetric_inputs(h_one, h_two, self.n_up)
