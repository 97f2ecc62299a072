"""``train.csv``: one row per training step, appended at each checkpoint, cut back on resume."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from qmczoo.engine.vmc import StepStats

CSV_COLUMNS = ("step", "energy", "variance", "acceptance", "step_size", "wall_time", "rejected", "monitor_energy")


def append_rows(path: Path, rows: list[StepStats], offset: float, times: list[float]):
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(CSV_COLUMNS)
        for s, t in zip(rows, times):
            w.writerow([s.step, repr(s.energy), repr(s.variance), f"{s.acceptance:.4f}", f"{s.step_size:.5g}",
                        f"{offset + t:.3f}", int(s.rejected),
                        "" if s.monitor_energy is None else repr(s.monitor_energy)])


def read_log(out_dir: str | Path) -> dict[str, np.ndarray]:
    """``train.csv`` of a run folder as ``{column: array}`` (empty arrays if no steps yet).

    ``monitor_energy`` is NaN at steps where the monitor chain was not measured.
    """
    path = Path(out_dir) / "train.csv"
    if not path.exists():
        return {c: np.zeros(0) for c in CSV_COLUMNS}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {c: np.array([float(r.get(c) or "nan") for r in rows]) for c in CSV_COLUMNS}


def truncate_log(out_dir: Path, last_step: int):
    path = out_dir / "train.csv"
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    if not rows:
        path.unlink()
        return

    def finished(r):  # a row cut short by a kill is dropped too (empty fields are allowed)
        try:
            [float(v) for v in r if v != ""]
            return len(r) >= len(rows[0]) and int(r[0]) <= last_step
        except ValueError:
            return False

    keep = [rows[0]] + [r for r in rows[1:] if finished(r)]
    tmp = path.with_suffix(".csv.tmp")  # replace, never rewrite in place: a kill keeps the old log
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(keep)
    os.replace(tmp, path)
