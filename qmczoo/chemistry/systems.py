"""Molecular systems from any specification: the one entry point :func:`get_system`.

It turns any of the accepted specifications (a molecule name from
``qmczoo/chemistry/data/molecules.yaml``, a bare element symbol, an xyz file, an inline geometry
string, a list of atoms, a ``System.to_dict()`` dictionary or a pyscf ``gto.Mole``) into a
frozen :class:`~qmczoo.chemistry.system.System`. Every problem with a specification raises
:class:`qmczoo.errors.SystemSpecError` with a one-line message that names the offending value.

Units: all lengths stored in a :class:`System` are in bohr; energies are in hartree (see
:mod:`qmczoo.chemistry.units`). Named molecules are defined in bohr. A nuclear distance that is
implausibly short for a bond in the unit in force gives a :class:`GeometryWarning`.

The pieces live beside this module: :mod:`~qmczoo.chemistry.system` (the value),
:mod:`~qmczoo.chemistry.parsing` (text to atoms), :mod:`~qmczoo.chemistry.molecules` (named
molecules), :mod:`~qmczoo.chemistry.elements` and :mod:`~qmczoo.chemistry.units`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from qmczoo.chemistry.elements import _SYMBOL_BY_UPPER, _atomic_number, _element, _hund_unpaired
from qmczoo.chemistry.molecules import _lookup_molecule, molecule_names
from qmczoo.chemistry.parsing import _parse_atom_list, _parse_geometry_text, _read_xyz_file
from qmczoo.chemistry.system import MIN_NUCLEAR_DISTANCE, System, _as_int
from qmczoo.chemistry.units import BOHR_PER_ANGSTROM, DEFAULT_COORDINATE_UNIT, canonical_unit, unit_to_bohr
from qmczoo.errors import SystemSpecError

__all__ = [
    "BOHR_PER_ANGSTROM",
    "DEFAULT_COORDINATE_UNIT",
    "GeometryWarning",
    "read_system",
    "MIN_NUCLEAR_DISTANCE",
    "System",
    "canonical_unit",
    "check_electrons",
    "get_system",
    "molecule_names",
    "unit_to_bohr",
]


MIN_PLAUSIBLE_BOND = 1.0
"""Bohr: no chemical bond is shorter (H2's is 1.4); shorter distances give a GeometryWarning."""


class GeometryWarning(UserWarning):
    """A geometry that is legal but probably not meant (e.g. read in the wrong unit)."""


def _check_charge(total_z: int, charge: int) -> None:
    """Refuse a charge that leaves no electron, or adds more than the neutral molecule has."""
    n_el = total_z - charge
    if n_el <= 0:
        raise SystemSpecError(
            f"non-positive electron count: total nuclear charge {total_z} with charge {charge} "
            f"leaves {n_el} electrons"
        )
    if charge < -total_z:
        raise SystemSpecError(
            f"charge {charge} would add {-charge} electrons to a molecule whose neutral form has {total_z}: "
            f"a negative ion may carry at most as many extra electrons as the neutral molecule has"
        )


def check_electrons(system: System) -> None:
    """The checks of a built molecule's charge (:func:`get_system`'s ``charge``) applied to a
    :class:`System` rebuilt from a dictionary (a run's config.yaml), whose ``n_up``/``n_down``
    were never checked against its nuclei.

    Raises:
      SystemSpecError: e.g. H2 with ``n_up: 5, n_down: 1`` (charge -4).
    """
    total_z = int(round(sum(system.charges)))
    _check_charge(total_z, total_z - system.n_electrons)


def _build(
    name: str,
    atoms: Sequence[tuple[str, tuple[float, float, float]]],
    scale: float,
    charge: Any,
    spin: Any,
    reference_energy: float | None = None,
    reference_source: str | None = None,
    unit: str | None = None,
) -> System:
    """System from (symbol, xyz) atoms; coordinates are multiplied by ``scale`` to get bohr.

    ``unit`` (the name of the unit the user's coordinates were read in) turns on the check
    for implausibly short bonds.
    """
    if not atoms:
        raise SystemSpecError("empty specification: no atoms")
    symbols = [s for s, _ in atoms]
    charges = [float(_atomic_number(s)) for s in symbols]
    coords = [tuple(v * scale for v in xyz) for _, xyz in atoms]
    charge = _as_int(charge, "charge")
    total_z = int(round(sum(charges)))
    n_el = total_z - charge
    _check_charge(total_z, charge)
    spin = n_el % 2 if spin is None else _as_int(spin, "spin")
    if abs(spin) > n_el:
        raise SystemSpecError(f"spin {spin} is impossible with {n_el} electrons (need |spin| <= n_electrons)")
    if (n_el - spin) % 2:
        raise SystemSpecError(
            f"spin {spin} has the wrong parity for {n_el} electrons (n_electrons - spin must be even)"
        )
    system = System(
        name=name,
        symbols=tuple(symbols),
        charges=tuple(charges),
        coords=tuple(coords),
        n_up=(n_el + spin) // 2,
        n_down=(n_el - spin) // 2,
        reference_energy=reference_energy,
        reference_source=reference_source,
    )
    if unit is not None:
        _warn_short_bonds(system, unit)
    return system


def _warn_short_bonds(system: System, unit: str) -> None:
    """GeometryWarning if two nuclei are closer than any bond between their elements could be.

    The limit for a pair is ``max(MIN_PLAUSIBLE_BOND, 0.6 * (r_cov(A) + r_cov(B)))`` bohr with
    pyscf's covalent radii (1.0 bohr for H-H, 1.66 bohr for C-C).
    """
    pos = system.positions
    if len(pos) < 2:
        return
    from pyscf.data.radii import COVALENT

    i, j = np.triu_indices(len(pos), k=1)
    dist = np.linalg.norm(pos[i] - pos[j], axis=-1)
    z = [_atomic_number(s) for s in system.symbols]
    rcov = np.array([COVALENT[k] if k < len(COVALENT) else 0.0 for k in z])
    limit = np.maximum(MIN_PLAUSIBLE_BOND, 0.6 * (rcov[i] + rcov[j]))
    short = np.flatnonzero(dist < limit)
    if short.size:
        import warnings

        k = short[np.argmin(dist[short])]
        a, b = int(i[k]), int(j[k])
        hint = ("if the coordinates are in bohr, pass unit='bohr' (--unit bohr)" if unit == "angstrom"
                else "if the coordinates are in angstrom, pass unit='angstrom' (--unit angstrom)")
        warnings.warn(
            f"atoms {a + 1} ({system.symbols[a]}) and {b + 1} ({system.symbols[b]}) are {dist[k]:.4g} bohr apart "
            f"(coordinates read in {unit}): implausibly short for a bond (under {limit[k]:.3g} bohr); {hint}",
            GeometryWarning, stacklevel=4)


def _from_named(entry: Mapping[str, Any], charge: int, spin: int | None) -> System:
    atoms = [(_element(a[0]), (float(a[1]), float(a[2]), float(a[3]))) for a in entry["atoms"]]
    own_charge, own_spin = int(entry.get("charge", 0)), entry.get("spin")
    ref = entry.get("reference") or {}
    new_charge = charge if charge != 0 else own_charge
    if spin is None and new_charge == own_charge:
        spin = own_spin
    system = _build(entry["name"], atoms, 1.0, new_charge, spin)
    if entry.get("ecp") is not None:  # a named valence-only system (charge and spin: of the valence electrons)
        from qmczoo.chemistry.ecp import apply_ecp

        system = apply_ecp(system, entry["ecp"], entry.get("ecp_atoms"))
    if system.charge == own_charge and system.spin == own_spin and ref.get("energy") is not None:
        # Same electronic state as the file's entry: keep its reference energy.
        system = dataclasses.replace(
            system, reference_energy=ref["energy"], reference_source=ref.get("source")
        )
    return system


def _from_mole(mol: Any) -> System:
    try:
        if not getattr(mol, "_built", False):
            mol = mol.copy()
            mol.build()
        if mol.natm == 0:
            raise SystemSpecError("empty specification: the pyscf molecule has no atoms")
        symbols = [mol.atom_pure_symbol(i) for i in range(mol.natm)]
        coords = np.asarray(mol.atom_coords(unit="Bohr"), dtype=np.float64)
        n_up, n_down = (int(n) for n in mol.nelec)
        ecp = _ecp_of_mole(mol) if mol.has_ecp() else None
    except SystemSpecError:
        raise
    except Exception as exc:
        raise SystemSpecError(f"cannot read pyscf molecule: {type(exc).__name__}: {exc}") from exc
    symbols = [_element(s, f" in atom {i + 1}") for i, s in enumerate(symbols)]
    return System(
        ecp=ecp,
        name="custom",
        symbols=tuple(symbols),
        charges=tuple(float(_atomic_number(s)) for s in symbols),
        coords=tuple(tuple(c) for c in coords),
        n_up=n_up,
        n_down=n_down,
    )


def _ecp_of_mole(mol: Any):
    """The :class:`~qmczoo.chemistry.ecp.EffectiveCorePotential` of a built pyscf ``Mole`` (one per element)."""
    from qmczoo.chemistry.ecp import AtomPotential, EffectiveCorePotential

    by_symbol: dict[str, AtomPotential] = {}
    for i in range(mol.natm):
        symbol = _element(mol.atom_pure_symbol(i))
        data = mol._ecp.get(mol.atom_symbol(i), mol._ecp.get(symbol))
        if not data:
            continue
        atom = AtomPotential.from_pyscf(symbol, data)
        if by_symbol.setdefault(symbol, atom) != atom:
            raise SystemSpecError(f"the pyscf molecule gives two {symbol} atoms different ECPs (qmczoo needs one per element)")
    name = mol.ecp if isinstance(mol.ecp, str) else "custom"
    return EffectiveCorePotential(name=name, atoms=tuple(by_symbol.values()))


def _with_ecp(system: System, ecp: Any, ecp_atoms: Any) -> System:
    """``system`` with the ECP ``ecp`` on ``ecp_atoms`` (None: every atom with a core it covers), and
    the reference energy of a named valence-only system in the same state, if there is one."""
    if ecp is None:
        if ecp_atoms is not None:
            raise SystemSpecError("ECP atoms given without an ECP: name one too (--ecp ccecp)")
        return system
    from qmczoo.chemistry.ecp import apply_ecp, parse_atoms

    if system.ecp is not None:
        atoms = parse_atoms(ecp_atoms)
        if str(ecp).strip().casefold() == system.ecp.name.casefold() and (
                atoms is None or set(atoms) == set(system.ecp.symbols)):
            return system
        raise SystemSpecError(f"{system.name} already carries the ECP {system.ecp.name!r} on "
                              f"{', '.join(system.ecp.symbols)}; drop --ecp/--ecp-atoms or use the all-electron system")
    return _named_reference(apply_ecp(system, ecp, ecp_atoms))


def _named_reference(system: System) -> System:
    """``system`` with the reference energy of the named valence-only system (``molecules.yaml``
    entries with an ``ecp``) of the same nuclei, ECP and electrons, if any."""
    from qmczoo.chemistry.molecules import _molecules

    for entry in _molecules().values():
        if not entry.get("ecp") or str(entry["ecp"]).casefold() != system.ecp.name.casefold():
            continue
        symbols = tuple(_element(a[0]) for a in entry["atoms"])
        if symbols != system.symbols:
            continue
        named = _from_named(entry, 0, None)
        if (np.allclose(named.positions, system.positions, atol=1e-8) and named.ecp == system.ecp
                and (named.n_up, named.n_down) == (system.n_up, system.n_down)):
            return dataclasses.replace(system, reference_energy=named.reference_energy,
                                       reference_source=named.reference_source)
    return system


def _is_pyscf_mole(obj: Any) -> bool:
    if not type(obj).__module__.startswith("pyscf"):
        return False
    from pyscf import gto

    return isinstance(obj, gto.Mole)


def get_system(spec: Any, *, charge: int = 0, spin: int | None = None, unit: str | None = None,
               ecp: str | None = None, ecp_atoms: Any = None) -> System:
    """Build a :class:`System` from a specification.

    Args:
        spec: one of
            * a :class:`System` (returned unchanged; ``charge``/``spin``/``unit`` ignored);
            * a molecule name from ``qmczoo/chemistry/data/molecules.yaml`` (case-insensitive,
              e.g. ``"lih"`` -> LiH; an exact element symbol such as ``"Co"`` wins
              over a case-insensitive name such as ``"CO"``). Its geometry is in
              bohr (``unit`` is ignored), its own charge and spin are used unless
              ``charge != 0`` or ``spin is not None`` is passed; the reference energy
              is kept only when neither is overridden;
            * a bare element symbol (``"Ne"``, ``"na"``): one atom at the origin,
              name = the symbol; with ``spin=None`` and ``charge=0`` its spin is the
              Hund's-rule ground-state value (e.g. 2 for O, 3 for N);
            * a path (str or ``os.PathLike``) to an xyz file: ``count``, comment line,
              then ``Sym x y z`` lines; the two header lines may be omitted. Name =
              the file's stem;
            * an inline geometry string ``"H 0 0 0; H 0 0 1.4"`` (atoms separated by
              ';' or newlines, commas allowed between coordinates). Name = "custom";
            * a list of atoms ``[("H", 0, 0, 0), ("H", (0, 0, 1.4))]``. Name = "custom";
            * a dict from :meth:`System.to_dict`;
            * a pyscf ``gto.Mole`` (coordinates in bohr, electrons from ``mol.nelec``;
              ``charge``/``spin``/``unit`` ignored). Name = "custom".
        charge: net charge, an int (total nuclear charge minus electron count).
        spin: ``n_up - n_down``; None means ``n_electrons % 2`` (lowest multiplicity)
            except as noted for named molecules and bare elements. Negative values
            (more down electrons) are allowed.
        unit: length unit of xyz/inline/list coordinates: ``"bohr"`` (``"b"``) or
            ``"angstrom"`` (``"a"``, ``"ang"``), case-insensitive; None (the default)
            means angstrom, the xyz format's and pyscf's convention. Angstrom values are
            multiplied by 1.8897261246; the returned System is always in bohr. Named
            molecules are defined in bohr whatever ``unit`` says. A distance between two
            nuclei too short for a bond in the unit in force gives a :class:`GeometryWarning`
            (e.g. ``"H 0 0 0; H 0 0 0.74", unit="bohr"``).
        ecp: an effective core potential, by pyscf name (``"ccecp"``) or file in pyscf's format:
            the valence-only system (:func:`~qmczoo.chemistry.ecp.apply_ecp`; charge and spin as
            given, core electrons removed). Its reference energy is the one of a named
            valence-only system (e.g. ``Si_ccECP``) in the same state, if there is one.
        ecp_atoms: the elements that get the ECP (``"Si,C"`` or a list); None: every atom the
            ECP covers that has core electrons.

    Returns:
        A validated, immutable System (nuclear positions in bohr).

    Raises:
        SystemSpecError: with a one-line message naming the problem and the value,
            for an unknown element or name, an unparsable line or coordinate, an empty
            specification, a non-positive electron count, an impossible spin, nuclei
            closer than 0.1 bohr, a bad unit or a non-finite coordinate; an unknown ECP, an atom
            it does not cover, or a charge that leaves no valence electrons.
    """
    return read_system(spec, charge=charge, spin=spin, unit=unit, ecp=ecp, ecp_atoms=ecp_atoms)[0]


def read_system(spec: Any, *, charge: int = 0, spin: int | None = None,
                unit: str | None = None, ecp: str | None = None, ecp_atoms: Any = None) -> tuple[System, str]:
    """:func:`get_system`, plus the unit the specification was read in (``"bohr"`` or ``"angstrom"``).

    Named molecules, elements, dicts, Systems and pyscf molecules count as read in bohr.
    """
    system, unit_read = _read_system(spec, charge=charge, spin=spin, unit=unit)
    return _with_ecp(system, ecp, ecp_atoms), unit_read


def _read_system(spec: Any, *, charge: int, spin: int | None, unit: str | None) -> tuple[System, str]:
    unit_name = canonical_unit(DEFAULT_COORDINATE_UNIT if unit is None else unit)
    scale = unit_to_bohr(unit_name)
    if isinstance(spec, System):
        return spec, "bohr"
    if _is_pyscf_mole(spec):
        return _from_mole(spec), "bohr"
    if isinstance(spec, Mapping):
        return System.from_dict(spec), "bohr"
    if isinstance(spec, os.PathLike):
        path = Path(spec)
        if not path.is_file():
            raise SystemSpecError(f"xyz file not found: {str(path)!r}")
        return _build(path.stem, _read_xyz_file(path), scale, charge, spin, unit=unit_name), unit_name
    if isinstance(spec, str):
        return _from_string(spec, charge=charge, spin=spin, scale=scale, unit=unit_name)
    if isinstance(spec, Sequence):
        return _build("custom", _parse_atom_list(spec), scale, charge, spin, unit=unit_name), unit_name
    raise SystemSpecError(
        f"cannot build a system from a {type(spec).__name__}; pass a molecule name, an element, "
        "an xyz file path, a geometry string, a list of atoms, a dict or a pyscf Mole"
    )


def _unknown_name_error(spec: str) -> SystemSpecError:
    return SystemSpecError(
        f"unknown system {spec!r}: not a known molecule, an element symbol, an existing xyz file "
        f"or a geometry like 'H 0 0 0; H 0 0 1.4'; known molecules: {', '.join(molecule_names())}"
    )


def _from_string(spec: str, *, charge: Any, spin: Any, scale: float, unit: str) -> tuple[System, str]:
    text = spec.strip()
    if not re.sub(r"[\s;,]", "", text):
        raise SystemSpecError("empty specification: no molecule name or atoms given")
    entry = _lookup_molecule(text)
    if entry is not None:
        return _from_named(entry, _as_int(charge, "charge"), spin), "bohr"
    if text.upper() in _SYMBOL_BY_UPPER:
        symbol = _SYMBOL_BY_UPPER[text.upper()]
        if spin is None and _as_int(charge, "charge") == 0:
            spin = _hund_unpaired(_atomic_number(symbol))
        return _build(symbol, [(symbol, (0.0, 0.0, 0.0))], 1.0, charge, spin), "bohr"
    single_token = not re.search(r"[\s;,]", text)
    if single_token or "\n" not in text:
        path = Path(os.path.expanduser(text))
        try:
            is_file = path.is_file()
        except (OSError, ValueError):
            is_file = False
        if is_file:
            return _build(path.stem, _read_xyz_file(path), scale, charge, spin, unit=unit), unit
        if single_token and (text.lower().endswith(".xyz") or os.sep in text):
            raise SystemSpecError(f"xyz file not found: {text!r}")
    if single_token or not re.search(r"\d", text):
        raise _unknown_name_error(text)
    return _build("custom", _parse_geometry_text(text, None), scale, charge, spin, unit=unit), unit
