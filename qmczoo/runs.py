"""Run folders: train, resume and evaluate with files a person (or a notebook) can read.

A run folder holds ``config.yaml`` (system, ansatz, settings), ``train.csv`` (one row per
step), ``checkpoint.msgpack`` (the latest state), ``energy.png``, ``summary.json`` and, after
an evaluation, ``evaluation.json``. Every function here is what the CLI calls.

Safety: every setting is validated before the folder is created (bad input writes
nothing); a new run needs a new or empty folder (a folder holding anything else is never
written into); a lock file (``.qmczoo.lock``, ``fcntl.flock``) keeps a second process out of
a folder while a run trains or evaluates; a run killed at any moment can be continued with
``resume=True`` (before the first checkpoint that starts it again from its config.yaml).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from qmczoo import checkpoint
from qmczoo.errors import ConfigError, QmczooError
from qmczoo.registry import AnsatzSpec, get_ansatz
from qmczoo.statistics import reblock
from qmczoo.systems import System, get_system, read_system
from qmczoo.train import EVALUATION_KEY_TAG, VMC, StepStats, TrainConfig, iterate_steps, walkers_per_geometry

CSV_COLUMNS = ("step", "energy", "variance", "acceptance", "step_size", "wall_time", "rejected", "monitor_energy")
CHECKPOINT = "checkpoint.msgpack"
LOCK_FILE = ".qmczoo.lock"
# every file a run writes into its folder (a new run refuses a folder holding anything else)
RUN_FILES = ("config.yaml", "train.csv", "train.csv.tmp", CHECKPOINT, CHECKPOINT + ".tmp", "energy.png", "summary.json",
             "evaluation.json", LOCK_FILE, "train_geometries.csv", "train_geometries.csv.tmp", "pes.csv", "pes.png")
SUMMARY_FRACTION = 0.2  # the summary energy averages the last 20% of training steps
EVALUATION_BURN_IN = 20  # unmeasured Metropolis calls (of mcmc_steps each) before an evaluation measures


@dataclasses.dataclass
class RunResult:
    """What :func:`train` returns: the final state, the VMC machinery and the summary."""

    vmc: VMC
    state: Any
    summary: dict
    out_dir: Path | None
    evaluation: Any = None


class _Progress:
    """A rich progress bar (or nothing), shared by pretraining, training and evaluation."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._progress = Progress(TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), refresh_per_second=4)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int, completed: int = 0):
        if self._progress is None:
            return lambda **_: None
        task_id = self._progress.add_task(description, total=total, completed=completed, info="")

        def update(advance: int = 1, info: str = ""):
            self._progress.update(task_id, advance=advance, info=info)

        return update


def _write_csv_rows(path: Path, rows: list[StepStats], offset: float, times: list[float]):
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


def _truncate_log(out_dir: Path, last_step: int):
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


def _save_config(out_dir: Path, system: System, spec: AnsatzSpec, config: TrainConfig, input_unit: str = "bohr",
                 geometries=None):
    from qmczoo import __version__

    data = {"qmczoo_version": __version__, "input_unit": input_unit, "length_unit": "bohr",
            "system": system.to_dict(), "ansatz": spec.to_dict(), "train": config.to_dict()}
    if geometries is not None:
        data["geometries"] = geometries.to_dict()
    text = ("# input_unit: the unit the geometry was read in; system.coords are in bohr (length_unit)\n"
            + yaml.safe_dump(data, sort_keys=False))
    (out_dir / "config.yaml").write_text(text)


def _config_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.name.endswith((".yaml", ".yml")) and not path.is_dir() else path / "config.yaml"


