"""Orbital heads: per-electron embeddings to orbital matrices, times an envelope.

Electrons of each spin get their own linear head (FermiNet's spin-specific orbitals), so the
result is equivariant only under permutations *within* a spin channel, as antisymmetry needs.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.envelopes import make_envelope
from qmczoo.layers.spin_pooling import EquivariantDense


def _rows(x, lo, hi):
    return None if x is None else x[lo:hi]


class OrbitalMatrices(nn.Module):
    """Orbital matrices for a multi-determinant antisymmetrizer.

    Attributes:
      n_up, n_down: electrons per spin (rows ordered up first).
      determinants: number ``K`` of determinants.
      full_det: one dense ``N x N`` determinant (True) or block-diagonal up/down (False).
      envelope: "isotropic" or "full".
      bias: include a bias in the linear heads.

    Call:
      ``h`` ``[N, D]``, ``shared`` ``[Dg]`` or None, ``pair`` ``[N, Dp]`` or None (the output
      of an embedding, see :class:`~qmczoo.layers.spin_pooling.EquivariantDense`),
      ``en_disp`` ``[N, M, 3]``, ``en_dist`` ``[N, M, 1]``.

    Returns:
      list of orbital blocks ``[K, n_b, n_b]``: one ``[K, N, N]`` block if ``full_det``,
      else the non-empty ones of ``[K, n_up, n_up]`` and ``[K, n_down, n_down]``.
    """

    n_up: int
    n_down: int
    determinants: int = 1
    full_det: bool = True
    envelope: str = "isotropic"
    bias: bool = False

    @nn.compact
    def __call__(self, h, shared, pair, en_disp, en_dist):
        n = self.n_up + self.n_down
        k = self.determinants
        spans = [("up", 0, self.n_up), ("down", self.n_up, n)]
        rows = []
        for spin, lo, hi in spans:
            if hi == lo:
                continue
            n_orb = n if self.full_det else hi - lo
            linear = EquivariantDense(k * n_orb, use_bias=self.bias, name=f"head_{spin}")(
                h[lo:hi], shared, _rows(pair, lo, hi)
            )
            env = make_envelope(self.envelope, k * n_orb, name=f"envelope_{spin}")(
                en_disp[lo:hi], en_dist[lo:hi]
            )
            orb = (linear * env).reshape(hi - lo, k, n_orb)
            rows.append(jnp.transpose(orb, (1, 0, 2)))  # [K, n_spin, n_orb]
        if self.full_det:
            return [jnp.concatenate(rows, axis=1)]
        return rows
