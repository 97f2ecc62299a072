"""Jastrow factors: symmetric log-factors added to log|psi|.

``simple_ee``: ``J = sum_{i<j} -c_ij a^2 / (a + r_ij)`` with a learnable length ``a``; its
derivative at ``r_ij = 0`` is ``c_ij``, so choosing ``c = 1/2`` for opposite spins and
``c = 1/4`` for equal spins gives the Jastrow factor *itself* Kato's electron–electron cusps.
The whole ansatz has them only if the rest of it is smooth at coalescence: FermiNet's pair
stream takes ``|r_ij|`` as an input, whose kink adds its own (learned) cusp, so for FermiNet
the Jastrow sets the right cusp at initialisation and the network may move away from it.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.errors import ConfigError
from qmczoo.layers.curvature import tracked_parameter
from qmczoo.layers.features import electron_electron


class ElectronElectronCuspJastrow(nn.Module):
    """Electron–electron cusp Jastrow (see module docstring).

    Call: ``r`` ``[N, 3]`` (up electrons first). Returns a scalar added to log|psi|.
    """

    n_up: int

    @nn.compact
    def __call__(self, r: jnp.ndarray) -> jnp.ndarray:
        n = r.shape[0]
        _, dist = electron_electron(r)
        dist = dist[..., 0]
        spin = jnp.arange(n) < self.n_up
        same = spin[:, None] == spin[None, :]
        cusp = jnp.where(same, 0.25, 0.5)
        # nonlinear parameters: tracked so that KFAC sees their per-walker derivatives
        log_alpha_parallel = tracked_parameter(self.param("log_alpha_parallel", nn.initializers.zeros, ()), r)
        log_alpha_anti = tracked_parameter(self.param("log_alpha_anti", nn.initializers.zeros, ()), r)
        alpha = jnp.where(same, jnp.exp(log_alpha_parallel), jnp.exp(log_alpha_anti))
        upper = jnp.triu(jnp.ones((n, n), dtype=bool), k=1)
        terms = -cusp * alpha**2 / (alpha + dist)
        return jnp.sum(jnp.where(upper, terms, 0.0))


JASTROWS = {"none": None, "simple_ee": ElectronElectronCuspJastrow}


def make_jastrow(kind: str, n_up: int, name: str = "jastrow") -> nn.Module | None:
    """Build the Jastrow called ``kind`` ("none" or "simple_ee"); ``None`` for "none"."""
    if kind not in JASTROWS:
        raise ConfigError(f"unknown jastrow {kind!r}; choose one of: {', '.join(JASTROWS)}")
    cls = JASTROWS[kind]
    return None if cls is None else cls(n_up=n_up, name=name)
