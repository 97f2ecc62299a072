"""Running a bench: check its folder, then every cell in turn, writing the table after each."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Callable, Sequence

import yaml

from qmczoo import defaults
from qmczoo.defaults import RUN_DEFAULTS
from qmczoo.errors import ConfigError
from qmczoo.runs.bench.cells import _curves, _run_cell, hartree_fock_energies, warn_symmetry
from qmczoo.runs.bench.results import BenchResults, machine_description
from qmczoo.runs.bench.spec import (
    BENCH_FILE,
    BENCH_FILES,
    CELL_FILE,
    DEFAULT_HF_BASIS,
    TABLE_LOCK,
    UNLIMITED_STEPS,
    BenchSettings,
    _safe,
    parse_ansatze,
    parse_duration,
    parse_seeds,
    parse_shard,
    parse_systems,
)
from qmczoo.distributed import is_main_process, worker_folder
from qmczoo.runs.checks import check_devices
from qmczoo.runs.folder import LOCK_FILE, check_no_links, lock_run, wait_for_lock, write_file


def _stored_settings(path: Path) -> dict:
    """The ``settings`` mapping of a bench folder's ``bench.yaml``; ConfigError if it is damaged."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path} is not readable ({first}): it is not a qmczoo bench file; use another --out, "
                          "or remove the damaged file to start this bench again in its folder") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise ConfigError(f"{path} is not a qmczoo bench file (no 'settings' mapping); use another --out, or remove "
                          "the damaged file to start this bench again in its folder")
    return data["settings"]


def _check_folder(out: Path, settings: BenchSettings) -> bool:
    """Refuse a folder that is a file, holds something else, links where the bench writes, or a
    bench with other settings; returns whether it holds this bench already."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under {parent}, which is a file"
            raise ConfigError(f"bench folder {out} {where}; choose a folder for --out")
    if not out.exists():
        return False
    check_no_links(out, BENCH_FILES)
    path = out / BENCH_FILE
    new = settings.to_dict()
    if path.exists():
        stored = _stored_settings(path)
        if stored != new:
            diff = [k for k in sorted(set(stored) | set(new)) if stored.get(k) != new.get(k)]
            shown = "; ".join(f"{k}: {stored.get(k)!r} there, {new.get(k)!r} now" for k in diff[:4])
            raise ConfigError(f"{out} holds a bench with other settings ({shown}); "
                              "use another --out or the same settings")
        return True
    try:
        present = [p.name for p in out.iterdir() if p.name not in (LOCK_FILE, TABLE_LOCK)]
    except OSError as exc:
        raise ConfigError(f"cannot read bench folder {out}: {exc}") from None
    if present:
        raise ConfigError(f"{out} is not empty and holds no {BENCH_FILE}: choose a new or empty --out")
    return False


def _check_markers(out: Path, rels: list[str]) -> None:
    """Every cell's ``bench_cell.json`` that exists must be readable: a damaged one is refused
    before any cell runs (naming it, and how to redo that cell)."""
    for rel in rels:
        marker = out / rel / CELL_FILE
        if not marker.exists() and not marker.is_symlink():
            continue
        fix = f"delete it (rm {marker}) to run that cell again"
        if marker.is_symlink():
            raise ConfigError(f"{marker} is a symbolic link: qmczoo never writes through a link; {fix}")
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:
            raise ConfigError(f"{marker} is damaged ({type(exc).__name__}): {fix}") from None
        status = data.get("status") if isinstance(data, dict) else None
        if status not in ("ok", "failed", "interrupted") or (status != "interrupted"
                                                              and not isinstance(data.get("row"), dict)):
            raise ConfigError(f"{marker} is not a bench cell record (status {status!r}): {fix}")


def _check_cells(variants, system_list, seed_list, settings: BenchSettings) -> None:
    """Build every cell's ansatz and training settings and check them as ``qmczoo train`` does,
    so that a bad option, preset, seed or basis is one error before the first cell starts."""
    from qmczoo.chemistry.basis_names import check_basis_name
    from qmczoo.registry import get_ansatz
    from qmczoo.runs.checks import check_resources, check_states

    configs = [settings.train_config(seed) for seed in seed_list]  # a bad seed or setting fails here
    if settings.hf_basis is not None:
        symbols = [sym for _, system in system_list for sym in system.symbols]
        check_basis_name(settings.hf_basis, "--hf-basis", symbols)
    for variant in variants:
        try:
            spec = get_ansatz(variant.name, settings.preset, **{**settings.sets, **variant.options})
        except ConfigError as exc:
            raise ConfigError(f"ansatz variant {variant.label!r}: {exc}") from None
        for _, system in system_list:
            check_resources(system, spec, configs[0])
            check_states(system, configs[0], spec=spec)  # and states that cannot be pretrained on it


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
              retry_failed: bool = False, progress: bool = True, devices: int | None = None,
              shard: str | tuple[int, int] | None = None,
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
      devices: devices each cell spreads its walkers over (None: every device; not a setting
        of the bench: a bench continues on any number that divides the batch).
      shard: ``"I/N"``: run only the cells ``k`` (0-based, in the bench's order) with ``k % N == I``,
        so that N jobs (a scheduler's job array, or Ray tasks) share one bench folder. The shards
        hold the folder's lock together (an unsharded bench in it is refused, and the other way
        round), each cell is locked while it runs (a cell another process is running is left to
        it), and each shard writes the table of every cell finished so far, by any shard: the last
        one to finish writes the whole table. None: every cell, holding the folder alone.
      command: the command line, recorded in results.md.
      on_cell: ``on_cell(row, how)`` after each cell (how: done, resumed, skipped, failed).

    Returns:
      :class:`BenchResults`; the same data is in ``out_dir/results.{json,csv,md}``.
    """
    budget = parse_duration(time_budget)
    shard = parse_shard(shard)
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
    _check_cells(variants, system_list, seed_list, settings)  # every cell's settings, before anything is written
    check_devices(settings.train_config(seed_list[0]), devices)
    out = Path(out_dir)
    _check_folder(out, settings)
    # several processes (qmczoo.distributed): process 0 writes the bench folder, the others a copy of it
    with worker_folder(out, ignore=(LOCK_FILE,)) as out:
        progress = progress and is_main_process()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create bench folder {out}: {exc}") from None
        # a second bench (or a run) in this folder is refused while this one runs; shards share it
        with lock_run(out, shared=shard is not None):
            return _run_locked(out, variants, system_list, seed_list, settings, progress=progress, command=command,
                               devices=devices, shard=shard, retry_failed=retry_failed, on_cell=on_cell)


