"""Orbital heads: per-electron embeddings to orbital matrices, times an envelope.

Electrons of each spin get their own linear head (FermiNet's spin-specific orbitals), so the
result is equivariant only under permutations *within* a spin channel, as antisymmetry needs.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.filler import Layer
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput
from qmczoo.layers.spin_pooling import EquivariantDense


def _rows(x, lo, hi):
    return None if x is None else x[lo:hi]


class OrbitalMatrices(nn.Module):
    """Orbital matrices for a multi-determinant antisymmetrizer (the ``orbital_matrices`` filler).

    Attributes:
      n_up, n_down: electrons per spin (rows ordered up first).
      envelope: the envelope-slot filler (a :class:`~qmczoo.layers.slots.Layer`).
      determinants: number ``K`` of determinants.
      full_det: one dense ``N x N`` determinant (True) or block-diagonal up/down (False).
      bias: include a bias in the linear heads.
      envelope_initial: per-spin initial envelope values fitted to the occupied HF orbitals,
        ``((pi_up [M, n_up], sigma_up), (pi_down [M, n_down], sigma_down))`` as nested tuples,
        or ``None``. The envelope of the orbital that pretraining fits to HF orbital ``j``
        starts from its values; the other orbitals' envelopes start from ones.

    Call:
      ``embedding`` (:class:`~qmczoo.layers.slots.EmbeddingOutput`: ``h`` ``[N, D]``,
      ``shared`` ``[Dg]`` or None, ``pair`` ``[N, Dp]`` or None) and ``features`` (its
      ``en_disp`` ``[N, M, 3]`` and ``en_dist`` ``[N, M, 1]`` feed the envelope).

    Returns:
      list of orbital blocks ``[K, n_b, n_b]``: one ``[K, N, N]`` block if ``full_det``,
      else the non-empty ones of ``[K, n_up, n_up]`` and ``[K, n_down, n_down]``.
    """

    n_up: int
    n_down: int
    envelope: Layer
    determinants: int = 1
    full_det: bool = True
    bias: bool = False
    envelope_initial: tuple | None = None

    def _envelope_start(self, spin: int, m: int, n_orb: int):
        """``(pi, sigma)`` ``[M, K n_orb]`` for the head of ``spin`` (0 up, 1 down), or None."""
        if self.envelope_initial is None:
            return None
        pi_hf, sigma_hf = (np.asarray(x, dtype=np.float64) for x in self.envelope_initial[spin])
        pi, sigma = np.ones((m, n_orb)), np.ones((m, n_orb))
        # the HF target of this head's columns: its spin's occupied orbitals (block-diagonal
        # for a dense determinant: the up head's first n_up columns, the down head's last)
        first = self.n_up if (self.full_det and spin == 1) else 0
        count = pi_hf.shape[1]
        pi[:, first:first + count], sigma[:, first:first + count] = pi_hf, sigma_hf
        tile = lambda x: tuple(map(tuple, np.tile(x, (1, self.determinants))))  # noqa: E731  [M, K n_orb]
        return tile(pi), tile(sigma)

    @nn.compact
    def __call__(self, embedding: EmbeddingOutput, features: ElectronFeatures) -> list[jnp.ndarray]:
        n = self.n_up + self.n_down
        k = self.determinants
        rows = []
        for index, (spin, lo, hi) in enumerate((("up", 0, self.n_up), ("down", self.n_up, n))):
            if hi == lo:
                continue
            n_orb = n if self.full_det else hi - lo
            linear = EquivariantDense(k * n_orb, use_bias=self.bias, name=f"head_{spin}")(
                embedding.h[lo:hi], embedding.shared, _rows(embedding.pair, lo, hi)
            )
            start = self._envelope_start(index, features.en_dist.shape[1], n_orb)
            env = self.envelope.build(name=f"envelope_{spin}", orbitals=k * n_orb, initial=start)(
                features.en_disp[lo:hi], features.en_dist[lo:hi]
            )
            orb = (linear * env).reshape(hi - lo, k, n_orb)
            rows.append(jnp.transpose(orb, (1, 0, 2)))  # [K, n_spin, n_orb]
        if self.full_det:
            return [jnp.concatenate(rows, axis=1)]
        return rows
