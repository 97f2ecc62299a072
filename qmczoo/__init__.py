"""qmczoo: a zoo of neural-network wavefunctions for variational quantum Monte Carlo.

Every ansatz runs through the same sampler, Hamiltonian, trainer, pretraining and
evaluator. Quick start::

    import qmczoo
    result = qmczoo.train("LiH", "ferminet", preset="small", out_dir="runs/lih")
    print(result.summary["energy"], result.summary["energy_error"])
"""

__version__ = "0.1.0"

import os as _os

# Before numpy/scipy load OpenBLAS (see qmczoo.threads): small LAPACK calls are much
# faster single-threaded. Respected only if the user has not set it.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", _os.environ.get("QMCZOO_BLAS_THREADS", "1"))

from qmczoo.errors import ConfigError, QmczooError, SystemSpecError  # noqa: E402
from qmczoo.registry import get_ansatz, list_ansatze, list_layers, register_ansatz, register_layer  # noqa: E402
from qmczoo.systems import System, get_system  # noqa: E402
from qmczoo.train import TrainConfig, VMC  # noqa: E402
from qmczoo.runs import evaluate_run, train  # noqa: E402

__all__ = [
    "ConfigError", "QmczooError", "SystemSpecError", "System", "TrainConfig", "VMC",
    "evaluate_run", "get_ansatz", "get_system", "list_ansatze", "list_layers", "register_ansatz",
    "register_layer", "train",
]
