"""Backflow: corrections of baseline orbitals by the embedding (the ``backflow`` slot).

PauliNet-style: fixed baseline orbitals ``phi`` (Hartree–Fock, say) evaluated at the electrons
of one block, ``[n, P]``, are corrected by a function of the permutation-equivariant embedding
``h`` ``[n, D]`` of the same electrons, separately for each of ``K`` determinants:

* :class:`BoundedBackflow` (PauliNet's, as its authors built it): ``phi_k = phi_k * (1 + 2
  tanh(kappa_k(h) / 4))`` with one small MLP ``kappa_k`` per determinant, so each factor stays
  in ``(-1, 3)``;
* :class:`MultiplicativeBackflow`: ``phi_k = phi * (1 + f_k(h))``;
* :class:`AdditiveBackflow`: ``phi_k = phi + f_k(h)``;

The baseline ``phi`` is either one block ``[n, P]`` shared by all determinants or one block per
determinant ``[K, n, P]`` (the columns each determinant occupies, e.g. CASSCF configurations).
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
        return self.combine(_per_determinant(phi, self.determinants), f)


def _per_determinant(phi: jnp.ndarray, determinants: int) -> jnp.ndarray:
    """``phi`` ``[n, P]`` (shared) or ``[K, n, P]`` as ``[1 or K, n, P]``, checked against ``K``."""
    if phi.ndim == 2:
        return phi[None]
    if phi.ndim != 3 or phi.shape[0] != determinants:
        raise ValueError(f"backflow: baseline orbitals must be [n, P] or [{determinants}, n, P], got {phi.shape}")
    return phi


def log_widths(start: int, end: int, layers: int) -> list[int]:
    """Widths of ``layers`` Dense layers from ``start`` inputs to ``end`` outputs, progressing
    geometrically (deepqmc's rule for PauliNet's subnetworks): ``[w_1, ..., w_layers = end]``."""
    return [max(1, int(round(start ** (1 - k / layers) * end ** (k / layers)))) for k in range(1, layers + 1)]


class BoundedBackflow(nn.Module):
    """PauliNet's backflow: ``phi_k = phi_k * (1 + 2 tanh(kappa_k(h) / 4))``, one MLP per determinant.

    Hermann, Schätzle & Noé (Nat. Chem. 12, 891, 2020) correct each baseline orbital of each
    determinant by a factor bounded in ``(-1, 3)``; ``kappa_k`` is a multilayer perceptron of
    the electron's embedding, its own for every determinant ``k`` (deepqmc's "det" backflow),
    with ``layers`` Dense layers whose widths shrink geometrically from the embedding width to
    the ``P`` orbitals (:func:`log_widths`; deepqmc: 3 layers). The bound keeps the baseline's
    decay and cusps (the factor is smooth and never large); the factor can change sign, so the
    backflow may move nodes.

    Attributes:
      determinants: ``K``, one MLP each.
      layers: Dense layers per MLP (default 3).
      activation: between the layers (default "tanh"; deepqmc uses a shifted softplus).
      init_scale: standard deviation (times ``1/sqrt(fan_in)``) of each MLP's last kernel at
        initialisation (default 0.01: the ansatz starts within about 1e-3 of its baseline, and
        every layer already has a gradient; 0 starts exactly at the baseline, with gradients in
        the last layer only). Biases start at zero.
      shared: one MLP trunk for all determinants, each with its own last layer (the trunk's
        widths shrink towards ``K P``): ``layers`` Dense layers in all instead of ``K layers``,
        cheaper on a CPU (fewer small matrices and KFAC blocks). Default False (the paper's
        separate networks).

    All layers are :class:`~qmczoo.layers.curvature.Dense` (KFAC blocks).

    Call: ``h`` ``[n, D]``, ``phi`` ``[n, P]`` or ``[K, n, P]``. Returns ``[K, n, P]``.
    """

    determinants: int = 1
    layers: int = 3
    activation: str = "tanh"
    init_scale: float = 0.01
    shared: bool = False

    def _mlp(self, x: jnp.ndarray, widths: list[int], prefix: str, last_layers: int = 1) -> jnp.ndarray:
        """Dense layers of ``widths``; the last ``last_layers`` of them get the small initial kernel."""
        act = activation(self.activation)
        for layer, width in enumerate(widths):
            init = None
            if layer >= len(widths) - last_layers:
                init = _small_kernel(x.shape[-1], self.init_scale)
            x = Dense(width, kernel_init=init, name=f"{prefix}dense_{layer}")(x)
            if layer < len(widths) - 1:
                x = act(x)
        return x

    @nn.compact
    def __call__(self, h: jnp.ndarray, phi: jnp.ndarray) -> jnp.ndarray:
        if self.layers < 1:
            raise ValueError(f"BoundedBackflow: layers must be >= 1, got {self.layers}")
        phi = _per_determinant(phi, self.determinants)
        k, p = self.determinants, phi.shape[-1]
        if self.shared:
            widths = log_widths(h.shape[-1], k * p, self.layers)
            out = self._mlp(h, widths, "")  # [n, K P]: the last layer holds every determinant's head
            kappa = jnp.transpose(out.reshape(h.shape[0], k, p), (1, 0, 2))
        else:
            widths = log_widths(h.shape[-1], p, self.layers)
            kappa = jnp.stack([self._mlp(h, widths, f"det_{i}_") for i in range(k)])  # [K, n, P]
        return phi * (1.0 + 2.0 * jnp.tanh(kappa / 4.0))


def _small_kernel(fan_in: int, scale: float):
    """Initialiser of a last kernel: ``scale`` times the fan-in normal (zeros for ``scale = 0``)."""

    def init(key, shape, dtype=jnp.float32):
        if scale == 0.0:
            return jnp.zeros(shape, dtype)
        return scale * fan_in_normal(fan_in)(key, shape, dtype)

    return init


class MultiplicativeBackflow(_Backflow):
    """``phi_k = phi * (1 + f_k(h))`` for ``K`` determinants.

    Attributes:
      determinants: the number ``K`` of determinants (each gets its own correction).
      hidden: hidden widths of ``f`` (default ``()``: one Dense layer).
      activation: of the hidden layers, "tanh" (default), "silu" or "softplus".
      init_scale: scale of ``f``'s last kernel at initialisation (default 0: ``f = 0``, the
        ansatz starts exactly at the baseline; its last layer still has a gradient).

    Call: ``h`` ``[n, D]``, ``phi`` ``[n, P]`` or ``[K, n, P]``. Returns ``[K, n, P]``.
    """

    @staticmethod
    def combine(phi, f):
        return phi * (1.0 + f)


class AdditiveBackflow(_Backflow):
    """``phi_k = phi + f_k(h)`` for ``K`` determinants.

    Attributes: as :class:`MultiplicativeBackflow`. The correction does not decay by itself
    (see the module docstring).

    Call: ``h`` ``[n, D]``, ``phi`` ``[n, P]`` or ``[K, n, P]``. Returns ``[K, n, P]``.
    """

    @staticmethod
    def combine(phi, f):
        return phi + f
