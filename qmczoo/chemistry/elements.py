"""Chemical elements: symbols in any spelling, atomic numbers, Hund's-rule spin (from pyscf's tables)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyscf.data import elements as _elements

from qmczoo.errors import SystemSpecError

# Element symbols come from pyscf (index 0 is the ghost "X", not an element).
_SYMBOL_BY_UPPER = {s.upper(): s for s in _elements.ELEMENTS[1:]}
_MAX_Z = len(_elements.ELEMENTS) - 1


def _element(token: Any, where: str = "") -> str:
    """Canonical element symbol for ``token`` (symbol in any case, or atomic number)."""
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        z = int(token)
        if 1 <= z <= _MAX_Z:
            return _elements.ELEMENTS[z]
    elif isinstance(token, str):
        text = token.strip()
        if text.isdigit() and 1 <= int(text) <= _MAX_Z:
            return _elements.ELEMENTS[int(text)]
        if text.upper() in _SYMBOL_BY_UPPER:
            return _SYMBOL_BY_UPPER[text.upper()]
    raise SystemSpecError(f"unknown element {token!r}{where}")


def _atomic_number(symbol: str) -> int:
    return _elements.NUC[symbol]


def _hund_unpaired(z: int) -> int:
    """Number of unpaired electrons in the Hund's-rule ground state of neutral atom ``z``.

    Uses pyscf's ground-state configurations (total s, p, d, f occupations):
    the open part of each angular-momentum shell is ``n mod capacity`` and holds
    ``min(r, capacity - r)`` unpaired electrons. For ``z`` outside the table,
    falls back to ``z % 2``.
    """
    if not 1 <= z < len(_elements.CONFIGURATION):
        return z % 2
    unpaired = 0
    for n, capacity in zip(_elements.CONFIGURATION[z], (2, 6, 10, 14)):
        r = n % capacity
        unpaired += min(r, capacity - r)
    return unpaired
