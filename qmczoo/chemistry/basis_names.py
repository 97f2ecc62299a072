"""Gaussian basis-set names checked against pyscf before a run starts.

pyscf learns that a basis name is unknown only when it builds a molecule, deep inside a run
(or, for the bench's Hartree–Fock energies, it warns and the bench falls back to another
basis): :func:`check_basis_name` asks pyscf's basis loader up front, for the elements given,
so a misspelt ``--hf-basis`` or ``--set hf_basis=...`` is one error line before anything is
written. A name pyscf knows but has no functions for some element is *not* refused here (the
bench falls back to another basis for that element; pretraining checks its own basis per
molecule).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable

from qmczoo.errors import ConfigError


@functools.lru_cache(maxsize=256)
def _known(name: str, symbols: tuple[str, ...]) -> bool:
    from pyscf.gto import basis

    unknown_name = False
    for symbol in symbols or ("H",):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "basis may be available in basis-set-exchange"
                basis.load(name, symbol)
            return True
        except Exception as exc:  # noqa: BLE001 - pyscf raises several types for an unknown or missing basis
            unknown_name = unknown_name or "unknown basis" in str(exc).lower() or isinstance(exc, KeyError)
    return not unknown_name


def check_basis_name(name, what: str, symbols: Iterable[str] = ()) -> str:
    """Return ``name`` if pyscf knows a basis set by it; raise otherwise.

    Args:
      name: a basis-set name (``"cc-pvdz"``, ``"6-311g"``...).
      what: the setting it came from, for the message (``"--hf-basis"``).
      symbols: the elements it will be used for (default: hydrogen).

    Raises:
      ConfigError: not a string, or a name pyscf does not know.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what} must be a basis-set name such as cc-pvdz, got {name!r}")
    if not _known(name.strip(), tuple(dict.fromkeys(symbols))):
        raise ConfigError(f"{what}: pyscf knows no basis set named {name!r} (e.g. sto-3g, 6-31g, cc-pvdz, cc-pvtz, "
                          "cc-pvqz)")
    return name
