"""PauliNet (Hermann, Schätzle & Noé, Nat. Chem. 12, 891, 2020), as its authors built it.

    psi = exp(gamma_ee + J_nn) * sum_k w_k det[phi~_k,up] det[phi~_k,down]

* **Baseline**: a multi-determinant reference from pyscf, by default CASSCF
  (:mod:`qmczoo.chemistry.casscf`, on top of RHF/ROHF): determinant ``k`` occupies its own
  selection of the CASSCF orbitals (the ``K`` configurations with the largest ``|c|``), and the
  weights ``w_k`` start at the CI coefficients. The orbitals are Gaussian molecular orbitals
  evaluated in JAX with the nuclear **cusp correction** of Ma et al. (2005)
  (:mod:`qmczoo.layers.cusp_correction`): they carry Kato's electron–nuclear cusp themselves.
  At a pseudo-nucleus of an effective core potential there is no cusp to carry (its potential
  is finite): the orbitals (in the ECP's basis) are left uncorrected there (``docs/ecp.md``).
* **Backflow**: each orbital of each determinant is multiplied by ``1 + 2 tanh(kappa_k(h_i) / 4)``,
  ``kappa_k`` an MLP of the electron's SchNet-style embedding ``h_i``
  (:class:`~qmczoo.layers.backflow.BoundedBackflow`).
* **Jastrow**: the short-ranged electron–electron cusp term ``gamma_ee = sum_{i<j} -c a^2/(a + r_ij)``
  with ``a = 0.1`` bohr fixed (deepqmc's ``cusp_alpha = 10``; Kato's ``c = 1/2, 1/4``), plus the
  neural Jastrow ``J_nn`` (an MLP of the embedding). No electron–nuclear Jastrow: the orbitals
  have that cusp, and a second one would count it twice.

At initialisation the backflow factors are within about 1e-3 of 1 and the neural Jastrow near
0, so the ansatz starts at its baseline (the cusp-corrected CASSCF expansion times the e-e
cusp). PauliNet is therefore not Hartree–Fock-pretrained (as in deepqmc): it has no
``orbitals()`` method for the engine's pretraining (:meth:`PauliNet.determinant_blocks` gives
the same blocks for inspection), so ``qmczoo train`` skips pretraining for it.

Deviations from the paper (on purpose):

* the default active space is the valence space (:func:`~qmczoo.chemistry.casscf.default_active_space`;
  the paper chose one per system) and at most ``determinants`` configurations are kept (a
  degenerate group at the cut is dropped whole, configurations with ``|c| < ci_cutoff`` are
  dropped: deepqmc's ``conf_cutoff``);
* the cusp correction's value at the nucleus is not optimised or trained (Ma et al. optimise
  it; deepqmc trains it from zero);
* each determinant has its own backflow MLP (deepqmc's "det" backflow); deepqmc's default
  applies one backflow per orbital, shared by the determinants that occupy it;
* tanh activations where deepqmc uses a shifted softplus; the embedding is
  :class:`~qmczoo.layers.schnet_embedding.SchNetEmbedding` (see its docstring);
* the CASSCF orbitals stay fixed (as deepqmc's default ``freeze_mos``), the CI weights train.
"""

from __future__ import annotations

import inspect
import logging

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.filler import Layer

log = logging.getLogger(__name__)
_REPORTED: set[int] = set()  # references (cached, so alive) whose shortfall of determinants was logged


