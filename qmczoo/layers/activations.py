"""Nonlinearities by name, for layers whose ``activation`` option is a string."""

from __future__ import annotations

import jax
import jax.numpy as jnp

ACTIVATIONS = {"tanh": jnp.tanh, "silu": jax.nn.silu, "softplus": jax.nn.softplus, "gelu": jax.nn.gelu}


def activation(name: str):
    """The nonlinearity called ``name`` (one of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        from qmczoo.errors import ConfigError

        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None
