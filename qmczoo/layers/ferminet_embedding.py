"""FermiNet's permutation-equivariant electron embedding (Pfau et al. 2020).

A one-electron stream ``h_i`` and a two-electron stream ``h_ij`` are updated layer by layer;
each one-electron update sees the electron's own features, the spin-wise means over all
electrons, and the spin-wise means of its pair features. The output is equivariant under
permutations of same-spin electrons.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from qmczoo.layers.activations import activation
from qmczoo.layers.curvature import Dense
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput
from qmczoo.layers.spin_pooling import EquivariantDense, residual, symmetric_inputs


class FermiNetEmbedding(nn.Module):
    """Per-electron embedding from FermiNet's one-/two-electron streams.

    Attributes:
      n_up: number of spin-up electrons (rows ``[:n_up]`` of the inputs).
      hidden_dims: ``((d_one, d_two), ...)``, one pair per layer.
      activation: nonlinearity (default ``tanh``).
      bias_std: standard deviation of the layers' initial biases, drawn from a normal
        distribution as FermiNet's code does (0: zeros). See ``docs/engine.md``,
        "Initialisation", for the runs that chose the default.

    Call:
      ``features``: :class:`~qmczoo.layers.slots.ElectronFeatures`; the streams start from
      ``features.one`` ``[N, F1]`` and ``features.two`` ``[N, N, F2]``.

    Returns:
      :class:`~qmczoo.layers.slots.EmbeddingOutput`: ``h`` the final one-electron stream
      ``[N, d_one]``, ``shared`` its spin means ``[c d_one]``, ``pair`` the spin means of the
      final pair stream ``[N, c d_two]``; a head combines them with :class:`EquivariantDense`
      (FermiNet's final symmetric features).
    """

    n_up: int
    hidden_dims: Sequence[Sequence[int]] = ((32, 8), (32, 8))
    activation: str = "tanh"
    bias_std: float = 0.0

    @nn.compact
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        act = activation(self.activation)
        if not self.bias_std >= 0:
            from qmczoo.errors import ConfigError

            raise ConfigError(f"bias_std must be a number >= 0, got {self.bias_std!r}")
        bias_init = nn.initializers.normal(self.bias_std) if self.bias_std > 0 else nn.initializers.zeros
        h_one, h_two = features.one, features.two
        for layer, (d_one, d_two) in enumerate(self.hidden_dims):
            h, shared, pair = symmetric_inputs(h_one, h_two, self.n_up)
            new_one = act(EquivariantDense(d_one, bias_init=bias_init, name=f"one_{layer}")(h, shared, pair))
            new_two = act(Dense(d_two, bias_init=bias_init, name=f"two_{layer}")(h_two))
            h_one, h_two = residual(new_one, h_one), residual(new_two, h_two)
        return EmbeddingOutput(*symmetric_inputs(h_one, h_two, self.n_up))

