"""A run's life: create its folder, lock it, write its config, train with checkpoints, evaluate, summarise.

A run folder holds ``config.yaml`` (system, ansatz, settings), ``train.csv`` (one row per
step), ``checkpoint.msgpack`` (the latest state), ``energy.png``, ``summary.json`` and, after
an evaluation, ``evaluation.json``. :func:`train` is what ``qmczoo train`` calls.

Safety: every setting is validated before the folder is created (bad input writes nothing,
:mod:`qmczoo.runs.checks`); a new run needs a new or empty folder and the folder is locked
while the run trains (:mod:`qmczoo.runs.folder`); a run killed at any moment can be continued
with ``resume=True`` (before the first checkpoint that starts it again from its config.yaml).
The checkpoint format is :mod:`qmczoo.runs.checkpoint`; evaluating a finished run,
:mod:`qmczoo.runs.evaluation`.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from qmczoo import defaults
from qmczoo.chemistry.system import System
from qmczoo.chemistry.systems import get_system, read_system
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.states import make_vmc
from qmczoo.engine.vmc import EVALUATION_KEY_TAG, VMC, iterate_steps
from qmczoo.errors import ConfigError, QmczooError
from qmczoo.registry import AnsatzSpec, get_ansatz
from qmczoo.runs import checkpoint
from qmczoo.runs.checks import (
    check_devices,
    check_eval_steps,
    check_resources,
    check_serves_geometries,
    check_states,
    out_of_memory,
    resolve_geometries,
    with_pretrain_basis,
)
from qmczoo.runs.evaluation import EVALUATION_BURN_IN
from qmczoo.distributed import any_process, is_main_process, process_count, worker_folder
from qmczoo.runs.folder import CHECKPOINT, LOCK_FILE, check_out_dir, lock_run, remove_run_files, write_json
from qmczoo.runs.interrupt import StepBoundaryInterrupt
from qmczoo.runs.progress import Progress, StepLine
from qmczoo.runs.resume import check_resume
from qmczoo.runs.run_config import load_run_config, load_run_geometries, read_config_file, save_config
from qmczoo.runs.summary import summarize
from qmczoo.runs.train_log import CSV_COLUMNS, append_rows, read_log, truncate_log


@dataclasses.dataclass
class RunResult:
    """What :func:`train` returns: the final state, the VMC machinery and the summary."""

    vmc: VMC
    state: Any
    summary: dict
    out_dir: Path | None
    evaluation: Any = None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``checkpointed`` says whether the folder holds a checkpoint."""

    def __init__(self, out_dir: Path, checkpointed: bool):
        super().__init__(str(out_dir))
        self.out_dir, self.checkpointed = out_dir, checkpointed


class TrainingStopped(QmczooError):
    """Too many consecutive steps were rejected by the NaN guard; the last good state is checkpointed."""


