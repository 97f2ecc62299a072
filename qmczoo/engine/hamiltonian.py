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


def default_chunk_size(n_electrons: int) -> int:
    """Walkers per chunk of the batched local energy (:func:`make_batch_local_energy`).

    The forward Laplacian carries a Jacobian ``[3N, N, width]`` per walker and layer; over a
    whole batch these arrays spill out of the CPU caches and the computation becomes
    memory-bound. Chunks of about ``512 / N**2`` walkers (a power of two: 32 for LiH) keep
    them at about a megabyte for 128-wide layers. Measured on LiH (FermiNet `small`, 256
    walkers, 2-core CPU): 45 ms per batch in chunks of 32 against 75 ms in one piece. Below 16
    walkers a chunk is too small to vectorise well: FermiNet `small` KFAC steps (256 walkers,
    2-core CPU) took 0.229 s on Ne in chunks of 16 against 0.250 in chunks of 4 (0.242 in 8,
    0.263 in 32), 0.104 against 0.121 s on N (8), 0.088 against 0.132 s on C (8); so at least 16.
    """
    target = max(16, 512 // max(1, n_electrons) ** 2)
    return 1 << (target.bit_length() - 1)


def to_chunks(x, chunk_size: int):
    """``x`` ``[b, ...]`` as ``[n_chunks, chunk_size, ...]`` (padded with copies of ``x[0]``),
    chunk ``k`` holding the walkers ``k, k + n_chunks, k + 2 n_chunks, ...``.

    Strided, not contiguous: with the walker axis split over devices in contiguous blocks,
    every chunk then takes the same share of walkers from every device and stays split the same
    way, so a device computes only its own walkers (contiguous chunks would make XLA gather
    the whole batch onto every device). :func:`from_chunks` undoes it."""
    b = x.shape[0]
    n_chunks = -(-b // chunk_size)
    pad = n_chunks * chunk_size - b
    padded = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))]) if pad else x
    return jnp.swapaxes(padded.reshape(chunk_size, n_chunks, *x.shape[1:]), 0, 1)


def from_chunks(out, b: int):
    """The ``[b, ...]`` results of ``out`` ``[n_chunks, chunk_size, ...]`` (:func:`to_chunks`'s layout)."""
    n_chunks, chunk_size = out.shape[:2]
    return jnp.swapaxes(out, 0, 1).reshape(n_chunks * chunk_size, *out.shape[2:])[:b]


def map_in_chunks(fn, chunk_size: int | None):
    """Lift ``fn(params, r [b,N,3], R) -> [b]`` to evaluate ``r`` ``chunk_size`` walkers at a
    time (``jax.lax.map`` over chunks in :func:`to_chunks`'s strided layout; a batch that does
    not divide is padded and cut back). ``None`` or a chunk as large as the batch: ``fn`` on
    the whole batch."""
    if chunk_size is None:
        return fn

    def chunked(params, r, R):
        b = r.shape[0]
        if b <= chunk_size:
            return fn(params, r, R)
        return from_chunks(jax.lax.map(lambda x: fn(params, x, R), to_chunks(r, chunk_size)), b)

    return chunked


def make_batch_local_energy(wf, charges, method: str = "folx", chunk_size: int | None = None,
                            pseudopotential=None):
    """``E_L(params, r [B,N,3], R) -> [B]`` for a :class:`~qmczoo.wavefunction.Wavefunction`.

    ``R`` is one geometry ``[M, 3]`` or ``G`` grouped geometries ``[G, M, 3]``
    (:func:`~qmczoo.wavefunction.per_geometry`). An ansatz with a per-geometry stage runs it
    once per geometry; the Laplacian goes through the electron stage only. Walkers are
    evaluated ``chunk_size`` at a time (:func:`map_in_chunks`; ``None``: all at once).

    With ``pseudopotential`` (:class:`~qmczoo.engine.pseudopotential.PseudopotentialTerms` of a
    system with an ECP; ``charges`` then the effective charges) the result is
    ``E_L(params, r, R, key) -> [B]``: the ECP's nonlocal term needs a random key
    (:func:`~qmczoo.engine.pseudopotential.make_batch_local_energy_with_ecp`).
    """
    from qmczoo.wavefunction import per_geometry

    if pseudopotential is not None:
        from qmczoo.engine.pseudopotential import make_batch_local_energy_with_ecp

        return make_batch_local_energy_with_ecp(wf, charges, pseudopotential, method, chunk_size)

    if not wf.has_geometry_stage:
        local_energy = make_local_energy(wf.log_psi, charges, method)
        one_geometry = map_in_chunks(jax.vmap(local_energy, in_axes=(None, 0, None)), chunk_size)
    else:
        local_energy = make_local_energy(lambda ps, x, R: wf.electron_stage(ps[0], ps[1], x, R)[1], charges, method)
        batched = map_in_chunks(jax.vmap(local_energy, in_axes=(None, 0, None)), chunk_size)

        def one_geometry(params, r, R):
            return batched((params, wf.geometry_stage(params, R)), r, R)

    return per_geometry(one_geometry)


def make_local_energy(log_psi: LogPsi, charges, method: str = "folx"):
    """``E_L(params, r [N,3], R [M,3]) -> scalar`` for nuclear ``charges`` ``[M]``."""
    kinetic_energy = make_kinetic_energy(log_psi, method)
    charges = jnp.asarray(charges)

    def local_energy(params, r, R):
        return kinetic_energy(params, r, R) + potential_energy(r, R, charges.astype(r.dtype))

    return local_energy
