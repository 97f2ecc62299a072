"""The invariance suite of qmczoo, run on this plug-in's entries (``pytest tests`` here)."""

import pytest

from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.testing import check_layer, check_spec


def test_the_layer_keeps_what_it_claims():
    check_layer("mean_field_embedding")  # permutation equivariance, translation/rotation invariance, KFAC


@pytest.mark.parametrize("system", ["H2", "Li"])
@pytest.mark.parametrize("ansatz", ["example_slater_jastrow", "example_haiku_slater"])
def test_the_ansatze_honour_the_contract(ansatz, system):
    check_spec(get_ansatz(ansatz, preset="tiny"), get_system(system))  # antisymmetry, KFAC blocks, ...