def train(system=defaults.SYSTEM, ansatz: str | AnsatzSpec = defaults.ANSATZ, config: TrainConfig | None = None,
          out_dir: str | Path | None = None, *, preset: str | None = None, options: dict | None = None,
          progress: bool = True, eval_steps: int = 0, resume: bool = False, unit: str | None = None,
          time_budget: float | None = None, scan: str | None = None, geometries=None,
          devices: int | None = None) -> RunResult:
    """Train an ansatz on a system; with ``out_dir``, write (or continue) a run folder.

    Args:
      system: anything :func:`qmczoo.chemistry.systems.get_system` takes.
      ansatz: a registry name (with ``preset``/``options``) or an :class:`AnsatzSpec`.
      config: a :class:`TrainConfig` (defaults if None).
      out_dir: run folder; for a new run it must be new or empty.
      progress: show progress bars.
      eval_steps: after training, evaluate the energy for this many steps (0: skip; else >= 2).
      resume: continue the run in ``out_dir`` from its checkpoint (system, ansatz and
        config come from its ``config.yaml``; a given ``config.steps`` extends the run). A
        run folder without a checkpoint (killed before its first one) starts again from
        the beginning.
      unit: unit of the system's coordinates (see :func:`~qmczoo.chemistry.systems.get_system`;
        None: angstrom for xyz files, inline strings and atom lists); for a built
        :class:`System`, the unit its geometry was read in (recorded in config.yaml and
        summary.json).
      time_budget: seconds of training-loop wall time (first step's compilation included)
        after which this call stops taking steps, checkpoints and evaluates as usual.
      scan, geometries: train on several geometries at once (an ansatz with a geometry encoder,
        PESNet): a scan of a named coordinate (``"bond=0.8:4.0:17"``, see
        :func:`~qmczoo.chemistry.scans.parse_scan`), a geometry file (YAML or multi-frame xyz), or a
        built :class:`~qmczoo.chemistry.geometry_set.GeometrySet` as ``geometries``. The evaluation then
        gives E ± sigma per geometry (``pes.csv``, ``pes.png``). Any other ansatz given several
        geometries is refused (train one run per geometry).
      devices: how many devices the walkers are spread over (None: every device there is; the
        batch must divide by it). Not part of the run's settings: a run resumes on any number
        of devices that divides its batch (:mod:`qmczoo.engine.devices`).

    In a run of several processes (:mod:`qmczoo.distributed`) every process calls this with the
    same arguments: process 0 checks, locks and writes ``out_dir``; every other process runs the
    same steps against a scratch copy of the folder of its own
    (:func:`qmczoo.distributed.worker_folder`).

    Everything is validated before anything is written. The folder is locked while the
    run trains. A new run that fails before its first checkpoint leaves no files behind;
    Ctrl-C raises :class:`RunInterrupted` (a ``KeyboardInterrupt``); too many consecutive
    rejected steps raise :class:`TrainingStopped` after checkpointing the last good state.
    """
    args = dict(preset=preset, options=options, progress=progress, eval_steps=eval_steps, resume=resume, unit=unit,
                time_budget=time_budget, scan=scan, geometries=geometries, devices=devices)
    if out_dir is None or process_count() == 1:
        return _train_in(system, ansatz, config, out_dir, **args)
    out = Path(out_dir)
    with worker_folder(out, ignore=(LOCK_FILE,)) as folder:
        args["progress"] = progress and is_main_process()
        return _train_in(system, ansatz, config, folder, **args)


