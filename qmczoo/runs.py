"""Run folders: train, resume and evaluate with files a person (or a notebook) can read.

A run folder holds ``config.yaml`` (system, ansatz, settings), ``train.csv`` (one row per
step), ``checkpoint.msgpack`` (the latest state), ``energy.png``, ``summary.json`` and, after
an evaluation, ``evaluation.json``. Every function here is what the CLI calls.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from qmczoo import checkpoint
from qmczoo.errors import ConfigError, QmczooError
from qmczoo.registry import AnsatzSpec, get_ansatz
from qmczoo.statistics import reblock
from qmczoo.systems import System, get_system
from qmczoo.train import EVALUATION_KEY_TAG, VMC, StepStats, TrainConfig

CSV_COLUMNS = ("step", "energy", "variance", "acceptance", "step_size", "wall_time", "rejected", "monitor_energy")
CHECKPOINT = "checkpoint.msgpack"
SUMMARY_FRACTION = 0.2  # the summary energy averages the last 20% of training steps


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
    keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= last_step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(keep)


def _save_config(out_dir: Path, system: System, spec: AnsatzSpec, config: TrainConfig):
    from qmczoo import __version__

    data = {"qmczoo_version": __version__, "system": system.to_dict(), "ansatz": spec.to_dict(),
            "train": config.to_dict()}
    (out_dir / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def load_run_config(out_dir: str | Path) -> tuple[System, AnsatzSpec, TrainConfig]:
    """The system, ansatz and settings stored in a run folder's ``config.yaml``."""
    path = Path(out_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{out_dir} is not a qmczoo run folder (no config.yaml)")
    data = yaml.safe_load(path.read_text())
    a = data["ansatz"]
    spec = get_ansatz(a["name"], a.get("preset"), **(a.get("options") or {}))
    return System.from_dict(data["system"]), spec, TrainConfig.from_dict(data["train"])


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
        "seconds_per_step": seconds_per_step,
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


def train(system="LiH", ansatz: str | AnsatzSpec = "ferminet", config: TrainConfig | None = None,
          out_dir: str | Path | None = None, *, preset: str | None = None, options: dict | None = None,
          progress: bool = True, eval_steps: int = 0, resume: bool = False) -> RunResult:
    """Train an ansatz on a system; with ``out_dir``, write (or continue) a run folder.

    Args:
      system: anything :func:`qmczoo.systems.get_system` takes.
      ansatz: a registry name (with ``preset``/``options``) or an :class:`AnsatzSpec`.
      config: a :class:`TrainConfig` (defaults if None).
      out_dir: run folder; must not already hold a run unless ``resume``.
      progress: show progress bars.
      eval_steps: after training, evaluate the energy for this many steps (0: skip).
      resume: continue the run in ``out_dir`` from its checkpoint (system, ansatz and
        config come from its ``config.yaml``; a given ``config.steps`` extends the run).
    """
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder")
        system, spec, stored = load_run_config(out)
        if config is not None:
            stored = dataclasses.replace(stored, steps=config.steps)
        config = stored
        if not (out / CHECKPOINT).exists():
            raise ConfigError(f"{out} has no {CHECKPOINT} to resume from")
    else:
        system = get_system(system)
        spec = ansatz if isinstance(ansatz, AnsatzSpec) else get_ansatz(ansatz, preset, **(options or {}))
        config = config or TrainConfig()
        if out is not None:
            if (out / CHECKPOINT).exists() or (out / "train.csv").exists():
                raise ConfigError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
            out.mkdir(parents=True, exist_ok=True)
            _save_config(out, system, spec, config)

    vmc = VMC(system, spec.build(system), config)
    state = vmc.initial_state()
    extra: dict[str, Any] = {"ansatz": spec.name, "preset": spec.preset}
    with _Progress(progress) as bars:
        if resume:
            state, meta = checkpoint.load(out / CHECKPOINT, state)
            _truncate_log(out, int(state.step))
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
        loop_start = last = time.perf_counter()
        try:
            for _ in range(start_step, config.steps):
                state, stats = vmc.step(state)
                now = time.perf_counter()
                step_times.append(now - last)
                last = now
                rows.append(stats)
                history.append(stats)
                times.append(now - loop_start)
                bar(info=line(stats))
                done = int(state.step)
                if out is not None and (done % config.checkpoint_every == 0 or done == config.steps):
                    _write_csv_rows(out / "train.csv", rows, offset, times)
                    rows, times = [], []
                    checkpoint.save(out / CHECKPOINT, state, {"step": done})
        except KeyboardInterrupt:
            if out is not None:  # keep every finished step: the run resumes from here
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
                                  jax.random.fold_in(state.key, EVALUATION_KEY_TAG), burn_in=10,
                                  progress=lambda i, e: ebar(info=f"E={e:.5f}"))

    if out is not None:
        log = read_log(out)
    else:
        log = {c: np.array([0.0 if c == "wall_time" else np.nan if getattr(s, c) is None else getattr(s, c)
                            for s in history], dtype=float)
               for c in CSV_COLUMNS}
    summary = summarize(system, log, seconds_per_step, extra, evaluation)
    if out is not None:
        if evaluation is not None:
            (out / "evaluation.json").write_text(json.dumps(evaluation.to_dict(), indent=2))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        if log["step"].size:
            from qmczoo.plotting import plot_training

            plot_training(log["step"], log["energy"], log["variance"], out / "energy.png",
                          monitor=log["monitor_energy"], reference=system.reference_energy,
                          title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}",
                          evaluation=(evaluation.energy, evaluation.energy_error) if evaluation else None)
    return RunResult(vmc=vmc, state=state, summary=summary, out_dir=out, evaluation=evaluation)


def evaluate_run(out_dir: str | Path, steps: int = 1000, *, batch_size: int | None = None, seed: int | None = None,
                 burn_in: int = 20, progress: bool = True):
    """Evaluate the energy of a trained run folder; writes ``evaluation.json``.

    Uses the checkpoint's parameters and walkers (re-sampled from them if ``batch_size``
    differs from training).
    """
    from qmczoo.evaluate import evaluate
    from qmczoo.sampler import init_walkers

    out = Path(out_dir)
    system, spec, config = load_run_config(out)
    if not (out / CHECKPOINT).exists():
        raise ConfigError(f"{out} has no {CHECKPOINT}: train first")
    vmc = VMC(system, spec.build(system), config)
    template = vmc.initial_state()
    state, _ = checkpoint.load(out / CHECKPOINT, template)
    walkers = state.walkers
    key = jax.random.PRNGKey(config.seed if seed is None else seed)
    key = jax.random.fold_in(key, EVALUATION_KEY_TAG)
    if batch_size is not None and batch_size != walkers.r.shape[0]:
        walkers = init_walkers(key, system, batch_size, step_size=float(walkers.step_size), dtype=vmc.dtype)
        burn_in = max(burn_in, 100)
    with _Progress(progress) as bars:
        bar = bars.task("evaluate", steps)
        result = evaluate(vmc, state.params, walkers, steps, key, burn_in=burn_in,
                          progress=lambda i, e: bar(info=f"E={e:.5f}"))
    record = result.to_dict()
    record["trained_steps"] = int(state.step)
    if system.reference_energy is not None:
        record["reference_energy"] = system.reference_energy
        record["error_vs_reference_mha"] = 1000.0 * (result.energy - system.reference_energy)
    (out / "evaluation.json").write_text(json.dumps(record, indent=2))
    return result


__all__ = ["train", "evaluate_run", "load_run_config", "read_log", "summarize", "RunResult", "QmczooError"]
