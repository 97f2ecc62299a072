"""Reference energies of the lowest states of a system (``data/excited_states.yaml``).

:func:`state_references` gives, for a system in its spin sector, the exact energies of its
lowest states, each degenerate level repeated as often as it occurs in the sector, so that
entry ``m`` is what state ``m`` of a ``k``-state run (lowest first) should reach.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

_FILE = Path(__file__).parent / "data" / "excited_states.yaml"


@functools.lru_cache(maxsize=1)
def _entries() -> list[dict]:
    return yaml.safe_load(_FILE.read_text(encoding="utf-8"))["systems"]


def _distances(coords) -> np.ndarray:
    x = np.asarray(coords, dtype=float)
    return np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1).ravel())


def state_references(system) -> list[dict] | None:
    """``[{"term", "energy", "source"}, ...]``, lowest first, for ``system``
    (:class:`~qmczoo.chemistry.system.System`), or None when no entry matches it."""
    for entry in _entries():
        symbols = tuple(a[0] for a in entry["atoms"])
        if tuple(system.symbols) != symbols or list(entry["spin_sector"]) != [system.n_up, system.n_down]:
            continue
        if not np.allclose(_distances(system.coords), _distances([a[1:] for a in entry["atoms"]]), atol=1e-3):
            continue
        out = []
        for state in entry["states"]:
            for _ in range(int(state.get("degeneracy", 1))):
                out.append({"term": state["term"], "energy": float(state["energy"]), "source": state["source"]})
        return out
    return None
