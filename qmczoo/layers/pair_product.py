"""Pair-product wavefunctions: antisymmetric pair functions instead of determinants.

    psi = sum_k prod_sigma [ prod_{i in sigma} chi_k(x_i)  prod_{i<j in sigma} phi_k(x_i, x_j) ]

with ``phi_k(a, b) = -phi_k(b, a)`` by construction and ``sigma`` running over the spin
channels (electrons ordered spin-up first). Each factor ``prod_{i<j} phi(x_i, x_j)`` is
antisymmetric: a transposition of two same-spin electrons ``a < b`` reverses the order of the
pair ``(a, b)`` and of the pairs ``(a, c)``, ``(c, b)`` for each ``c`` between them, an odd number
of sign flips. Cost ``O(n^2)`` instead of a determinant's ``O(n^3)``; see
``docs/pair_product.md`` for what it can and cannot represent.

Representation (the ``blocks`` between the two slots): per non-empty spin channel a block
``B`` ``[K, n_s, n_s]`` whose off-diagonal holds the pair function, ``B[k, i, j] =
phi_k(x_i, x_j)`` (antisymmetric), and whose diagonal holds a one-electron factor
``B[k, i, i] = chi_k(x_i)`` (a lone electron of a spin, as in Li or H, still gets a decaying
orbital).

* :class:`PairOrbitals` (orbitals slot): ``phi_k(a, b) = [g_k(u_a, u_b, d_ab) - g_k(u_b, u_a,
  d_ba)] env_k(a) env_k(b)`` with ``g`` an MLP of :class:`~qmczoo.layers.curvature.Dense`
  layers over per-electron vectors ``u`` from the embedding and (``pair_inputs``) raw pair
  inputs ``d_ab = (r_a - r_b, |r_a - r_b|)``; ``chi_k(a) = exp(linear head of u_a) env'_k(a)``,
  positive wherever the envelope is (everywhere at the start, where its weights are ones): the
  one-electron factor adds no nodes (a signed linear head put the minority sign on about a
  fifth of the electrons of Li and Be at initialisation, each sign change a node of psi).
  With a raw-features embedding (``u_a`` a function of ``x_a`` alone) this is DeepWF (J. Han,
  L. Zhang, W. E, J. Comput. Phys. 399, 108929, 2019); with a learned equivariant embedding it
  is the pair-product ansatz of T. Pang, S. Yan, M. Lin (arXiv:2205.13205).
* :class:`PairProduct` (antisymmetrizer slot): the sum over ``k`` in log space with sign
  tracking (a signed log-sum-exp); ``1x1`` blocks stay in linear scale, like
  :func:`~qmczoo.layers.antisymmetrizers.multi_determinant`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.antisymmetrizers import signed_logsumexp
from qmczoo.layers.curvature import Dense
from qmczoo.layers.activations import activation
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput


def pair_product(blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sign and log|psi| of ``sum_k prod_b prod_{i<=j} B_b[k, i, j]`` (see the module docstring).

    Args:
      blocks: pair blocks ``[K, n_b, n_b]`` (same ``K``), diagonal ``chi``, strict upper
        triangle ``phi`` (the lower triangle is not read; it is ``-phi`` by construction).

    Returns:
      ``(sign, logabs)``, scalars.
    """
    k = blocks[0].shape[0]
    linear, sign, log = jnp.ones((k,), blocks[0].dtype), 1.0, 0.0
    for block in blocks:
        n = block.shape[-1]
        if n == 1:
            linear = linear * block[:, 0, 0]
            continue
        rows, cols = jnp.triu_indices(n)  # chi on the diagonal and phi for i < j
        factors = block[:, rows, cols]  # [K, n (n + 1) / 2]
        sign = sign * jnp.prod(jnp.sign(factors), axis=-1)
        log = log + jnp.sum(jnp.log(jnp.abs(factors)), axis=-1)
    return signed_logsumexp(sign * linear, log + jnp.zeros((k,), blocks[0].dtype))


class PairProduct(nn.Module):
    """Antisymmetrizer-slot filler: :func:`pair_product` (no parameters).

    Attributes:
      determinants: the number ``K`` of pair-product terms the blocks must have (``None``: any).

    Call: ``blocks`` (list of ``[K, n_s, n_s]``, from :class:`PairOrbitals`). Returns
    ``(sign, log|psi|)``.
    """

    determinants: Optional[int] = None

    def __call__(self, blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
        if not blocks or any(b.ndim != 3 or b.shape[1] != b.shape[2] for b in blocks):
            raise ValueError(f"PairProduct: blocks must be [K, n, n], got {[b.shape for b in blocks]}")
        ks = {b.shape[0] for b in blocks}
        if len(ks) != 1 or (self.determinants is not None and ks != {self.determinants}):
            raise ValueError(f"PairProduct: blocks disagree on K (expected {self.determinants}): "
                             f"{[b.shape for b in blocks]}")
        return pair_product(blocks)


class _PairFunction(nn.Module):
    """``g(u_a, u_b, d_ab)`` ``[n, n, K]``: an MLP whose first layer is split by input part.

    The first layer is a Dense map of the concatenation ``[u_a, u_b, d_ab, shared]`` computed as
    a sum of Dense maps of the parts, so that per-electron parts are multiplied once per
    electron, not once per pair, and ``shared`` once per configuration.
    """

    terms: int
    hidden: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, u, shared, d):
        act = activation(self.activation)
        widths = tuple(int(w) for w in self.hidden) or (self.terms,)
        first = widths[0]
        fan_in = 2 * u.shape[-1] + (0 if d is None else d.shape[-1]) + (0 if shared is None else shared.shape[-1])
        a = Dense(first, fan_in=fan_in, name="first")(u)  # [n, H], carries the bias
        b = Dense(first, use_bias=False, fan_in=fan_in, name="second")(u)
        y = a[:, None, :] + b[None, :, :]
        if d is not None:
            y = y + Dense(first, use_bias=False, fan_in=fan_in, name="pair_inputs")(d)
        if shared is not None:
            y = y + Dense(first, use_bias=False, fan_in=fan_in, name="shared")(shared)[None, None, :]
        if not self.hidden:
            return y
        for layer, width in enumerate(widths[1:] + (self.terms,), start=1):
            y = Dense(width, name=f"dense_{layer}")(act(y))
        return y


