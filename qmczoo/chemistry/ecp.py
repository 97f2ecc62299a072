"""Effective core potentials (ECPs): which atoms lose their core electrons, and what replaces them.

An ECP removes the ``n_core`` core electrons of an atom and replaces them, together with the
nucleus, by a pseudo-nucleus of effective charge ``Z_eff = Z - n_core`` and the semilocal
potential (atomic units, ``r`` the electron's distance from the nucleus)

    V(r) = -Z_eff / r + U_loc(r) + sum_{l < L} v_l(r) sum_m |lm><lm|,

where every radial function is a sum of terms ``c r^(n - 2) exp(-a r^2)``: pyscf's (and
NWChem's) format, in which the list index of a term is ``n``. For the correlation-consistent
ECPs (ccECP) the ``n = 1`` term of ``U_loc`` is ``Z_eff exp(-a r^2) / r``, so ``-Z_eff/r +
U_loc`` stays finite at the pseudo-nucleus: the exact wavefunction has no Kato cusp there.

:func:`load_potential` reads an ECP by pyscf name (``ccecp``, ``bfd``, ...) or from a file in
pyscf's NWChem-like format; :func:`apply_ecp` turns an all-electron
:class:`~qmczoo.chemistry.system.System` into its valence-only counterpart; :func:`basis_for`
picks the basis that matches the ECP (``ccecp`` with ``ccpvdz`` -> ``ccecp-cc-pVDZ`` on the
pseudo-atoms). The value types are immutable and hashable, so a System can hold them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Mapping, Sequence

from qmczoo.chemistry.elements import _atomic_number, _element
from qmczoo.errors import SystemSpecError

Term = tuple  # (power, exponent, coefficient): coefficient * r**power * exp(-exponent * r**2)


def _terms(by_power: Sequence[Sequence[Sequence[float]]]) -> tuple[Term, ...]:
    """pyscf's ``[[terms of r^-2], [terms of r^-1], [r^0], ...]`` (each ``[exponent, coefficient, ...]``)
    as ``((power, exponent, coefficient), ...)``; spin-orbit coefficients (a third entry) are dropped."""
    out = []
    for n, terms in enumerate(by_power):
        for term in terms:
            exponent, coefficient = float(term[0]), float(term[1])
            if coefficient != 0.0:
                out.append((n - 2, exponent, coefficient))
    return tuple(out)


def _by_power(terms: Iterable[Term]) -> list[list[list[float]]]:
    """The inverse of :func:`_terms`: pyscf's per-power lists (up to ``r^4``)."""
    out: list[list[list[float]]] = [[] for _ in range(7)]
    for power, exponent, coefficient in terms:
        out[int(power) + 2].append([float(exponent), float(coefficient)])
    return out


@dataclasses.dataclass(frozen=True)
class AtomPotential:
    """The ECP of one element.

    Attributes:
      symbol: element symbol.
      n_core: core electrons it removes (even, ``0 <= n_core < Z``; 0 for a regularised
        all-electron potential such as ccECP's hydrogen).
      local: terms ``(power, exponent, coefficient)`` of ``U_loc`` (beyond ``-Z_eff/r``).
      nonlocal_: per angular momentum ``l = 0, 1, ..., L - 1``, the terms of ``v_l`` (a channel
        the ECP does not set is empty).
    """

    symbol: str
    n_core: int
    local: tuple[Term, ...]
    nonlocal_: tuple[tuple[Term, ...], ...]

    @classmethod
    def from_pyscf(cls, symbol: str, data: Sequence) -> "AtomPotential":
        """From pyscf's internal ECP format ``[n_core, [[l, by_power], ...]]`` (``l = -1``: local)."""
        n_core, channels = int(data[0]), data[1]
        local: tuple[Term, ...] = ()
        by_l: dict[int, tuple[Term, ...]] = {}
        for l, by_power in channels:
            if int(l) < 0:
                local = local + _terms(by_power)
            else:
                by_l[int(l)] = by_l.get(int(l), ()) + _terms(by_power)
        n_l = max(by_l, default=-1) + 1
        nonlocal_ = tuple(by_l.get(l, ()) for l in range(n_l))
        return cls(symbol=symbol, n_core=n_core, local=local, nonlocal_=nonlocal_)

    def to_pyscf(self) -> list:
        """pyscf's internal format ``[n_core, [[l, by_power], ...]]``, for ``Mole.ecp``."""
        channels = [[-1, _by_power(self.local)]]
        channels += [[l, _by_power(terms)] for l, terms in enumerate(self.nonlocal_) if terms]
        return [self.n_core, channels]

    @property
    def effective_charge(self) -> int:
        """``Z - n_core``."""
        return _atomic_number(self.symbol) - self.n_core