def _run_locked(out: Path, variants, system_list, seed_list, settings: BenchSettings, *, progress: bool,
                devices: int | None = None, shard: tuple[int, int] | None = None,
                command: str | None, retry_failed: bool, on_cell) -> BenchResults:
    """The body of :func:`run_bench`, with its settings checked and its folder locked."""
    from qmczoo import __version__

    hf_basis = settings.hf_basis
    table = out / TABLE_LOCK  # the shards of this bench take turns at bench.yaml, the HF cache and the table

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
    rels = [f"cells/{labels[v.label]}/{sys_folders[s.name]}/seed{seed}" for v, s, seed in cells]
    _check_markers(out, rels)
    with wait_for_lock(table):
        if not _check_folder(out, settings):  # again, now that no one else can write here
            write_file(out / BENCH_FILE, yaml.safe_dump({"qmczoo_version": __version__,
                                                         "settings": settings.to_dict()}, sort_keys=False))
    mine = [k for k in range(len(cells)) if shard is None or k % shard[1] == shard[0]]

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_description(), "command": command or ""}
    if shard is not None:
        meta["shard"] = f"{shard[0]}/{shard[1]}"
    results = BenchResults(rows=[], settings=settings.to_dict(), out_dir=out, meta=meta)
    done: dict[int, dict] = {}  # cell index -> row, of the cells this process ran or skipped

    def write_table():
        """results.* of every finished cell: this process's, and (sharded) the other shards' markers."""
        with wait_for_lock(table):
            known = dict(done)
            if shard is not None:
                known.update({k: row for k in range(len(cells)) if k not in known
                              for row in [_finished_row(out / rels[k])] if row is not None})
            results.rows = [known[k] for k in sorted(known)]
            if shard is not None:
                results.meta["cells"] = f"{len(known)} of {len(cells)} finished"
            results.write()

    from contextlib import nullcontext

    display = nullcontext()
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        display = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TextColumn("{task.description}"), refresh_per_second=2)
    with display as bar:
        task = bar.add_task("Hartree–Fock energies", total=len(mine)) if progress else None
        with wait_for_lock(table):  # one shard computes them, the others read its cache
            hf = hartree_fock_energies([s for _, s in system_list], hf_basis, out)
        warn_symmetry(variants, [s for _, s in system_list], settings, bar.console if progress else None)
        for k in mine:
            variant, system, seed = cells[k]
            if progress:
                bar.update(task, description=f"{variant.label} | {system.name} | seed {seed}")
            row, how = _run_cell(variant, system, seed, settings, out / rels[k], rels[k], hf.get(system.name),
                                 retry_failed, devices=devices)
            if row is not None:  # None: another process is running the cell (a shard of another split)
                done[k] = row
                write_table()
            if progress:
                bar.advance(task)
                bar.console.print(_cell_line(row, how) if row is not None else
                                  f"[yellow]… {variant.label} | {system.name} | seed {seed}: running in "
                                  "another process, left to it[/yellow]")
            if on_cell is not None and row is not None:
                on_cell(row, how)
        write_table()
        if progress:
            bar.update(task, description="convergence plot")
        try:
            from qmczoo.runs.plotting import plot_bench

            refs = {s.name: s.reference_energy for _, s in system_list}
            with wait_for_lock(table):
                plot_bench(_curves(out, results.rows), out / "convergence.png", references=refs)
        except Exception as exc:  # the table matters more than the picture
            results.meta["plot_error"] = f"{type(exc).__name__}: {exc}"
            write_table()
        if progress:
            bar.update(task, description="done")
    return results


def _finished_row(cell: Path) -> dict | None:
    """The row of a cell another shard finished (its ``bench_cell.json``: ok or failed), else None."""
    try:
        data = json.loads((cell / CELL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None  # not finished (or being written: the next table has it)
    if isinstance(data, dict) and data.get("status") in ("ok", "failed") and isinstance(data.get("row"), dict):
        return data["row"]
    return None


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