def read_config_file(path: str | Path) -> dict:
    """The raw mapping of a run's ``config.yaml`` (``path``: the file or its run folder), checked for shape."""
    path = _config_path(path)
    if not path.is_file():
        raise ConfigError(f"{path.parent} is not a qmczoo run folder (no config.yaml)"
                          if path.name == "config.yaml" else f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path} is not readable YAML ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a qmczoo run config: expected a mapping with system, ansatz "
                          f"and train, got {type(data).__name__}")
    missing = [k for k in ("system", "ansatz", "train") if not isinstance(data.get(k), dict)]
    if missing:
        raise ConfigError(f"{path} is not a qmczoo run config: missing or malformed {', '.join(missing)}")
    if not isinstance(data["ansatz"].get("name"), str):
        raise ConfigError(f"{path}: ansatz.name is missing")
    return data


def load_run_config(out_dir: str | Path) -> tuple[System, AnsatzSpec, TrainConfig]:
    """The system, ansatz and settings stored in a run folder's ``config.yaml`` (or that file itself).

    Raises:
      ConfigError: a missing, unreadable or malformed file, naming it.
    """
    data = read_config_file(out_dir)
    a = data["ansatz"]
    path = _config_path(out_dir)
    options = a.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: ansatz.options must be a mapping")
    try:
        spec = get_ansatz(a["name"], a.get("preset"), **options)
        return System.from_dict(data["system"]), spec, TrainConfig.from_dict(data["train"])
    except QmczooError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path} is malformed: {exc}") from None


def load_run_geometries(out_dir: str | Path):
    """The :class:`~qmczoo.geometry_set.GeometrySet` a run trained on (``geometries`` in its
    config.yaml), or None for a one-geometry run."""
    from qmczoo.geometry_set import GeometrySet

    data = read_config_file(out_dir).get("geometries")
    if data is None:
        return None
    try:
        return GeometrySet.from_dict(data)
    except QmczooError as exc:
        raise ConfigError(f"{_config_path(out_dir)}: geometries: {exc}") from None


def _check_geometries(spec: AnsatzSpec, gset) -> None:
    """Several geometries need an ansatz that serves many; refuse any other, with the way out."""
    if gset is None or gset.n_geometries == 1 or spec.serves_many_geometries:
        return
    raise ConfigError(f"{spec.name} cannot share one network across {gset.n_geometries} geometries (it has no "
                      "geometry encoder): use --ansatz pesnet, or train one run per geometry")