@dataclasses.dataclass(frozen=True)
class EffectiveCorePotential:
    """An ECP for the elements of one system.

    Attributes:
      name: what the user named (a pyscf ECP name such as ``"ccecp"``, or a file path).
      atoms: one :class:`AtomPotential` per element it replaces, sorted by symbol.
    """

    name: str
    atoms: tuple[AtomPotential, ...]

    def __post_init__(self):
        object.__setattr__(self, "atoms", tuple(sorted(self.atoms, key=lambda a: a.symbol)))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(a.symbol for a in self.atoms)

    def for_symbol(self, symbol: str) -> AtomPotential | None:
        """The potential of element ``symbol``, or None where the atom keeps all its electrons."""
        for a in self.atoms:
            if a.symbol == symbol:
                return a
        return None

    def to_pyscf(self) -> dict[str, list]:
        """``{symbol: data}`` for ``pyscf.gto.Mole.ecp``."""
        return {a.symbol: a.to_pyscf() for a in self.atoms}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config files (the potential itself, not only its name, so a run with a
        custom file can be resumed without it)."""
        return {"name": self.name, "atoms": {a.symbol: a.to_pyscf() for a in self.atoms}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EffectiveCorePotential":
        if not isinstance(d, Mapping) or "name" not in d or not isinstance(d.get("atoms"), Mapping):
            raise SystemSpecError(f"an ECP entry needs 'name' and 'atoms' (a mapping), got {d!r}")
        try:
            atoms = tuple(AtomPotential.from_pyscf(_element(s), data) for s, data in d["atoms"].items())
        except (TypeError, ValueError, IndexError) as exc:
            raise SystemSpecError(f"malformed ECP data for {d.get('name')!r}: {exc}") from None
        return cls(name=str(d["name"]), atoms=atoms)


def check_system(system) -> None:
    """Raise SystemSpecError unless ``system.ecp`` fits ``system``: an :class:`EffectiveCorePotential`
    whose elements are in the system, on nuclei of standard charge, with fewer core electrons than Z."""
    if not isinstance(system.ecp, EffectiveCorePotential):
        raise SystemSpecError(f"ecp must be an EffectiveCorePotential or None, got {type(system.ecp).__name__}")
    absent = [s for s in system.ecp.symbols if s not in system.symbols]
    if absent:
        raise SystemSpecError(f"the ECP {system.ecp.name!r} is given for {', '.join(absent)}, not in the system")
    for i, (s, z) in enumerate(zip(system.symbols, system.charges)):
        atom = system.ecp.for_symbol(s)
        if atom is not None and (z != _atomic_number(s) or not 0 <= atom.n_core < z):
            raise SystemSpecError(f"the ECP {system.ecp.name!r} removes {atom.n_core} core electrons from atom "
                                  f"{i + 1} ({s}, Z={z:g}): it needs the standard charge and fewer core electrons")


# ----------------------------------------------------------------------------------- loading


def _read_one(name: str, symbol: str):
    """pyscf's data for ``symbol`` in the ECP ``name`` (a pyscf name or a file), ``[]`` if it has none.

    Raises SystemSpecError for a name pyscf does not know and a file it cannot read.
    """
    import warnings

    from pyscf.gto.basis import load_ecp, parse_nwchem_ecp

    if os.path.isfile(name):
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemSpecError(f"cannot read ECP file {name!r}: {exc}") from None
        try:  # pyscf's own files have an "ECP" line before the data; a bare block parses as well
            data = load_ecp(name, symbol) if parse_nwchem_ecp.ECP_DELIMITER.search(text) else \
                parse_nwchem_ecp.parse(text, symbol)
        except Exception:  # pyscf raises BasisNotFoundError (a KeyError) for a missing element
            return []
        return data or []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyscf suggests installing basis-set-exchange
            data = load_ecp(name, symbol)
    except Exception:
        raise SystemSpecError(
            f"unknown ECP {name!r}: neither an ECP pyscf knows by name (e.g. ccecp, bfd, ccecp-reg, "
            "lanl2dz) nor an existing file in pyscf's (NWChem) ECP format") from None
    return data or []


def load_potential(name: str, symbols: Iterable[str], required: bool = True) -> EffectiveCorePotential:
    """The ECP ``name`` for the elements ``symbols``.

    Args:
      name: a pyscf ECP name (``"ccecp"``) or the path of a file in pyscf's format.
      symbols: element symbols.
      required: raise for an element the ECP does not cover (else leave it out).

    Raises:
      SystemSpecError: an unknown name, an unreadable file, or (``required``) an element the
        ECP does not cover.
    """
    if not isinstance(name, str) or not name.strip():
        raise SystemSpecError(f"an ECP is named by a string (e.g. 'ccecp') or a file path, got {name!r}")
    name = name.strip()
    atoms = []
    for symbol in dict.fromkeys(_element(s) for s in symbols):
        data = _read_one(name, symbol)
        if not data:
            if required:
                raise SystemSpecError(f"ECP {name!r} does not cover {symbol}")
            continue
        atom = AtomPotential.from_pyscf(symbol, data)
        if atom.n_core % 2 or not 0 <= atom.n_core < _atomic_number(symbol):
            raise SystemSpecError(f"ECP {name!r} removes {atom.n_core} core electrons from {symbol} "
                                  f"(Z = {_atomic_number(symbol)}): expected an even number below Z")
        atoms.append(atom)
    return EffectiveCorePotential(name=name, atoms=tuple(atoms))


def parse_atoms(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"Si,C"`` or ``["Si", "C"]`` -> ``("Si", "C")`` (canonical symbols); None stays None."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    symbols = tuple(dict.fromkeys(_element(s, " in the ECP atoms") for s in items if str(s).strip()))
    if not symbols:
        raise SystemSpecError("the list of ECP atoms is empty")
    return symbols


def apply_ecp(system, name: str | EffectiveCorePotential, atoms: str | Sequence[str] | None = None):
    """The valence-only counterpart of an all-electron ``system``.

    Args:
      system: a :class:`~qmczoo.chemistry.system.System` without an ECP.
      name: an ECP name or file (or an already loaded :class:`EffectiveCorePotential`).
      atoms: the elements that get the ECP (``"Si,C"`` or a list); None: every element of the
        system the ECP covers that has core electrons to remove (hydrogen keeps its electron
        and its cusp unless named here).

    The net charge and the spin stay; each pseudo-atom loses its ``n_core / 2`` up and down core
    electrons. The reference energy is dropped (it was the all-electron one).

    Raises:
      SystemSpecError: an unknown ECP, an atom it does not cover, an atom named that is not in
        the system, no atom left to replace, or a charge that leaves no valence electrons.
    """
    if getattr(system, "ecp", None) is not None:
        raise SystemSpecError(f"{system.name} already carries the ECP {system.ecp.name!r}")
    chosen = parse_atoms(atoms)
    present = tuple(dict.fromkeys(system.symbols))
    if chosen is not None:
        missing = [s for s in chosen if s not in present]
        if missing:
            raise SystemSpecError(f"ECP atom(s) {', '.join(missing)} not in {system.name} "
                                  f"(its elements: {', '.join(present)})")
    if isinstance(name, EffectiveCorePotential):
        ecp = name
        if chosen is not None:
            uncovered = [s for s in chosen if ecp.for_symbol(s) is None]
            if uncovered:
                raise SystemSpecError(f"ECP {ecp.name!r} does not cover {', '.join(uncovered)}")
            ecp = EffectiveCorePotential(ecp.name, tuple(a for a in ecp.atoms if a.symbol in chosen))
        else:
            ecp = EffectiveCorePotential(ecp.name, tuple(a for a in ecp.atoms if a.symbol in present))
    elif chosen is not None:
        ecp = load_potential(name, chosen, required=True)
    else:
        found = load_potential(name, present, required=False)
        ecp = EffectiveCorePotential(found.name, tuple(a for a in found.atoms if a.n_core > 0))
        if not ecp.atoms:
            uncovered = [s for s in present if found.for_symbol(s) is None]
            without_core = [s for s in present if found.for_symbol(s) is not None]
            why = [f"it does not cover {', '.join(uncovered)}"] if uncovered else []
            if without_core:
                why.append(f"it removes no core electrons from {', '.join(without_core)} (name them with "
                           "--ecp-atoms to use its regularised potential anyway)")
            raise SystemSpecError(f"ECP {found.name!r} replaces no core in {system.name}: {'; '.join(why)}")
    core = sum(ecp.for_symbol(s).n_core for s in system.symbols if ecp.for_symbol(s) is not None)
    n_up, n_down = system.n_up - core // 2, system.n_down - core // 2
    if n_up < 0 or n_down < 0 or n_up + n_down <= 0:
        raise SystemSpecError(
            f"{system.name} with charge {system.charge:+d} has {system.n_electrons} electrons "
            f"({system.n_up} up, {system.n_down} down); ECP {ecp.name!r} on {', '.join(ecp.symbols)} takes "
            f"{core} core electrons, which leaves no valence electrons (or a negative count of one spin)")
    return dataclasses.replace(system, n_up=n_up, n_down=n_down, ecp=ecp, reference_energy=None,
                               reference_source=None)


# ----------------------------------------------------------------------------------- bases


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def matching_basis(ecp_name: str, basis: str, symbol: str) -> str | None:
    """The pyscf basis made for the ECP ``ecp_name`` closest to ``basis`` on ``symbol``, or None.

    ``ccecp`` with ``ccpvdz`` (any spelling) -> ``ccecpccpvdz`` (pyscf's ``ccECP_cc-pVDZ``);
    ``bfd`` with ``ccpvdz`` -> ``bfdvdz``. An all-electron basis would spend functions on the
    core that the ECP removed.
    """
    from pyscf.gto.basis import ALIAS, load

    if not isinstance(basis, str):
        return None
    ecp, wanted = _normalise(ecp_name), _normalise(basis)
    if wanted.startswith(ecp):
        return None  # already an ECP basis
    for candidate in (ecp + wanted, ecp + wanted.replace("ccp", "")):
        if candidate in ALIAS:
            try:
                if load(candidate, symbol):
                    return candidate
            except Exception:  # the file has no functions for this element
                continue
    return None


def basis_for(system, basis: Any) -> Any:
    """The basis for ``system.to_pyscf``: ``basis`` itself without an ECP; with one, a per-element
    mapping in which each pseudo-atom gets the matching ECP basis (:func:`matching_basis`) where
    pyscf has one, and every other element ``basis``."""
    ecp = getattr(system, "ecp", None)
    if ecp is None or not isinstance(basis, str):
        return basis
    chosen = {}
    for symbol in dict.fromkeys(system.symbols):
        match = matching_basis(ecp.name, basis, symbol) if ecp.for_symbol(symbol) is not None else None
        chosen[symbol] = match or basis
    return chosen


def pseudo_atoms(mol) -> tuple[bool, ...]:
    """For a built pyscf ``Mole``: whether each atom carries an ECP (a pseudo-nucleus, no Kato cusp).

    For layers built from a Hartree–Fock solution (e.g. a nuclear cusp correction of Gaussian
    orbitals, which must leave pseudo-nuclei alone)."""
    if not mol.has_ecp():
        return (False,) * mol.natm
    return tuple(mol.atom_pure_symbol(i) in mol._ecp or mol.atom_symbol(i) in mol._ecp for i in range(mol.natm))


__all__ = ["AtomPotential", "EffectiveCorePotential", "apply_ecp", "basis_for", "check_system", "load_potential",
           "matching_basis", "parse_atoms", "pseudo_atoms"]
