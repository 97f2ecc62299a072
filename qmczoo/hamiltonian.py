"""The molecular Hamiltonian and the local energy of any ``log|psi|``.

    E_L(r) = -1/2 (lap log|psi| + |grad log|psi||^2) + V(r)

with ``V`` the Coulomb energy of electrons and clamped nuclei (atomic units). The kinetic
term uses folx's forward Laplacian by default; ``method="hessian"`` is the plain Hessian
trace, kept as the reference implementation that tests compare against.
"""

from __future__ import annotations

from typing import Callable

import folx
import jax
import jax.numpy as jnp

from qmczoo.errors import ConfigError

LogPsi = Callable[..., jnp.ndarray]  # (params, r [N,3], R [M,3]) -> scalar


def potential_energy(r: jnp.ndarray, R: jnp.ndarray, charges: jnp.ndarray) -> jnp.ndarray:
    """Coulomb energy (hartree) of electrons ``r`` ``[N,3]`` and nuclei ``R`` ``[M,3]``, ``Z`` ``[M]``."""
    n, m = r.shape[0], R.shape[0]
    en = jnp.linalg.norm(r[:, None] - R[None], axis=-1)
    v = -jnp.sum(charges[None] / en)
    if n > 1:
        i, j = jnp.triu_indices(n, k=1)
        v = v + jnp.sum(1.0 / jnp.linalg.norm(r[i] - r[j], axis=-1))
    if m > 1:
        i, j = jnp.triu_indices(m, k=1)
        v = v + jnp.sum(charges[i] * charges[j] / jnp.linalg.norm(R[i] - R[j], axis=-1))
    return v


def _kinetic_folx(f, x):
    out = folx.forward_laplacian(f, sparsity_threshold=0)(x)
    grad = out.jacobian.dense_array
    return -0.5 * (out.laplacian + jnp.sum(grad**2))


def _kinetic_hessian(f, x):
    grad = jax.grad(f)(x)
    lap = jnp.trace(jax.hessian(f)(x))
    return -0.5 * (lap + jnp.sum(grad**2))


def _kinetic_jvp(f, x):
    """Laplacian as the trace of Hessian-vector products (one linearisation, 3N jvps)."""
    grad, hvp = jax.linearize(jax.grad(f), x)
    eye = jnp.eye(x.shape[0], dtype=x.dtype)
    lap = jnp.sum(eye * jax.vmap(hvp)(eye))
    return -0.5 * (lap + jnp.sum(grad**2))


KINETIC = {"folx": _kinetic_folx, "hessian": _kinetic_hessian, "jvp": _kinetic_jvp}


def make_kinetic_energy(log_psi: LogPsi, method: str = "folx"):
    """``T(params, r [N,3], R [M,3]) -> scalar``: the local kinetic energy ``-1/2 lap psi / psi``."""
    if method not in KINETIC:
        raise ConfigError(f"unknown laplacian method {method!r}; choose one of: {', '.join(KINETIC)}")
    kinetic = KINETIC[method]

    def kinetic_energy(params, r, R):
        shape = r.shape
        f = lambda x: log_psi(params, x.reshape(shape), R)  # noqa: E731
        return kinetic(f, r.reshape(-1))

    return kinetic_energy


def make_batch_local_energy(wf, charges, method: str = "folx"):
    """``E_L(params, r [B,N,3], R) -> [B]`` for a :class:`~qmczoo.wavefunction.Wavefunction`.

    ``R`` is one geometry ``[M, 3]`` or ``G`` grouped geometries ``[G, M, 3]``
    (:func:`~qmczoo.wavefunction.per_geometry`). An ansatz with a per-geometry stage runs it
    once per geometry; the Laplacian goes through the electron stage only.
    """
    from qmczoo.wavefunction import per_geometry

    if not wf.has_geometry_stage:
        local_energy = make_local_energy(wf.log_psi, charges, method)

        def one_geometry(params, r, R):
            return jax.vmap(local_energy, in_axes=(None, 0, None))(params, r, R)
    else:
        local_energy = make_local_energy(lambda ps, x, R: wf.electron_stage(ps[0], ps[1], x, R)[1], charges, method)

        def one_geometry(params, r, R):
            stage = wf.geometry_stage(params, R)
            return jax.vmap(local_energy, in_axes=(None, 0, None))((params, stage), r, R)

    return per_geometry(one_geometry)


def make_local_energy(log_psi: LogPsi, charges, method: str = "folx"):
    """``E_L(params, r [N,3], R [M,3]) -> scalar`` for nuclear ``charges`` ``[M]``."""
    kinetic_energy = make_kinetic_energy(log_psi, method)
    charges = jnp.asarray(charges)

    def local_energy(params, r, R):
        return kinetic_energy(params, r, R) + potential_energy(r, R, charges.astype(r.dtype))

    return local_energy