class PauliNet(nn.Module):
    """``apply(params, r [N,3], R [M,3]) -> (sign, log|psi|)``.

    Attributes:
      n_up, n_down: electrons per spin; charges: nuclear charges ``[M]``.
      reference: the :class:`~qmczoo.chemistry.casscf.MultiReference` (determinants' orbital
        selections ``occ_up [K, n_up]``, ``occ_down [K, n_down]`` and weights ``[K]``), or a
        Hartree–Fock solution (one determinant). It is handed to the baseline slot as its
        ``hartree_fock`` context and its weights to the antisymmetrizer as ``initial_weights``.
      features, embedding, baseline, antisymmetrizer: slot fillers; backflow, jastrow,
        neural_jastrow: fillers or ``None``.
      cusp_charges: Kato's electron–nuclear cusp per nucleus where it is not the charge (0 at a
        pseudo-nucleus of an effective core potential), or None; handed to the Jastrows.
    """

    n_up: int
    n_down: int
    charges: tuple
    reference: object
    features: Layer
    embedding: Layer
    baseline: Layer
    antisymmetrizer: Layer
    backflow: Layer | None = None
    jastrow: Layer | None = None
    neural_jastrow: Layer | None = None
    cusp_charges: tuple | None = None

    @property
    def determinants(self) -> int:
        from qmczoo.chemistry.casscf import as_reference

        return as_reference(self.reference).determinants

    @nn.compact
    def _evaluate(self, r: jnp.ndarray, R: jnp.ndarray, with_psi: bool):
        from qmczoo.chemistry.casscf import as_reference

        ref = as_reference(self.reference)
        context = dict(n_up=self.n_up, n_down=self.n_down, charges=self.charges, determinants=ref.determinants,
                       hartree_fock=self.reference, initial_weights=tuple(float(w) for w in ref.weights),
                       cusp_charges=self.cusp_charges)
        features = self.features.build(**context)(r, R)
        embedding = self.embedding.build(name="embedding", **context)(features)
        baseline = self.baseline.build(name="baseline", **context)
        # a baseline that takes the nuclei computes what depends on them once per batch, not per walker
        takes_nuclei = "R" in inspect.signature(type(baseline).__call__).parameters
        phi_up, phi_down = baseline(features, R=R) if takes_nuclei else baseline(features)
        blocks = []
        n = self.n_up + self.n_down
        for spin, phi, occ, lo, hi in (("up", phi_up, ref.occ_up, 0, self.n_up),
                                       ("down", phi_down, ref.occ_down, self.n_up, n)):
            if hi == lo:
                continue
            block = jnp.transpose(phi[:, occ], (1, 0, 2))  # [K, n_s, n_s]: determinant k's own columns
            if self.backflow is not None:
                block = self.backflow.build(name=f"backflow_{spin}", **context)(embedding.h[lo:hi], block)
            blocks.append(block)
        if not with_psi:
            return blocks
        sign, logabs = self.antisymmetrizer.build(name="antisymmetrizer", **context)(blocks)
        for slot, jastrow in (("jastrow", self.jastrow), ("neural_jastrow", self.neural_jastrow)):
            if jastrow is not None:
                logabs = logabs + jastrow.build(name=slot, **context)(features, embedding)
        return sign, logabs

    def determinant_blocks(self, r: jnp.ndarray, R: jnp.ndarray) -> list[jnp.ndarray]:
        """The backflow-corrected blocks ``[K, n_s, n_s]`` of each non-empty spin (for inspection;
        deliberately not called ``orbitals``: PauliNet is not Hartree–Fock-pretrained)."""
        return self._evaluate(r, R, with_psi=False)

    def __call__(self, r: jnp.ndarray, R: jnp.ndarray):
        return self._evaluate(r, R, with_psi=True)


def make_paulinet(system, hf_basis: str = "ccpvdz", reference: str = "casscf", determinants: int = 8,
                  cas_orbitals: int = 0, cas_electrons: int = 0, ci_cutoff: float = 0.01, **slots) -> PauliNet:
    """Factory used by the registry: runs (or reuses) the reference calculation in ``hf_basis``.

    Args:
      system: the molecule.
      hf_basis: basis of the reference orbitals (a pyscf basis name).
      reference: "casscf" (default; :func:`~qmczoo.chemistry.casscf.multi_reference`) or "hf"
        (the UHF determinant alone: one determinant whatever ``determinants`` says).
      determinants: at most this many determinants (the configurations with the largest ``|c|``).
      cas_orbitals, cas_electrons: the active space (0 and 0: the valence space).
      ci_cutoff: configurations with ``|c|`` below this are dropped.
      slots: the resolved slot fillers.

    Fewer determinants than asked for are logged as a warning that says why.

    Raises:
      ConfigError: an active space the system or basis cannot hold, or an unknown reference.
    """
    from qmczoo.errors import ConfigError
    from qmczoo.models.ferminet import cusp_charges_of

    if reference == "casscf":
        from qmczoo.chemistry.casscf import multi_reference

        ref = multi_reference(system, hf_basis, cas_orbitals, cas_electrons, determinants, ci_cutoff)
        if ref.determinants < determinants and id(ref) not in _REPORTED:
            _REPORTED.add(id(ref))  # once per reference (the factory runs more than once per run)
            log.warning("paulinet on %s: %s", system.name, ref.description)
    elif reference == "hf":
        from qmczoo.chemistry.hartree_fock import run_hartree_fock

        if cas_orbitals or cas_electrons:
            raise ConfigError("cas_orbitals and cas_electrons set an active space: they need reference=casscf")
        ref = run_hartree_fock(system, hf_basis)
        if determinants > 1 and id(ref) not in _REPORTED:
            _REPORTED.add(id(ref))
            log.warning("paulinet on %s: reference=hf has one determinant; using 1, not %d", system.name, determinants)
    else:
        raise ConfigError(f"unknown reference {reference!r} of paulinet; choose casscf or hf")
    return PauliNet(n_up=system.n_up, n_down=system.n_down, charges=tuple(float(z) for z in system.charges),
                    reference=ref, cusp_charges=cusp_charges_of(system), **slots)