def _json_safe(obj):
    """``obj`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path: Path, data: dict):
    path.write_text(json.dumps(_json_safe(data), indent=2, allow_nan=False))


def summarize(system: System, log: dict[str, np.ndarray], seconds_per_step: float, extra: dict,
              evaluation=None) -> dict:
    """The run's ``summary.json``.

    ``energy``/``energy_error`` is the most honest estimate there is, named by
    ``energy_source``: the fixed-parameter ``evaluation`` when given, else the monitor chain's
    mean over the last 20% of steps, else the training walkers' mean. The training walkers'
    mean (optimistic early in training) is always under ``training_energy``, the monitor
    chain's under ``monitor_energy``; errors are reblocked.
    """
    energies = log["energy"]
    n = len(energies)
    window = max(1, int(round(SUMMARY_FRACTION * n)))
    tail = energies[n - window:] if n else energies
    train_est = reblock(tail)
    summary = {
        "system": system.name,
        "training_energy": train_est.mean,
        "training_energy_error": train_est.error,
        "energy_window_steps": int(tail.size),
        "variance": float(np.mean(log["variance"][-tail.size:])) if n else float("nan"),
        "steps": int(log["step"][-1]) if n else 0,
        "seconds_per_step": seconds_per_step if math.isfinite(seconds_per_step) else None,
        "rejected_steps": int(np.sum(log["rejected"])) if n else 0,
    }
    candidates = [("training", train_est.mean, train_est.error)]
    monitor = log.get("monitor_energy", np.zeros(0))[n - window:] if n else np.zeros(0)
    monitor = monitor[np.isfinite(monitor)]
    if monitor.size >= 2:
        mon_est = reblock(monitor)
        summary["monitor_energy"], summary["monitor_energy_error"] = mon_est.mean, mon_est.error
        candidates.append(("monitor", mon_est.mean, mon_est.error))
    if evaluation is not None:
        candidates.append(("evaluation", evaluation.energy, evaluation.energy_error))
        summary["evaluation"] = {k: v for k, v in evaluation.to_dict().items() if k != "step_energies"}
    source, energy, error = candidates[-1]
    summary.update(energy=energy, energy_error=error, energy_source=source)
    if system.reference_energy is not None:
        summary["reference_energy"] = system.reference_energy
        summary["error_vs_reference_mha"] = 1000.0 * (energy - system.reference_energy)
    summary.update(extra)
    return summary


class _StepLine:
    """The progress bar's text: training energy, the latest monitor-chain energy, variance."""

    def __init__(self):
        self.monitor = None

    def __call__(self, stats: StepStats) -> str:
        if stats.monitor_energy is not None:
            self.monitor = stats.monitor_energy
        monitor = "" if self.monitor is None else f"  monitor E={self.monitor:.5f}"
        return f"E={stats.energy:.5f}{monitor}  var={stats.variance:.3g}  acc={stats.acceptance:.2f}"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``checkpointed`` says whether the folder holds a checkpoint."""

    def __init__(self, out_dir: Path, checkpointed: bool):
        super().__init__(str(out_dir))
        self.out_dir, self.checkpointed = out_dir, checkpointed


class TrainingStopped(QmczooError):
    """Too many consecutive steps were rejected by the NaN guard; the last good state is checkpointed."""


def _check_out_dir(out: Path, fresh: bool):
    """Refuse an ``out`` that is a file, lies under a file, or (for a new run) holds anything."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under {parent}, which is a file"
            raise ConfigError(f"run folder {out} {where}; choose a folder for --out")
    if not fresh or not out.exists():
        return
    try:
        present = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read run folder {out}: {exc}") from None
    if CHECKPOINT in present or "config.yaml" in present or "train.csv" in present:
        raise ConfigError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
    if present:
        shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
        raise ConfigError(f"{out} is not empty ({shown}): a new run needs a new or empty folder; choose another --out")


