"""Jastrow factors: symmetric log-factors added to log|psi| (the ``jastrow`` slot).

Every Jastrow is called ``J(features, embedding) -> scalar`` on one configuration, with
``features`` an :class:`~qmczoo.layers.slots.ElectronFeatures` and ``embedding`` an
:class:`~qmczoo.layers.slots.EmbeddingOutput` or ``None``; the result is added to log|psi|.

Cusp Jastrows (functions of raw distances only, so translation, rotation and same-spin
permutation invariant, and zero far apart):

* :class:`ElectronElectronCuspJastrow`: ``J = sum_{i<j} -c_ij a^2 / (a + r_ij)`` with a length
  ``a`` (one for parallel, one for antiparallel pairs; learned, or fixed as PauliNet's
  short-ranged ``a = 0.1``). ``dJ/dr_ij`` at ``r_ij = 0`` is ``c_ij``: ``1/2`` for opposite
  spins, ``1/4`` for equal spins, Kato's electron–electron cusps, exactly, whatever ``a``.
* :class:`ElectronNuclearCuspJastrow`: ``J = sum_{i,I} Z_I a_I^2 / (a_I + r_iI)`` with a learned
  length ``a_I`` per nucleus; ``dJ/dr_iI`` at ``r_iI = 0`` is ``-Z_I``, Kato's
  electron–nuclear cusp, exactly. At a pseudo-nucleus (an effective core potential, finite at
  the nucleus) there is no cusp: the model hands over ``cusp_charges`` with 0 there.
* :class:`CuspJastrow`: the sum of both.

The whole ansatz has these cusps only if the rest of it is smooth at coalescence: FermiNet's
pair stream takes ``|r_ij|`` as an input, whose kink adds its own (learned) cusp, and
exponential envelopes ``exp(-sigma r_iI)`` add ``-sigma`` to the electron–nuclear one. With
such a network the Jastrow sets the right cusp at initialisation and the network may move away
from it.

:class:`NeuralJastrow` (PauliNet's): ``J = sum_i MLP(h_i)`` over the embedding's per-electron
vectors, permutation invariant because the embedding is equivariant; it starts near zero.

The length scales enter nonlinearly: they are read through
:func:`~qmczoo.layers.curvature.tracked_parameter`, so that kfac-jax gives each a per-walker
diagonal block; the neural Jastrow uses :class:`~qmczoo.layers.curvature.Dense` layers.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.activations import activation
from qmczoo.layers.curvature import Dense, fan_in_normal, tracked_parameter
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput


def _upper_triangle_sum(terms: jnp.ndarray) -> jnp.ndarray:
    n = terms.shape[0]
    upper = jnp.triu(jnp.ones((n, n), dtype=bool), k=1)
    return jnp.sum(jnp.where(upper, terms, 0.0))


class ElectronElectronCuspJastrow(nn.Module):
    """``sum_{i<j} -c_ij a^2 / (a + r_ij)``, ``c = 1/2`` (antiparallel), ``1/4`` (parallel).

    Attributes:
      n_up: number of spin-up electrons (rows ``[:n_up]``).
      length: the length ``a`` (bohr) at initialisation (default 1; PauliNet: 0.1, deepqmc's
        ``cusp_alpha = 10``, a short-ranged term that leaves the rest to the neural Jastrow).
      trainable: learn ``a`` (default True); False keeps it at ``length`` (no parameters).

    Parameters (trainable only): ``log_alpha_parallel``, ``log_alpha_anti`` (scalars,
    ``a = exp(.)``, init ``log(length)``).

    Call: ``(features, embedding)`` (``embedding`` unused, may be ``None``). Uses
    ``features.ee_dist`` only. Returns a scalar.
    """

    n_up: int
    length: float = 1.0
    trainable: bool = True

    @nn.compact
    def __call__(self, features: ElectronFeatures, embedding: Optional[EmbeddingOutput] = None) -> jnp.ndarray:
        if not self.length > 0:
            raise ValueError(f"ElectronElectronCuspJastrow: length must be > 0, got {self.length}")
        dist = features.ee_dist[..., 0]
        n = dist.shape[0]
        spin = jnp.arange(n) < self.n_up
        same = spin[:, None] == spin[None, :]
        cusp = jnp.where(same, 0.25, 0.5)
        if self.trainable:
            # nonlinear parameters: tracked so that KFAC sees their per-walker derivatives
            anchor = features.en_dist
            start = nn.initializers.constant(float(np.log(self.length)))
            log_alpha_parallel = tracked_parameter(self.param("log_alpha_parallel", start, ()), anchor)
            log_alpha_anti = tracked_parameter(self.param("log_alpha_anti", start, ()), anchor)
            alpha = jnp.where(same, jnp.exp(log_alpha_parallel), jnp.exp(log_alpha_anti))
        else:
            alpha = jnp.asarray(self.length, dist.dtype)
        return _upper_triangle_sum(-cusp * alpha**2 / (alpha + dist))


class ElectronNuclearCuspJastrow(nn.Module):
    """``sum_{i,I} Z_I a_I^2 / (a_I + r_iI)``: slope ``-Z_I`` at each nucleus, ``O(1/r)`` far away.

    Attributes:
      charges: nuclear charges ``Z_I``, one per nucleus (the order of ``R``).
      cusp_charges: the cusp of each nucleus where it differs from its charge (``System.cusp_charges``:
        0 at a pseudo-nucleus), or None (the charges).

    Parameters: ``log_alpha`` ``[M]`` (``a_I = exp(.)``, init 0, i.e. ``a_I = 1`` bohr).

    Call: ``(features, embedding)`` (``embedding`` unused, may be ``None``). Uses
    ``features.en_dist`` only. Returns a scalar.
    """

    charges: Sequence[float]
    cusp_charges: Optional[Sequence[float]] = None

    @nn.compact
    def __call__(self, features: ElectronFeatures, embedding: Optional[EmbeddingOutput] = None) -> jnp.ndarray:
        dist = features.en_dist[..., 0]  # [N, M]
        m = dist.shape[1]
        if len(self.charges) != m:
            raise ValueError(f"ElectronNuclearCuspJastrow: {len(self.charges)} charges for {m} nuclei")
        z = jnp.asarray(self.charges if self.cusp_charges is None else self.cusp_charges, dtype=dist.dtype)
        log_alpha = tracked_parameter(self.param("log_alpha", nn.initializers.zeros, (m,)), dist)
        alpha = jnp.exp(log_alpha)
        return jnp.sum(z * alpha**2 / (alpha + dist))


class CuspJastrow(nn.Module):
    """:class:`ElectronElectronCuspJastrow` plus :class:`ElectronNuclearCuspJastrow`.

    Attributes:
      n_up: number of spin-up electrons.
      charges: nuclear charges, one per nucleus.
      cusp_charges: as :class:`ElectronNuclearCuspJastrow` (0 at a pseudo-nucleus), or None.

    Submodules ``ee`` and ``en``. Call: ``(features, embedding)`` -> scalar.
    """

    n_up: int
    charges: Sequence[float]
    cusp_charges: Optional[Sequence[float]] = None

    @nn.compact
    def __call__(self, features: ElectronFeatures, embedding: Optional[EmbeddingOutput] = None) -> jnp.ndarray:
        ee = ElectronElectronCuspJastrow(n_up=self.n_up, name="ee")(features, embedding)
        cusps = None if self.cusp_charges is None else tuple(self.cusp_charges)
        en = ElectronNuclearCuspJastrow(charges=tuple(self.charges), cusp_charges=cusps, name="en")(features, embedding)
        return ee + en


class NeuralJastrow(nn.Module):
    """PauliNet's neural Jastrow ``J = sum_i MLP(u_i)`` over the embedding (needs one).

    ``u_i`` is the embedding's ``h_i`` (and its ``pair`` row ``m_i`` with ``use_pair``); with
    ``use_shared`` the first layer also sees the per-configuration ``shared`` vector (added once,
    as in :class:`~qmczoo.layers.spin_pooling.EquivariantDense`). The sum over electrons makes
    ``J`` invariant under every permutation the embedding is equivariant under.

    Attributes:
      hidden: widths of the hidden layers (default ``(32, 32)``; ``()``: a linear map).
      activation: "tanh" (default), "silu" or "softplus".
      use_shared: feed ``embedding.shared`` to the first layer (if present).
      use_pair: feed ``embedding.pair`` to the first layer (if present).
      init_scale: standard deviation (times ``1/sqrt(fan_in)``) of the last layer's kernel at
        initialisation; its bias starts at zero. Default ``1e-2``: ``J`` starts near zero while
        every layer already has a gradient (``0`` starts it at exactly zero).

    All layers are :class:`~qmczoo.layers.curvature.Dense` (KFAC blocks).

    Call: ``(features, embedding)``. Returns a scalar.
    """

    hidden: Sequence[int] = (32, 32)
    activation: str = "tanh"
    use_shared: bool = True
    use_pair: bool = True
    init_scale: float = 1e-2

    @nn.compact
    def __call__(self, features: ElectronFeatures, embedding: Optional[EmbeddingOutput]) -> jnp.ndarray:
        if embedding is None:
            raise ValueError("NeuralJastrow needs an embedding (EmbeddingOutput), got None")
        act = activation(self.activation)
        h = embedding.h
        pair = embedding.pair if self.use_pair else None
        shared = embedding.shared if self.use_shared else None
        x = h if pair is None else jnp.concatenate([h, pair], axis=-1)
        widths = tuple(int(w) for w in self.hidden)
        first = widths[0] if widths else 1
        fan_in = x.shape[-1] + (0 if shared is None else shared.shape[-1])
        last_init = lambda fi: (lambda key, shape, dtype=jnp.float32:  # noqa: E731
                                self.init_scale * fan_in_normal(fi)(key, shape, dtype))
        kernel_init = None if widths else last_init(fan_in)
        y = Dense(first, fan_in=fan_in, kernel_init=kernel_init, name="dense_0")(x)
        if shared is not None:
            y = y + Dense(first, use_bias=False, fan_in=fan_in, kernel_init=kernel_init,
                          name="dense_0_shared")(shared)[None, :]
        for layer, width in enumerate(widths[1:] + (1,) if widths else (), start=1):
            y = act(y)
            init = last_init(y.shape[-1]) if layer == len(widths) else None
            y = Dense(width, kernel_init=init, name=f"dense_{layer}")(y)
        return jnp.sum(y)
