"""``summary.json``: the most honest energy a run has, and how it was obtained."""

from __future__ import annotations

import math

import numpy as np

from qmczoo.chemistry.system import System
from qmczoo.engine.statistics import reblock

SUMMARY_FRACTION = 0.2  # the summary energy averages the last 20% of training steps


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