class PairOrbitals(nn.Module):
    """Orbitals-slot filler for :class:`PairProduct`: one pair block per spin channel.

    Attributes:
      n_up, n_down: electrons per spin (rows ordered up first).
      envelope: the resolved envelope filler (a :class:`~qmczoo.layers.slots.Layer`), built
        twice per spin channel with ``orbitals=K``: one for ``chi``, one for the pair factors
        (``phi_k(a, b)`` is multiplied by ``env_k(a) env_k(b)``, symmetric in ``a, b``).
      charges: nuclear charges (handed to the envelope).
      determinants: the number ``K`` of pair-product terms (default 1).
      hidden: hidden widths of the pair MLP ``g`` (default ``(32, 32)``; ``()``: ``g`` linear).
      pair_inputs: give ``g`` the raw pair inputs ``d_ab = (r_a - r_b, |r_a - r_b|)``
        (default True).
      use_shared: give ``g`` and the ``chi`` head the embedding's ``shared`` vector (if present).
      use_pair: append the embedding's ``pair`` rows to ``u`` (if present).
      activation: of ``g``'s hidden layers, "tanh" (default), "silu" or "softplus".

    Parameters per spin channel (``up``/``down``): ``chi_{spin}`` (linear head of ``u``, the log of
    ``chi`` without its envelope),
    ``pair_{spin}`` (``g``, only for ``n_s >= 2``), ``chi_envelope_{spin}``,
    ``pair_envelope_{spin}``; all Dense layers or envelope parameters, so every one has a KFAC
    block.

    Call: ``(embedding, features)``. Returns the non-empty ones of ``[K, n_up, n_up]`` and
    ``[K, n_down, n_down]``.
    """

    n_up: int
    n_down: int
    envelope: Any
    charges: Sequence[float] = ()
    determinants: int = 1
    hidden: Sequence[int] = (32, 32)
    pair_inputs: bool = True
    use_shared: bool = True
    use_pair: bool = True
    activation: str = "tanh"

    @nn.compact
    def __call__(self, embedding: EmbeddingOutput, features: ElectronFeatures) -> list[jnp.ndarray]:
        n, k = self.n_up + self.n_down, self.determinants
        if embedding.h.shape[0] != n:
            raise ValueError(f"PairOrbitals: embedding has {embedding.h.shape[0]} rows for {n} electrons")
        shared = embedding.shared if self.use_shared else None

        def envelope(name):
            return self.envelope.build(name=name, orbitals=k, charges=tuple(self.charges))

        blocks = []
        for spin, lo, hi in (("up", 0, self.n_up), ("down", self.n_up, n)):
            ns = hi - lo
            if ns == 0:
                continue
            u = embedding.h[lo:hi]
            if self.use_pair and embedding.pair is not None:
                u = jnp.concatenate([u, embedding.pair[lo:hi]], axis=-1)
            en_disp, en_dist = features.en_disp[lo:hi], features.en_dist[lo:hi]
            # one-electron factor chi_k(x_i) = exp(linear head) * envelope, [ns, K]: no sign of its own
            fan_in = u.shape[-1] + (0 if shared is None else shared.shape[-1])
            log_chi = Dense(k, fan_in=fan_in, name=f"chi_{spin}")(u)
            if shared is not None:
                log_chi = log_chi + Dense(k, use_bias=False, fan_in=fan_in, name=f"chi_{spin}_shared")(shared)[None, :]
            chi = jnp.exp(log_chi) * envelope(f"chi_envelope_{spin}")(en_disp, en_dist)
            block = jnp.transpose(chi)[:, :, None] * jnp.eye(ns, dtype=chi.dtype)  # [K, ns, ns]
            if ns >= 2:
                d = None
                if self.pair_inputs:
                    d = jnp.concatenate([features.ee_disp[lo:hi, lo:hi], features.ee_dist[lo:hi, lo:hi]], axis=-1)
                g = _PairFunction(k, tuple(self.hidden), self.activation, name=f"pair_{spin}")(u, shared, d)
                phi = g - jnp.swapaxes(g, 0, 1)  # [ns, ns, K], exactly antisymmetric, zero diagonal
                env = envelope(f"pair_envelope_{spin}")(en_disp, en_dist)  # [ns, K]
                phi = phi * env[:, None, :] * env[None, :, :]
                block = block + jnp.transpose(phi, (2, 0, 1))
            blocks.append(block)
        return blocks