def _train_in(system, ansatz, config, out_dir, *, preset, options, progress, eval_steps, resume, unit, time_budget,
              scan, geometries, devices) -> RunResult:
    """:func:`train` in this process, into ``out_dir``: check everything, lock the folder, train."""
    check_eval_steps(eval_steps)
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder")
        check_out_dir(out, fresh=False)
        stored_system, stored_spec, stored = load_run_config(out)
        if config is not None:
            stored = dataclasses.replace(stored, steps=config.steps)
        check_resources(stored_system, stored_spec, stored)
        stored_geometries = load_run_geometries(out)
        check_devices(stored, devices, 1 if stored_geometries is None else stored_geometries.n_geometries)
        check_resume(out, stored.steps)  # before the lock too: a refused resume leaves no lock file behind
        with lock_run(out):
            try:
                check_resume(out, stored.steps)  # again, now that no one else can write here
                return _train(out_dir=out, resume=True, config=stored, progress=progress, eval_steps=eval_steps,
                              time_budget=time_budget, devices=devices)
            except KeyboardInterrupt:
                raise RunInterrupted(out, (out / CHECKPOINT).exists()) from None
            except OSError as exc:
                raise _write_error(out, exc) from None
            except jax.errors.JaxRuntimeError as exc:
                if out_of_memory(exc):
                    raise ConfigError(f"out of memory with {stored.batch_size} walkers: resume cannot change "
                                      "the batch size; start a new run with a smaller --batch-size") from None
                raise
    system, input_unit = read_system(system, unit=unit)
    if isinstance(system, System) and unit is not None:  # a built System: record the unit it was read in
        from qmczoo.chemistry.systems import canonical_unit

        input_unit = canonical_unit(unit)
    spec = ansatz if isinstance(ansatz, AnsatzSpec) else get_ansatz(ansatz, preset, **(options or {}))
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    config = with_pretrain_basis(config, spec)  # stored in config.yaml as settled
    gset = resolve_geometries(system, scan, geometries, unit)
    check_serves_geometries(spec, gset)
    if gset is not None:
        system = gset.system  # the first geometry of the set
    check_resources(system, spec, config)
    check_states(system, config, gset, spec)
    check_devices(config, devices, 1 if gset is None else gset.n_geometries)
    if out is None:
        return _train(system, spec, config, None, progress=progress, eval_steps=eval_steps, time_budget=time_budget,
                      geometries=gset, devices=devices)
    check_out_dir(out, fresh=True)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run folder {out}: {exc}") from None
    with lock_run(out):
        try:
            check_out_dir(out, fresh=True)  # again, now that no one else can write here
        except ConfigError:
            raise
        try:
            return _train(system, spec, config, out, progress=progress, eval_steps=eval_steps,
                          input_unit=input_unit, time_budget=time_budget, geometries=gset, devices=devices)
        except KeyboardInterrupt:
            raise RunInterrupted(out, (out / CHECKPOINT).exists()) from None
        except BaseException as exc:
            if not (out / CHECKPOINT).exists():
                remove_run_files(out, created)
            if isinstance(exc, jax.errors.JaxRuntimeError) and out_of_memory(exc):
                raise ConfigError(f"out of memory with {config.batch_size} walkers: "
                                  "use a smaller --batch-size") from None
            if isinstance(exc, OSError):
                raise _write_error(out, exc) from None
            raise


