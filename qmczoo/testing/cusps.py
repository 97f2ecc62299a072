"""Kato cusp checks for any :class:`~qmczoo.wavefunction.Wavefunction` (float64).

Kato's cusp conditions fix the slope of the spherical average of psi as a particle approaches
another: for an electron at distance ``rho`` from a nucleus of charge ``Z``,
``d<log|psi|>/d rho -> -Z``; for two electrons of opposite spin ``+1/2``; for two electrons of
the same spin, where psi has a node ``psi ~ rho``, ``+1/4`` for the slope of ``<log|psi|> -
log rho``.

Estimate used here: the moving electron is put at ``rho u`` from the nucleus (the other
electron) for directions ``u`` of a Fibonacci sphere *and their antipodes* (so that every
term odd in ``u``, e.g. a smooth gradient of psi, averages out exactly at first order), at six
radii ``rho = radius * (1, ..., 6) / 6``. The average of ``log|psi|`` over the directions is
``n log rho + c0 + c1 rho + c2 rho^2 + ...``, where ``n`` is the order of a node at coalescence
(1 for a generic same-spin pair, 0 otherwise): ``n`` is read off the slope against
``log rho`` and rounded, ``n log rho`` removed, and ``c1`` is the slope of a least-squares
polynomial of degree 4 (error ``O(radius^4)``; measured: ``3e-7`` at the default radius even at a
configuration where another factor of psi is close to a node, ``|log psi|'' ~ 1e3``). Float64 is
assumed (the differences of ``log|psi|`` are ``O(radius)``).

Library utilities, like :mod:`qmczoo.testing`: the ``check_*`` functions raise
:class:`AssertionError` naming the pair and the measured and expected values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_electron_electron_cusp",
    "check_electron_nuclear_cusp",
    "electron_electron_cusp",
    "electron_nuclear_cusp",
    "fibonacci_sphere",
]

DEFAULT_RADIUS = 1e-3
"""Largest distance from the coalescence point (bohr) at which psi is evaluated."""

DEFAULT_DIRECTIONS = 25
"""Fibonacci-sphere points; with their antipodes, ``2 x`` this many directions."""

DEFAULT_ATOL = 1e-2
"""Tolerance on the measured cusp (float64)."""


def fibonacci_sphere(n: int = DEFAULT_DIRECTIONS) -> np.ndarray:
    """``2 n`` unit vectors ``[2n, 3]``: ``n`` spread evenly on the sphere, then their antipodes."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    rho = np.sqrt(1.0 - z**2)
    phi = np.pi * (1.0 + np.sqrt(5.0)) * i
    pts = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1)
    return np.concatenate([pts, -pts], axis=0)


def _radii(radius: float) -> np.ndarray:
    return radius * np.arange(1, 7) / 6.0


def _configurations(r, moving: int, centre, radii, dirs) -> np.ndarray:
    """``[n_radii * n_dirs, N, 3]``: ``r`` with electron ``moving`` at ``centre + rho u``."""
    r = np.asarray(r, dtype=np.float64)
    pos = np.asarray(centre, dtype=np.float64)[None, None, :] + radii[:, None, None] * dirs[None, :, :]
    configs = np.broadcast_to(r, pos.shape[:2] + r.shape).copy()
    configs[:, :, moving, :] = pos
    return configs.reshape(-1, *r.shape)


def _slope(values: np.ndarray, radii: np.ndarray) -> tuple[float, int]:
    """``(c1, n)`` from ``log|psi|`` values ``[n_radii, n_dirs]`` (see the module docstring)."""
    g = np.mean(values, axis=1)
    order = int(max(0, round((g[1] - g[0]) / np.log(radii[1] / radii[0]))))
    g = g - order * np.log(radii)
    t = radii / radii[0]  # fit in units of the smallest radius (well conditioned)
    coeffs, *_ = np.linalg.lstsq(np.stack([t**p for p in range(5)], axis=-1), g, rcond=None)
    return float(coeffs[1] / radii[0]), order


_CACHE: dict = {}
_CACHE_MAX = 8


def _cached(fn, make):
    """``make(fn)``, cached by the identity of ``fn`` for the last few functions."""
    hit = _CACHE.get(id(fn))
    if hit is None or hit[0] is not fn:
        hit = _CACHE[id(fn)] = (fn, make(fn))
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
    return hit[1]


def _batched(log_psi):
    """``log_psi`` vmapped over configurations and jitted, compiled once per function and shape."""
    return _cached(log_psi, lambda f: jax.jit(jax.vmap(f)))


def _measure(batched, r, moving, centre, radius, directions, what="the coalescence point"):
    radii, dirs = _radii(radius), fibonacci_sphere(directions)
    configs = jnp.asarray(_configurations(r, moving, centre, radii, dirs))
    values = np.asarray(batched(configs), dtype=np.float64).reshape(len(radii), len(dirs))
    if not np.all(np.isfinite(values)):
        raise AssertionError(f"log|psi| is not finite within {radius:g} of {what} (electron {moving} moving)")
    return _slope(values, radii)


