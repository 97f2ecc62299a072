"""Unrestricted Hartree–Fock with pyscf, once per system and basis.

:func:`run_hartree_fock` caches its result, keyed by the nuclei (symbols, charges, positions),
the electron counts and the basis name: pretraining and a Hartree–Fock baseline layer of the
same run share one SCF. The result, :class:`HartreeFock`, is hashed by identity (a flax module
can hold it as an attribute) and is read-only.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(eq=False)
class HartreeFock:
    """Occupied UHF orbitals of a system.

    Attributes:
      mol: the pyscf ``Mole``.
      coeff_up: AO coefficients of the occupied up orbitals ``[n_ao, n_up]`` (read-only).
      coeff_down: likewise for down ``[n_ao, n_down]`` (read-only).
      energy: the UHF total energy (hartree).

    Its basis, laid out for JAX, is :func:`qmczoo.layers.gaussian_orbitals.basis_of` ``(mol)``
    (chemistry does not import the layers).
    """

    mol: object
    coeff_up: np.ndarray
    coeff_down: np.ndarray
    energy: float

    def orbital_matrices(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Occupied orbitals on walkers ``r`` ``[..., N, 3]`` (bohr), evaluated by pyscf.

        Returns ``(up [..., n_up, n_up], down [..., n_down, n_down])``: entry ``[i, j]`` is
        orbital ``j`` at electron ``i`` of that spin.
        """
        r = np.asarray(r, dtype=np.float64)
        lead, n = r.shape[:-2], r.shape[-2]
        n_up = self.coeff_up.shape[1]
        ao = self.mol.eval_gto("GTOval_sph", r.reshape(-1, 3)).reshape(*lead, n, -1)
        up = ao[..., :n_up, :] @ self.coeff_up
        down = ao[..., n_up:, :] @ self.coeff_down
        return up, down


_SOLUTIONS: dict[tuple, HartreeFock] = {}


def run_hartree_fock(system, basis: str = "ccpvdz") -> HartreeFock:
    """UHF for ``system`` in ``basis`` (a pyscf basis name); returns the occupied orbitals.

    Cached: the same nuclei, electron counts, ECP and basis give the same object without a second SCF.
    With an ECP (``system.ecp``) the calculation is valence-only, in the basis made for the ECP
    where pyscf has one (:meth:`~qmczoo.chemistry.system.System.to_pyscf`).
    """
    key = (system.symbols, system.charges, system.coords, system.n_up, system.n_down, basis,
           getattr(system, "ecp", None))
    if key not in _SOLUTIONS:
        _SOLUTIONS[key] = _solve_uhf(system, basis)
    return _SOLUTIONS[key]


def _solve_uhf(system, basis: str) -> HartreeFock:
    """One pyscf UHF calculation (no cache)."""
    from pyscf import scf

    mol = system.to_pyscf(basis)
    mf = scf.UHF(mol)
    mf.verbose = 0
    energy = float(mf.kernel())
    occ_up = mf.mo_occ[0] > 0.5
    occ_down = mf.mo_occ[1] > 0.5
    coeff_up = np.array(mf.mo_coeff[0][:, occ_up][:, : system.n_up])
    coeff_down = np.array(mf.mo_coeff[1][:, occ_down][:, : system.n_down])
    for coeff in (coeff_up, coeff_down):
        coeff.flags.writeable = False
    return HartreeFock(mol=mol, coeff_up=coeff_up, coeff_down=coeff_down, energy=energy)
