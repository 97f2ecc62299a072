"""Invariance and contract checks for ansätze and layers: library utilities for plug-in authors.

* :mod:`qmczoo.testing.contract` — checks of a whole :class:`~qmczoo.wavefunction.Wavefunction`
  (antisymmetry, translation/rotation invariance, finiteness, orbital shapes, KFAC curvature),
  and :func:`run_contract_checks`, which runs them (plus the checks an ansatz's claims call for).
* :mod:`qmczoo.testing.layers` — :func:`check_layer` runs on ONE registered layer the checks
  that its registry claims call for (permutation equivariance within each spin, translation,
  rotation and inversion invariance, ``preserves``, antisymmetry, decay, smoothness at
  coalescence, cusps, KFAC curvature).
* :mod:`qmczoo.testing.imposed` — :func:`check_imposed_symmetry`: psi changes under a rotation
  or inversion of the electrons about an atom (nuclei fixed) exactly when the ansatz does not
  impose invariance under it (:meth:`qmczoo.registry.AnsatzSpec.imposes`).

    >>> from qmczoo.testing import run_contract_checks, check_spec, check_layer
    >>> check_spec(get_ansatz("ferminet", preset="tiny"), get_system("LiH"))   # AssertionError if broken
    >>> check_layer("schnet_embedding")
"""

from qmczoo.testing.contract import *  # noqa: F401,F403
from qmczoo.testing.contract import __all__ as _contract_all
from qmczoo.testing.imposed import check_imposed_symmetry, symmetry_changes  # noqa: F401
from qmczoo.testing.layers import check_layer, layer_harness  # noqa: F401

__all__ = list(_contract_all) + ["check_layer", "layer_harness", "check_imposed_symmetry", "symmetry_changes"]
