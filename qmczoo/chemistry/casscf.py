"""CASSCF with pyscf: a multi-determinant reference (determinants and CI weights) for PauliNet.

PauliNet (Hermann, Schätzle & Noé, Nat. Chem. 12, 891, 2020) builds its determinants from a
complete-active-space SCF expansion: each determinant occupies its own selection of the CASSCF
molecular orbitals (the core orbitals doubly occupied, the active ones as in one CI
configuration) and the determinant weights start at the CI coefficients. This module runs the
calculation once per system, basis and active space (cached, like
:func:`qmczoo.hartree_fock.run_hartree_fock`) and picks the ``K`` largest configurations.

* :func:`run_casscf` -- restricted Hartree–Fock (ROHF for open shells, as deepqmc does), then
  ``pyscf.mcscf.CASSCF``; returns a :class:`CasSolution` (orbitals, CI vector, active space).
* :func:`multi_reference` -- the ``K`` configurations with the largest ``|c|`` as a
  :class:`MultiReference` (the object a baseline layer evaluates).
* :func:`default_active_space` -- the documented default: the valence space.

**Sign convention.** pyscf's CI coefficient ``c[Ia, Ib]`` multiplies the determinant whose
alpha orbitals are the set bits of string ``Ia`` and beta orbitals those of ``Ib``, each in
ascending order, alpha operators left of beta ones. With the spin-up electrons first, that
determinant is ``det[phi_a(r_up)] * det[phi_b(r_down)]`` with the columns in ascending order
(core orbitals first, then active ones): the real-space wavefunction is
``sum_k c_k det_up,k det_down,k`` up to one overall sign that is the same for every
configuration (``tests/test_paulinet_casscf.py`` checks this against the full CI vector).

**Default active space** (``cas_orbitals = cas_electrons = 0``): the valence space of the
minimal basis, i.e. the orbitals of every atom's outer shell (1s for H and He, 2s2p for Li–Ne,
3s3p for Na–Ar, ns np beyond) with the electrons outside the atoms' closed inner shells, at
most :data:`MAX_DEFAULT_ORBITALS` orbitals (beyond that, a window around the highest occupied
orbital). It is the usual chemist's first choice, it holds the near-degeneracies that a
multi-determinant expansion is for (Be's 2s/2p, bond-breaking pairs of H2, LiH and N2), and
it stays small for the molecules this package runs on a CPU (LiH: 2 electrons in 5 orbitals;
N2: 10 in 8). deepqmc itself has no default (its tutorial gives LiH 2 electrons in 4
orbitals); ``cas_orbitals``/``cas_electrons`` set any other.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from qmczoo.errors import ConfigError

log = logging.getLogger(__name__)

MAX_DEFAULT_ORBITALS = 8
"""The default active space holds at most this many orbitals."""

TIE_RTOL, TIE_ATOL = 1e-4, 1e-6
"""Two CI coefficients whose magnitudes agree this closely count as one degenerate group."""


@dataclasses.dataclass(eq=False)
class CasSolution:
    """A finished CASSCF calculation (or, where only one configuration exists, the SCF).

    Attributes:
      mol: the pyscf ``Mole``.
      mo_coeff: all molecular orbitals ``[n_ao, n_mo]`` (core, active, virtual).
      ci: CI coefficients ``[n_strings_alpha, n_strings_beta]`` over the active space.
      ncore: doubly occupied core orbitals; ncas: active orbitals; nelecas: active
        ``(alpha, beta)`` electrons.
      energy: the CASSCF energy (the SCF energy where the active space is trivial).
      scf_energy: the RHF/ROHF energy.
      converged: whether pyscf reported convergence.
    """

    mol: object
    mo_coeff: np.ndarray
    ci: np.ndarray
    ncore: int
    ncas: int
    nelecas: tuple[int, int]
    energy: float
    scf_energy: float
    converged: bool

    @property
    def label(self) -> str:
        return f"CAS({sum(self.nelecas)}e, {self.ncas}o)"


@dataclasses.dataclass(eq=False)
class MultiReference:
    """Determinants and weights of a reference wavefunction, in one Gaussian basis.

    ``psi = sum_k weights[k] det[phi_{occ_up[k]}(r_up)] det[phi_{occ_down[k]}(r_down)]``,
    where ``phi_j`` is column ``j`` of ``coeff_up`` (up electrons) or ``coeff_down`` (down).
    Hashed by identity (a flax module holds it as an attribute); its arrays are read-only.

    Attributes:
      mol: the pyscf ``Mole`` (basis and nuclei).
      coeff_up, coeff_down: AO coefficients of the orbitals the determinants draw from,
        ``[n_ao, P_up]`` and ``[n_ao, P_down]`` (the same array for a restricted reference).
      occ_up, occ_down: orbital columns of each determinant, ``[K, n_up]`` and ``[K, n_down]``.
      weights: initial determinant weights ``[K]`` (CI coefficients; ``[1.0]`` for one).
      energy: the energy of the calculation (hartree).
      description: one line saying what it is (method, active space, determinants kept).
    """

    mol: object
    coeff_up: np.ndarray
    coeff_down: np.ndarray
    occ_up: np.ndarray
    occ_down: np.ndarray
    weights: np.ndarray
    energy: float
    description: str = ""

    def __post_init__(self):
        for name in ("coeff_up", "coeff_down", "occ_up", "occ_down", "weights"):
            getattr(self, name).flags.writeable = False

    @property
    def determinants(self) -> int:
        return len(self.weights)


def as_reference(solution) -> MultiReference:
    """``solution`` as a :class:`MultiReference`: itself, or a Hartree–Fock solution (with
    ``coeff_up [n_ao, n_up]``, ``coeff_down``) as its one determinant, weight 1 (cached per object)."""
    if isinstance(solution, MultiReference):
        return solution
    hit = _ADAPTED.get(id(solution))
    if hit is not None and hit[0] is solution:
        return hit[1]
    n_up, n_down = solution.coeff_up.shape[1], solution.coeff_down.shape[1]
    ref = MultiReference(mol=solution.mol, coeff_up=np.array(solution.coeff_up), coeff_down=np.array(solution.coeff_down),
                         occ_up=np.arange(n_up)[None], occ_down=np.arange(n_down)[None], weights=np.ones(1),
                         energy=float(solution.energy), description="Hartree-Fock (one determinant)")
    _ADAPTED[id(solution)] = (solution, ref)
    return ref


_ADAPTED: dict[int, tuple[object, MultiReference]] = {}


# ----------------------------------------------------------------------------- active space


def _core_and_valence(z: int) -> tuple[int, int]:
    """Closed inner-shell orbitals and valence (outer s and p) orbitals of element ``z``."""
    if z <= 2:
        return 0, 1
    for last_noble, core in ((10, 1), (18, 5), (36, 9), (54, 18), (86, 27)):
        if z <= last_noble:
            return core, 4
    return 43, 4


def default_active_space(system, n_mo: int) -> tuple[int, int]:
    """``(active orbitals, active electrons)``: the valence space (module docstring; the core
    orbitals an effective core potential removes are not counted).

    ``n_mo`` is the number of molecular orbitals of the basis (the window never runs past it).
    """
    removed = getattr(system, "core_electrons", (0,) * len(system.charges))  # an ECP's core: no orbitals of it
    core, valence = map(sum, zip(*((max(0, c - n_core // 2), v) for (c, v), n_core
                                   in zip((_core_and_valence(int(z)) for z in system.charges), removed))))
    n = system.n_electrons
    core = min(core, system.n_down)  # a cation that has lost core electrons: no core left to freeze
    start, ncas = core, valence
    if ncas > MAX_DEFAULT_ORBITALS:  # a window around the highest occupied orbital
        start = max(core, system.n_up - MAX_DEFAULT_ORBITALS // 2)
        ncas = MAX_DEFAULT_ORBITALS
    ncas = max(0, min(ncas, n_mo - start))
    return ncas, n - 2 * start


def active_space(system, n_mo: int, n_orbitals: int = 0, n_electrons: int = 0) -> tuple[int, tuple[int, int]]:
    """Validated ``(ncore, ncas, (alpha, beta))``; 0 and 0 give :func:`default_active_space`.

    Raises:
      ConfigError: one of the two given without the other, or an active space the system's
        electrons and the basis's ``n_mo`` orbitals cannot hold.
    """
    if (n_orbitals == 0) != (n_electrons == 0):
        raise ConfigError("give both cas_orbitals and cas_electrons (or neither, for the default valence space); "
                          f"got cas_orbitals={n_orbitals}, cas_electrons={n_electrons}")
    if n_orbitals == 0:
        n_orbitals, n_electrons = default_active_space(system, n_mo)
    n, spin = system.n_electrons, system.n_up - system.n_down
    where = f"an active space of {n_electrons} electrons in {n_orbitals} orbitals for {system.name}"
    if n_electrons > n or (n - n_electrons) % 2:
        raise ConfigError(f"{where}: the {n - n_electrons} electrons outside it must pair up in core orbitals "
                          f"({system.name} has {n} electrons)")
    if n_electrons < spin or (n_electrons - spin) % 2:
        raise ConfigError(f"{where}: it must hold the {spin} unpaired electrons and pair the rest")
    ncore = (n - n_electrons) // 2
    alpha, beta = (n_electrons + spin) // 2, (n_electrons - spin) // 2
    if alpha > n_orbitals:
        raise ConfigError(f"{where}: {alpha} spin-up electrons do not fit in {n_orbitals} orbitals")
    if ncore + n_orbitals > n_mo:
        raise ConfigError(f"{where}: {ncore} core and {n_orbitals} active orbitals exceed the basis's {n_mo} orbitals")
    return ncore, n_orbitals, (alpha, beta)


# ----------------------------------------------------------------------------- the calculation

_SOLUTIONS: dict[tuple, CasSolution] = {}
_REFERENCES: dict[tuple, MultiReference] = {}


def _system_key(system) -> tuple:
    return (system.symbols, system.charges, system.coords, system.n_up, system.n_down)


def run_casscf(system, basis: str = "ccpvdz", n_orbitals: int = 0, n_electrons: int = 0) -> CasSolution:
    """CASSCF of ``system`` in ``basis`` over the active space ``(n_orbitals, n_electrons)``
    (0, 0: :func:`default_active_space`), on top of RHF (ROHF for an open shell). Cached: the
    same system, basis and active space give the same object without a second calculation.

    An active space with one configuration only (every active spin-orbital set full or empty:
    H, He, a closed-shell atom whose valence shell is full) skips CASSCF: the SCF orbitals and
    a CI vector ``[[1]]``.
    """
    key = (_system_key(system), basis, n_orbitals, n_electrons)
    if key not in _SOLUTIONS:
        _SOLUTIONS[key] = _solve(system, basis, n_orbitals, n_electrons)
    return _SOLUTIONS[key]


def _solve(system, basis: str, n_orbitals: int, n_electrons: int) -> CasSolution:
    from pyscf import lib, mcscf, scf

    mol = system.to_pyscf(basis)
    with lib.with_omp_threads(_omp_threads()):  # pyscf's OpenMP threads oversubscribe small CPUs
        mf = scf.RHF(mol)  # ROHF for an open shell
        mf.verbose = 0
        scf_energy = float(mf.kernel())
        n_mo = mf.mo_coeff.shape[1]
        ncore, ncas, nelecas = active_space(system, n_mo, n_orbitals, n_electrons)
        if all(n in (0, ncas) for n in nelecas):  # one configuration: nothing to expand
            return CasSolution(mol=mol, mo_coeff=np.array(mf.mo_coeff), ci=np.ones((1, 1)), ncore=ncore, ncas=ncas,
                               nelecas=nelecas, energy=scf_energy, scf_energy=scf_energy, converged=bool(mf.converged))
        mc = mcscf.CASSCF(mf, ncas, nelecas)
        mc.verbose = 0
        energy = float(mc.kernel()[0])
    if not mc.converged:
        log.warning("CASSCF(%de, %do) of %s in %s did not converge; using its last iterate", sum(nelecas), ncas,
                    system.name, basis)
    ci = np.asarray(mc.ci).reshape(_string_count(ncas, nelecas[0]), _string_count(ncas, nelecas[1]))
    return CasSolution(mol=mol, mo_coeff=np.array(mc.mo_coeff), ci=ci, ncore=ncore, ncas=ncas, nelecas=nelecas,
                       energy=energy, scf_energy=scf_energy, converged=bool(mc.converged))


def _omp_threads() -> int:
    """pyscf's OpenMP threads for CASSCF: ``$QMCZOO_BLAS_THREADS`` or 1, as jax's BLAS calls
    (``qmczoo.engine.threads``; read here, since chemistry does not import the engine). On a busy
    2-core machine LiH's CASSCF took 9 s with pyscf's default threads and 0.5 s with one."""
    import os

    try:
        return max(1, int(os.environ.get("QMCZOO_BLAS_THREADS", "1")))
    except ValueError:
        return 1


def _string_count(norb: int, nelec: int) -> int:
    from math import comb

    return comb(norb, nelec)


def _strings(norb: int, nelec: int) -> list[list[int]]:
    """Occupied orbitals (ascending) of each of pyscf's strings, in pyscf's string order."""
    from pyscf.fci import cistring

    return [[i for i in range(norb) if s >> i & 1] for s in cistring.make_strings(range(norb), nelec)]


def configurations(solution: CasSolution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every configuration of the CI vector with its full occupation (core, then active).

    Returns ``(coefficients [S], occ_alpha [S, n_up], occ_beta [S, n_down])`` in pyscf's order
    (``S`` = all alpha-string / beta-string pairs, zeros included).
    """
    core = list(range(solution.ncore))
    alpha = [core + [solution.ncore + i for i in s] for s in _strings(solution.ncas, solution.nelecas[0])]
    beta = [core + [solution.ncore + i for i in s] for s in _strings(solution.ncas, solution.nelecas[1])]
    pairs = [(a, b) for a in range(len(alpha)) for b in range(len(beta))]
    coeff = np.array([solution.ci[a, b] for a, b in pairs])
    occ_a = np.array([alpha[a] for a, _ in pairs], dtype=int).reshape(len(pairs), -1)
    occ_b = np.array([beta[b] for _, b in pairs], dtype=int).reshape(len(pairs), -1)
    return coeff, occ_a, occ_b


