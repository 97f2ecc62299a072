"""Envelopes: multiplicative factors that make orbitals decay far from the nuclei.

An envelope maps electron–nuclear displacements ``[N, M, 3]`` and distances ``[N, M, 1]``
of the electrons it serves to a factor ``[N, K]`` for ``K`` orbitals:

    env[i, k] = sum_I  pi[I, k] * exp(-|A[I, k] (r_i - R_I)|)

where ``A`` is a positive scalar per (nucleus, orbital) for the isotropic envelope and a
3x3 matrix for the full (anisotropic) one. Every term decays exponentially, so orbitals
vanish at large distance whatever the network in front of them does.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.errors import ConfigError


class IsotropicEnvelope(nn.Module):
    """``sum_I pi_Ik exp(-sigma_Ik |r_i - R_I|)`` with ``sigma_Ik`` used through ``|sigma|``."""

    orbitals: int

    @nn.compact
    def __call__(self, disp: jnp.ndarray, dist: jnp.ndarray) -> jnp.ndarray:
        m = dist.shape[1]
        pi = self.param("pi", nn.initializers.ones, (m, self.orbitals))
        sigma = self.param("sigma", nn.initializers.ones, (m, self.orbitals))
        exponent = -dist * jnp.abs(sigma)[None]  # [N, M, K]
        return jnp.sum(jnp.exp(exponent) * pi[None], axis=1)


def _identity_stack(key, shape, dtype=jnp.float32):
    m, k = shape[0], shape[1]
    return jnp.broadcast_to(jnp.eye(3, dtype=dtype), (m, k, 3, 3))


class FullEnvelope(nn.Module):
    """``sum_I pi_Ik exp(-|Sigma_Ik (r_i - R_I)|)`` with a 3x3 matrix ``Sigma_Ik``."""

    orbitals: int

    @nn.compact
    def __call__(self, disp: jnp.ndarray, dist: jnp.ndarray) -> jnp.ndarray:
        m = dist.shape[1]
        pi = self.param("pi", nn.initializers.ones, (m, self.orbitals))
        sigma = self.param("sigma", _identity_stack, (m, self.orbitals, 3, 3))
        scaled = jnp.einsum("imx,mkyx->imky", disp, sigma)  # [N, M, K, 3]
        # norm with a finite derivative at zero (an electron on a nucleus)
        norm = jnp.sqrt(jnp.sum(scaled**2, axis=-1) + 1e-20)
        return jnp.sum(jnp.exp(-norm) * pi[None], axis=1)


ENVELOPES = {"isotropic": IsotropicEnvelope, "full": FullEnvelope}


def make_envelope(kind: str, orbitals: int, name: str | None = None) -> nn.Module:
    """Build the envelope called ``kind`` ("isotropic" or "full") for ``orbitals`` orbitals."""
    try:
        cls = ENVELOPES[kind]
    except KeyError:
        raise ConfigError(
            f"unknown envelope {kind!r}; choose one of: {', '.join(sorted(ENVELOPES))}"
        ) from None
    return cls(orbitals=orbitals, name=name)
