"""The VMC energy loss with the variance-reduced gradient estimator.

    L = <E_L>,   grad L = 2 < (E_L^clip - <E_L^clip>) grad log|psi| >

For walkers grouped over ``G`` geometries (``R`` ``[G, M, 3]``) the loss is the mean over
geometries of each geometry's energy, and clipping and centring happen per geometry (each
geometry has its own energy scale).

The loss is a ``jax.custom_jvp`` function so that its gradient is exactly this estimator,
for any optimizer: optax takes the gradient, kfac-jax additionally reads the registered
predictive distribution ``log|psi|`` to build its curvature estimate.
"""

from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import kfac_jax

from qmczoo.engine.config import CLIP_CENTRES


@flax.struct.dataclass
class EnergyStats:
    """Auxiliary output of the loss: ``energy`` and ``variance`` (scalars) and the
    per-walker ``local_energy`` ``[B]``; for grouped geometries also per geometry,
    ``geometry_energy`` and ``geometry_variance`` ``[G]`` (else None)."""

    energy: jnp.ndarray
    variance: jnp.ndarray
    local_energy: jnp.ndarray
    geometry_energy: jnp.ndarray | None = None
    geometry_variance: jnp.ndarray | None = None



def clip_local_energy(e_l: jnp.ndarray, scale: float, centre: str = "median") -> jnp.ndarray:
    """Clip ``e_l`` ``[B]`` to ``c ± scale * mean|e_l - c|`` with ``c`` the median (default) or
    the mean of ``e_l`` (FermiNet's default); no clipping if ``scale <= 0``. Returns ``[B]``."""
    if centre not in CLIP_CENTRES:
        raise ValueError(f"clipping centre must be one of {CLIP_CENTRES}, got {centre!r}")
    if scale <= 0:
        return e_l
    c = jnp.median(e_l) if centre == "median" else jnp.mean(e_l)
    width = scale * jnp.mean(jnp.abs(e_l - c))
    return jnp.clip(e_l, c - width, c + width)


def make_energy_loss(batch_log_psi: Callable, batch_local_energy: Callable, clip_scale: float = 5.0,
                     clip_centre: str = "median"):
    """Build ``loss(params, key, batch) -> (energy, EnergyStats)``.

    Args:
      batch_log_psi: ``(params, r [B,N,3], R) -> [B]``, the ``log|psi|`` to differentiate
        (:meth:`~qmczoo.wavefunction.Wavefunction.gradient_log_psi`).
      batch_local_energy: ``(params, r [B,N,3], R) -> [B]``.
      clip_scale: width of the clipping window for the gradient, in mean absolute
        deviations around its centre.
      clip_centre: ``"median"`` or ``"mean"`` of the batch's local energies (per geometry).

    ``batch`` is the tuple ``(r [B,N,3], R)`` with ``R`` one geometry ``[M,3]`` or grouped
    geometries ``[G,M,3]``; ``key`` is unused (kfac-jax's signature).
    """

    @jax.custom_jvp
    def loss(params, key, batch):
        r, R = batch
        e_l = batch_local_energy(params, r, R)
        if R.ndim == 2:
            energy = jnp.mean(e_l)
            variance = jnp.mean((e_l - energy) ** 2)
            return energy, EnergyStats(energy=energy, variance=variance, local_energy=e_l)
        grouped = e_l.reshape(R.shape[0], -1)
        geometry_energy = jnp.mean(grouped, axis=1)
        geometry_variance = jnp.mean((grouped - geometry_energy[:, None]) ** 2, axis=1)
        return jnp.mean(geometry_energy), EnergyStats(
            energy=jnp.mean(geometry_energy), variance=jnp.mean(geometry_variance), local_energy=e_l,
            geometry_energy=geometry_energy, geometry_variance=geometry_variance)

    def centred_clipped(e_l, R):
        if R.ndim == 2:
            clipped = clip_local_energy(e_l, clip_scale, clip_centre)
            return clipped - jnp.mean(clipped)
        clipped = jax.vmap(lambda e: clip_local_energy(e, clip_scale, clip_centre))(e_l.reshape(R.shape[0], -1))
        return (clipped - jnp.mean(clipped, axis=1, keepdims=True)).reshape(-1)

    @loss.defjvp
    def loss_jvp(primals, tangents):
        params, key, batch = primals
        r, R = batch
        energy, stats = loss(params, key, batch)
        centred = centred_clipped(stats.local_energy, R)
        log_psi, d_log_psi = jax.jvp(lambda p: batch_log_psi(p, r, R), (params,), (tangents[0],))
        kfac_jax.register_normal_predictive_distribution(log_psi[:, None])
        d_energy = 2.0 * jnp.mean(centred * d_log_psi)
        zeros = jax.tree.map(jnp.zeros_like, stats)
        return (energy, stats), (d_energy, zeros)

    return loss
