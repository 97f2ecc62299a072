"""The VMC energy loss with the variance-reduced gradient estimator.

    L = <E_L>,   grad L = 2 < (E_L^clip - <E_L^clip>) grad log|psi| >

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


@flax.struct.dataclass
class EnergyStats:
    """Auxiliary output of the loss: ``energy`` and ``variance`` (scalars) and the
    per-walker ``local_energy`` ``[B]``."""

    energy: jnp.ndarray
    variance: jnp.ndarray
    local_energy: jnp.ndarray


def clip_local_energy(e_l: jnp.ndarray, scale: float) -> jnp.ndarray:
    """Clip ``e_l`` ``[B]`` to ``median ± scale * mean|e_l - median|`` (no clipping if scale<=0)."""
    if scale <= 0:
        return e_l
    median = jnp.median(e_l)
    width = scale * jnp.mean(jnp.abs(e_l - median))
    return jnp.clip(e_l, median - width, median + width)


def make_energy_loss(batch_log_psi: Callable, batch_local_energy: Callable, clip_scale: float = 5.0):
    """Build ``loss(params, key, batch) -> (energy, EnergyStats)``.

    Args:
      batch_log_psi: ``(params, r [B,N,3], R [M,3]) -> [B]``.
      batch_local_energy: ``(params, r [B,N,3], R [M,3]) -> [B]``.
      clip_scale: width of the clipping window for the gradient, in mean absolute
        deviations around the median.

    ``batch`` is the tuple ``(r [B,N,3], R [M,3])``; ``key`` is unused (kfac-jax's
    signature).
    """

    @jax.custom_jvp
    def loss(params, key, batch):
        r, R = batch
        e_l = batch_local_energy(params, r, R)
        energy = jnp.mean(e_l)
        variance = jnp.mean((e_l - energy) ** 2)
        return energy, EnergyStats(energy=energy, variance=variance, local_energy=e_l)

    @loss.defjvp
    def loss_jvp(primals, tangents):
        params, key, batch = primals
        r, R = batch
        energy, stats = loss(params, key, batch)
        clipped = clip_local_energy(stats.local_energy, clip_scale)
        centred = clipped - jnp.mean(clipped)
        log_psi, d_log_psi = jax.jvp(lambda p: batch_log_psi(p, r, R), (params,), (tangents[0],))
        kfac_jax.register_normal_predictive_distribution(log_psi[:, None])
        d_energy = 2.0 * jnp.mean(centred * d_log_psi)
        zeros = jax.tree.map(jnp.zeros_like, stats)
        return (energy, stats), (d_energy, zeros)

    return loss
