"""The settings of a VMC run (:class:`TrainConfig`): one source for every training default.

Kept free of jax so that the command line can read the defaults at start-up
(:mod:`qmczoo.defaults` builds the user-facing defaults from these fields).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qmczoo.errors import ConfigError

CLIP_CENTRES = ("median", "mean")
"""Centres of the local-energy clipping window (:func:`qmczoo.engine.loss.clip_local_energy`)."""
LAPLACIANS = ("folx", "jvp", "hessian")
"""Ways to compute the Laplacian of log|psi| (:mod:`qmczoo.engine.hamiltonian`)."""
DTYPES = ("float32", "float64")


OBJECTIVES = ("nes", "penalty")
"""Objectives of a run of several states (:mod:`qmczoo.engine.states.loss`)."""

OPTIMIZERS = ("kfac", "adam", "sgd")
DEFAULT_LEARNING_RATE = {"kfac": 0.05, "adam": 3e-3, "sgd": 1e-2}


DEFAULT_PRETRAIN_BASIS = "ccpvdz"
"""Pretraining targets' basis when neither the config nor the ansatz names one."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of a VMC run (everything but the system and the ansatz).

    Attributes:
      steps: optimisation steps.
      batch_size: walkers ``B``.
      optimizer: "kfac" (default), "adam" or "sgd".
      learning_rate: initial rate (None: 0.05 for KFAC, 3e-3 for Adam, 1e-2 for SGD),
        decayed as ``lr / (1 + t / lr_delay) ** lr_decay``.
      mcmc_steps: Metropolis steps between optimisation steps.
      burn_in: Metropolis steps before the first optimisation step.
      step_size, target_acceptance: initial proposal width (bohr) and adaptation target.
      pretrain_steps, pretrain_basis, pretrain_hf_fraction, pretrain_learning_rate:
        Hartree–Fock pretraining (0 steps: none; an ansatz without ``orbitals()``, such as
        PauliNet, which starts at its own reference, is not pretrained); walkers sample
        ``|psi_HF|^(2f) |psi|^(2(1-f))`` with ``f = pretrain_hf_fraction``. ``pretrain_basis``
        None (default): :func:`qmczoo.runs.train` takes the basis of the ansatz's own
        Hartree–Fock orbitals (its ``hf_basis`` option), so that the targets and the orbitals
        the ansatz starts from are the same; without one, and for a VMC built directly,
        :data:`DEFAULT_PRETRAIN_BASIS`.
      clip_scale: local-energy clipping window for the gradient, in mean absolute deviations.
      clip_centre: centre of that window, ``"median"`` of the batch (default) or ``"mean"``
        (FermiNet's default); measured in ``docs/benchmarks.md``.
      laplacian: "folx" (forward Laplacian), "jvp" or "hessian".
      local_energy_chunk: walkers per chunk of the local energy (0: chosen from the number
        of electrons, :func:`~qmczoo.engine.hamiltonian.default_chunk_size`); the batch is evaluated
        chunk by chunk so that the forward Laplacian's Jacobians stay in the CPU caches.
      damping, norm_constraint, curvature_ema, inverse_update_period: KFAC settings.
      dtype: "float32" or "float64" (sets jax's global ``jax_enable_x64`` to match).
      seed: random seed (same seed, same run).
      checkpoint_every: steps between checkpoints (a final one is always written).
      monitor_walkers, monitor_every: the *monitor chain*, an honest energy while training:
        ``monitor_walkers`` walkers that sample ``|psi|^2`` of the current parameters but are
        never used for an update; every ``monitor_every`` steps they take ``mcmc_steps``
        Metropolis steps and their mean local energy is logged (``monitor_energy``). The
        training walkers' energy reads low early in training, because each update was fitted
        to walkers the next step starts from. 0 walkers: off.
      max_rejected_steps: a run stops (with a checkpoint of its last good state) after this
        many consecutive steps rejected by the NaN guard.
      states: number of states trained at once (1: the ground state; see
        :mod:`qmczoo.engine.states`).
      objective: with several states, ``"nes"`` (NES-VMC, the default) or ``"penalty"`` (the
        overlap penalty method).
      penalty: the penalty method's weight ``alpha`` (hartree).

    Every field is checked on construction (type, range, finiteness); a bad value raises
    :class:`~qmczoo.errors.ConfigError`.
    """

    steps: int = 1200
    batch_size: int = 256
    optimizer: str = "kfac"
    learning_rate: float | None = None
    lr_delay: float = 10000.0
    lr_decay: float = 1.0
    mcmc_steps: int = 10
    burn_in: int = 100
    step_size: float = 0.1
    target_acceptance: float = 0.5
    pretrain_steps: int = 500
    pretrain_basis: str | None = None
    pretrain_hf_fraction: float = 1.0
    pretrain_learning_rate: float = 3e-4
    clip_scale: float = 5.0
    clip_centre: str = "median"
    laplacian: str = "folx"
    local_energy_chunk: int = 0
    damping: float = 1e-3
    norm_constraint: float = 3e-3
    curvature_ema: float = 0.95
    inverse_update_period: int = 1
    dtype: str = "float32"
    seed: int = 0
    checkpoint_every: int = 100
    monitor_walkers: int = 64
    monitor_every: int = 10
    max_rejected_steps: int = 20
    states: int = 1
    objective: str = "nes"
    penalty: float = 1.0

    def __post_init__(self):
        import math

        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.laplacian not in LAPLACIANS:
            raise ConfigError(f"unknown laplacian method {self.laplacian!r}; choose one of: {', '.join(LAPLACIANS)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        if self.clip_centre not in CLIP_CENTRES:
            raise ConfigError(f"clip_centre must be one of: {', '.join(CLIP_CENTRES)}; got {self.clip_centre!r}")
        if self.pretrain_basis is not None and (not isinstance(self.pretrain_basis, str)
                                                or not self.pretrain_basis.strip()):
            raise ConfigError(f"pretrain_basis must be a basis-set name, got {self.pretrain_basis!r}")
        for name, low in (("steps", 0), ("burn_in", 0), ("pretrain_steps", 0), ("batch_size", 1), ("mcmc_steps", 1),
                          ("checkpoint_every", 1), ("inverse_update_period", 1), ("max_rejected_steps", 1),
                          ("seed", 0), ("monitor_walkers", 0), ("monitor_every", 1),
                          ("local_energy_chunk", 0), ("states", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            if int(value) < low:
                raise ConfigError(f"{name} must be >= {low}, got {value}")
            setattr(self, name, int(value))
        if self.seed >= 2**32:
            raise ConfigError(f"seed must be below 2**32 = {2**32}, got {self.seed}")

        def number(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
            return float(value)

        # (name, lowest allowed, whether the lowest value itself is allowed, highest or None, highest allowed)
        ranges = (("lr_delay", 0.0, False, None, False), ("lr_decay", 0.0, True, None, False),
                  ("step_size", 0.0, False, None, False), ("target_acceptance", 0.0, False, 1.0, False),
                  ("pretrain_hf_fraction", 0.0, True, 1.0, True), ("pretrain_learning_rate", 0.0, False, None, False),
                  ("clip_scale", 0.0, False, None, False), ("damping", 0.0, True, None, False),
                  ("norm_constraint", 0.0, False, None, False), ("curvature_ema", 0.0, True, 1.0, False),
                  ("penalty", 0.0, False, None, False))
        for name, low, low_ok, high, high_ok in ranges:
            v = number(name, getattr(self, name))
            if v < low or (v == low and not low_ok) or (high is not None and (v > high or (v == high and not high_ok))):
                lo = f"{'[' if low_ok else '('}{low:g}"
                hi = f"{high:g}{']' if high_ok else ')'}" if high is not None else "inf)"
                raise ConfigError(f"{name} must lie in {lo}, {hi}, got {v!r}")
            setattr(self, name, v)
        if self.learning_rate is not None:
            v = number("learning rate", self.learning_rate)
            if v <= 0:
                raise ConfigError(f"learning rate must be > 0, got {v!r}")
            self.learning_rate = v

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.optimizer]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**d)
