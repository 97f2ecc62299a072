"""PauliNet (Hermann, Schätzle & Noé, Nat. Chem. 12, 891, 2020).

Slots: features -> embedding (SchNet-style convolutions) -> baseline orbitals (Hartree–Fock,
evaluated in JAX) corrected by a backflow from the embedding -> weighted block determinants,
times exp of an exact cusp Jastrow plus a neural Jastrow. With the backflow's correction and
the neural Jastrow starting at zero, the ansatz starts as the Hartree–Fock determinant times the
cusp Jastrow.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.filler import Layer


class PauliNet(nn.Module):
    """``apply(params, r [N,3], R [M,3]) -> (sign, log|psi|)``.

    Attributes:
      n_up, n_down: electrons per spin; charges: nuclear charges ``[M]``.
      hartree_fock: the UHF solution the baseline evaluates (:class:`~qmczoo.chemistry.hartree_fock.HartreeFock`).
      features, embedding, baseline, antisymmetrizer: slot fillers; backflow, jastrow,
        neural_jastrow: fillers or ``None``.
      determinants: ``K``, the number of (weighted) determinants; each has its own backflow.
      cusp_charges: Kato's electron–nuclear cusp per nucleus where it is not the charge (0 at a
        pseudo-nucleus), or None; handed to the Jastrows.
    """

    n_up: int
    n_down: int
    charges: tuple
    hartree_fock: object
    features: Layer
    embedding: Layer
    baseline: Layer
    antisymmetrizer: Layer
    backflow: Layer | None = None
    jastrow: Layer | None = None
    neural_jastrow: Layer | None = None
    determinants: int = 1
    cusp_charges: tuple | None = None

    @nn.compact
    def _evaluate(self, r: jnp.ndarray, R: jnp.ndarray, with_psi: bool):
        context = dict(n_up=self.n_up, n_down=self.n_down, charges=self.charges, determinants=self.determinants,
                       hartree_fock=self.hartree_fock, cusp_charges=self.cusp_charges)
        features = self.features.build(**context)(r, R)
        embedding = self.embedding.build(name="embedding", **context)(features)
        phi_up, phi_down = self.baseline.build(name="baseline", **context)(features)
        blocks = []
        n = self.n_up + self.n_down
        for spin, phi, lo, hi in (("up", phi_up, 0, self.n_up), ("down", phi_down, self.n_up, n)):
            if hi == lo:
                continue
            if self.backflow is None:
                blocks.append(jnp.broadcast_to(phi, (self.determinants,) + phi.shape))
            else:
                blocks.append(self.backflow.build(name=f"backflow_{spin}", **context)(embedding.h[lo:hi], phi))
        if not with_psi:
            return blocks
        sign, logabs = self.antisymmetrizer.build(name="antisymmetrizer", **context)(blocks)
        for slot, jastrow in (("jastrow", self.jastrow), ("neural_jastrow", self.neural_jastrow)):
            if jastrow is not None:
                logabs = logabs + jastrow.build(name=slot, **context)(features, embedding)
        return sign, logabs

    def orbitals(self, r: jnp.ndarray, R: jnp.ndarray) -> list[jnp.ndarray]:
        """The backflow-corrected orbital blocks ``[K, n_s, n_s]`` (used by pretraining)."""
        return self._evaluate(r, R, with_psi=False)

    def __call__(self, r: jnp.ndarray, R: jnp.ndarray):
        return self._evaluate(r, R, with_psi=True)


def make_paulinet(system, hf_basis: str = "ccpvdz", **options) -> PauliNet:
    """Factory used by the registry: runs (or reuses) the UHF calculation in ``hf_basis`` (with an
    effective core potential: valence-only, in the basis made for it, e.g. ``ccecp-cc-pVDZ``)."""
    from qmczoo.chemistry.hartree_fock import run_hartree_fock
    from qmczoo.models.ferminet import cusp_charges_of

    return PauliNet(n_up=system.n_up, n_down=system.n_down, charges=tuple(float(z) for z in system.charges),
                    hartree_fock=run_hartree_fock(system, hf_basis), cusp_charges=cusp_charges_of(system), **options)
