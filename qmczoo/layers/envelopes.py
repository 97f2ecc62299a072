"""Envelopes: multiplicative factors that make orbitals decay far from the nuclei.

An envelope maps electron–nuclear displacements ``[N, M, 3]`` and distances ``[N, M, 1]``
of the electrons it serves to a factor ``[N, K]`` for ``K`` orbitals:

    env[i, k] = sum_I  pi[I, k] * exp(-|A[I, k] (r_i - R_I)|)

where ``A`` is a scalar per (nucleus, orbital) for the isotropic envelope and a 3x3 matrix
for the full (anisotropic) one. Every term decays exponentially, so orbitals vanish at large
distance whatever the network in front of them does.

KFAC: ``pi`` and the isotropic exponents are registered scales (per-walker diagonal blocks);
the full envelope's matrices are one repeated-dense block per nucleus. The absolute value is
taken of the *product* ``|sigma d|`` (equal to ``|sigma| d`` since ``d >= 0``), so that the
parameter itself enters linearly where kfac-jax can see it.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense, scale
from qmczoo.layers.geometry_params import geometry_value


def _initial(values, index: int):
    """Initialiser: ``values[index]`` (a nested tuple ``[M, K]``) if given, else ones."""
    if values is None:
        return nn.initializers.ones

    def init(key, shape, dtype=jnp.float32):
        x = jnp.asarray(values[index], dtype)
        if x.shape != tuple(shape):
            raise ValueError(f"initial envelope values have shape {x.shape}, the envelope needs {tuple(shape)}")
        return x

    return init


class IsotropicEnvelope(nn.Module):
    """``sum_I pi_Ik exp(-|sigma_Ik| |r_i - R_I|)``.

    Attributes:
      orbitals: ``K``.
      initial: ``(pi [M, K], sigma [M, K])`` as nested tuples (e.g. fitted to Hartree–Fock
        orbitals, :func:`qmczoo.layers.gaussian_orbitals.isotropic_envelope_from_hf`), or
        ``None`` for ones.

    Call: ``disp`` ``[N, M, 3]`` (unused), ``dist`` ``[N, M, 1]``. Returns ``[N, K]``.

    ``pi`` and ``sigma`` are per-nucleus geometry values (:mod:`qmczoo.layers.geometry_params`):
    under a geometry encoder (PESNet) they are the encoder's output for each nucleus.
    """

    orbitals: int
    initial: tuple | None = None

    @nn.compact
    def __call__(self, disp: jnp.ndarray, dist: jnp.ndarray) -> jnp.ndarray:
        n, m = dist.shape[0], dist.shape[1]
        shape = (m, self.orbitals)
        pi = geometry_value(self, "pi", shape, _initial(self.initial, 0), per_nucleus=True)
        sigma = geometry_value(self, "sigma", shape, _initial(self.initial, 1), per_nucleus=True)
        dist = jnp.broadcast_to(dist, (n, m, self.orbitals))
        if pi is not None and sigma is not None:  # supplied by an encoder: its heads carry the curvature
            return jnp.sum(pi * jnp.exp(-jnp.abs(dist * sigma)), axis=1)
        pi = self.param("pi", _initial(self.initial, 0), shape)
        sigma = self.param("sigma", _initial(self.initial, 1), shape)
        decay = jnp.exp(-jnp.abs(scale(dist, sigma)))  # [N, M, K]
        return jnp.sum(scale(decay, pi), axis=1)


def _identity_kernel(orbitals: int, sigma=None):
    """Kernel ``[3, 3K]`` that maps a displacement to K copies of itself (times ``sigma [K]``)."""

    def init(key, shape, dtype=jnp.float32):
        kernel = jnp.tile(jnp.eye(3, dtype=dtype), (1, orbitals))
        if sigma is not None:
            kernel = kernel * jnp.repeat(jnp.asarray(sigma, dtype), 3)[None, :]
        return kernel

    return init


class FullEnvelope(nn.Module):
    """``sum_I pi_Ik exp(-|Sigma_Ik (r_i - R_I)|)`` with a 3x3 matrix ``Sigma_Ik``.

    The matrices of nucleus ``I`` form one kernel ``[3, 3K]`` (``sigma_I``), a dense map of the
    displacement ``r_i - R_I``. ``initial`` as for :class:`IsotropicEnvelope` (the matrices
    start as ``sigma_Ik`` times the identity). Call: ``disp`` ``[N, M, 3]``, ``dist``
    ``[N, M, 1]`` (unused). Returns ``[N, K]``.
    """

    orbitals: int
    initial: tuple | None = None

    @nn.compact
    def __call__(self, disp: jnp.ndarray, dist: jnp.ndarray) -> jnp.ndarray:
        n, m = disp.shape[0], disp.shape[1]
        pi = self.param("pi", _initial(self.initial, 0), (m, self.orbitals))
        sigmas = None if self.initial is None else self.initial[1]
        scaled = jnp.stack([
            Dense(3 * self.orbitals, use_bias=False,
                  kernel_init=_identity_kernel(self.orbitals, None if sigmas is None else sigmas[i]),
                  name=f"sigma_{i}")(disp[:, i, :])
            for i in range(m)
        ], axis=1).reshape(n, m, self.orbitals, 3)
        # norm with a finite derivative at zero (an electron on a nucleus)
        norm = jnp.sqrt(jnp.sum(scaled**2, axis=-1) + 1e-20)
        return jnp.sum(scale(jnp.exp(-norm), pi), axis=1)
