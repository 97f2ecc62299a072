"""Named molecules: geometries (bohr) and reference energies from ``chemistry/data/molecules.yaml``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from qmczoo.chemistry.elements import _SYMBOL_BY_UPPER

_MOLECULES_FILE = Path(__file__).resolve().parent / "data" / "molecules.yaml"


@functools.lru_cache(maxsize=1)
def _molecules() -> dict[str, dict[str, Any]]:
    """Entries of molecules.yaml keyed by their exact name (file order)."""
    with open(_MOLECULES_FILE, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return {str(entry["name"]): entry for entry in data["molecules"]}


def molecule_names() -> tuple[str, ...]:
    """Names of the molecules in ``qmczoo/chemistry/data/molecules.yaml``, in file order."""
    return tuple(_molecules())


def _lookup_molecule(name: str) -> dict[str, Any] | None:
    mols = _molecules()
    if name in mols:
        return mols[name]
    if name.upper() in _SYMBOL_BY_UPPER and _SYMBOL_BY_UPPER[name.upper()] == name:
        return None  # an exact element symbol ("Co") wins over a case-insensitive name ("CO")
    folded = {k.casefold(): v for k, v in mols.items()}
    return folded.get(name.casefold())