@contextlib.contextmanager
def lock_run(out: str | Path):
    """Hold an exclusive lock on run folder ``out`` (``fcntl.flock`` on ``out/.qmczoo.lock``).

    Raises:
      ConfigError: another process holds it (the message names its pid).
    """
    import fcntl

    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot lock run folder {out}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            except OSError:
                pid = "unknown"
            raise ConfigError(f"run folder {out} is in use by another qmczoo process (pid {pid})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_eval_steps(eval_steps):
    if isinstance(eval_steps, bool) or not isinstance(eval_steps, (int, np.integer)):
        raise ConfigError(f"eval_steps must be an integer, got {eval_steps!r}")
    if eval_steps < 0 or eval_steps == 1:
        raise ConfigError(f"evaluation steps must be 0 (no evaluation) or at least 2, got {eval_steps}")


def _check_resources(system: System, spec: AnsatzSpec, config: TrainConfig):
    """Cheap checks of what would otherwise fail deep inside the run (after files are written)."""
    itemsize = 8 if config.dtype == "float64" else 4
    n = system.n_electrons
    # walkers plus the two-electron features of one pass: a lower bound of what a step needs
    need = config.batch_size * n * (3 + 4 * n) * itemsize
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    if total and jax.default_backend() == "cpu" and need > total:
        raise ConfigError(f"a batch of {config.batch_size} walkers of {n} electrons needs at least "
                          f"{need / 2**30:.3g} GiB, more than this machine's {total / 2**30:.3g} GiB; "
                          "use a smaller --batch-size")
    if config.pretrain_steps > 0:
        basis = _with_pretrain_basis(config, spec).pretrain_basis
        mol = system.to_pyscf(basis)  # a bad basis name is a SystemSpecError
        if max(system.n_up, system.n_down) > mol.nao:
            raise ConfigError(f"{system.name} with {system.n_up} up and {system.n_down} down electrons does not fit "
                              f"in the {mol.nao} orbitals of basis {basis!r} used for pretraining")


def _with_pretrain_basis(config: TrainConfig, spec: AnsatzSpec) -> TrainConfig:
    """``config`` with its pretraining basis settled: as given, else the ansatz's ``hf_basis``
    option (the basis of the Hartree–Fock orbitals it starts from or fits its envelopes to, so
    that the targets are those very orbitals), else cc-pVDZ."""
    if config.pretrain_basis is not None:
        return config
    from qmczoo.train import DEFAULT_PRETRAIN_BASIS

    return dataclasses.replace(config, pretrain_basis=spec.options.get("hf_basis") or DEFAULT_PRETRAIN_BASIS)


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def _remove_run_files(out: Path, created: bool):
    """Undo a new run that failed before its first checkpoint: its own files (and the folder it made)."""
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            (out / name).unlink()
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()


def train(system="LiH", ansatz: str | AnsatzSpec = "ferminet", config: TrainConfig | None = None,
          out_dir: str | Path | None = None, *, preset: str | None = None, options: dict | None = None,
          progress: bool = True, eval_steps: int = 0, resume: bool = False, unit: str | None = None,
          time_budget: float | None = None, scan: str | None = None, geometries=None) -> RunResult:
    """Train an ansatz on a system; with ``out_dir``, write (or continue) a run folder.

    Args:
      system: anything :func:`qmczoo.systems.get_system` takes.
      ansatz: a registry name (with ``preset``/``options``) or an :class:`AnsatzSpec`.
      config: a :class:`TrainConfig` (defaults if None).
      out_dir: run folder; for a new run it must be new or empty.
      progress: show progress bars.
      eval_steps: after training, evaluate the energy for this many steps (0: skip; else >= 2).
      resume: continue the run in ``out_dir`` from its checkpoint (system, ansatz and
        config come from its ``config.yaml``; a given ``config.steps`` extends the run). A
        run folder without a checkpoint (killed before its first one) starts again from
        the beginning.
      unit: unit of the system's coordinates (see :func:`~qmczoo.systems.get_system`;
        None: angstrom for xyz files, inline strings and atom lists); for a built
        :class:`System`, the unit its geometry was read in (recorded in config.yaml and
        summary.json).
      time_budget: seconds of training-loop wall time (first step's compilation included)
        after which this call stops taking steps, checkpoints and evaluates as usual.
      scan, geometries: train on several geometries at once (an ansatz with a geometry encoder,
        PESNet): a scan of a named coordinate (``"bond=0.8:4.0:17"``, see
        :func:`~qmczoo.geometry_set.parse_scan`), a geometry file (YAML or multi-frame xyz), or a
        built :class:`~qmczoo.geometry_set.GeometrySet` as ``geometries``. The evaluation then
        gives E ± sigma per geometry (``pes.csv``, ``pes.png``). Any other ansatz given several
        geometries is refused (train one run per geometry).

    Everything is validated before anything is written. The folder is locked while the
    run trains. A new run that fails before its first checkpoint leaves no files behind;
    Ctrl-C raises :class:`RunInterrupted` (a ``KeyboardInterrupt``); too many consecutive
    rejected steps raise :class:`TrainingStopped` after checkpointing the last good state.
    """
    _check_eval_steps(eval_steps)
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder")
        _check_out_dir(out, fresh=False)
        stored_system, stored_spec, stored = load_run_config(out)
        if config is not None:
            stored = dataclasses.replace(stored, steps=config.steps)
        _check_resources(stored_system, stored_spec, stored)
        with lock_run(out):
            try:
                return _train(out_dir=out, resume=True, config=stored, progress=progress, eval_steps=eval_steps,
                              time_budget=time_budget)
            except KeyboardInterrupt:
                raise RunInterrupted(out, (out / CHECKPOINT).exists()) from None
            except jax.errors.JaxRuntimeError as exc:
                if _out_of_memory(exc):
                    raise ConfigError(f"out of memory with {stored.batch_size} walkers: resume cannot change "
                                      "the batch size; start a new run with a smaller --batch-size") from None
                raise
    system, input_unit = read_system(system, unit=unit)
    if isinstance(system, System) and unit is not None:  # a built System: record the unit it was read in
        from qmczoo.systems import canonical_unit

        input_unit = canonical_unit(unit)
    spec = ansatz if isinstance(ansatz, AnsatzSpec) else get_ansatz(ansatz, preset, **(options or {}))
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    config = _with_pretrain_basis(config, spec)
    gset = _geometry_set(system, scan, geometries, unit)
    _check_geometries(spec, gset)
    if gset is not None:
        system = gset.system  # the first geometry of the set
    _check_resources(system, spec, config)
    if out is None:
        return _train(system, spec, config, None, progress=progress, eval_steps=eval_steps, time_budget=time_budget,
                      geometries=gset)
    _check_out_dir(out, fresh=True)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run folder {out}: {exc}") from None
    with lock_run(out):
        try:
            _check_out_dir(out, fresh=True)  # again, now that no one else can write here
        except ConfigError:
            raise
        try:
            return _train(system, spec, config, out, progress=progress, eval_steps=eval_steps,
                          input_unit=input_unit, time_budget=time_budget, geometries=gset)
        except KeyboardInterrupt:
            raise RunInterrupted(out, (out / CHECKPOINT).exists()) from None
        except BaseException as exc:
            if not (out / CHECKPOINT).exists():
                _remove_run_files(out, created)
            if isinstance(exc, jax.errors.JaxRuntimeError) and _out_of_memory(exc):
                raise ConfigError(f"out of memory with {config.batch_size} walkers: "
                                  "use a smaller --batch-size") from None
            raise


def _geometry_set(system: System, scan, geometries, unit):
    """The run's :class:`~qmczoo.geometry_set.GeometrySet`, or None for the system's own geometry."""
    from qmczoo.geometry_set import GeometrySet, geometry_set

    if isinstance(geometries, GeometrySet):
        if scan is not None:
            raise ConfigError("give either a scan or geometries, not both")
        return geometries
    if scan is None and geometries is None:
        return None
    return geometry_set(system, scan=scan, geometries=geometries, unit=unit)


def _train(system="LiH", ansatz: str | AnsatzSpec = "ferminet", config: TrainConfig | None = None,
           out_dir: str | Path | None = None, *, preset: str | None = None, options: dict | None = None,
           progress: bool = True, eval_steps: int = 0, resume: bool = False, input_unit: str | None = None,
           time_budget: float | None = None, geometries=None) -> RunResult:
    """The body of :func:`train` (same arguments; ``input_unit`` is the unit the geometry was
    read in, ``geometries`` a GeometrySet or None), run with its inputs checked and its folder
    locked."""
    from qmczoo.pes import GEOMETRY_LOG, error_summary, truncate_geometry_log, write_geometry_log, write_pes

    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder")
        system, spec, stored = load_run_config(out)
        if config is not None:
            stored = dataclasses.replace(stored, steps=config.steps)
        config = stored
        input_unit = read_config_file(out).get("input_unit", "bohr")
        geometries = load_run_geometries(out)
        restart = not (out / CHECKPOINT).exists()  # killed before its first checkpoint: start again
        if restart and (out / "train.csv").exists():
            (out / "train.csv").unlink()
    else:
        system = get_system(system)
        spec = ansatz if isinstance(ansatz, AnsatzSpec) else get_ansatz(ansatz, preset, **(options or {}))
        config = config or TrainConfig()
        if out is not None:
            if (out / CHECKPOINT).exists() or (out / "train.csv").exists():
                raise ConfigError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
            out.mkdir(parents=True, exist_ok=True)
            _save_config(out, system, spec, config, input_unit or "bohr", geometries)

    gset = geometries if geometries is not None and geometries.n_geometries > 1 else None
    positions = None if gset is None else gset.positions
    vmc = VMC(system, spec.build(system, geometries=positions), config, geometries=positions)
    pretraining = not (resume and not restart) and config.pretrain_steps > 0
    state = vmc.initial_state(optimizer=not pretraining)  # pretraining initialises the optimizer itself
    extra: dict[str, Any] = {"ansatz": spec.name, "preset": spec.preset, "input_unit": input_unit or "bohr",
                             "geometry_bohr": [[sym, *xyz] for sym, xyz in zip(system.symbols, system.coords)]}
    with _Progress(progress) as bars:
        if resume and not restart:
            state, meta = checkpoint.load(out / CHECKPOINT, state)
            _truncate_log(out, int(state.step))
            truncate_geometry_log(out / GEOMETRY_LOG, int(state.step))
        else:
            if config.pretrain_steps > 0:
                bar = bars.task("pretrain", config.pretrain_steps)
                t0 = time.perf_counter()
                state, losses = vmc.pretrain(state, progress=lambda i, loss: bar(info=f"loss={loss:.3e}"))
                extra["pretrain_seconds"] = time.perf_counter() - t0
                extra["pretrain_final_loss"] = losses[-1] if losses else None
            state = vmc.burn_in(state)
            if out is not None:
                checkpoint.save(out / CHECKPOINT, state, {"step": 0})
        start_step = int(state.step)
        previous = read_log(out) if out is not None else None
        offset = float(previous["wall_time"][-1]) if previous is not None and previous["wall_time"].size else 0.0
        bar = bars.task("train", config.steps, completed=min(start_step, config.steps))
        line = _StepLine()
        rows, times, step_times, history = [], [], [], []
        last_good, n_bad = state, 0  # the NaN guard's last accepted state and the rejections since
        loop_start = last = time.perf_counter()
        try:
            for state, stats in iterate_steps(vmc, state, max(0, config.steps - start_step)):
                n_bad = n_bad + 1 if stats.rejected else 0
                if not stats.rejected:
                    last_good = state
                elif n_bad >= config.max_rejected_steps:
                    _stop_after_rejections(out, rows + [stats], offset, times + [time.perf_counter() - loop_start],
                                           last_good, n_bad, int(state.step))
                now = time.perf_counter()
                step_times.append(now - last)
                last = now
                rows.append(stats)
                history.append(stats)
                times.append(now - loop_start)
                bar(info=line(stats))
                done = int(state.step)
                over_budget = time_budget is not None and now - loop_start >= time_budget
                if out is not None and (done % config.checkpoint_every == 0 or done == config.steps or over_budget):
                    write_geometry_log(out / GEOMETRY_LOG, rows)
                    _write_csv_rows(out / "train.csv", rows, offset, times)
                    rows, times = [], []
                    checkpoint.save(out / CHECKPOINT, state, {"step": done})
                if over_budget:
                    break
        except KeyboardInterrupt:
            if out is not None:  # keep every finished step: the run resumes from here
                write_geometry_log(out / GEOMETRY_LOG, rows)
                _write_csv_rows(out / "train.csv", rows, offset, times)
                checkpoint.save(out / CHECKPOINT, state, {"step": int(state.step)})
            raise
        if step_times:
            extra["compile_seconds"] = step_times[0]
        seconds_per_step = float(np.mean(step_times[1:])) if len(step_times) > 1 else float("nan")

        evaluation = None
        if eval_steps > 0:
            from qmczoo.evaluate import evaluate

            ebar = bars.task("evaluate", eval_steps)
            evaluation = evaluate(vmc, state.params, state.walkers, eval_steps,
                                  jax.random.fold_in(state.key, EVALUATION_KEY_TAG), burn_in=EVALUATION_BURN_IN,
                                  progress=lambda i, e: ebar(info=f"E={e:.5f}"))

    if out is not None:
        log = read_log(out)
    else:
        log = {c: np.array([0.0 if c == "wall_time" else np.nan if getattr(s, c) is None else getattr(s, c)
                            for s in history], dtype=float)
               for c in CSV_COLUMNS}
    if gset is not None:  # the mean energy over geometries has no single reference
        extra["geometries"] = gset.to_dict()
        system_for_summary = dataclasses.replace(system, reference_energy=None, reference_source=None)
    else:
        system_for_summary = system
    summary = summarize(system_for_summary, log, seconds_per_step, extra, evaluation)
    record = evaluation.to_dict() if evaluation is not None else None
    if gset is not None and evaluation is not None and out is not None:
        rows = write_pes(out, gset, evaluation, title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}")
        summary["pes"] = rows
        summary.update(error_summary(rows))
        record.update(pes=rows, **error_summary(rows))
    if out is not None:
        if record is not None:
            _write_json(out / "evaluation.json", record)
        _write_json(out / "summary.json", summary)
        if log["step"].size:
            from qmczoo.plotting import plot_training

            plot_training(log["step"], log["energy"], log["variance"], out / "energy.png",
                          monitor=log["monitor_energy"], reference=system.reference_energy,
                          title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}",
                          evaluation=(evaluation.energy, evaluation.energy_error) if evaluation else None)
    return RunResult(vmc=vmc, state=state, summary=summary, out_dir=out, evaluation=evaluation)


