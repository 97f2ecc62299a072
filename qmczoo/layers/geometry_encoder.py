"""PESNet's geometry encoder: message passing over the nuclei (Gao & Günnemann, ICLR 2022).

Fills the ``geometry_encoder`` slot, ``encoder(R [M, 3]) -> NuclearEmbedding``: a vector per
nucleus and one for the whole geometry, from which the other slots' geometry-dependent
parameters are made (one network over a whole potential-energy surface).

Each nucleus starts from a learned vector of its charge (a :class:`~qmczoo.layers.curvature.Dense`
of the one-hot label over the molecule's *distinct* charges, so identical nuclei start
identical, and the weights get a KFAC block). Each layer ``l`` sends it messages from every
other nucleus, continuous filters of the distance (SchNet, as in
:mod:`qmczoo.layers.schnet_embedding`), and updates it with a residual MLP::

    m_I = sum_{J != I} W_l(e(|R_I - R_J|)) * (V_l h_J)
    h_I <- (h_I + G_l([h_I, m_I])) / sqrt(2)

with ``e`` the even Gaussian radial basis times the smooth cutoff, ``W_l`` a two-layer filter
network, ``V_l`` linear and ``G_l`` a two-layer MLP. The global vector is
``global_ = mean_I P h_I`` (``P`` linear).

Only charges and internuclear distances enter, so both outputs are invariant under rotations
and translations of ``R``, ``nuclei`` permutes with identical nuclei and ``global_`` is invariant
under their permutation. One nucleus (an atom) gets no messages and no filter parameters.

The encoder is meant to be evaluated with a walker batch axis (vmapped over walkers, each with
its geometry), so that its :class:`~qmczoo.layers.curvature.Dense` maps on ``[M, D]`` inputs are
repeated-dense KFAC blocks with one derivative per walker.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.activations import activation
from qmczoo.layers.curvature import Dense
from qmczoo.layers.schnet_embedding import (_Filter, even_radial_basis, nucleus_vectors, smooth_cutoff,
                                            squared_distance, without_self)
from qmczoo.layers.slots import NuclearEmbedding

__all__ = ["GeometryEncoder", "NuclearEmbedding"]


class GeometryEncoder(nn.Module):
    """Message passing over nuclei: per-nucleus and global vectors of a geometry.

    Attributes:
      charges: nuclear charges ``(Z_1, ..., Z_M)`` (static); nuclei with equal charge share
        their initial vector.
      width: width ``D`` of the nuclear vectors, of the filters and of ``global_``.
      layers: number of message-passing layers.
      n_rbf: radial basis functions per distance.
      cutoff: distance (bohr) beyond which the filters vanish.
      activation: nonlinearity of the filter and update networks
        (:data:`qmczoo.layers.activations.ACTIVATIONS`).

    Call:
      ``R``: nuclear positions ``[M, 3]`` (bohr).

    Returns:
      :class:`~qmczoo.layers.slots.NuclearEmbedding` with ``nuclei`` ``[M, D]`` and ``global_``
      ``[D]``.
    """

    charges: tuple[float, ...]
    width: int = 32
    layers: int = 2
    n_rbf: int = 16
    cutoff: float = 10.0
    activation: str = "silu"

    @nn.compact
    def __call__(self, R: jnp.ndarray) -> NuclearEmbedding:
        m = len(self.charges)
        if R.shape != (m, 3):
            raise ValueError(f"GeometryEncoder built for {m} nuclei expects R [{m}, 3], got {R.shape}")
        act = activation(self.activation)
        # the diagonal (a nucleus's own pair) is set to distance 1, away from the square root's
        # singularity, and cut off to zero
        dist2 = squared_distance(R[:, None] - R[None]) + jnp.eye(m, dtype=R.dtype)[..., None]
        h = nucleus_vectors(self.width, self.charges, dist2, name="charge_vectors")
        if m > 1:
            basis = even_radial_basis(dist2, self.n_rbf, self.cutoff)
            cut = smooth_cutoff(dist2, self.cutoff) * without_self(m, R.dtype)
        for layer in range(self.layers):
            if m > 1:
                w = _Filter(self.width, self.width, m - 1, self.activation, name=f"filter_{layer}")(basis) * cut
                v = Dense(self.width, use_bias=False, name=f"values_{layer}")(h)
                messages = jnp.sum(w * v[None], axis=1)  # [M, D]: sum over J of w_IJ * v_J
                inputs = jnp.concatenate([h, messages], axis=-1)
            else:
                inputs = h
            hidden = act(Dense(self.width, name=f"update_in_{layer}")(inputs))
            h = (h + Dense(self.width, name=f"update_out_{layer}")(hidden)) / math.sqrt(2.0)
        global_ = jnp.mean(Dense(self.width, name="global")(h), axis=0)
        return NuclearEmbedding(nuclei=h, global_=global_)
