"""Length units: every length qmczoo stores is in bohr; users may type angstrom.

``1 angstrom = 1.8897261246 bohr``. Coordinates a user types (xyz files, inline strings, atom
lists) are read in ångström unless a unit is given (the xyz format's and pyscf's convention).
"""

from __future__ import annotations

from qmczoo.errors import SystemSpecError

BOHR_PER_ANGSTROM = 1.8897261246
"""Bohr per angstrom (1 / 0.529177210903, CODATA 2018)."""
DEFAULT_COORDINATE_UNIT = "angstrom"
"""Unit of xyz files, inline geometries and atom lists when none is given (as in pyscf)."""
_UNITS = {
    "bohr": 1.0,
    "b": 1.0,
    "angstrom": BOHR_PER_ANGSTROM,
    "angstroms": BOHR_PER_ANGSTROM,
    "ang": BOHR_PER_ANGSTROM,
    "a": BOHR_PER_ANGSTROM,
}


def canonical_unit(unit: str) -> str:
    """``"bohr"`` or ``"angstrom"`` for any accepted spelling of a unit."""
    return "bohr" if unit_to_bohr(unit) == 1.0 else "angstrom"


def unit_to_bohr(unit: str) -> float:
    """Return the number of bohr in one ``unit``.

    Args:
        unit: ``"bohr"`` (or ``"b"``) or ``"angstrom"`` (or ``"a"``, ``"ang"``,
            ``"angstroms"``), case-insensitive.

    Returns:
        1.0 for bohr, 1.8897261246 for angstrom.

    Raises:
        SystemSpecError: for any other string.
    """
    key = unit.strip().lower() if isinstance(unit, str) else None
    if key not in _UNITS:
        raise SystemSpecError(
            f"unknown length unit {unit!r}: use 'bohr' (or 'b') or 'angstrom' (or 'a', 'ang')"
        )
    return _UNITS[key]