def _stop_after_rejections(out, rows, offset, times, last_good, n_bad, step):
    """Checkpoint the last accepted state and stop: the run is diverging (TrainingStopped)."""
    where = ""
    if out is not None:
        _write_csv_rows(out / "train.csv", rows, offset, times)
        checkpoint.save(out / CHECKPOINT, last_good, {"step": int(last_good.step)})
        where = f"; the last good state (step {int(last_good.step)}) is checkpointed in {out}"
    raise TrainingStopped(
        f"training stopped at step {step}: {n_bad} consecutive steps were rejected (non-finite energy, gradient "
        f"or parameters){where}. Lower the learning rate (--lr) or check the system")


def evaluate_run(out_dir: str | Path, steps: int = 1000, *, batch_size: int | None = None, seed: int | None = None,
                 burn_in: int = EVALUATION_BURN_IN, progress: bool = True, scan: str | None = None,
                 geometries=None):
    """Evaluate the energy of a trained run folder; writes ``evaluation.json``.

    Uses the checkpoint's parameters and walkers (re-sampled from them if ``batch_size``
    differs from training). ``steps`` >= 2, ``batch_size`` >= 1, ``burn_in`` >= 0 and
    ``0 <= seed < 2**32`` are checked first; the folder is locked while it runs.

    A run trained on several geometries is evaluated on each (E ± sigma per geometry in
    ``evaluation.json``, ``pes.csv`` and ``pes.png``); ``scan``/``geometries`` (as for
    :func:`train`) evaluate it at other geometries instead, from freshly sampled walkers.
    """
    for name, value, low in (("steps", steps, 2), ("batch_size", batch_size, 1), ("seed", seed, 0),
                             ("burn_in", burn_in, 0)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"evaluation {name} must be an integer, got {value!r}")
        if value < low:
            raise ConfigError(f"evaluation {name} must be >= {low}, got {value}")
    if seed is not None and seed >= 2**32:
        raise ConfigError(f"seed must be below 2**32 = {2**32}, got {seed}")
    out = Path(out_dir)
    _check_out_dir(out, fresh=False)
    system, spec, config = load_run_config(out)
    if not (out / CHECKPOINT).exists():
        raise ConfigError(f"{out} has no {CHECKPOINT}: train first")
    if batch_size is not None:
        _check_resources(system, spec, dataclasses.replace(config, batch_size=batch_size, pretrain_steps=0))
    trained_on = load_run_geometries(out)
    at = _geometry_set(system, scan, geometries, None)
    if at is not None:
        _check_geometries(spec, at)
    with lock_run(out):
        try:
            return _evaluate_run(out, steps, batch_size=batch_size, seed=seed, burn_in=burn_in, progress=progress,
                                 trained_on=trained_on, at=at)
        except jax.errors.JaxRuntimeError as exc:
            if _out_of_memory(exc):
                raise ConfigError(f"out of memory with {batch_size} walkers: use a smaller --batch-size") from None
            raise


