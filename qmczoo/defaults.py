"""One source for every default of a user-facing run.

``qmczoo train``, ``qmczoo evaluate``, ``qmczoo bench``, :func:`qmczoo.run_training` and
:func:`qmczoo.run_bench` read their defaults here, and the command line's help texts are written
from these values (:func:`shown`). The training settings are the field defaults of
:class:`~qmczoo.engine.config.TrainConfig` themselves (the main job: 1,200 KFAC steps of 256
walkers after 500 pretraining steps, measured in ``docs/benchmarks.md``); the rest are the
settings of a run that are not training settings. Kept free of jax (the CLI reads it at start-up).
"""

from __future__ import annotations

import dataclasses

from qmczoo.engine.config import TrainConfig

TRAIN = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
"""Every :class:`TrainConfig` field with its default (the ``learning_rate`` default None means
"per optimizer": :data:`~qmczoo.engine.config.DEFAULT_LEARNING_RATE`)."""

SYSTEM = "LiH"
ANSATZ = "ferminet"
PRESET = "small"
EVAL_STEPS = 200
"""Evaluation steps after training (``qmczoo train``, every bench cell)."""
EVALUATE_STEPS = 1000
"""Measurement steps of ``qmczoo evaluate`` / :func:`qmczoo.runs.evaluate_run`."""
BENCH_SYSTEMS = "H2,LiH,Be"
BENCH_HF_BASIS = "cc-pv5z"
"""Basis of the UHF energy a bench uses for the share of correlation energy."""

_RUN_KEYS = ("steps", "batch_size", "optimizer", "pretrain_steps", "mcmc_steps", "burn_in", "laplacian", "dtype",
             "checkpoint_every", "monitor_walkers", "monitor_every", "seed", "states", "objective", "penalty")
RUN_DEFAULTS = {**{k: TRAIN[k] for k in _RUN_KEYS}, "eval_steps": EVAL_STEPS}
"""The settings the command line and the bench expose, with their defaults."""


def shown(name: str) -> str:
    """``"(default: 1200)"`` for a key of :data:`RUN_DEFAULTS`, for help texts."""
    return f"(default: {RUN_DEFAULTS[name]})"
