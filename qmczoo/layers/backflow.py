"""Backflow: corrections of baseline orbitals by the embedding (the ``backflow`` slot).

PauliNet-style: fixed baseline orbitals ``phi`` (Hartree–Fock, say) evaluated at the electrons
of one block, ``[n, P]``, are corrected by a function of the permutation-equivariant embedding
``h`` ``[n, D]`` of the same electrons, separately for each of ``K`` determinants:

* :class:`MultiplicativeBackflow`: ``phi_k = phi * (1 + f_k(h))``;
* :class:`AdditiveBackflow`: ``phi_k = phi + f_k(h)``;

``f`` is a :class:`~qmczoo.layers.curvature.Dense` map (optionally a small MLP) with ``K P``
outputs per electron, whose last layer starts at zero (or, with ``init_scale > 0``, near it), so
that the ansatz starts at the baseline. Row ``i`` of the correction depends on ``h_i`` only,
so the result is equivariant under the permutations ``h`` is equivariant under, and a
determinant over it is antisymmetric.

The multiplicative form keeps the baseline's decay and its cusps at the nuclei (``phi``
decays; ``1 + f`` is smooth if ``h`` is, and bounded when ``f`` ends in a bounded activation or
``h`` is bounded); it keeps every zero of a baseline orbital (and may add zeros where
``1 + f = 0``). The additive form does not decay by itself: ``f(h)`` tends to whatever the
network gives far from the nuclei, so a model using it needs ``h`` that dies off there, or an
envelope on the correction.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense, fan_in_normal
from qmczoo.layers.activations import activation


class _Correction(nn.Module):
    """``f(h)``: ``[n, D] -> [K, n, P]``, an MLP of Dense layers whose last layer starts small."""

    determinants: int
    orbitals: int
    hidden: Sequence[int] = ()
    activation: str = "tanh"
    init_scale: float = 0.0

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        act = activation(self.activation)
        x = h
        for layer, width in enumerate(self.hidden):
            x = act(Dense(int(width), name=f"hidden_{layer}")(x))
        fan_in = x.shape[-1]
        init_scale = self.init_scale

        def last_init(key, shape, dtype=jnp.float32):
            if init_scale == 0.0:
                return jnp.zeros(shape, dtype)
            return init_scale * fan_in_normal(fan_in)(key, shape, dtype)

        k, p = self.determinants, self.orbitals
        out = Dense(k * p, kernel_init=last_init, name="out")(x)  # bias starts at zero
        return jnp.transpose(out.reshape(h.shape[0], k, p), (1, 0, 2))


class _Backflow(nn.Module):
    """Shared fields and call of the backflows: ``combine(phi [1, n, P], f [K, n, P])``."""

    determinants: int = 1
    hidden: Sequence[int] = ()
    activation: str = "tanh"
    init_scale: float = 0.0

    @staticmethod
    def combine(phi: jnp.ndarray, f: jnp.ndarray) -> jnp.ndarray:
        raise NotImplementedError

    @nn.compact
    def __call__(self, h: jnp.ndarray, phi: jnp.ndarray) -> jnp.ndarray:
        f = _Correction(self.determinants, phi.shape[-1], tuple(self.hidden), self.activation,
                        self.init_scale, name="correction")(h)
        return self.combine(phi[None], f)


class MultiplicativeBackflow(_Backflow):
    """``phi_k = phi * (1 + f_k(h))`` for ``K`` determinants.

    Attributes:
      determinants: the number ``K`` of determinants (each gets its own correction).
      hidden: hidden widths of ``f`` (default ``()``: one Dense layer).
      activation: of the hidden layers, "tanh" (default), "silu" or "softplus".
      init_scale: scale of ``f``'s last kernel at initialisation (default 0: ``f = 0``, the
        ansatz starts exactly at the baseline; its last layer still has a gradient).

    Call: ``h`` ``[n, D]``, ``phi`` ``[n, P]``. Returns ``[K, n, P]``.
    """

    @staticmethod
    def combine(phi, f):
        return phi * (1.0 + f)


class AdditiveBackflow(_Backflow):
    """``phi_k = phi + f_k(h)`` for ``K`` determinants.

    Attributes: as :class:`MultiplicativeBackflow`. The correction does not decay by itself
    (see the module docstring).

    Call: ``h`` ``[n, D]``, ``phi`` ``[n, P]``. Returns ``[K, n, P]``.
    """

    @staticmethod
    def combine(phi, f):
        return phi + f