def _evaluate_run(out_dir: str | Path, steps: int = 1000, *, batch_size: int | None = None, seed: int | None = None,
                  burn_in: int = EVALUATION_BURN_IN, progress: bool = True, trained_on=None, at=None):
    from qmczoo.evaluate import evaluate
    from qmczoo.pes import error_summary, write_pes

    out = Path(out_dir)
    system, spec, config = load_run_config(out)
    if not (out / CHECKPOINT).exists():
        raise ConfigError(f"{out} has no {CHECKPOINT}: train first")
    trained = None if trained_on is None or trained_on.n_geometries == 1 else trained_on.positions
    wf = spec.build(system, geometries=trained)  # built as trained (its static frame comes from these)
    vmc = VMC(system, wf, config, geometries=trained)
    template = vmc.initial_state()
    state, _ = checkpoint.load(out / CHECKPOINT, template)
    walkers = state.walkers
    key = jax.random.PRNGKey(config.seed if seed is None else seed)
    key = jax.random.fold_in(key, EVALUATION_KEY_TAG)
    gset = trained_on if trained is not None else None
    if at is not None and (trained_on is None or not np.array_equal(at.positions, trained_on.positions)):
        gset = at if at.n_geometries > 1 else None  # other geometries: a VMC for them, fresh walkers
        vmc = VMC(at.system, wf, dataclasses.replace(config, batch_size=batch_size or config.batch_size),
                  geometries=None if gset is None else at.positions)
        walkers = vmc._walkers(key, vmc.batch_size).replace(step_size=jnp.full(
            () if gset is None else (at.n_geometries,), float(np.mean(walkers.step_size)), vmc.dtype))
        burn_in = max(burn_in, 100)
    elif batch_size is not None and batch_size != walkers.r.shape[0]:  # the same machinery, other walkers
        count = vmc.n_geometries * walkers_per_geometry(batch_size, vmc.n_geometries)
        walkers = vmc._walkers(key, count).replace(step_size=walkers.step_size)
        burn_in = max(burn_in, 100)
    with _Progress(progress) as bars:
        bar = bars.task("evaluate", steps)
        result = evaluate(vmc, state.params, walkers, steps, key, burn_in=burn_in,
                          progress=lambda i, e: bar(info=f"E={e:.5f}"))
    record = result.to_dict()
    record["trained_steps"] = int(state.step)
    evaluated_system = vmc.system
    if gset is None and evaluated_system.reference_energy is not None:
        record["reference_energy"] = evaluated_system.reference_energy
        record["error_vs_reference_mha"] = 1000.0 * (result.energy - evaluated_system.reference_energy)
    if gset is not None:
        rows = write_pes(out, gset, result, title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}")
        record["pes"] = rows
        record.update(error_summary(rows))
        record["geometry_set"] = gset.to_dict()
    _write_json(out / "evaluation.json", record)
    return result


__all__ = ["train", "evaluate_run", "load_run_config", "read_config_file", "read_log", "summarize", "lock_run",
           "RunResult", "RunInterrupted", "TrainingStopped", "QmczooError"]
