"""FermiNet (Pfau, Spencer, Matthews, Foulkes, Phys. Rev. Research 2, 033429, 2020).

Slots: features -> FermiNet two-stream embedding -> spin-specific orbital heads times
exponential envelopes -> multi-determinant antisymmetrizer (+ optional cusp Jastrow).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.antisymmetrizers import multi_determinant
from qmczoo.layers.features import ferminet_inputs
from qmczoo.layers.ferminet_embedding import FermiNetEmbedding
from qmczoo.layers.jastrow import make_jastrow
from qmczoo.layers.orbitals import OrbitalMatrices
from qmczoo.layers.spin_pooling import as_layer_dims


class FermiNet(nn.Module):
    """The FermiNet ansatz. ``apply(params, r [N,3], R [M,3]) -> (sign, log|psi|)``."""

    n_up: int
    n_down: int
    hidden_dims: Sequence[tuple[int, int]] = ((32, 8), (32, 8))
    determinants: int = 4
    full_det: bool = True
    envelope: str = "isotropic"
    jastrow: str = "none"
    rescale_inputs: bool = False

    def setup(self):
        self.embedding = FermiNetEmbedding(n_up=self.n_up, hidden_dims=self.hidden_dims)
        self.orbital_matrices = OrbitalMatrices(
            n_up=self.n_up,
            n_down=self.n_down,
            determinants=self.determinants,
            full_det=self.full_det,
            envelope=self.envelope,
        )
        self.jastrow_factor = make_jastrow(self.jastrow, self.n_up)

    def orbitals(self, r: jnp.ndarray, R: jnp.ndarray) -> list[jnp.ndarray]:
        """Orbital blocks ``[K, n_b, n_b]`` (see :class:`OrbitalMatrices`)."""
        one, two, en_disp, en_dist = ferminet_inputs(r, R, rescale=self.rescale_inputs)
        h, shared, pair = self.embedding(one, two)
        return self.orbital_matrices(h, shared, pair, en_disp, en_dist)

    def __call__(self, r: jnp.ndarray, R: jnp.ndarray):
        sign, logabs = multi_determinant(self.orbitals(r, R))
        if self.jastrow_factor is not None:
            logabs = logabs + self.jastrow_factor(r)
        return sign, logabs


def make_ferminet(system, **options) -> FermiNet:
    """Factory used by the registry: a FermiNet for ``system`` with ``options``."""
    if "hidden_dims" in options:
        options["hidden_dims"] = as_layer_dims(options["hidden_dims"])
    return FermiNet(n_up=system.n_up, n_down=system.n_down, **options)
