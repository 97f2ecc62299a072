"""One bench cell (ansatz variant, system, seed): an ordinary run folder, trained, evaluated, made a row."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from qmczoo.runs.bench.results import COLUMNS
from qmczoo.runs.bench.spec import _HF_FALLBACK_BASES, CELL_FILE, HF_FILE, AnsatzVariant, BenchSettings
from qmczoo.runs.folder import LOCK_FILE, FolderBusyError, lock_run, write_file
from qmczoo.runs.resume import RESULT_FILES


def hartree_fock_energies(systems: list, basis: str | None, out: Path | None = None) -> dict[str, dict]:
    """UHF energies ``{system name: {"energy", "basis"}}`` (cached in ``out/hartree_fock.json``).

    Uses ``basis``, or the next of cc-pVQZ, cc-pVTZ where pyscf lacks it for an element.
    """
    from qmczoo.engine.pretrain import run_hartree_fock

    path = out / HF_FILE if out is not None else None
    cache = {}
    if path is not None and path.exists():
        try:  # a cache: a damaged one is computed again
            cache = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            cache = {}
        cache = cache if isinstance(cache, dict) else {}
    for system in systems:
        if basis is None or system.name in cache:
            continue
        entry = {"energy": None, "basis": None, "error": ""}
        for b in (basis, *[x for x in _HF_FALLBACK_BASES if x != basis]):
            try:
                entry = {"energy": run_hartree_fock(system, b).energy, "basis": f"UHF/{b}", "error": ""}
                break
            except Exception as exc:  # a basis missing for an element: try the next
                entry["error"] = f"{type(exc).__name__}: {exc}"
        cache[system.name] = entry
    if path is not None:
        write_file(path, json.dumps(cache, indent=2))
    return cache


def _n_params(params) -> int:
    import jax

    return int(sum(getattr(x, "size", 1) for x in jax.tree.leaves(params)))


def _empty_row(variant: AnsatzVariant, system, seed: int, run_dir: str) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(ansatz=variant.label, ansatz_name=variant.name, system=system.name, seed=seed, status="failed",
               error="", reference_energy=system.reference_energy, run_dir=run_dir)
    return row


def _states_row(row: dict, cell: Path) -> dict:
    """A cell of several states: the energy is their sum (no reference, no correlation share); each
    state's results go to ``state_results`` (from the cell's evaluation.json) and, in short, to
    ``states``; ``error_mha`` is the largest |error| of a state energy or excitation energy."""
    from qmczoo.engine.statistics import format_value

    record = json.loads((cell / "evaluation.json").read_text())
    rows = record["states"]
    row.update(reference_energy=None, hf_energy=None, hf_basis=None, correlation_pct=None, variational_ok=None,
               error_mha=record.get("max_abs_error_mha"), state_results=rows)
    row["states"] = "; ".join(format_value(r["energy"], r["energy_error"] if r["energy_error"] is not None
                                           else float("nan"))
                              + ("" if r["error_mha"] is None else f" [{r['error_mha']:+.2f}]") for r in rows)
    if all(r["reference_energy"] is not None for r in rows):  # each state above its exact energy (3 sigma)
        row["variational_ok"] = all(r["energy"] >= r["reference_energy"] - 3.0 * (r["energy_error"] or 0.0)
                                    for r in rows)
    return row


def _finish_row(row: dict, result, log: dict, hf: dict | None, wall: float) -> dict:
    ev = result.evaluation
    e, sigma, ref = float(ev.energy), float(ev.energy_error), row["reference_energy"]
    if not math.isfinite(e):
        raise FloatingPointError(f"the evaluated energy is {e} (NaN or inf)")
    import numpy as np

    wall_times = np.asarray(log["wall_time"], dtype=float)
    # the first step's wall time is its compilation (also when the cell was resumed later);
    # seconds per step from this call's summary, or from the log when this call took no step
    compile_seconds = float(wall_times[0]) if wall_times.size else result.summary.get("compile_seconds")
    per_step = result.summary.get("seconds_per_step")
    if (per_step is None or not math.isfinite(per_step)) and wall_times.size > 1:
        per_step = float(np.median(np.diff(wall_times)))
    row.update(status="ok", error="", energy=e, energy_error=sigma, variance=float(ev.variance),
               n_params=_n_params(result.state.params), compile_seconds=compile_seconds,
               seconds_per_step=per_step, steps=int(result.state.step),
               train_seconds=float(log["wall_time"][-1]) if log["wall_time"].size else 0.0,
               wall_seconds=wall, rejected_steps=int(result.state.n_rejected), eval_steps=int(ev.steps))
    if ref is not None:
        row["error_mha"] = 1000.0 * (e - ref)
        row["variational_ok"] = bool(e >= ref - 3.0 * (sigma if math.isfinite(sigma) else 0.0))  # no sigma: E >= E_ref
        if hf and hf.get("energy") is not None and hf["energy"] > ref:
            row.update(hf_energy=hf["energy"], hf_basis=hf["basis"],
                       correlation_pct=100.0 * (hf["energy"] - e) / (hf["energy"] - ref))
    for k, v in row.items():  # NaN is not JSON: an unknown number is None
        if isinstance(v, float) and not math.isfinite(v):
            row[k] = None
    return row


def _run_cell(variant: AnsatzVariant, system, seed: int, settings: BenchSettings, cell: Path, rel: str,
              hf: dict | None, retry_failed: bool, devices: int | None = None) -> tuple[dict | None, str]:
    """Train (or resume) and evaluate one cell, holding its folder's lock; returns ``(row, how)``
    with how in done/failed/skipped/resumed, or ``(None, "busy")`` when another process holds the
    cell (a shard of another split of the bench runs it). Exceptions other than KeyboardInterrupt
    fail the cell only."""
    try:
        cell.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        row = _empty_row(variant, system, seed, rel)
        row["error"] = f"cannot create the cell's folder: {exc}"[:300]
        return row, "failed"
    try:
        with lock_run(cell, hand_down=True):  # the run's own lock inside passes
            return _run_cell_locked(variant, system, seed, settings, cell, rel, hf, retry_failed, devices)
    except FolderBusyError:
        return None, "busy"


def _run_cell_locked(variant, system, seed, settings, cell: Path, rel, hf, retry_failed, devices) -> tuple[dict, str]:
    from qmczoo import runs
    from qmczoo.registry import get_ansatz

    marker = cell / CELL_FILE
    prior = json.loads(marker.read_text()) if marker.exists() else {}  # checked before the first cell ran
    if prior.get("status") == "ok" or (prior.get("status") == "failed" and not retry_failed):
        return prior["row"], "skipped"
    if prior.get("status") == "failed":
        _remove_cell(cell)
        prior = {}
    wall_before = float(prior.get("wall_seconds", 0.0))
    row = _empty_row(variant, system, seed, rel)
    start = time.perf_counter()
    how = "done"
    try:
        if (cell / runs.CHECKPOINT).exists() and (cell / "config.yaml").exists():
            how = "resumed"
            for name in RESULT_FILES:  # results of a cell killed before its record: evaluated again
                if (cell / name).exists() and not (cell / name).is_symlink():
                    (cell / name).unlink()
            log = runs.read_log(cell)
            budget, steps = settings.time_budget, settings.steps
            if budget is not None:
                budget -= float(log["wall_time"][-1]) if log["wall_time"].size else 0.0
                if budget <= 0:  # the budget ran out before the interruption: evaluate only
                    budget, steps = None, min(steps, int(log["step"][-1]))
            result = runs.train(out_dir=cell, resume=True, config=settings.train_config(seed, steps),
                                progress=False, eval_steps=settings.eval_steps, time_budget=budget, devices=devices)
        else:
            if any(p.name != LOCK_FILE for p in cell.iterdir()):  # stopped before its first checkpoint: again
                _remove_cell(cell)
                wall_before = 0.0
            spec = get_ansatz(variant.name, settings.preset, **{**settings.sets, **variant.options})
            result = runs.train(system, spec, settings.train_config(seed), cell, progress=False,
                                eval_steps=settings.eval_steps, time_budget=settings.time_budget, devices=devices)
        multi = getattr(result.evaluation, "states", None)
        if multi:
            row["reference_energy"], hf = None, None
        row = _finish_row(row, result, runs.read_log(cell), hf, wall_before + time.perf_counter() - start)
        if multi:
            row = _states_row(row, cell)
    except KeyboardInterrupt:
        if cell.exists():
            write_file(marker, json.dumps({"status": "interrupted",
                                           "wall_seconds": wall_before + time.perf_counter() - start}))
        raise
    except Exception as exc:  # noqa: BLE001 - a failing cell must not stop the others
        row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        row["wall_seconds"] = wall_before + time.perf_counter() - start
        how = "failed"
    from qmczoo.engine.devices import peak_memory  # jax: imported when a cell has run, not with the CLI

    row["peak_rss_mib"], row["device_peak_mib"] = peak_memory()
    cell.mkdir(parents=True, exist_ok=True)
    write_file(marker, json.dumps({"status": row["status"], "row": row}, indent=2))
    return row, how


def _remove_cell(cell: Path) -> None:
    """Empty a cell's folder to run it again. Called by :func:`_run_cell_locked`, which holds the
    cell's lock (a ``qmczoo evaluate`` or ``train --resume`` of that cell in another process is
    refused, not pulled from under it); the lock file stays, so that the lock keeps meaning what
    it says."""
    for path in cell.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _curves(out: Path, rows: list[dict]) -> list[dict]:
    """Energy curves of the cells: the monitor chain's energies where the trainer logged them
    (walkers never used for an update: honest), else the training walkers' energies."""
    import numpy as np

    from qmczoo.runs.lifecycle import read_log

    curves = []
    for r in rows:
        log = read_log(out / r["run_dir"])
        if not log["step"].size:
            continue
        monitor = log.get("monitor_energy")
        use_monitor = monitor is not None and int(np.isfinite(monitor).sum()) >= 2
        keep = np.isfinite(monitor) if use_monitor else slice(None)
        curves.append({"label": r["ansatz"], "system": r["system"], "seed": r["seed"], "step": log["step"][keep],
                       "wall_time": log["wall_time"][keep], "energy": (monitor if use_monitor else log["energy"])[keep],
                       "kind": "monitor chain" if use_monitor else "training walkers",
                       "evaluation": (r["energy"], r["energy_error"] if r["energy_error"] is not None else math.nan)
                       if r["status"] == "ok" else None})
    return curves


def warn_symmetry(variants, systems, settings, console=None) -> None:
    """A ``warning:`` line for each (variant, system) whose ansatz imposes a symmetry that the
    system's Hartree–Fock state lacks (:func:`qmczoo.registry.state_check.symmetry_warnings`); on ``console``
    (the progress display) or stderr. A variant that fails to resolve is left to its cell."""
    import sys

    from qmczoo.registry import get_ansatz
    from qmczoo.registry.state_check import symmetry_warnings
    from qmczoo.runs.checks import with_pretrain_basis

    config = settings.train_config(settings.seeds[0])
    for variant in variants:
        try:
            spec = get_ansatz(variant.name, settings.preset, **{**settings.sets, **variant.options})
        except Exception:  # noqa: BLE001 - a warning must not stop the bench; the cell reports errors
            continue
        basis = with_pretrain_basis(config, spec).pretrain_basis
        for system in systems:
            try:
                lines = symmetry_warnings(system, spec, basis=basis)
            except Exception:  # noqa: BLE001 - as above
                continue
            for line in lines:
                if console is not None:
                    console.print(f"warning: {line}", style="yellow", markup=False, soft_wrap=True)
                else:
                    print(f"warning: {line}", file=sys.stderr)
