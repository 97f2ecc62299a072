"""FermiNet (Pfau, Spencer, Matthews, Foulkes, Phys. Rev. Research 2, 033429, 2020).

Slots: features -> embedding -> orbitals (with an envelope) -> antisymmetrizer, plus an
optional Jastrow. The defaults in ``registry.yaml`` fill them with FermiNet's layers
(``ferminet_features``, ``ferminet_embedding``, ``orbital_matrices``, ``isotropic_envelope``,
``multi_determinant``); any registered layer of the right slot can take their place
(``--set embedding=schnet_embedding``). The hybrid ansatz is this model with other fillers.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.filler import Layer


class FermiNet(nn.Module):
    """A determinant ansatz from slots. ``apply(params, r [N,3], R [M,3]) -> (sign, log|psi|)``.

    Attributes:
      n_up, n_down: electrons per spin; charges: nuclear charges ``[M]``.
      features, embedding, orbital_head, envelope, antisymmetrizer: slot fillers
        (:class:`~qmczoo.layers.slots.Layer`; the registry's ``orbitals`` slot is
        ``orbital_head`` here, since ``orbitals`` is the contract's method); jastrow: a
        filler or ``None``.
      determinants: number of determinants; full_det: dense (True) or block-diagonal.
      envelope_initial: initial envelope values fitted to HF orbitals (see
        :class:`~qmczoo.layers.orbitals.OrbitalMatrices`), or ``None``.
      frame: a static molecular-frame kind handed to the features filler (``pesnet_features``).
    """

    n_up: int
    n_down: int
    charges: tuple
    features: Layer
    embedding: Layer
    orbital_head: Layer
    envelope: Layer
    antisymmetrizer: Layer
    jastrow: Layer | None = None
    determinants: int = 4
    full_det: bool = True
    envelope_initial: tuple | None = None
    frame: Any = None  # the molecular-frame kind, for a features filler that takes one (PESNet)

    @nn.compact
    def _evaluate(self, r: jnp.ndarray, R: jnp.ndarray, with_psi: bool):
        context = dict(n_up=self.n_up, n_down=self.n_down, charges=self.charges, determinants=self.determinants,
                       full_det=self.full_det, envelope=self.envelope, envelope_initial=self.envelope_initial,
                       frame=self.frame)
        features = self.features.build(**context)(r, R)
        embedding = self.embedding.build(name="embedding", **context)(features)
        blocks = self.orbital_head.build(name="orbital_matrices", **context)(embedding, features)
        if not with_psi:
            return blocks
        sign, logabs = self.antisymmetrizer.build(name="antisymmetrizer", **context)(blocks)
        if self.jastrow is not None:
            logabs = logabs + self.jastrow.build(name="jastrow", **context)(features, embedding)
        return sign, logabs

    def orbitals(self, r: jnp.ndarray, R: jnp.ndarray) -> list[jnp.ndarray]:
        """Orbital blocks ``[K, n_b, n_b]`` (used by Hartree–Fock pretraining)."""
        return self._evaluate(r, R, with_psi=False)

    def __call__(self, r: jnp.ndarray, R: jnp.ndarray):
        return self._evaluate(r, R, with_psi=True)


def envelope_start_from_hf(system, envelope_init: str, hf_basis: str):
    """Initial envelope values: ``None`` for ``"ones"``; for ``"hf"``, per-spin ``(pi, sigma)``
    fitted to the occupied UHF orbitals of ``system`` in ``hf_basis`` (nested tuples)."""
    if envelope_init == "ones":
        return None
    from qmczoo.chemistry.hartree_fock import run_hartree_fock
    from qmczoo.layers.gaussian_orbitals import isotropic_envelope_from_hf

    fits = isotropic_envelope_from_hf(run_hartree_fock(system, hf_basis), np.asarray(system.positions))
    return tuple(tuple(tuple(map(tuple, np.asarray(x, dtype=float))) for x in spin) for spin in fits)


def make_ferminet(system, orbitals: Layer, envelope_init: str = "ones", hf_basis: str = "ccpvdz",
                  **options) -> FermiNet:
    """Factory used by the registry: options and slot fillers come from ``registry.yaml``.

    ``envelope_init="hf"`` starts the envelopes from exponents fitted to the UHF orbitals in
    ``hf_basis`` (the hybrid's choice); ``"ones"`` from unit exponents and weights.
    """
    return FermiNet(n_up=system.n_up, n_down=system.n_down, charges=tuple(float(z) for z in system.charges),
                    orbital_head=orbitals, envelope_initial=envelope_start_from_hf(system, envelope_init, hf_basis),
                    **options)
