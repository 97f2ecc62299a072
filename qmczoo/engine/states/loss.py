"""The two objectives of a run of ``k`` states, as ``loss(params, key, (r, R)) -> (loss, StatesStats)``.

**NES-VMC** (Pfau et al., Science 2024, the default): walkers sample ``|det A|^2`` and the loss
is the trace of the local-energy matrix, which is the local energy of the total ansatz
``det A`` under ``sum_j H(x^j)``. Its gradient is therefore the ordinary VMC estimator of
:mod:`qmczoo.engine.loss`, with the same clipping and centring, for ``log|det A|``, which is
also what KFAC sees as the predictive distribution::

    L = < tr E_L >,   grad L = 2 < (tr E_L^clip - <tr E_L^clip>) grad log|det A| >

**The penalty method** (the talk's "Excited States" slide): set ``i`` of a walker samples
``|psi_i|^2``, and

    L = sum_i E_i + alpha sum_{i<j} (1 / (1 - sqrt|S_ij|) - 1),
    S_ij = E_{psi_i^2}[psi_j / psi_i] E_{psi_j^2}[psi_i / psi_j]

(the squared cosine between ``psi_i`` and ``psi_j``). The energies' gradient is each state's own
clipped, centred estimator; the penalty's is that of the ratio estimator
``a_ij = mean(w rho_ij) / mean(w)`` with weights ``w = |psi_i|^2 / |psi_i^0|^2`` that are 1 at the
sampled parameters (so the derivative of the sampled density is included). The estimator of
``S_ij`` is a product of two means, hence biased (the talk: "biased, works well for small
systems"); ``sqrt|S_ij|`` is capped at 0.99 so a noisy estimate near 1 cannot make the loss
infinite. KFAC sees ``sum_i log|psi_i(x^i)|``, the log of the sampled product wavefunction.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import kfac_jax

from qmczoo.engine.loss import clip_local_energy

MAX_OVERLAP_ROOT = 0.99  # cap of sqrt|S_ij| in the penalty (module docstring)


@flax.struct.dataclass
class StatesStats:
    """Auxiliary output of a ``k``-state loss.

    ``energy`` (the sum of the state energies: the trace of the mean local-energy matrix, or
    ``sum_i E_i``), ``variance`` and ``local_energy`` ``[B]`` of that sum, ``state_matrix`` ``[k, k]``
    (NES: the batch mean of the local-energy matrix; penalty: ``diag(E_i)``), ``overlap``
    ``[k, k]`` (penalty: ``S_ij``; NES: None), ``penalty`` (penalty: the overlap term; NES: None)
    and ``own_local_energy`` ``[B, k]`` (penalty: each state's local energy at its own set; NES: None).
    ``geometry_energy``/``geometry_variance`` are None (one geometry), as the VMC step expects.
    """

    energy: jnp.ndarray
    variance: jnp.ndarray
    local_energy: jnp.ndarray
    state_matrix: jnp.ndarray
    overlap: jnp.ndarray | None = None
    penalty: jnp.ndarray | None = None
    own_local_energy: jnp.ndarray | None = None
    geometry_energy: jnp.ndarray | None = None
    geometry_variance: jnp.ndarray | None = None


def centred_clipped(e_l: jnp.ndarray, clip_scale: float, clip_centre: str) -> jnp.ndarray:
    """``clip(e_l) - mean(clip(e_l))`` over the walkers (axis 0; a trailing state axis is kept
    apart: each state is clipped on its own)."""
    if e_l.ndim == 1:
        clipped = clip_local_energy(e_l, clip_scale, clip_centre)
        return clipped - jnp.mean(clipped)
    return jax.vmap(lambda e: centred_clipped(e, clip_scale, clip_centre), in_axes=1, out_axes=1)(e_l)


def make_nes_loss(batch_total_log_psi, batch_energy_matrix, clip_scale: float = 5.0, clip_centre: str = "median"):
    """NES-VMC's loss (module docstring).

    Args:
      batch_total_log_psi: ``(params, r [B, k*N, 3], R) -> [B]``, ``log|det A|``.
      batch_energy_matrix: ``(params, r [B, k*N, 3], R) -> [B, k, k]``.
    """

    @jax.custom_jvp
    def loss(params, key, batch):
        r, R = batch
        matrices = batch_energy_matrix(params, r, R)
        e_l = jnp.trace(matrices, axis1=1, axis2=2)
        energy = jnp.mean(e_l)
        return energy, StatesStats(energy=energy, variance=jnp.mean((e_l - energy) ** 2), local_energy=e_l,
                                   state_matrix=jnp.mean(matrices, axis=0))

    @loss.defjvp
    def loss_jvp(primals, tangents):
        params, key, batch = primals
        r, R = batch
        energy, stats = loss(params, key, batch)
        centred = centred_clipped(stats.local_energy, clip_scale, clip_centre)
        log_psi, d_log_psi = jax.jvp(lambda p: batch_total_log_psi(p, r, R), (params,), (tangents[0],))
        kfac_jax.register_normal_predictive_distribution(log_psi[:, None])
        zeros = jax.tree.map(jnp.zeros_like, stats)
        return (energy, stats), (2.0 * jnp.mean(centred * d_log_psi), zeros)

    return loss


def overlap_penalty(a: jnp.ndarray, alpha: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(alpha sum_{i<j} (1/(1 - sqrt|S_ij|) - 1), S [k, k])`` from the ratio means
    ``a[i, j] = E_{psi_i^2}[psi_j / psi_i]``."""
    overlap = a * a.T
    k = a.shape[0]
    i, j = jnp.triu_indices(k, 1)
    root = jnp.minimum(jnp.sqrt(jnp.abs(overlap[i, j])), MAX_OVERLAP_ROOT)
    return alpha * jnp.sum(1.0 / (1.0 - root) - 1.0), overlap


def ratio_matrix(sign: jnp.ndarray, logabs: jnp.ndarray) -> jnp.ndarray:
    """``rho[..., i, j] = psi_j(x^i) / psi_i(x^i)`` from the state matrix ``[..., k, k]`` (entry
    ``[i, j]``: state ``j`` at set ``i``)."""
    diag_sign = jnp.diagonal(sign, axis1=-2, axis2=-1)[..., :, None]
    diag_log = jnp.diagonal(logabs, axis1=-2, axis2=-1)[..., :, None]
    return sign * diag_sign * jnp.exp(logabs - diag_log)


def make_penalty_loss(batch_state_matrix, batch_own_local_energies, alpha: float, clip_scale: float = 5.0,
                      clip_centre: str = "median"):
    """The penalty method's loss (module docstring).

    Args:
      batch_state_matrix: ``(params, r [B, k*N, 3], R) -> (sign, log|psi|)`` ``[B, k, k]``,
        entry ``[b, i, j]`` = state ``j`` at set ``i`` of walker ``b``.
      batch_own_local_energies: ``(params, r, R) -> [B, k]``, state ``i`` at its own set ``i``.
      alpha: the penalty's weight (hartree).
    """

    @jax.custom_jvp
    def loss(params, key, batch):
        r, R = batch
        e_own = batch_own_local_energies(params, r, R)
        sign, logabs = batch_state_matrix(params, r, R)
        energies = jnp.mean(e_own, axis=0)
        penalty, overlap = overlap_penalty(jnp.mean(ratio_matrix(sign, logabs), axis=0), alpha)
        e_sum = jnp.sum(e_own, axis=1)
        energy = jnp.sum(energies)
        stats = StatesStats(energy=energy, variance=jnp.sum(jnp.var(e_own, axis=0)), local_energy=e_sum,
                            state_matrix=jnp.diag(energies), overlap=overlap, penalty=penalty,
                            own_local_energy=e_own)
        return energy + penalty, stats

    @loss.defjvp
    def loss_jvp(primals, tangents):
        params, key, batch = primals
        r, R = batch
        value, stats = loss(params, key, batch)
        centred = centred_clipped(stats.own_local_energy, clip_scale, clip_centre)

        def surrogate(p):
            sign, logabs = batch_state_matrix(p, r, R)
            own = jnp.diagonal(logabs, axis1=1, axis2=2)  # [B, k]
            weight = jnp.exp(2.0 * (own - jax.lax.stop_gradient(own)))  # 1, with the density's derivative
            a = jnp.mean(ratio_matrix(sign, logabs) * weight[:, :, None], axis=0) / jnp.mean(weight, axis=0)[:, None]
            return own, overlap_penalty(a, alpha)[0]

        (own, _), (d_own, d_penalty) = jax.jvp(surrogate, (params,), (tangents[0],))
        kfac_jax.register_normal_predictive_distribution(jnp.sum(own, axis=1)[:, None])
        d_energy = 2.0 * jnp.sum(jnp.mean(centred * d_own, axis=0))
        zeros = jax.tree.map(jnp.zeros_like, stats)
        return (value, stats), (d_energy + d_penalty, zeros)

    return loss
