"""Results of a run of several states: per-state logs, ``states.csv``, ``states.png``, the record.

A run trained with ``states = k > 1`` writes, besides the usual files,

* ``train_states.csv``: one row per step, each state's training energy (lowest first: the
  eigenvalues of the step's mean local-energy matrix for NES, the states' own energies for the
  penalty method) and the penalty method's overlap term;
* after an evaluation, ``states.csv``: one row per state, lowest first, with ``E ± sigma``, the
  excitation energy above the lowest state, ``<S^2>``, and the exact energy and difference in
  mHa where one is tabulated (:func:`~qmczoo.chemistry.excited_references.state_references`);
  ``evaluation.json`` holds the same as its ``states`` list, with ``overlaps``; and
  ``states.png``, the state energies against the training steps beside the exact ones.

``train.csv``'s ``energy`` column is then the loss: the sum of the state energies (plus the overlap
term for the penalty method, which ``train_states.csv`` also gives on its own).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

STATE_LOG = "train_states.csv"
STATES_CSV = "states.csv"
STATES_PNG = "states.png"
STATES_COLUMNS = ("state", "energy", "energy_error", "excitation_energy", "excitation_error", "spin_squared",
                  "spin_squared_error", "term", "reference_energy", "error_mha", "reference_excitation",
                  "excitation_error_mha")


def write_state_log(path: Path, rows) -> None:
    """Append the per-state energies of ``rows`` (:class:`~qmczoo.engine.vmc.StepStats` with
    ``state_energies``) to ``train_states.csv``."""
    rows = [s for s in rows if s.state_energies is not None]
    if not rows:
        return
    k = len(rows[0].state_energies)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["step", *[f"state_{m}" for m in range(k)], "penalty"])
        for s in rows:
            w.writerow([s.step, *[repr(e) for e in s.state_energies],
                        "" if s.overlap_penalty is None else repr(s.overlap_penalty)])


def read_state_log(out_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps [T], energies [T, k])`` from ``train_states.csv``, or None without one."""
    path = Path(out_dir) / STATE_LOG
    if not path.exists():
        return None
    with path.open() as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return None
    k = sum(1 for c in rows[0] if c.startswith("state_"))
    body = [r for r in rows[1:] if len(r) == len(rows[0])]
    steps = np.array([int(r[0]) for r in body])
    energies = np.array([[float(x) for x in r[1:1 + k]] for r in body]).reshape(len(body), k)
    return steps, energies


