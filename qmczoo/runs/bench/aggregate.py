"""What a comparison of ansätze needs beyond one row per cell: flags on suspicious cells, seeds
aggregated per (ansatz, system), and each paper's own number beside ours.

Flags (a cell's ``flags`` column, comma-separated):

* ``below-exact``: the evaluated energy lies below the reference by more than 3 standard errors
  (a variational energy cannot; the error bar or the reference is wrong);
* ``high-variance``: the local-energy variance is more than :data:`VARIANCE_FACTOR` times the
  median variance of the finished cells of the same system (at least three of them), a sign of
  an ansatz whose local energy misbehaves (a missing cusp, a broken node).
"""

from __future__ import annotations

import math
import statistics

VARIANCE_FACTOR = 5.0
"""A cell's variance above this multiple of its system's median variance is flagged."""


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def cell_flags(rows: list[dict]) -> list[str]:
    """The ``flags`` text of each row (same order): ``below-exact``, ``high-variance`` or ``""``."""
    medians = {}
    for system in {r["system"] for r in rows}:
        variances = [r["variance"] for r in rows if r["system"] == system and r["status"] == "ok"
                     and _finite(r.get("variance"))]
        if len(variances) >= 3:
            medians[system] = statistics.median(variances)
    out = []
    for r in rows:
        flags = []
        if r["status"] == "ok":
            if r.get("variational_ok") is False:
                flags.append("below-exact")
            median = medians.get(r["system"])
            if median is not None and _finite(r.get("variance")) and r["variance"] > VARIANCE_FACTOR * median:
                flags.append("high-variance")
        out.append(",".join(flags))
    return out


def aggregate(rows: list[dict]) -> list[dict]:
    """One dict per (ansatz variant, system), in the order of first appearance.

    Keys: ``ansatz``, ``ansatz_name``, ``system``, ``seeds`` (finished / all), ``energy_mean``,
    ``energy_spread`` (sample standard deviation over seeds; None for one seed), ``best_energy``
    and ``best_error`` (the lowest evaluated energy and its error bar), ``variance_mean``,
    ``reference_energy``, ``error_mha_mean``, ``error_mha_best``, ``published_energy``,
    ``published_error``, ``published_source``, ``table_values`` (the seed talk's numbers),
    ``flags`` (the union of the cells' flags).
    """
    from qmczoo.chemistry.published import published, table_values

    flags = cell_flags(rows)
    groups: dict[tuple, list[tuple[dict, str]]] = {}
    for r, f in zip(rows, flags):
        groups.setdefault((r["ansatz"], r["system"]), []).append((r, f))
    out = []
    for (label, system), members in groups.items():
        ok = [r for r, _ in members if r["status"] == "ok" and _finite(r.get("energy"))]
        first = members[0][0]
        entry = {"ansatz": label, "ansatz_name": first["ansatz_name"], "system": system,
                 "seeds": f"{len(ok)}/{len(members)}", "reference_energy": first.get("reference_energy"),
                 "energy_mean": None, "energy_spread": None, "best_energy": None, "best_error": None,
                 "variance_mean": None, "error_mha_mean": None, "error_mha_best": None,
                 "flags": ",".join(sorted({x for _, f in members for x in f.split(",") if x}))}
        if ok:
            energies = [r["energy"] for r in ok]
            best = min(ok, key=lambda r: r["energy"])
            entry.update(energy_mean=statistics.fmean(energies),
                         energy_spread=statistics.stdev(energies) if len(energies) > 1 else None,
                         best_energy=best["energy"], best_error=best.get("energy_error"),
                         variance_mean=statistics.fmean([r["variance"] for r in ok if _finite(r.get("variance"))] or
                                                        [math.nan]))
            ref = entry["reference_energy"]
            if _finite(ref):
                entry["error_mha_mean"] = 1000.0 * (entry["energy_mean"] - ref)
                entry["error_mha_best"] = 1000.0 * (entry["best_energy"] - ref)
        paper = published(first["ansatz_name"], system) if first["ansatz"] == first["ansatz_name"] else None
        entry.update(published_energy=paper["energy"] if paper else None,
                     published_error=paper.get("error") if paper else None,
                     published_source=(paper["source"] + ("" if paper["verified"] else " (unverified)"))
                     if paper else None,
                     table_values=[t["value"] for t in table_values(first["ansatz_name"], system)]
                     if first["ansatz"] == first["ansatz_name"] else [])
        out.append(entry)
    return out