def _train(system=defaults.SYSTEM, ansatz: str | AnsatzSpec = defaults.ANSATZ, config: TrainConfig | None = None,
           out_dir: str | Path | None = None, *, preset: str | None = None, options: dict | None = None,
           progress: bool = True, eval_steps: int = 0, resume: bool = False, input_unit: str | None = None,
           time_budget: float | None = None, geometries=None, devices: int | None = None) -> RunResult:
    """The body of :func:`train` (same arguments; ``input_unit`` is the unit the geometry was
    read in, ``geometries`` a GeometrySet or None), run with its inputs checked and its folder
    locked."""
    from qmczoo.runs.pes import GEOMETRY_LOG, error_summary, truncate_geometry_log, write_geometry_log, write_pes
    from qmczoo.runs.states import STATE_LOG, truncate_state_log, write_state_log

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
        if restart:  # check_resume refused a folder with results; what is left is an empty log at most
            for name in ("train.csv", GEOMETRY_LOG):
                if (out / name).exists():
                    (out / name).unlink()
    else:
        system = get_system(system)
        spec = ansatz if isinstance(ansatz, AnsatzSpec) else get_ansatz(ansatz, preset, **(options or {}))
        config = config or TrainConfig()
        if out is not None:
            if (out / CHECKPOINT).exists() or (out / "train.csv").exists():
                raise ConfigError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
            out.mkdir(parents=True, exist_ok=True)
            save_config(out, system, spec, config, input_unit or "bohr", geometries)

    gset = geometries if geometries is not None and geometries.n_geometries > 1 else None
    positions = None if gset is None else gset.positions
    vmc = make_vmc(system, spec.build(system, geometries=positions), config, geometries=positions, devices=devices)
    pretraining = not (resume and not restart) and config.pretrain_steps > 0
    state = vmc.initial_state(optimizer=not pretraining)  # pretraining initialises the optimizer itself
    extra: dict[str, Any] = {"ansatz": spec.name, "preset": spec.preset, "input_unit": input_unit or "bohr",
                             "devices": vmc.devices,
                             "geometry_bohr": [[sym, *xyz] for sym, xyz in zip(system.symbols, system.coords)]}
    with Progress(progress) as bars:
        if resume and not restart:
            state, meta = checkpoint.load(out / CHECKPOINT, state)
            state = vmc.place(state)  # on this run's devices, however many the checkpoint was written from
            truncate_log(out, int(state.step))  # a damaged log is refused (check_resume has said so already)
            truncate_geometry_log(out / GEOMETRY_LOG, int(state.step))
            truncate_state_log(out / STATE_LOG, int(state.step))
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
        line = StepLine()
        rows, times, step_times, history = [], [], [], []
        last_good, n_bad = state, 0  # the NaN guard's last accepted state and the rejections since
        loop_start = last = time.perf_counter()
        several_processes = process_count() > 1
        try:
            with StepBoundaryInterrupt() as interrupt:  # a first Ctrl-C lets the step in flight finish
                for state, stats in iterate_steps(vmc, state, max(0, config.steps - start_step)):
                    n_bad = n_bad + 1 if stats.rejected else 0
                    if not stats.rejected:
                        last_good = state  # by reference: free, and its arrays are alive until the next step
                    elif n_bad == 1:
                        # kfac-jax donated last_good's parameter and optimizer arrays to this step (they are
                        # deleted); the rejected step handed back copies of exactly those values: keep copies
                        # of them, which no step is given. Only a rejected step pays for this copy.
                        last_good = last_good.replace(params=_copy(state.params), opt_state=_copy(state.opt_state))
                    if stats.rejected and n_bad >= config.max_rejected_steps:
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
                    if several_processes:  # a stop is agreed by every process at the same step
                        over_budget, interrupt.pending = any_process(over_budget, interrupt.pending)
                    if out is not None and (done % config.checkpoint_every == 0 or done == config.steps or over_budget):
                        write_geometry_log(out / GEOMETRY_LOG, rows)
                        write_state_log(out / STATE_LOG, rows)
                        append_rows(out / "train.csv", rows, offset, times)
                        rows, times = [], []
                        checkpoint.save(out / CHECKPOINT, state, {"step": done})
                    if over_budget:
                        break
                    interrupt.check()
        except KeyboardInterrupt:
            if out is not None and _alive(state):  # keep every finished step: the run resumes from here
                write_geometry_log(out / GEOMETRY_LOG, rows)
                write_state_log(out / STATE_LOG, rows)
                append_rows(out / "train.csv", rows, offset, times)
                checkpoint.save(out / CHECKPOINT, state, {"step": int(state.step)})
            raise
        if step_times and int(state.n_rejected) >= int(state.step) > 0:
            raise TrainingStopped(
                f"every one of the run's {int(state.step)} training steps was rejected (non-finite energy, gradient "
                f"or parameters), so its parameters are untrained: nothing was evaluated or summarised"
                + (f"; the checkpoint in {out} holds the state after step {int(state.step)}" if out is not None else "")
                + ". Lower the learning rate (--lr), pretrain (--pretrain-steps), or check the system")
        if step_times:
            extra["compile_seconds"] = step_times[0]
            from qmczoo.engine.devices import peak_memory

            host, device = peak_memory()  # after training: what a bigger molecule or batch would need
            extra["peak_memory_mib"] = {"host": host, "device": device,
                                        "per_walker": (device if device is not None else host) / config.batch_size}
        seconds_per_step = float(np.mean(step_times[1:])) if len(step_times) > 1 else float("nan")

        evaluation = None
        if eval_steps > 0:
            from qmczoo.engine.evaluate import evaluate
            from qmczoo.engine.states.evaluate import evaluate_states

            ebar = bars.task("evaluate", eval_steps)
            evaluation = (evaluate_states if config.states > 1 else evaluate)(
                vmc, state.params, state.walkers, eval_steps, jax.random.fold_in(state.key, EVALUATION_KEY_TAG),
                burn_in=EVALUATION_BURN_IN, progress=lambda i, e: ebar(info=f"E={e:.5f}"))

    if out is not None:
        log = read_log(out)
    else:
        log = {c: np.array([0.0 if c == "wall_time" else np.nan if getattr(s, c) is None else getattr(s, c)
                            for s in history], dtype=float)
               for c in CSV_COLUMNS}
    if gset is not None:  # the mean energy over geometries has no single reference
        extra["geometries"] = gset.to_dict()
    if gset is not None or config.states > 1:  # (nor has the sum of the energies of several states)
        system_for_summary = dataclasses.replace(system, reference_energy=None, reference_source=None)
    else:
        system_for_summary = system
    summary = summarize(system_for_summary, log, seconds_per_step, extra, evaluation)
    record = evaluation.to_dict() if evaluation is not None else None
    if config.states > 1 and evaluation is not None:
        from qmczoo.runs.states import states_record

        record.update(states_record(evaluation, system))
        summary["states"] = {k: v for k, v in record.items()
                             if k in ("objective", "states", "overlaps", "eigenstate_overlaps", "max_abs_error_mha")}
    if gset is not None and evaluation is not None and out is not None:
        rows = write_pes(out, gset, evaluation, title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}")
        summary["pes"] = rows
        summary.update(error_summary(rows))
        record.update(pes=rows, **error_summary(rows))
    if out is not None:
        if record is not None:
            write_json(out / "evaluation.json", record)
        write_json(out / "summary.json", summary)
        if config.states > 1:
            from qmczoo.runs.states import plot_states, write_states_csv

            if record is not None:
                write_states_csv(out, record)
            plot_states(out, record, title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}, "
                                           f"{config.states} states ({config.objective})")
        if log["step"].size:
            from qmczoo.runs.plotting import plot_training

            plot_training(log["step"], log["energy"], log["variance"], out / "energy.png",
                          monitor=log["monitor_energy"], reference=system_for_summary.reference_energy,
                          title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}",
                          evaluation=(evaluation.energy, evaluation.energy_error) if evaluation else None)
    return RunResult(vmc=vmc, state=state, summary=summary, out_dir=out, evaluation=evaluation)