def electron_nuclear_cusp(log_psi, r, R, electron: int, nucleus: int, radius: float = DEFAULT_RADIUS,
                          directions: int = DEFAULT_DIRECTIONS) -> float:
    """The measured ``d<log|psi|>/d rho`` as ``electron`` approaches ``nucleus`` (Kato: ``-Z``).

    Args:
      log_psi: ``r [N, 3] -> log|psi|`` (a scalar; the nuclei fixed at ``R``).
      r: electron positions ``[N, 3]``; all but ``electron`` stay where they are.
      R: nuclear positions ``[M, 3]``.
      electron, nucleus: the row of ``r`` that moves and the row of ``R`` it approaches.
      radius: largest distance from the nucleus at which ``log_psi`` is evaluated.
      directions: Fibonacci-sphere points (each used with its antipode).
    """
    return _measure(_batched(log_psi), r, electron, np.asarray(R)[nucleus], radius, directions)[0]


def electron_electron_cusp(log_psi, r, i: int, j: int, radius: float = DEFAULT_RADIUS,
                           directions: int = DEFAULT_DIRECTIONS) -> float:
    """The measured slope as electron ``i`` approaches electron ``j`` (Kato: 1/2 or 1/4).

    The slope of ``<log|psi|> - n log rho``, where ``n`` (the order of psi's node at
    coalescence, 1 for a same-spin pair of an antisymmetric psi) is detected from the values.

    Args:
      log_psi: ``r [N, 3] -> log|psi|`` (a scalar).
      r: electron positions ``[N, 3]``; electron ``i`` moves, the others stay.
      i, j: the moving electron and the one it approaches (``i != j``).
      radius, directions: as :func:`electron_nuclear_cusp`.
    """
    if i == j:
        raise ValueError("electron_electron_cusp: i and j must differ")
    return _measure(_batched(log_psi), r, i, np.asarray(r)[j], radius, directions)[0]


def _wf_batched(wf, params, R):
    R = jnp.asarray(R)
    fn = _cached(wf.signed_log_psi, lambda f: jax.jit(jax.vmap(lambda p, x, R: f(p, x, R)[1], in_axes=(None, 0, None))))
    return lambda configs: fn(params, configs, R)


def check_electron_nuclear_cusp(wf, params, r, R, charges, atol: float = DEFAULT_ATOL,
                                radius: float = DEFAULT_RADIUS) -> None:
    """Every electron at every nucleus has Kato's cusp ``-Z`` (within ``atol``).

    Args:
      wf: the wavefunction; ``params`` its parameters.
      r: electron positions ``[N, 3]`` (a generic configuration: no electron within ``radius``
        of another electron or of a nucleus it does not approach).
      R: nuclear positions ``[M, 3]``; ``charges`` ``[M]``.
      atol: tolerance on the measured slope.
    """
    charges = [float(z) for z in np.atleast_1d(charges)]
    if len(charges) != np.shape(R)[0]:
        raise ValueError(f"{len(charges)} charges for {np.shape(R)[0]} nuclei")
    batched = _wf_batched(wf, params, R)
    failures = []
    for i in range(np.shape(r)[0]):
        for I, z in enumerate(charges):
            measured, order = _measure(batched, r, i, np.asarray(R)[I], radius, DEFAULT_DIRECTIONS,
                                       what=f"{wf.name}: nucleus {I}")
            if abs(measured + z) > atol:
                node = f", after removing a node of order {order}" if order else ""
                failures.append(f"electron {i} at nucleus {I} (Z = {z:g}): measured "
                                f"d<log|psi|>/dr = {measured:.4f}{node}, expected {-z:g}")
    if failures:
        raise AssertionError(f"{wf.name}: electron–nuclear cusp violated (atol {atol:g}): " + "; ".join(failures))


def check_electron_electron_cusp(wf, params, r, R, atol: float = DEFAULT_ATOL,
                                 radius: float = DEFAULT_RADIUS) -> None:
    """Every electron pair has Kato's cusp: 1/2 (opposite spins), 1/4 (same spin), within ``atol``.

    Electron ``i`` moves towards electron ``j`` for every pair ``i < j``; spins from ``wf.n_up``
    (rows ``[:n_up]`` are up). Arguments as :func:`check_electron_nuclear_cusp`.
    """
    batched = _wf_batched(wf, params, R)
    failures = []
    n = np.shape(r)[0]
    for i in range(n):
        for j in range(i + 1, n):
            same = (i < wf.n_up) == (j < wf.n_up)
            expected = 0.25 if same else 0.5
            measured, order = _measure(batched, r, i, np.asarray(r)[j], radius, DEFAULT_DIRECTIONS,
                                       what=f"{wf.name}: electron {j}")
            if abs(measured - expected) > atol:
                kind = "same-spin" if same else "opposite-spin"
                node = f" (after removing a node of order {order})" if order else ""
                failures.append(f"{kind} electrons {i} and {j}: measured slope {measured:.4f}{node}, "
                                f"expected {expected:g}")
    if failures:
        raise AssertionError(f"{wf.name}: electron–electron cusp violated (atol {atol:g}): " + "; ".join(failures))
