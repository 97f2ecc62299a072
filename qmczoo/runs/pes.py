"""Results of a run over several geometries: per-geometry logs, ``pes.csv`` and ``pes.png``.

A run trained on a :class:`~qmczoo.chemistry.geometry_set.GeometrySet` writes, besides the usual files,

* ``train_geometries.csv``: one row per (step, geometry): training energy, variance and the
  sampler's step size of that geometry's walkers;
* after an evaluation, ``pes.csv``: one row per geometry with the evaluated ``E ± sigma``, the
  exact reference where one is tabulated (:func:`~qmczoo.chemistry.reference_curves.reference_energies`) and
  the difference in mHa; and ``pes.png``, the curve with the reference drawn beside it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from qmczoo.errors import ConfigError
from qmczoo.runs.folder import append_text, write_file

GEOMETRY_LOG = "train_geometries.csv"
PES_CSV = "pes.csv"
PES_PNG = "pes.png"
GEOMETRY_LOG_COLUMNS = ("step", "geometry", "energy", "variance", "step_size")
PES_COLUMNS = ("geometry", "label", "coordinate", "value", "energy", "energy_error", "variance",
               "reference_energy", "error_mha")


def write_geometry_log(path: Path, rows) -> None:
    """Append the per-geometry statistics of ``rows`` (:class:`~qmczoo.engine.vmc.StepStats` with
    ``geometry_energy``) to ``train_geometries.csv``."""
    rows = [s for s in rows if s.geometry_energy is not None]
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    if not path.exists():
        w.writerow(GEOMETRY_LOG_COLUMNS)
    for s in rows:
        for g, (e, v, h) in enumerate(zip(s.geometry_energy, s.geometry_variance, s.geometry_step_size)):
            w.writerow([s.step, g, repr(e), repr(v), f"{h:.5g}"])
    append_text(path, buf.getvalue())


def truncate_geometry_log(path: Path, last_step: int) -> None:
    """Drop rows after ``last_step`` (a resumed run continues from its checkpoint)."""
    if not path.exists():
        return
    try:
        with path.open(encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error):
        raise ConfigError(f"{path} is not a qmczoo per-geometry log (binary or damaged): move it away to continue "
                          "the run with a new one") from None
    keep = rows[:1] + [r for r in rows[1:] if len(r) == len(GEOMETRY_LOG_COLUMNS) and r[0].isdigit()
                       and int(r[0]) <= last_step]
    buf = io.StringIO()
    csv.writer(buf).writerows(keep)
    write_file(path, buf.getvalue())


def pes_rows(gset, evaluation) -> list[dict]:
    """One dict per geometry (columns :data:`PES_COLUMNS`) from an evaluation over ``gset``."""
    from qmczoo.chemistry.reference_curves import reference_energies

    refs = reference_energies(gset)
    out = []
    for g, (label, value, result, ref) in enumerate(zip(gset.labels, gset.values, evaluation.geometries, refs)):
        error = None if ref is None else 1000.0 * (result["energy"] - ref)
        out.append(dict(geometry=g, label=label, coordinate=gset.coordinate or "", value=float(value),
                        energy=result["energy"], energy_error=result["energy_error"], variance=result["variance"],
                        reference_energy=ref, error_mha=error))
    return out


def write_pes(out_dir: Path, gset, evaluation, title: str = "") -> list[dict]:
    """Write ``pes.csv`` and ``pes.png`` for an evaluation over ``gset``; returns the rows."""
    from qmczoo.chemistry.reference_curves import reference_curve, reference_energies
    from qmczoo.runs.plotting import plot_pes

    rows = pes_rows(gset, evaluation)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PES_COLUMNS)
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    write_file(Path(out_dir) / PES_CSV, buf.getvalue())
    reference = None
    if any(ref is not None for ref in reference_energies(gset)) or _is_h2(gset):
        x, e, source = reference_curve("h2_dissociation")
        reference = (x, e, source)
    xlabel = {"bond": "bond length (bohr)", "scale": "scale factor"}.get(gset.coordinate or "", "geometry")
    plot_pes([r["value"] for r in rows], [r["energy"] for r in rows], [r["energy_error"] for r in rows],
             Path(out_dir) / PES_PNG, reference=reference, xlabel=xlabel, title=title)
    return rows


def _is_h2(gset) -> bool:
    s = gset.system
    return gset.coordinate == "bond" and tuple(s.symbols) == ("H", "H") and (s.n_up, s.n_down) == (1, 1)


def error_summary(rows: list[dict]) -> dict:
    """Max and mean |E - E_ref| (mHa) over the geometries with a reference (None if none)."""
    errors = [abs(r["error_mha"]) for r in rows if r["error_mha"] is not None and math.isfinite(r["error_mha"])]
    if not errors:
        return {"max_abs_error_mha": None, "mean_abs_error_mha": None, "geometries_with_reference": 0}
    return {"max_abs_error_mha": max(errors), "mean_abs_error_mha": sum(errors) / len(errors),
            "geometries_with_reference": len(errors)}
