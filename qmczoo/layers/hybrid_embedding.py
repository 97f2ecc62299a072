"""DeepErwin's FermiNet-PauliNet hybrid embedding (Gerard, Scherbela, Marquetand & Grohs,
"Gold-standard solutions to the Schrödinger equation using deep learning: How much physics do
we need?", NeurIPS 2022).

FermiNet's two streams (Pfau et al. 2020), with the pair stream split into same-spin and
opposite-spin streams, and the one-electron update receiving, besides FermiNet's inputs (the
electron's own vector, spin means, spin means of its pair vectors), SchNet-style convolution
messages (PauliNet, Hermann et al. 2020): from the other electrons (filters computed from the
pair stream weighting a linear map of ``h_j``, separately for same and opposite spin, as the
pair stream itself is split) and from the nuclei (filters computed from an electron-nuclear
stream weighting learned vectors of the nucleus' charge).

The electron-nuclear stream ``g_iI`` is a third stream, updated in every layer but the last by
its own residual dense layer, as the pair streams are: DeepErwin's ``use_el_ion_stream``
(mdsunivie/deeperwin, ``FermiNetEmbedding``: ``h_el_ion`` gets a residual MLP per iteration,
after the one-electron update, none after the last). Two differences from DeepErwin remain, both
kept on purpose: the filters are a learned linear map of the stream (DeepErwin multiplies the
stream itself; a linear map contains that choice and lets the message width ``conv_width``
differ from the stream's ``nuclear_width``), and the stream starts from one dense layer of the
raw electron-nuclear features (DeepErwin's default starts from the raw features themselves, so
its first layer's filters are linear in them).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense
from qmczoo.layers.activations import activation
from qmczoo.layers.pair_streams import SpinSplitPairDense
from qmczoo.layers.schnet_embedding import nucleus_vectors
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput
from qmczoo.layers.spin_pooling import EquivariantDense, residual, symmetric_inputs


def convolve_electrons(filters: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
    """``m_i = sum_{j != i} filters[i, j] * values[j]``: ``[N, N, C]``, ``[N, C]`` -> ``[N, C]``.

    The ``j = i`` term is subtracted rather than masked out (no constant factor on a stream);
    products then sums rather than an einsum (faster in folx's forward Laplacian).
    """
    diagonal = jnp.diagonal(filters, axis1=0, axis2=1).T  # [N, C]
    return jnp.sum(filters * values[None], axis=1) - diagonal * values


class HybridEmbedding(nn.Module):
    """FermiNet layers with spin-split pair streams and SchNet convolution messages.

    Attributes:
      n_up, n_down: electrons per spin (rows ordered up first).
      charges: nuclear charges ``(Z_1, ..., Z_M)``; nuclei with equal charge share a vector.
      hidden_dims: ``((d_one, d_two), ...)``, one pair per layer (as FermiNetEmbedding).
      conv_width: width ``C`` of the convolution messages (electron and nuclear).
      nuclear_width: hidden width of the electron-nuclear feature network feeding the
        nuclear filters.
      activation: nonlinearity.

    Call:
      ``features``: :class:`~qmczoo.layers.slots.ElectronFeatures`; the streams start from
      ``features.one`` ``[N, F1]`` and ``features.two`` ``[N, N, F2]``; the nuclear filters see
      ``en_disp`` ``[N, M, 3]`` and ``en_dist`` ``[N, M, 1]``.

    Returns:
      :class:`~qmczoo.layers.slots.EmbeddingOutput`: ``h`` the final one-electron stream
      ``[N, d_one]``, ``shared`` its spin means ``[c d_one]``, ``pair`` the spin means of the
      final pair stream ``[N, c d_two]`` (like FermiNetEmbedding).

    Layer ``l``, with ``h_ij`` the pair stream and ``g_iI`` the electron-nuclear stream (``g_iI =
    act(A [r_i - R_I, |r_i - R_I|] + a)`` before the first layer)::

        m_i = sum_{j != i} (W^{s(i,j)}_l h_ij + b^s_l) * (V_l h_j)       (s: same/opposite spin)
        n_i = sum_I (U_l g_iI + c_l) * Y_l[Z_I]
        h_i <- h_i + act(EquivariantDense([h_i], spin means of h, [spin means of h_ij, m_i, n_i]))
        h_ij <- h_ij + act(W'^{s(i,j)}_l h_ij + b'^s_l)
        g_iI <- g_iI + act(G_l g_iI + e_l)                                (not after the last layer)
    """

    n_up: int
    n_down: int
    charges: tuple[float, ...]
    hidden_dims: Sequence[Sequence[int]] = ((32, 8), (32, 8))
    conv_width: int = 16
    nuclear_width: int = 16
    activation: str = "tanh"

    @nn.compact
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        act = activation(self.activation)
        n, m = features.n_electrons, features.en_dist.shape[1]
        en_features = jnp.concatenate([features.en_disp, features.en_dist], axis=-1)
        en_hidden = act(Dense(self.nuclear_width, name="nuclear_features")(en_features))  # [N, M, W]
        h_one, h_two = features.one, features.two
        for layer, (d_one, d_two) in enumerate(self.hidden_dims):
            h, shared, pair = symmetric_inputs(h_one, h_two, self.n_up)
            # filters start at variance 1 / (fan-in * terms), so each sum starts at unit scale
            e_filters = SpinSplitPairDense(self.conv_width, self.n_up, fan_in=h_two.shape[-1] * max(1, n - 1),
                                           name=f"electron_filter_{layer}")(h_two)
            values = Dense(self.conv_width, use_bias=False, name=f"electron_values_{layer}")(h_one)
            e_messages = convolve_electrons(e_filters, values)
            n_filters = Dense(self.conv_width, fan_in=self.nuclear_width * m, name=f"nuclear_filter_{layer}")(en_hidden)
            y = nucleus_vectors(self.conv_width, self.charges, en_hidden, name=f"nucleus_vectors_{layer}")
            n_messages = jnp.sum(n_filters * y[None], axis=1)
            pair_inputs = jnp.concatenate([pair, e_messages, n_messages], axis=-1)
            new_one = act(EquivariantDense(d_one, name=f"one_{layer}")(h, shared, pair_inputs))
            new_two = act(SpinSplitPairDense(d_two, self.n_up, name=f"two_{layer}")(h_two))
            h_one, h_two = residual(new_one, h_one), residual(new_two, h_two)
            if layer + 1 < len(self.hidden_dims):  # the electron-nuclear stream, as DeepErwin updates it
                update = Dense(self.nuclear_width, name=f"nuclear_stream_{layer}")
                en_hidden = residual(act(update(en_hidden)), en_hidden)
        return EmbeddingOutput(*symmetric_inputs(h_one, h_two, self.n_up))