def select_determinants(coefficients: np.ndarray, determinants: int, ci_cutoff: float) -> tuple[np.ndarray, str]:
    """Indices of the at most ``determinants`` largest ``|c|`` that reach ``ci_cutoff``.

    A group of equal ``|c|`` (degenerate configurations, e.g. the two components of a pi
    excitation, or the two spin couplings of an open-shell singlet) is kept whole or dropped
    whole, so the expansion keeps the reference's symmetry. Returns ``(indices [K], note)``,
    ``note`` saying why fewer than ``determinants`` were kept ("" if none were dropped).
    """
    mags = np.abs(coefficients)
    order = np.argsort(-mags, kind="stable")
    above = int(np.sum(mags >= ci_cutoff))
    keep = min(determinants, above)
    notes = []
    if above < determinants:
        notes.append(f"{above} configuration{'s' if above != 1 else ''} with |c| >= {ci_cutoff:g}")

    def tied(i, j):
        return abs(mags[order[i]] - mags[order[j]]) <= TIE_ATOL + TIE_RTOL * mags[order[i]]

    cut = keep
    while 0 < cut < above and tied(cut - 1, cut):
        cut -= 1
    if cut == 0:  # the largest coefficients are all tied: keep that group whole
        cut = keep
        while cut < above and tied(cut - 1, cut):
            cut += 1
    if cut < keep:
        notes.append(f"a degenerate group of |c| = {mags[order[cut]]:.4g} at the cut dropped whole")
    elif cut > keep:
        notes.append(f"a degenerate group of |c| = {mags[order[cut - 1]]:.4g} kept whole")
    return order[:max(cut, 1)], "; ".join(notes)


