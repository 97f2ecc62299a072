"""Hartree–Fock excitations: the lowest determinants among UHF and its single and double excitations.

Excited-state pretraining (:mod:`qmczoo.engine.states.pretrain`) fits state ``i`` to the ``i``-th
lowest of these determinants, so that the states start apart (FermiNet's recipe for excited
states). Determinants are ranked by the sum of their occupied UHF orbital energies (Koopmans-like,
no new SCF); excitations keep the number of electrons of each spin, so every determinant lies in
the spin sector ``(n_up, n_down)`` of the system. Ties (the up and down excitations of a
closed shell are degenerate) are broken by excitation level, then by the occupations.

For He in cc-pVDZ the three lowest are ``1s↑1s↓`` and the two ``1s → 2s`` singles (one per
spin), whose sum and difference are the 2¹S and the M_s = 0 component of 2³S.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from qmczoo.chemistry.hartree_fock import HartreeFock
from qmczoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Determinant:
    """One determinant built from UHF orbitals.

    Attributes:
      occ_up, occ_down: indices of the occupied molecular orbitals of each spin (sorted).
      orbital_energy: sum of their UHF orbital energies (hartree); the ranking key.
      level: 0 for the UHF ground determinant, 1 for a single, 2 for a double excitation.
      label: ``"ground"``, or the excitations as ``"up 0->1, down 0->2"`` (orbital indices).
    """

    occ_up: tuple[int, ...]
    occ_down: tuple[int, ...]
    orbital_energy: float
    level: int
    label: str = "ground"


_SOLUTIONS: dict[tuple, tuple] = {}


def _uhf(system, basis: str):
    """``(mol, mo_coeff (up, down), mo_energy (up, down))`` of a UHF calculation, cached."""
    key = (system.symbols, system.charges, system.coords, system.n_up, system.n_down, basis)
    if key not in _SOLUTIONS:
        from pyscf import scf

        mol = system.to_pyscf(basis)
        mf = scf.UHF(mol)
        mf.verbose = 0
        mf.kernel()
        coeff = tuple(np.array(c) for c in mf.mo_coeff)
        energy = tuple(np.array(e) for e in mf.mo_energy)
        _SOLUTIONS[key] = (mol, coeff, energy)
    return _SOLUTIONS[key]


def _spin_excitations(n_occ: int, n_mo: int, level: int):
    """Occupations of one spin reached by ``level`` (0, 1 or 2) excitations from ``range(n_occ)``:
    ``(occupied tuple, text)`` pairs."""
    ground = tuple(range(n_occ))
    virtual = range(n_occ, n_mo)
    for holes in itertools.combinations(ground, level):
        for particles in itertools.combinations(virtual, level):
            occ = tuple(sorted((set(ground) - set(holes)) | set(particles)))
            text = ",".join(f"{h}->{p}" for h, p in zip(holes, particles))
            yield occ, text


def enumerate_determinants(n_up: int, n_down: int, energies_up, energies_down) -> list[Determinant]:
    """The ground determinant and every single and double excitation, lowest first.

    Args:
      n_up, n_down: electrons of each spin.
      energies_up, energies_down: UHF orbital energies of each spin ``[n_mo]`` (ascending).
    """
    n_mo_up, n_mo_down = len(energies_up), len(energies_down)
    dets = []
    for level_up in range(3):
        for level_down in range(3 - level_up):
            for occ_up, t_up in _spin_excitations(n_up, n_mo_up, level_up):
                for occ_down, t_down in _spin_excitations(n_down, n_mo_down, level_down):
                    energy = float(np.sum(np.asarray(energies_up)[list(occ_up)])
                                   + np.sum(np.asarray(energies_down)[list(occ_down)]))
                    label = ", ".join(t for t in (f"up {t_up}" if t_up else "", f"down {t_down}" if t_down else "")
                                      if t) or "ground"
                    dets.append(Determinant(occ_up, occ_down, energy, level_up + level_down, label))
    return sorted(dets, key=lambda d: (round(d.orbital_energy, 8), d.level, d.occ_up, d.occ_down))


def count_determinants(n_up: int, n_down: int, n_mo: int) -> int:
    """How many determinants :func:`enumerate_determinants` gives with ``n_mo`` orbitals per spin."""
    from math import comb

    def spin(n, level):
        return comb(n, level) * comb(n_mo - n, level)

    return sum(spin(n_up, a) * spin(n_down, b) for a in range(3) for b in range(3 - a))


def check_pretrainable_states(system, basis: str, k: int) -> None:
    """Raise :class:`ConfigError` if the basis holds fewer than ``k`` determinants to pretrain
    ``k`` states to (no SCF: it counts the basis functions)."""
    mol = system.to_pyscf(basis)
    available = count_determinants(system.n_up, system.n_down, mol.nao)
    if k > available:
        raise ConfigError(f"{k} states cannot be pretrained on {system.name} in basis {basis!r}: it holds only "
                          f"{available} determinants (Hartree-Fock and its single and double excitations); "
                          "use fewer --states or a larger pretraining basis")


def lowest_determinants(system, basis: str, k: int) -> tuple[list[Determinant], list[HartreeFock]]:
    """The ``k`` lowest determinants of ``system`` in ``basis`` and, for each, a :class:`HartreeFock`
    whose occupied orbitals are that determinant's (its ``energy`` is NaN: no SCF is done for a
    determinant, its orbitals are the UHF ones)."""
    check_pretrainable_states(system, basis, k)
    mol, coeff, energy = _uhf(system, basis)
    dets = enumerate_determinants(system.n_up, system.n_down, energy[0], energy[1])[:k]
    solutions = []
    for det in dets:
        up = np.array(coeff[0][:, list(det.occ_up)])
        down = np.array(coeff[1][:, list(det.occ_down)])
        for c in (up, down):
            c.flags.writeable = False
        solutions.append(HartreeFock(mol=mol, coeff_up=up, coeff_down=down, energy=float("nan")))
    return dets, solutions
