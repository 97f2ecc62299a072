"""Running a bench: check its folder, then every cell in turn, writing the table after each."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable, Sequence

import yaml

from qmczoo import defaults
from qmczoo.defaults import RUN_DEFAULTS
from qmczoo.errors import ConfigError
from qmczoo.runs.bench.cells import _curves, _run_cell, hartree_fock_energies
from qmczoo.runs.bench.results import BenchResults, machine_description
from qmczoo.runs.bench.spec import (
    BENCH_FILE,
    DEFAULT_HF_BASIS,
    UNLIMITED_STEPS,
    BenchSettings,
    _safe,
    parse_ansatze,
    parse_duration,
    parse_seeds,
    parse_systems,
)


def _check_folder(out: Path, settings: BenchSettings) -> None:
    """Refuse a folder that holds something else, or a bench with other settings."""
    path = out / BENCH_FILE
    new = settings.to_dict()
    if path.exists():
        stored = (yaml.safe_load(path.read_text()) or {}).get("settings") or {}
        if stored != new:
            diff = [k for k in sorted(set(stored) | set(new)) if stored.get(k) != new.get(k)]
            shown = "; ".join(f"{k}: {stored.get(k)!r} there, {new.get(k)!r} now" for k in diff[:4])
            raise ConfigError(f"{out} holds a bench with other settings ({shown}); "
                              "use another --out or the same settings")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {BENCH_FILE}: choose a new or empty --out")
    else:
        from qmczoo import __version__

        out.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"qmczoo_version": __version__, "settings": new}, sort_keys=False))


def run_bench(ansatze: str | Sequence[str] = "all", systems: str | Sequence = defaults.BENCH_SYSTEMS, *,
              out_dir: str | Path, preset: str | None = defaults.PRESET, steps: int | None = None,
              time_budget: str | float | None = None, seeds: str | int | Sequence[int] = 0,
              sets: dict | None = None, batch_size: int = RUN_DEFAULTS["batch_size"],
              pretrain_steps: int = RUN_DEFAULTS["pretrain_steps"], eval_steps: int = RUN_DEFAULTS["eval_steps"],
              optimizer: str = RUN_DEFAULTS["optimizer"], learning_rate: float | None = None,
              mcmc_steps: int = RUN_DEFAULTS["mcmc_steps"], burn_in: int = RUN_DEFAULTS["burn_in"],
              laplacian: str = RUN_DEFAULTS["laplacian"], dtype: str = RUN_DEFAULTS["dtype"],
              checkpoint_every: int = RUN_DEFAULTS["checkpoint_every"],
              hf_basis: str | None = DEFAULT_HF_BASIS, monitor_walkers: int | None = None,
              monitor_every: int | None = None, states: int = RUN_DEFAULTS["states"],
              objective: str = RUN_DEFAULTS["objective"], penalty: float = RUN_DEFAULTS["penalty"],
              retry_failed: bool = False, progress: bool = True,
              command: str | None = None, on_cell: Callable[[dict, str], None] | None = None) -> BenchResults:
    """Train and evaluate every (ansatz variant, system, seed) cell under one budget.

    Args:
      ansatze: variants, ``"ferminet,ferminet:determinants=1"`` or a list (see the module
        docstring); ``"all"``: every registered ansatz.
      systems: molecule names, xyz files or inline geometries, comma-separated or a list.
      out_dir: the bench folder (new, empty, or holding this same bench to continue it).
      preset: the preset every ansatz is built with (``None``: its defaults).
      steps: optimisation steps per cell (default 1200; with only a ``time_budget``, no cap).
      time_budget: seconds of training loop per cell (``"10m"``, ``"90s"``, ``600``...);
        training stops at the budget or at ``steps``, whichever comes first.
      seeds: one seed or several; every cell of a seed starts from that seed.
      sets: option overrides applied to every ansatz (a variant's own options win).
      batch_size ... checkpoint_every, monitor_walkers, monitor_every: the shared
        :class:`~qmczoo.engine.config.TrainConfig` settings (monitor_*: None keeps the trainer's default).
      eval_steps: evaluation steps of the final parameters (at least 2).
      hf_basis: basis of the UHF energy for the share of correlation energy (None: skip).
      states, objective, penalty: train this many lowest states in every cell, with NES-VMC or the
        penalty method (:mod:`qmczoo.engine.states`); each state's energy is in the row's
        ``states`` column and ``state_results``.
      retry_failed: run failed cells again (from scratch) instead of reporting the old failure.
      progress: a rich progress display across cells (per-cell progress bars stay off).
      command: the command line, recorded in results.md.
      on_cell: ``on_cell(row, how)`` after each cell (how: done, resumed, skipped, failed).

    Returns:
      :class:`BenchResults`; the same data is in ``out_dir/results.{json,csv,md}``.
    """
    budget = parse_duration(time_budget)
    if steps is None:
        steps = RUN_DEFAULTS["steps"] if budget is None else UNLIMITED_STEPS
    if int(steps) < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    if int(eval_steps) < 2:
        raise ConfigError(f"a bench evaluates every cell: --eval-steps must be >= 2, got {eval_steps}")
    variants = parse_ansatze(ansatze)
    system_list = parse_systems(systems)
    seed_list = parse_seeds(seeds)
    settings = BenchSettings(ansatze=[v.label for v in variants], systems=[t for t, _ in system_list],
                             seeds=seed_list, preset=preset, steps=int(steps), time_budget=budget,
                             sets=dict(sets or {}), batch_size=batch_size, pretrain_steps=pretrain_steps,
                             eval_steps=eval_steps, optimizer=optimizer, learning_rate=learning_rate,
                             mcmc_steps=mcmc_steps, burn_in=burn_in, laplacian=laplacian, dtype=dtype,
                             checkpoint_every=checkpoint_every, hf_basis=hf_basis,
                             monitor_walkers=monitor_walkers, monitor_every=monitor_every, states=states,
                             objective=objective, penalty=penalty)
    config = settings.train_config(seed_list[0])  # bad training settings fail here, before any cell
    from qmczoo.runs.checks import check_states

    for _, s in system_list:  # and so do states that cannot be pretrained on a system
        check_states(s, config)
    out = Path(out_dir)
    _check_folder(out, settings)

    labels: dict[str, str] = {}
    for v in variants:
        folder = _safe(v.label)
        while folder in labels.values():
            folder += "_"
        labels[v.label] = folder
    sys_folders: dict[str, str] = {}
    for _, s in system_list:
        folder = _safe(s.name)
        while folder in sys_folders.values():
            folder += "_"
        sys_folders[s.name] = folder
    cells = [(v, s, seed) for _, s in system_list for v in variants for seed in seed_list]

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_description(), "command": command or ""}
    results = BenchResults(rows=[], settings=settings.to_dict(), out_dir=out, meta=meta)

    from contextlib import nullcontext

    display = nullcontext()
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        display = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TextColumn("{task.description}"), refresh_per_second=2)
    with display as bar:
        task = bar.add_task("Hartree–Fock energies", total=len(cells)) if progress else None
        hf = hartree_fock_energies([s for _, s in system_list], hf_basis, out)
        for variant, system, seed in cells:
            rel = f"cells/{labels[variant.label]}/{sys_folders[system.name]}/seed{seed}"
            if progress:
                bar.update(task, description=f"{variant.label} | {system.name} | seed {seed}")
            row, how = _run_cell(variant, system, seed, settings, out / rel, rel, hf.get(system.name),
                                 retry_failed)
            results.rows.append(row)
            results.write()
            if progress:
                bar.advance(task)
                bar.console.print(_cell_line(row, how))
            if on_cell is not None:
                on_cell(row, how)
        if progress:
            bar.update(task, description="convergence plot")
        try:
            from qmczoo.runs.plotting import plot_bench

            refs = {s.name: s.reference_energy for _, s in system_list}
            plot_bench(_curves(out, results.rows), out / "convergence.png", references=refs)
        except Exception as exc:  # the table matters more than the picture
            results.meta["plot_error"] = f"{type(exc).__name__}: {exc}"
            results.write()
        if progress:
            bar.update(task, description="done")
    return results


def _cell_line(row: dict, how: str) -> str:
    from rich.markup import escape

    from qmczoo.engine.statistics import format_value

    where = escape(f"{row['ansatz']} | {row['system']} | seed {row['seed']}")
    if row["status"] != "ok":
        return f"[red]✗ {where}: {escape(row['error'])}[/red]" + (" (recorded earlier)" if how == "skipped" else "")
    diff = f", {row['error_mha']:+.2f} mHa" if row.get("error_mha") is not None else ""
    note = {"skipped": " (finished earlier)", "resumed": " (resumed from checkpoint)"}.get(how, "")
    return (f"[green]✓[/green] {where}: E = {format_value(row['energy'], row['energy_error'])} Ha{diff}, "
            f"{row['steps']} steps in {row['wall_seconds']:.0f} s{note}")