def multi_reference(system, basis: str = "ccpvdz", n_orbitals: int = 0, n_electrons: int = 0,
                    determinants: int = 8, ci_cutoff: float = 0.01) -> MultiReference:
    """The ``determinants`` largest configurations of :func:`run_casscf` (cached).

    Fewer are kept where the CI vector has fewer with ``|c| >= ci_cutoff`` or a degenerate
    group straddles the cut (:func:`select_determinants`); ``description`` says so. The
    weights are the CI coefficients, with the overall sign chosen to make the first positive.
    """
    if determinants < 1:
        raise ConfigError(f"determinants must be >= 1, got {determinants}")
    if not ci_cutoff >= 0:
        raise ConfigError(f"ci_cutoff must be >= 0, got {ci_cutoff}")
    key = (_system_key(system), basis, n_orbitals, n_electrons, determinants, float(ci_cutoff))
    if key in _REFERENCES:
        return _REFERENCES[key]
    solution = run_casscf(system, basis, n_orbitals, n_electrons)
    coeff, occ_a, occ_b = configurations(solution)
    chosen, note = select_determinants(coeff, determinants, ci_cutoff)
    weights = coeff[chosen]
    weights = weights * np.sign(weights[0])
    used = 1 + max(int(occ_a[chosen].max(initial=-1)), int(occ_b[chosen].max(initial=-1)))
    orbitals = np.array(solution.mo_coeff[:, :max(used, 1)])
    text = (f"{solution.label} in {basis}, E = {solution.energy:.6f} Ha: {len(chosen)} of {determinants} "
            f"determinants" + (f" ({note})" if note else ""))
    ref = MultiReference(mol=solution.mol, coeff_up=orbitals, coeff_down=orbitals, occ_up=occ_a[chosen],
                         occ_down=occ_b[chosen], weights=weights, energy=solution.energy, description=text)
    _REFERENCES[key] = ref
    return ref
