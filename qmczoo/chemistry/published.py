"""Published energies of the zoo's ansätze (``chemistry/data/published.yaml``), for the papers bench.

Two kinds of numbers: each paper's own values (``systems``: per molecule, per paper key, an
energy or, for the seed talk's pair-product table, two unnamed runs) and the seed talk's tables
(``tables``), kept as given. A registry name maps to its paper key through ``ansatze``
(``hybrid`` -> ``deeperwin_hybrid``); a plug-in ansatz has none.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

_FILE = Path(__file__).resolve().parent / "data" / "published.yaml"


@functools.lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    with open(_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def published(ansatz: str, system: str) -> dict | None:
    """The paper's value for registry ansatz ``ansatz`` on named molecule ``system``, or None.

    Returns ``{"energy": float, "error": float | None, "source": str, "verified": bool}``; where the
    source gives several runs (the seed talk's pair-product numbers), ``energy`` is the lowest and
    ``runs`` lists them all.
    """
    key = (_data().get("ansatze") or {}).get(ansatz)
    entry = ((_data().get("systems") or {}).get(system) or {}).get(key) if key else None
    if entry is None:
        return None
    energy = entry["energy"]
    runs = [float(e) for e in energy] if isinstance(energy, list) else [float(energy)]
    out = {"energy": min(runs), "error": entry.get("error"), "source": str(entry.get("source", "")),
           "verified": bool(entry.get("verified", True))}
    if len(runs) > 1:
        out["runs"] = runs
    return out


def table_values(ansatz: str, system: str) -> list[dict]:
    """The seed talk's table values of ``ansatz`` on ``system``: ``[{"table", "value", "source"}]``
    (the DeepWF table's first number column, the pair-product table's two runs)."""
    out = []
    for name, table in (_data().get("tables") or {}).items():
        if table.get("ansatz") != ansatz:
            continue
        for row in table.get("rows") or []:
            if row and row[0] == system:
                values = row[1:-1] if len(row) > 2 else row[1:]
                out += [{"table": name, "value": float(v), "source": str(table.get("source", ""))} for v in values]
    return out
