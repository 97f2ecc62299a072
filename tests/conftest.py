"""Shared fixtures. Physics tests run in float64 (the trainer handles its own dtype)."""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from qmczoo.registry import get_ansatz  # noqa: E402
from qmczoo.systems import get_system  # noqa: E402
from qmczoo.testing import random_configuration, to_float64  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Every test (and its fixtures, whatever their scope) starts in float64.

    ``qmczoo.train.VMC`` sets the global ``jax_enable_x64`` to match its run's dtype, so a
    float32 training test would otherwise leave x64 off for every test after it.
    """
    jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def lih():
    return get_system("LiH")


@pytest.fixture(scope="session")
def lih_ferminet(lih):
    """``(wf, params, R)``: a tiny FermiNet on LiH with float64 parameters."""
    wf = get_ansatz("ferminet", preset="tiny").build(lih)
    R = jnp.asarray(lih.positions, dtype=jnp.float64)
    r = random_configuration(jax.random.PRNGKey(0), lih, jnp.float64)
    params = to_float64(jax.jit(wf.init)(jax.random.PRNGKey(1), r, R))
    return wf, params, R


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
