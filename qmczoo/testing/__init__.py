"""Invariance and contract checks for ansätze and layers: library utilities for plug-in authors.

* :mod:`qmczoo.testing.contract` — checks of a whole :class:`~qmczoo.wavefunction.Wavefunction`
  (antisymmetry, translation/rotation invariance, finiteness, orbital shapes, KFAC curvature),
  and :func:`run_contract_checks`, which runs them (plus the checks an ansatz's claims call for).
* :mod:`qmczoo.testing.layers` — :func:`check_layer` runs on ONE registered layer the checks
  that its registry claims call for (permutation equivariance within each spin, translation and
  rotation invariance, antisymmetry, decay, smoothness at coalescence, cusps, KFAC curvature).

    >>> from qmczoo.testing import run_contract_checks, check_spec, check_layer
    >>> check_spec(get_ansatz("ferminet", preset="tiny"), get_system("LiH"))   # AssertionError if broken
    >>> check_layer("schnet_embedding")
"""

from qmczoo.testing.contract import *  # noqa: F401,F403
from qmczoo.testing.contract import __all__ as _contract_all
from qmczoo.testing.layers import check_layer, layer_harness  # noqa: F401

__all__ = list(_contract_all) + ["check_layer", "layer_harness"]
