"""The Psiformer embedding: self-attention over electrons (von Glehn, Spencer & Pfau, ICLR 2023).

Each electron starts from its electron–nuclear features (``features.one``, log-rescaled in the
``psiformer`` ansatz) and its spin (+1 up, -1 down), projected to the attention width. Then
``layers`` blocks of

    h <- h + Attention(LayerNorm(h))          (multi-head, over all electrons)
    h <- h + act(Dense(LayerNorm(h)))

No electron–electron distances enter the embedding (the Psiformer leaves them to a cusp
Jastrow), so it is smooth at electron–electron coalescence. Attention is equivariant under
every permutation of the electrons; the spin input restricts that to same-spin permutations.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.activations import activation
from qmczoo.layers.attention import LayerNorm, SelfAttention
from qmczoo.layers.curvature import Dense
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput


class PsiformerEmbedding(nn.Module):
    """Per-electron embedding by self-attention.

    Attributes:
      n_up, n_down: electrons of each spin (rows ``[:n_up]`` are spin up).
      layers: number of attention blocks.
      heads: attention heads per block.
      head_dim: width of each head; the embedding width is ``heads * head_dim``.
      mlp_layers: dense layers (with residuals) after each attention.
      layer_norm: normalise before attention and before each dense layer.
      activation: nonlinearity of the dense layers (default ``tanh``).

    Call:
      ``features``: :class:`~qmczoo.layers.slots.ElectronFeatures`; uses ``one`` ``[N, F1]``.

    Returns:
      :class:`~qmczoo.layers.slots.EmbeddingOutput` with ``h`` ``[N, heads * head_dim]``
      (no ``shared`` or ``pair`` parts).
    """

    n_up: int
    n_down: int
    layers: int = 4
    heads: int = 4
    head_dim: int = 16
    mlp_layers: int = 1
    layer_norm: bool = True
    activation: str = "tanh"

    @nn.compact
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        act = activation(self.activation)
        x = features.one
        spin = jnp.concatenate([jnp.ones((self.n_up, 1), x.dtype), -jnp.ones((self.n_down, 1), x.dtype)])
        width = self.heads * self.head_dim
        h = Dense(width, name="input")(jnp.concatenate([x, spin], axis=-1))
        norm = (lambda name: LayerNorm(name=name)) if self.layer_norm else (lambda name: (lambda y: y))
        for layer in range(self.layers):
            h = h + SelfAttention(self.heads, self.head_dim, name=f"attention_{layer}")(norm(f"norm_attention_{layer}")(h))
            for k in range(self.mlp_layers):
                h = h + act(Dense(width, name=f"mlp_{layer}_{k}")(norm(f"norm_mlp_{layer}_{k}")(h)))
        return EmbeddingOutput(h=h)