def _alive(state) -> bool:
    """Whether no array of ``state`` was given away to (donated to) an optimizer step since."""
    return not any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(state))


def _copy(tree):
    """A copy of every array of ``tree`` (arrays that no optimizer step owns)."""
    return jax.tree.map(lambda x: x.copy() if hasattr(x, "copy") else x, tree)


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO)


def _write_error(out: Path, exc: OSError) -> BaseException:
    """A file of the run could not be written (a full disk...): one line saying what is kept."""
    if exc.errno not in _DISK_ERRORS and not isinstance(exc, PermissionError):
        return exc
    what = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    if (out / CHECKPOINT).exists():
        try:
            step = checkpoint.saved_step(out / CHECKPOINT)
        except ConfigError:
            step = None
        at = f" at step {step}" if step is not None else ""
        return RunWriteError(f"cannot write into run folder {out}: {what}. The run is checkpointed{at}: make room, "
                             f"then continue it with qmczoo train --resume {out}")
    return RunWriteError(f"cannot write into run folder {out}: {what}. Nothing of the run was kept; make room and "
                         "start it again")


class RunWriteError(QmczooError):
    """A run's file could not be written (no space left, a read-only disk); the checkpoint says what is kept."""


def _stop_after_rejections(out, rows, offset, times, last_good, n_bad, step):
    """Checkpoint the last accepted state and stop: the run is diverging (TrainingStopped)."""
    where = ""
    if out is not None:
        append_rows(out / "train.csv", rows, offset, times)
        checkpoint.save(out / CHECKPOINT, last_good, {"step": int(last_good.step)})
        where = f"; the last good state (step {int(last_good.step)}) is checkpointed in {out}"
    raise TrainingStopped(
        f"training stopped at step {step}: {n_bad} consecutive steps were rejected (non-finite energy, gradient "
        f"or parameters){where}. Lower the learning rate (--lr) or check the system")
