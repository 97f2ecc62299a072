"""Gaussian-basis atomic and Hartree–Fock orbitals evaluated in JAX (the baseline slot).

A pyscf basis is turned once into a static :class:`GaussianBasis` (plain numpy arrays); then
:func:`eval_atomic_orbitals` evaluates every atomic orbital (AO) at every electron from the
electron–nuclear displacements ``r_i - R_I``, reproducing ``mol.eval_gto("GTOval_sph", r)``
in pyscf's AO order. It is pure ``jnp`` (no host callback), so ``jax.grad``, ``jax.hessian``
and folx's forward Laplacian go through it, and the AO centres move with ``R``.

Each AO is a product ``radial(|r - R_I|) * angular(r - R_I)``:

* ``radial_k(d) = sum_p c_pk exp(-alpha_p d^2)``, one per contraction of a shell, with the
  coefficients that libcint uses (pyscf's ``bas_ctr_coeff`` times ``gto_norm``);
* ``angular`` is a real solid harmonic ``sum_c T_cm x^a y^b z^c`` over the cartesian monomials
  of degree ``l`` (pyscf's order ``xx, xy, xz, yy, yz, zz, ...``) with ``T = pyscf.gto.cart2sph(l)``,
  which already holds libcint's extra factors of the ``s`` and ``p`` shells.

:class:`HartreeFockOrbitals` fills the baseline slot with the occupied UHF orbitals;
:func:`isotropic_envelope_from_hf` derives initial isotropic-envelope parameters from them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.slots import ElectronFeatures

if TYPE_CHECKING:
    from qmczoo.chemistry.hartree_fock import HartreeFock


@dataclasses.dataclass(frozen=True)
class Shell:
    """One shell of a contracted Gaussian basis.

    Attributes:
      atom: index of the nucleus it sits on.
      l: angular momentum.
      exponents: primitive exponents ``alpha_p`` ``[P]``.
      coefficients: contraction coefficients ``[P, n_ctr]`` including the primitive
        normalisation (libcint's convention); the shell has ``n_ctr * (2 l + 1)`` AOs.
    """

    atom: int
    l: int
    exponents: np.ndarray
    coefficients: np.ndarray


def cartesian_powers(l: int) -> np.ndarray:
    """Powers ``(a, b, c)`` of ``x^a y^b z^c`` with ``a + b + c = l`` in pyscf's order ``[ncart, 3]``."""
    return np.array([(a, b, l - a - b) for a in range(l, -1, -1) for b in range(l - a, -1, -1)])


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianBasis:
    """Static description of a pyscf spherical basis, laid out for evaluation in JAX.

    Build it with :meth:`from_mole`. Attributes (all numpy, ``P`` primitives, ``K`` radial
    functions = contractions, ``S = sum_{l <= l_max} (2l + 1)`` harmonics per nucleus):

      shells: the :class:`Shell` s in pyscf's order.
      n_atoms: number of nuclei ``M``.
      primitive_atom: nucleus of each primitive ``[P]``.
      primitive_exponent: exponent of each primitive ``[P]``.
      contraction: coefficient of primitive ``p`` in radial function ``k`` ``[P, K]``.
      powers: the cartesian monomials of every ``l <= l_max``, concatenated ``[C, 3]``.
      cart2sph: block-diagonal map from those monomials to real solid harmonics ``[C, S]``.
      ao_radial: radial function of each AO ``[n_ao]``.
      ao_angular: harmonic of each AO, as index ``atom * S + s`` ``[n_ao]``.
    """

    shells: tuple[Shell, ...]
    n_atoms: int
    primitive_atom: np.ndarray
    primitive_exponent: np.ndarray
    contraction: np.ndarray
    powers: np.ndarray
    cart2sph: np.ndarray
    ao_radial: np.ndarray
    ao_angular: np.ndarray

    @property
    def n_ao(self) -> int:
        return len(self.ao_radial)

    @property
    def ao_atom(self) -> np.ndarray:
        """Nucleus of each AO ``[n_ao]``."""
        return self.ao_angular // self.cart2sph.shape[1]

    @classmethod
    def from_mole(cls, mol) -> GaussianBasis:
        """The basis of a built pyscf ``Mole`` (spherical AOs, as ``GTOval_sph``)."""
        from pyscf import gto

        shells = tuple(
            Shell(atom=mol.bas_atom(i), l=mol.bas_angular(i), exponents=mol.bas_exp(i),
                  coefficients=mol.bas_ctr_coeff(i) * gto.gto_norm(mol.bas_angular(i), mol.bas_exp(i))[:, None])
            for i in range(mol.nbas))
        return cls.from_shells(shells, mol.natm)

    @classmethod
    def from_shells(cls, shells: tuple[Shell, ...], n_atoms: int) -> GaussianBasis:
        """Lay out ``shells`` (AOs in shell order, then contraction, then harmonic ``m``)."""
        from pyscf import gto
        from scipy.linalg import block_diag

        l_max = max(s.l for s in shells)
        ao_radial, ao_angular = _ao_indices(shells, l_max)
        return cls(
            shells=shells, n_atoms=n_atoms,
            primitive_atom=np.concatenate([[s.atom] * len(s.exponents) for s in shells]).astype(int),
            primitive_exponent=np.concatenate([s.exponents for s in shells]),
            contraction=block_diag(*[s.coefficients for s in shells]),
            powers=np.concatenate([cartesian_powers(l) for l in range(l_max + 1)]),
            cart2sph=block_diag(*[gto.cart2sph(l) for l in range(l_max + 1)]),
            ao_radial=ao_radial, ao_angular=ao_angular)


_BASES: dict[int, tuple[object, GaussianBasis]] = {}


def basis_of(mol) -> GaussianBasis:
    """:meth:`GaussianBasis.from_mole` of ``mol``, laid out once per ``Mole`` (cached by identity)."""
    hit = _BASES.get(id(mol))
    if hit is None or hit[0] is not mol:
        hit = _BASES[id(mol)] = (mol, GaussianBasis.from_mole(mol))
    return hit[1]


def _ao_indices(shells: tuple[Shell, ...], l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Radial function and harmonic (``atom * S + s``) of each AO, both ``[n_ao]``."""
    harmonic_offset = np.cumsum([0] + [2 * l + 1 for l in range(l_max + 1)])
    ao_radial, ao_angular = [], []
    radial = 0
    for shell in shells:
        first = shell.atom * harmonic_offset[-1] + harmonic_offset[shell.l]
        for _ in range(shell.coefficients.shape[1]):
            ao_radial += [radial] * (2 * shell.l + 1)
            ao_angular += range(first, first + 2 * shell.l + 1)
            radial += 1
    return np.array(ao_radial), np.array(ao_angular)


def _solid_harmonics(basis: GaussianBasis, en_disp: jnp.ndarray) -> jnp.ndarray:
    """Real solid harmonics (pyscf's normalisation) of every nucleus: ``[N, M, 3] -> [N, M * S]``."""
    l_max = int(basis.powers.max())
    ones = jnp.ones_like(en_disp)
    by_power = [ones, en_disp]  # x^k, y^k, z^k by repeated products (finite derivatives at 0)
    for _ in range(l_max - 1):
        by_power.append(by_power[-1] * en_disp)
    by_power = jnp.stack(by_power[: l_max + 1], axis=-1)  # [N, M, 3, l_max + 1]
    monomials = (by_power[:, :, 0, basis.powers[:, 0]] * by_power[:, :, 1, basis.powers[:, 1]]
                 * by_power[:, :, 2, basis.powers[:, 2]])  # [N, M, C]
    harmonics = monomials @ jnp.asarray(basis.cart2sph, en_disp.dtype)  # [N, M, S]
    return harmonics.reshape(en_disp.shape[0], -1)


def eval_atomic_orbitals(basis: GaussianBasis, en_disp: jnp.ndarray) -> jnp.ndarray:
    """All AOs at all electrons, as pyscf's ``mol.eval_gto("GTOval_sph", r)``.

    Args:
      basis: the static basis.
      en_disp: electron–nuclear displacements ``r_i - R_I`` ``[N, M, 3]``.

    Returns:
      ``[N, n_ao]``: AO ``mu`` (pyscf's order) at electron ``i``.
    """
    if en_disp.shape[1] != basis.n_atoms:
        raise ValueError(f"en_disp has {en_disp.shape[1]} nuclei, the basis {basis.n_atoms}")
    dtype = en_disp.dtype
    dist2 = jnp.sum(en_disp**2, axis=-1)  # [N, M]
    gaussians = jnp.exp(-jnp.asarray(basis.primitive_exponent, dtype) * dist2[:, basis.primitive_atom])  # [N, P]
    radial = gaussians @ jnp.asarray(basis.contraction, dtype)  # [N, K]
    angular = _solid_harmonics(basis, en_disp)  # [N, M * S]
    return radial[:, basis.ao_radial] * angular[:, basis.ao_angular]


def occupied_orbitals(hf: HartreeFock, en_disp: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Occupied UHF orbitals at the electrons of their spin.

    Args:
      hf: the Hartree–Fock solution (``coeff_up [n_ao, n_up]``, ``coeff_down [n_ao, n_down]``).
      en_disp: ``r_i - R_I`` ``[N, M, 3]``, the ``n_up`` spin-up electrons first.

    Returns:
      ``(up [n_up, n_up], down [n_down, n_down])``: entry ``[i, j]`` is orbital ``j`` at
      electron ``i`` of that spin (``[0, 0]`` for an empty spin).
    """
    n_up = hf.coeff_up.shape[1]
    ao = eval_atomic_orbitals(basis_of(hf.mol), en_disp)
    up = ao[:n_up] @ jnp.asarray(hf.coeff_up, ao.dtype)
    down = ao[n_up:] @ jnp.asarray(hf.coeff_down, ao.dtype)
    return up, down


class HartreeFockOrbitals(nn.Module):
    """Baseline slot: the occupied UHF orbitals of each spin at that spin's electrons.

    No trainable parameters. Call: ``features`` (uses ``en_disp [N, M, 3]``, spin-up electrons
    first). Returns ``(up [n_up, n_up], down [n_down, n_down])``, entry ``[i, j]`` = orbital
    ``j`` at electron ``i``; an empty spin gives a ``[0, 0]`` array.

    Attributes:
      hartree_fock: the :class:`~qmczoo.chemistry.hartree_fock.HartreeFock` solution (hashed by identity).
      n_up, n_down: electron counts (must match the solution's occupied orbitals).
    """

    hartree_fock: HartreeFock
    n_up: int
    n_down: int

    def __call__(self, features: ElectronFeatures) -> tuple[jnp.ndarray, jnp.ndarray]:
        occupied = (self.hartree_fock.coeff_up.shape[1], self.hartree_fock.coeff_down.shape[1])
        if occupied != (self.n_up, self.n_down):
            raise ValueError(f"the Hartree-Fock solution has {occupied[0]} up and {occupied[1]} down orbitals, "
                             f"not {self.n_up} and {self.n_down}")
        return occupied_orbitals(self.hartree_fock, features.en_disp)


class CuspCorrectedOrbitals(nn.Module):
    """Baseline slot: the orbitals a reference's determinants draw from, cusp-corrected (PauliNet).

    The reference is a :class:`~qmczoo.chemistry.casscf.MultiReference` (CASSCF determinants)
    or a Hartree–Fock solution (its occupied orbitals, one determinant); either way the layer
    returns every orbital that some determinant occupies, and the model picks each
    determinant's columns (``reference.occ_up``, ``occ_down``). With ``cusp_correction`` each
    orbital's s part around each nucleus is replaced inside ``r_c = cusp_scale / Z`` (Ma et
    al. 2005, :mod:`qmczoo.layers.cusp_correction`), so that the orbitals carry Kato's nuclear
    cusp and the local energy stays finite at the nuclei; not at a pseudo-nucleus of an
    effective core potential (its potential is finite: no cusp there). No trainable parameters.

    Call: ``features`` (uses ``en_disp [N, M, 3]`` and ``en_dist [N, M, 1]``, spin-up first) and,
    optionally, the nuclear positions ``R [M, 3]``: the fit of the correction depends on ``R``
    only, so a model that hands ``R`` over has it computed once per batch of walkers instead of
    once per walker (without ``R`` it is read off ``features``, with the same values).
    Returns ``(up [n_up, P_up], down [n_down, P_down])``: entry ``[i, j]`` is orbital ``j`` at
    electron ``i`` of that spin (``P`` = the reference's orbital count; ``[0, P]`` for an empty spin).

    Attributes:
      hartree_fock: the reference (``MultiReference`` or ``HartreeFock``; hashed by identity).
      n_up, n_down: electron counts (must match the reference's determinants).
      cusp_correction: correct the nuclear cusp (default True).
      cusp_scale: ``r_c = cusp_scale / Z_I`` bohr (deepqmc's ``rc_scaling``, default 1).
      flatten: choose each corrected orbital's value at the nucleus so that its effective local
        energy is flat inside ``r_c`` (Ma et al.; :func:`~qmczoo.layers.cusp_correction.flattest_value_shifts`,
        computed once at the reference's geometry, seconds to a minute on a CPU); False (default)
        keeps the Gaussians' value, deepqmc's starting point.
    """

    hartree_fock: object
    n_up: int
    n_down: int
    cusp_correction: bool = True
    cusp_scale: float = 1.0
    flatten: bool = False

    def __call__(self, features: ElectronFeatures, R: jnp.ndarray | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
        from qmczoo.chemistry.casscf import as_reference
        from qmczoo.chemistry.ecp import pseudo_atoms
        from qmczoo.layers.cusp_correction import corrected_orbitals, fit_cusp, flattest_value_shifts

        ref = as_reference(self.hartree_fock)
        if (ref.occ_up.shape[1], ref.occ_down.shape[1]) != (self.n_up, self.n_down):
            raise ValueError(f"the reference's determinants hold {ref.occ_up.shape[1]} up and {ref.occ_down.shape[1]} "
                             f"down electrons, not {self.n_up} and {self.n_down}")
        if not self.cusp_scale > 0:
            raise ValueError(f"cusp_scale must be > 0, got {self.cusp_scale}")
        basis = basis_of(ref.mol)
        ao = eval_atomic_orbitals(basis, features.en_disp)  # [N, n_ao]
        if not self.cusp_correction:
            return (ao[: self.n_up] @ jnp.asarray(ref.coeff_up, ao.dtype),
                    ao[self.n_up:] @ jnp.asarray(ref.coeff_down, ao.dtype))
        if R is None:
            # the nuclei relative to electron 0 (the fit depends on their relative positions only;
            # no derivative flows through it: its true derivative with respect to r is zero)
            R = jax.lax.stop_gradient(-features.en_disp[0])
        charges = ref.mol.atom_charges()
        pseudo = pseudo_atoms(ref.mol)
        dist = features.en_dist[..., 0]
        out = []
        same = ref.coeff_up is ref.coeff_down
        spins = ((ref.coeff_up, slice(None)),) if same else ((ref.coeff_up, slice(0, self.n_up)),
                                                              (ref.coeff_down, slice(self.n_up, None)))
        for coeff, rows in spins:
            shifts = 0.0
            if self.flatten:
                shifts = flattest_value_shifts(basis, coeff, charges, ref.mol.atom_coords(), self.cusp_scale)
            fit = fit_cusp(basis, coeff, charges, R, self.cusp_scale, value_shift=shifts)
            if any(pseudo):  # an ECP's pseudo-nucleus has a finite potential: no cusp to put there
                fit = dataclasses.replace(fit, corrected=fit.corrected & ~jnp.asarray(pseudo)[:, None])
            out.append(corrected_orbitals(basis, coeff, fit, ao[rows], dist[rows]))
        if same:
            return out[0][: self.n_up], out[0][self.n_up:]
        return out[0], out[1]


def _sphere_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (a Fibonacci lattice) ``[n, 3]``."""
    z = 1.0 - (2.0 * np.arange(n) + 1.0) / n
    phi = np.pi * (3.0 - np.sqrt(5.0)) * np.arange(n)
    rho = np.sqrt(1.0 - z**2)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1)


def _fit_exponent(distances: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Exponent ``sigma`` of the least-squares fit ``log profile ~ a - sigma d``, per column.

    ``distances`` ``[G]``, ``profile`` ``[G, K]`` (non-negative) -> ``[K]``. Each point is
    weighted by its radial probability ``(d profile)^2``, so that the tail where the profile
    is negligible does not steer the fit; a column that vanishes everywhere gets ``sigma = 1``.
    """
    sigma = np.ones(profile.shape[1])
    for k, column in enumerate(profile.T):
        root_weight = distances * column  # polyfit squares its weights
        if np.count_nonzero(root_weight) >= 2:
            log_column = np.log(np.maximum(column, np.finfo(float).tiny))
            sigma[k] = -np.polyfit(distances, log_column, 1, w=root_weight)[0]
    return sigma


def isotropic_envelope_from_hf(hf: HartreeFock, R: np.ndarray, *, max_distance: float = 6.0,
                               n_distances: int = 60, n_directions: int = 50,
                               min_sigma: float = 0.1) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Initial isotropic-envelope parameters from the occupied UHF orbitals.

    For occupied orbital ``j`` and nucleus ``I``, let ``phi_Ij`` be the part of the orbital
    made of the AOs on ``I`` (its coefficients ``c_Ij``). Then

    * ``pi[I, j] = sqrt(c_Ij^T S_II c_Ij)``, the norm of that part (``S_II`` the AO overlap
      block of ``I``);
    * ``sigma[I, j]`` is the exponent of a least-squares fit of ``A exp(-sigma d)`` to the
      root-mean-square of ``phi_Ij`` over directions at distance ``d`` from ``R_I``
      (``n_distances`` points in ``(0, max_distance]`` bohr, ``n_directions`` directions,
      weighted by the radial probability; see :func:`_fit_exponent`), at least ``min_sigma``.

    Args:
      hf: the Hartree–Fock solution.
      R: nuclear positions ``[M, 3]`` (bohr), those of ``hf``'s molecule.

    Returns:
      ``((pi_up [M, n_up], sigma_up [M, n_up]), (pi_down [M, n_down], sigma_down [M, n_down]))``.
    """
    basis = basis_of(hf.mol)
    R = np.asarray(R, dtype=np.float64)
    overlap = hf.mol.intor("int1e_ovlp")
    distances = np.linspace(max_distance / n_distances, max_distance, n_distances)
    offsets = distances[:, None, None] * _sphere_directions(n_directions)[None]  # [G, D, 3]
    per_spin = []
    for coeff in (hf.coeff_up, hf.coeff_down):
        pi, sigma = np.zeros((len(R), coeff.shape[1])), np.zeros((len(R), coeff.shape[1]))
        for atom in range(len(R)):
            on_atom = basis.ao_atom == atom
            c = coeff[on_atom]  # [n_ao(I), K]
            pi[atom] = np.sqrt(np.einsum("ak,ab,bk->k", c, overlap[np.ix_(on_atom, on_atom)], c))
            points = (R[atom] + offsets).reshape(-1, 1, 3)
            with jax.enable_x64(True):  # a host-side fit: float64 whatever the run's precision
                ao = np.asarray(eval_atomic_orbitals(basis, jnp.asarray(points - R[None], jnp.float64)))
            phi = (ao[:, on_atom] @ c).reshape(n_distances, n_directions, -1)  # [G, D, K]
            sigma[atom] = np.maximum(_fit_exponent(distances, np.sqrt(np.mean(phi**2, axis=1))), min_sigma)
        per_spin.append((pi, sigma))
    return tuple(per_spin)
