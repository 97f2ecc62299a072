"""qmczoo: a zoo of neural-network wavefunctions for variational quantum Monte Carlo.

Every ansatz runs through the same sampler, Hamiltonian, trainer, pretraining and
evaluator. Quick start::

    import qmczoo
    result = qmczoo.run_training("LiH", "ferminet", preset="small", out_dir="runs/lih")
    print(result.summary["energy"], result.summary["energy_error"])
"""

__version__ = "0.1.0"

import os as _os

# Before numpy/scipy load OpenBLAS (see qmczoo.engine.threads): small LAPACK calls are much
# faster single-threaded. Respected only if the user has not set it.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", _os.environ.get("QMCZOO_BLAS_THREADS", "1"))

from qmczoo.errors import ConfigError, QmczooError, SystemSpecError  # noqa: E402
from qmczoo.registry import get_ansatz, list_ansatze, list_layers, register_ansatz, register_layer  # noqa: E402
from qmczoo.chemistry.systems import System, get_system  # noqa: E402

# The training machinery pulls in kfac-jax, folx and optax: imported on first use, so that
# `qmczoo list` and `qmczoo info` start quickly.
# (`qmczoo.runs.train` is the run-folder function, also exported as `run_training`.)
_LAZY = {"TrainConfig": ("qmczoo.engine.config", "TrainConfig"), "VMC": ("qmczoo.engine.vmc", "VMC"),
         "run_training": ("qmczoo.runs.lifecycle", "train"), "evaluate_run": ("qmczoo.runs.evaluation", "evaluate_run"),
         "run_bench": ("qmczoo.runs.bench", "run_bench"), "StatesVMC": ("qmczoo.engine.states", "StatesVMC"),
         "states": ("qmczoo.wavefunction", "states")}


def __getattr__(name):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name == "distributed":  # qmczoo.distributed.initialize(): jax is not started by the import
        return importlib.import_module("qmczoo.distributed")
    raise AttributeError(f"module 'qmczoo' has no attribute {name!r}")

__all__ = [
    "ConfigError", "QmczooError", "SystemSpecError", "System", "StatesVMC", "TrainConfig", "VMC",
    "distributed", "evaluate_run", "get_ansatz", "get_system", "list_ansatze", "list_layers", "register_ansatz",
    "register_layer", "run_bench", "run_training", "states",
]
