"""The terms an effective core potential adds to the local energy.

At a pseudo-nucleus ``I`` (``System.ecp``, see :mod:`qmczoo.chemistry.ecp`) an electron at
distance ``r`` feels ``-Z_eff/r`` (:func:`~qmczoo.engine.hamiltonian.potential_energy` with the
effective charges), the local part ``U_loc(r)`` (:func:`local_term`) and the nonlocal projectors
``sum_l v_l(r) sum_m |lm><lm|``. Acting on psi and divided by psi, the nonlocal part of
electron ``i`` is (``u`` the unit vector from ``R_I`` to ``r_i``)

    sum_l v_l(r) (2l + 1) / (4 pi) ∫ dΩ' P_l(u · u') psi(r_1, ..., R_I + r u', ..., r_N) / psi(r_1, ..., r_N)

(:func:`nonlocal_term`). The angular integral is a 12-point rule on the vertices of an
icosahedron (weights 1/12; exact for spherical harmonics up to degree 5), rotated by an
independent uniformly random rotation for every walker, electron and pseudo-nucleus: averaged
over rotations the rule is the exact integral, so the estimate is unbiased whatever psi is, and
its noise is part of the local energy's. The 12 values psi(r')/psi(r) of one electron and
nucleus are computed once and shared by every channel ``l``.

Every function here works on ONE configuration (``r`` ``[N, 3]``, ``R`` ``[M, 3]``); the
batched local energy (:func:`make_batch_local_energy_with_ecp`) vmaps it over walkers in chunks,
with one key per walker.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.engine.hamiltonian import from_chunks, make_local_energy, to_chunks


@dataclasses.dataclass(frozen=True, eq=False)
class PseudopotentialTerms:
    """An ECP laid out as static arrays for the engine (``P`` pseudo-nuclei, ``L`` channels).

    Each radial function is ``sum_t c_t r^n_t exp(-a_t r^2)``, padded with zero coefficients.

    Attributes:
      nuclei: indices of the pseudo-nuclei in ``R`` ``[P]``.
      local_power, local_exponent, local_coefficient: ``U_loc`` ``[P, T]``.
      nonlocal_power, nonlocal_exponent, nonlocal_coefficient: ``v_l`` ``[P, L, T']``.
    """

    nuclei: np.ndarray
    local_power: np.ndarray
    local_exponent: np.ndarray
    local_coefficient: np.ndarray
    nonlocal_power: np.ndarray
    nonlocal_exponent: np.ndarray
    nonlocal_coefficient: np.ndarray

    @property
    def n_channels(self) -> int:
        return self.nonlocal_power.shape[1]

    @classmethod
    def from_system(cls, system) -> "PseudopotentialTerms | None":
        """The terms of ``system.ecp`` on its nuclei; None for an all-electron system."""
        if getattr(system, "ecp", None) is None:
            return None
        nuclei = [i for i, pseudo in enumerate(system.pseudo_nuclei) if pseudo]
        atoms = [system.ecp.for_symbol(system.symbols[i]) for i in nuclei]
        n_l = max([len(a.nonlocal_) for a in atoms] + [0])
        local = _pad([[a.local] for a in atoms])[:, 0]
        nonlocal_ = _pad([[a.nonlocal_[l] if l < len(a.nonlocal_) else () for l in range(n_l)] for a in atoms])
        return cls(np.asarray(nuclei, dtype=int), *np.moveaxis(local, -1, 0), *np.moveaxis(nonlocal_, -1, 0))


def _pad(rows) -> np.ndarray:
    """Nested ``[P][K]`` lists of term tuples -> ``[P, K, T, 3]`` (power, exponent, coefficient),
    padded with ``(0, 0, 0)`` terms (at least one)."""
    width = max([len(terms) for row in rows for terms in row] + [1])
    out = np.zeros((len(rows), max([len(row) for row in rows] + [0]), width, 3))
    for p, row in enumerate(rows):
        for k, terms in enumerate(row):
            if terms:
                out[p, k, : len(terms)] = np.asarray(terms, dtype=np.float64)
    return out


def radial(power, exponent, coefficient, r: jnp.ndarray) -> jnp.ndarray:
    """``sum_t c_t r^n_t exp(-a_t r^2)`` over the last axis of the terms: ``r`` ``[..., P]`` with
    terms ``[P, T]`` gives ``[..., P]``; with terms ``[P, L, T]``, ``[..., P, L]``."""
    dtype = r.dtype
    extra = power.ndim - 2  # the axes between P and T (0 or 1)
    x = r.reshape(r.shape + (1,) * extra + (1,))
    gaussians = jnp.exp(-jnp.asarray(exponent, dtype) * x**2)
    total = 0.0
    for k in np.unique(power).astype(int):  # the powers are static: integer powers of r, grouped
        c = np.where(power == k, coefficient, 0.0)
        total = total + x[..., 0] ** int(k) * jnp.sum(jnp.asarray(c, dtype) * gaussians, axis=-1)
    return total


def local_term(terms: PseudopotentialTerms, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
    """``sum_i sum_I U_loc,I(|r_i - R_I|)`` over electrons and pseudo-nuclei: a scalar."""
    dist = jnp.linalg.norm(r[:, None, :] - R[terms.nuclei][None], axis=-1)  # [N, P]
    return jnp.sum(radial(terms.local_power, terms.local_exponent, terms.local_coefficient, dist))


def icosahedron() -> np.ndarray:
    """The 12 vertices of a regular icosahedron on the unit sphere ``[12, 3]``: the two poles and
    two rings of five at polar angles ``arctan 2`` and ``pi - arctan 2``, the rings turned by 36°."""
    theta = np.arctan(2.0)
    ring = 2.0 * np.pi * np.arange(5) / 5.0
    upper = np.stack([np.sin(theta) * np.cos(ring), np.sin(theta) * np.sin(ring), np.full(5, np.cos(theta))], -1)
    lower = np.stack([np.sin(theta) * np.cos(ring + np.pi / 5), np.sin(theta) * np.sin(ring + np.pi / 5),
                      np.full(5, -np.cos(theta))], -1)
    return np.concatenate([[[0.0, 0.0, 1.0]], upper, lower, [[0.0, 0.0, -1.0]]])


QUADRATURE_DEGREE = 5
"""The icosahedron rule integrates every polynomial of degree <= 5 on the sphere exactly."""


def random_rotations(key, shape: tuple[int, ...], dtype=jnp.float32) -> jnp.ndarray:
    """Uniformly (Haar) distributed rotation matrices ``[*shape, 3, 3]``, from normalised Gaussian
    quaternions."""
    q = jax.random.normal(key, shape + (4,), dtype)
    w, x, y, z = jnp.moveaxis(q / jnp.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)


def legendre(x: jnp.ndarray, n: int) -> jnp.ndarray:
    """``P_0(x), ..., P_{n-1}(x)`` stacked on a new last axis (Bonnet's recursion)."""
    out = [jnp.ones_like(x), x][:n]
    for l in range(1, n - 1):
        out.append(((2 * l + 1) * x * out[l] - l * out[l - 1]) / (l + 1))
    return jnp.stack(out, axis=-1)


def nonlocal_term(signed_log_psi: Callable, terms: PseudopotentialTerms, r: jnp.ndarray, R: jnp.ndarray,
                  points: jnp.ndarray, weights: jnp.ndarray, at_r=None) -> jnp.ndarray:
    """The nonlocal ECP energy ``sum_i sum_I sum_l v_l (2l+1) sum_q w_q P_l(u·u_q) psi(r_q)/psi(r)``.

    Args:
      signed_log_psi: ``x [N, 3] -> (sign, log|psi|)`` (parameters and nuclei bound).
      terms: the ECP's terms.
      r: electron positions ``[N, 3]``; R: nuclear positions ``[M, 3]``.
      points: quadrature directions ``[N, P, Q, 3]`` (unit vectors, one rule per electron and
        pseudo-nucleus), weights ``[Q]`` (summing to 1).
      at_r: ``(sign, log|psi|)`` at ``r`` if already known.

    Returns:
      A scalar. ``psi`` is evaluated at the ``N P Q`` configurations with one electron moved (not
      at all for an ECP without nonlocal channels, e.g. ccECP's hydrogen).
    """
    n, dtype = r.shape[0], r.dtype
    if terms.n_channels == 0:
        return jnp.zeros((), dtype)
    centres = R[terms.nuclei]  # [P, 3]
    disp = r[:, None, :] - centres[None]  # [N, P, 3]
    dist = jnp.linalg.norm(disp, axis=-1)  # [N, P]
    moved = centres[None, :, None, :] + dist[..., None, None] * points  # [N, P, Q, 3]
    is_moved = jnp.eye(n, dtype=bool)[:, None, None, :, None]  # [N, 1, 1, N, 1]: electron i moves in row i
    configs = jnp.where(is_moved, moved[:, :, :, None, :], r)  # [N, P, Q, N, 3]
    sign, logabs = jax.vmap(signed_log_psi)(configs.reshape(-1, n, 3))
    sign0, logabs0 = signed_log_psi(r) if at_r is None else at_r
    ratio = (sign * sign0 * jnp.exp(logabs - logabs0)).reshape(points.shape[:-1])  # [N, P, Q]
    cosine = jnp.einsum("npqx,npx->npq", points, disp / dist[..., None])
    n_l = terms.n_channels
    projected = jnp.einsum("q,npql,npq->npl", weights.astype(dtype), legendre(cosine, n_l), ratio)  # [N, P, L]
    v = radial(terms.nonlocal_power, terms.nonlocal_exponent, terms.nonlocal_coefficient, dist)  # [N, P, L]
    return jnp.sum(v * (2.0 * jnp.arange(n_l, dtype=dtype) + 1.0) * projected)


def rotated_icosahedra(key, n_electrons: int, n_pseudo: int, dtype=jnp.float32) -> jnp.ndarray:
    """The 12-point rule under an independent random rotation per electron and pseudo-nucleus
    ``[N, P, 12, 3]``."""
    rotations = random_rotations(key, (n_electrons, n_pseudo), dtype)
    return jnp.einsum("npxy,qy->npqx", rotations, jnp.asarray(icosahedron(), dtype))


def make_local_energy_with_ecp(log_psi: Callable, signed_log_psi: Callable, charges, terms: PseudopotentialTerms,
                               method: str = "folx"):
    """``E_L(params, r [N,3], R [M,3], key) -> scalar`` with an ECP.

    ``charges`` are the effective charges ``Z - n_core`` (the Coulomb part); ``key`` draws the
    rotations of the nonlocal quadrature. ``signed_log_psi(params, r, R) -> (sign, log|psi|)``.
    """
    base = make_local_energy(log_psi, charges, method)
    weights = jnp.full((12,), 1.0 / 12.0)

    def local_energy(params, r, R, key):
        points = rotated_icosahedra(key, r.shape[0], len(terms.nuclei), r.dtype)
        nonlocal_ = nonlocal_term(lambda x: signed_log_psi(params, x, R), terms, r, R, points, weights)
        return base(params, r, R) + local_term(terms, r, R) + nonlocal_

    return local_energy


def map_walkers_in_chunks(fn, chunk_size: int | None):
    """Lift ``fn(params, r [b,N,3], keys [b,...], R) -> [b]`` to evaluate ``chunk_size`` walkers
    (and their keys) at a time, as :func:`~qmczoo.engine.hamiltonian.map_in_chunks` does for ``r``."""
    if chunk_size is None:
        return fn

    def chunked(params, r, keys, R):
        b = r.shape[0]
        if b <= chunk_size:
            return fn(params, r, keys, R)
        chunks = (to_chunks(r, chunk_size), to_chunks(keys, chunk_size))
        out = jax.lax.map(lambda xs: fn(params, xs[0], xs[1], R), chunks)
        return from_chunks(out, b)

    return chunked


def make_batch_local_energy_with_ecp(wf, charges, terms: PseudopotentialTerms, method: str = "folx",
                                     chunk_size: int | None = None):
    """``E_L(params, r [B,N,3], R, key) -> [B]`` for a :class:`~qmczoo.wavefunction.Wavefunction`
    on a system with an ECP (``charges``: the effective charges).

    ``key`` is split into one key per walker (walkers grouped over geometries use the same
    keys in every group). Leaving it out is an error: the nonlocal term needs random rotations.
    """
    from qmczoo.wavefunction import per_geometry

    def batched(local_energy):
        vmapped = jax.vmap(local_energy, in_axes=(None, 0, None, 0))
        return map_walkers_in_chunks(lambda p, r, k, R: vmapped(p, r, R, k), chunk_size)

    if not wf.has_geometry_stage:
        local_energy = make_local_energy_with_ecp(wf.log_psi, wf.signed_log_psi, charges, terms, method)
        each = batched(local_energy)

        def one_geometry(params, r, R, key):
            return each(params, r, jax.random.split(key, r.shape[0]), R)
    else:
        local_energy = make_local_energy_with_ecp(
            lambda ps, x, R: wf.electron_stage(ps[0], ps[1], x, R)[1],
            lambda ps, x, R: wf.electron_stage(ps[0], ps[1], x, R), charges, terms, method)
        each = batched(local_energy)

        def one_geometry(params, r, R, key):
            return each((params, wf.geometry_stage(params, R)), r, jax.random.split(key, r.shape[0]), R)

    lifted = per_geometry(one_geometry)

    def batch_local_energy(params, r, R, key=None):
        if key is None:
            raise ValueError("this system has an effective core potential: its local energy needs a random key "
                             "(the rotations of the nonlocal quadrature): call it as E_L(params, r, R, key)")
        return lifted(params, r, R, key)

    return batch_local_energy


__all__ = ["PseudopotentialTerms", "QUADRATURE_DEGREE", "icosahedron", "legendre", "local_term",
           "make_batch_local_energy_with_ecp", "make_local_energy_with_ecp", "map_walkers_in_chunks",
           "nonlocal_term", "radial", "random_rotations", "rotated_icosahedra"]