def truncate_state_log(path: Path, last_step: int) -> None:
    """Drop rows after ``last_step`` (a resumed run continues from its checkpoint)."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if rows and len(r) == len(rows[0]) and r[0].isdigit()
                       and int(r[0]) <= last_step]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(keep)
    tmp.replace(path)


def _finite(x):
    return None if x is None or not math.isfinite(float(x)) else float(x)


def states_record(evaluation, system) -> dict:
    """The per-state part of ``evaluation.json``: ``states`` (one dict per state, lowest first, with
    ``energy``, ``energy_error``, ``excitation_energy``, ``spin_squared`` and, where tabulated, the
    exact ``reference_energy`` and ``error_mha``), ``overlaps``, ``objective`` and the references'
    sources."""
    from qmczoo.chemistry.excited_references import state_references

    refs = state_references(system) or []
    rows = []
    for m, s in enumerate(evaluation.states):
        row = {"state": m, "energy": s["energy"], "energy_error": _finite(s["energy_error"]),
               "excitation_energy": s["excitation_energy"] if m else 0.0,
               "excitation_error": _finite(s["excitation_error"]) if m else 0.0,
               "spin_squared": s["spin_squared"], "spin_squared_error": _finite(s["spin_squared_error"]),
               "block_size": s["block_size"], "converged": s["converged"],
               "term": None, "reference_energy": None, "error_mha": None, "reference_excitation": None,
               "excitation_error_mha": None}
        if m < len(refs):
            ref = refs[m]["energy"]
            row.update(term=refs[m]["term"], reference_energy=ref, error_mha=1000.0 * (s["energy"] - ref))
            if m:
                ref_exc = ref - refs[0]["energy"]
                row.update(reference_excitation=ref_exc,
                           excitation_error_mha=1000.0 * (row["excitation_energy"] - ref_exc))
        rows.append(row)
    record = {"objective": evaluation.objective, "states": rows, "overlaps": evaluation.overlaps,
              "eigenstate_overlaps": evaluation.eigenstate_overlaps}
    if refs:
        record["reference_sources"] = sorted({r["source"] for r in refs[:len(rows)]})
        errors = [abs(r["error_mha"]) for r in rows if r["error_mha"] is not None]
        errors += [abs(r["excitation_error_mha"]) for r in rows if r["excitation_error_mha"] is not None]
        record["max_abs_error_mha"] = max(errors) if errors else None
    return record


def write_states_csv(out_dir: Path, record: dict) -> Path:
    path = Path(out_dir) / STATES_CSV
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STATES_COLUMNS)
        for r in record["states"]:
            w.writerow(["" if r[c] is None else (repr(r[c]) if isinstance(r[c], float) else r[c])
                        for c in STATES_COLUMNS])
    return path


def states_table(record: dict) -> str:
    """Plain text: each state's ``E ± sigma``, excitation energy, ``<S^2>`` and difference to the
    exact energy; then the overlaps."""
    from qmczoo.engine.statistics import format_value

    lines = [f"{'state':<6} {'E (Ha)':>16} {'E - E_0 (Ha)':>16} {'<S^2>':>12} {'exact (Ha)':>13} "
             f"{'E - exact':>10} {'dE - exact':>10}"]
    for r in record["states"]:
        exc = "" if not r["state"] else format_value(r["excitation_energy"], r["excitation_error"] or float("nan"))
        ref = "" if r["reference_energy"] is None else f"{r['reference_energy']:.6f}"
        err = "" if r["error_mha"] is None else f"{r['error_mha']:+.2f} mHa"
        exc_err = "" if r["excitation_error_mha"] is None else f"{r['excitation_error_mha']:+.2f} mHa"
        spin = format_value(r["spin_squared"], r["spin_squared_error"] or float("nan"))
        lines.append(f"{r['state']:<6} {format_value(r['energy'], r['energy_error'] or float('nan')):>16} "
                     f"{exc:>16} {spin:>12} {ref:>13} {err:>10} {exc_err:>10}")
    for key, what in (("overlaps", "the trained states"), ("eigenstate_overlaps", "the energy eigenstates")):
        overlaps = np.asarray(record.get(key) or [], dtype=float)
        if overlaps.size > 1:
            i, j = np.triu_indices(overlaps.shape[0], 1)
            lines.append(f"squared overlaps of {what} |<i|j>|^2/(<i|i><j|j>): "
                         + ", ".join(f"S_{a}{b} = {overlaps[a, b]:.3g}" for a, b in zip(i, j)))
    return "\n".join(lines)


def plot_states(out_dir: Path, record: dict | None = None, title: str = "") -> Path | None:
    """``states.png``: each state's training energy (running mean) against the step, with the
    exact energies dashed and the evaluated ``E ± sigma`` as bands; None without a state log."""
    log = read_state_log(out_dir)
    if log is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qmczoo.runs.plotting import running_mean

    steps, energies = log
    window = max(1, min(50, len(steps) // 10))
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m in range(energies.shape[1]):
        color = colors[m % len(colors)]
        ok = np.isfinite(energies[:, m])
        ax.plot(steps[ok], running_mean(energies[ok, m], window), color=color, lw=1.4, label=f"state {m}")
        if record is not None and m < len(record["states"]):
            r = record["states"][m]
            if r["reference_energy"] is not None:
                ax.axhline(r["reference_energy"], color=color, ls="--", lw=0.9,
                           label=f"exact {r['term']} {r['reference_energy']:.4f}")
            sigma = r["energy_error"] or 0.0
            ax.axhspan(r["energy"] - sigma, r["energy"] + sigma, color=color, alpha=0.3)
    tail = energies[len(energies) // 5:]
    if tail.size:
        lo, hi = np.nanpercentile(tail, 1), np.nanpercentile(tail, 99)
        pad = 0.15 * (hi - lo) + 0.02
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("training step")
    ax.set_ylabel("energy (Ha)")
    ax.set_title(title or f"{energies.shape[1]} states (running mean over {window} steps)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(out_dir) / STATES_PNG
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
