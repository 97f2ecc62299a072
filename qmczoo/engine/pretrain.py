"""Hartree–Fock pretraining: fit the ansatz's orbitals to UHF orbitals before VMC.

pyscf runs an unrestricted Hartree–Fock calculation once (:mod:`qmczoo.chemistry.hartree_fock`); its
occupied orbitals are evaluated on walker positions in JAX
(:mod:`qmczoo.layers.gaussian_orbitals`), so the whole pretraining step stays jitted. The
ansatz's orbital blocks (its optional ``orbitals`` method) are fitted by least squares on walkers
that sample ``|psi_HF|^(2f) |psi|^(2(1-f))`` (a geometric mix; ``f = 1``, the default, samples
the Hartree–Fock density alone, as FermiNet does by default).
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import optax

from qmczoo.chemistry.hartree_fock import HartreeFock, run_hartree_fock
from qmczoo.layers.features import electron_nuclear
from qmczoo.layers.gaussian_orbitals import occupied_orbitals
from qmczoo.engine.sampler import WalkerState, make_mcmc

__all__ = ["HartreeFock", "run_hartree_fock", "hf_orbitals_jax", "target_blocks", "pretraining_log_density",
           "make_pretrainer"]

log = logging.getLogger(__name__)


def hf_orbitals_jax(hf: HartreeFock, R: jnp.ndarray):
    """``r [B, N, 3] -> (up [B, n_up, n_up], down [B, n_down, n_down])`` in pure JAX.

    The occupied UHF orbitals of ``hf`` (:func:`~qmczoo.layers.gaussian_orbitals.occupied_orbitals`)
    with the basis centred on the nuclei ``R`` ``[M, 3]``.
    """

    def one(r):
        return occupied_orbitals(hf, electron_nuclear(r, jnp.asarray(R, r.dtype))[0])

    return jax.vmap(one)


def _block_logabs(m):
    if m.shape[-1] == 0:
        return jnp.zeros(m.shape[:-2], m.dtype)
    return jnp.linalg.slogdet(m)[1]


def target_blocks(up: jnp.ndarray, down: jnp.ndarray, shapes: list[tuple[int, ...]]) -> list[jnp.ndarray]:
    """HF targets shaped like the ansatz's orbital blocks (one walker).

    A single ``[K, N, N]`` block (dense determinant) gets the block-diagonal matrix
    ``[[up, 0], [0, down]]``; separate up/down blocks get ``up`` and ``down``.
    """
    n_up, n_down = up.shape[-1], down.shape[-1]
    if len(shapes) == 1 and shapes[0][-1] == n_up + n_down and n_down > 0 and n_up > 0:
        top = jnp.concatenate([up, jnp.zeros((n_up, n_down), up.dtype)], axis=1)
        bottom = jnp.concatenate([jnp.zeros((n_down, n_up), up.dtype), down], axis=1)
        return [jnp.concatenate([top, bottom], axis=0)]
    return [b for b in (up, down) if b.shape[-1] > 0]


def pretraining_log_density(batch_log_psi_hf, batch_log_psi, hf_fraction: float):
    """``(params, r [B,N,3], R) -> [B]``: log of the pretraining sampling density.

    ``2 f log|psi_HF| + 2 (1 - f) log|psi|`` with ``f = hf_fraction`` in [0, 1]: a geometric
    mix of the two densities (each unnormalised, so an arithmetic mix would weigh them by
    their arbitrary norms). ``batch_log_psi_hf(r) -> [B]``, ``batch_log_psi(params, r, R)``.
    """

    def batch_log_prob(params, r, R):
        log_hf = 2.0 * batch_log_psi_hf(r)
        if hf_fraction >= 1.0:
            return log_hf
        log_net = 2.0 * batch_log_psi(params, r, R)
        if hf_fraction <= 0.0:
            return log_net
        return hf_fraction * log_hf + (1.0 - hf_fraction) * log_net

    return batch_log_prob


def make_pretrainer(wf, hf, R: jnp.ndarray, *, learning_rate: float = 3e-4,
                    hf_fraction: float = 1.0, mcmc_steps: int = 1):
    """Build ``(init_opt, step)`` for pretraining ``wf``'s orbitals on ``hf``.

    ``step(params, opt_state, walkers, key) -> (params, opt_state, walkers, loss)`` moves the
    walkers by ``mcmc_steps`` Metropolis steps on :func:`pretraining_log_density` and takes
    one Adam step on the mean squared difference between the ansatz's and the HF orbitals.

    For walkers grouped over ``G`` geometries, ``R`` is ``[G, M, 3]`` and ``hf`` a list of
    ``G`` Hartree–Fock solutions, one per geometry: each group samples its own geometry's HF
    density and is fitted to its orbitals; the loss is the mean over geometries.
    """
    if wf.orbitals is None:
        raise ValueError("this ansatz has no orbitals() method; it cannot be pretrained")
    grouped = R.ndim == 3
    hfs = list(hf) if grouped else [hf]
    geometries = [R[g] for g in range(R.shape[0])] if grouped else [R]
    if len(hfs) != len(geometries):
        raise ValueError(f"{len(geometries)} geometries but {len(hfs)} Hartree-Fock solutions")
    optimizer = optax.adam(learning_rate)

    def one_geometry(hf_g, R_g):
        hf_orbitals = hf_orbitals_jax(hf_g, R_g)

        def batch_log_psi_hf(r):
            up, down = hf_orbitals(r)
            return _block_logabs(up) + _block_logabs(down)

        mcmc = make_mcmc(pretraining_log_density(batch_log_psi_hf, wf.batch_log_psi, hf_fraction), mcmc_steps)

        def orbital_loss(params, r, up, down):
            def one(r1, u1, d1):
                blocks = wf.orbitals(params, r1, R_g)
                targets = target_blocks(u1, d1, [b.shape for b in blocks])
                return sum(jnp.mean((b - t[None]) ** 2) for b, t in zip(blocks, targets))

            return jnp.mean(jax.vmap(one)(r, up, down))

        return hf_orbitals, mcmc, orbital_loss

    stages = [one_geometry(h, x) for h, x in zip(hfs, geometries)]

    @jax.jit
    def step(params, opt_state, walkers: WalkerState, key):
        if not grouped:
            hf_orbitals, mcmc, orbital_loss = stages[0]
            walkers = mcmc(params, walkers, key, R)
            up, down = hf_orbitals(walkers.r)
            loss, grads = jax.value_and_grad(orbital_loss)(params, walkers.r, up, down)
        else:
            b = walkers.r.shape[0] // len(stages)
            moved, targets = [], []
            for g, (hf_orbitals, mcmc, _) in enumerate(stages):  # geometries are few: unrolled
                group = WalkerState(r=walkers.r[g * b:(g + 1) * b], step_size=walkers.step_size[g],
                                    acceptance=walkers.acceptance[g])
                moved.append(mcmc(params, group, jax.random.fold_in(key, g), geometries[g]))
                targets.append(hf_orbitals(moved[-1].r))

            def total_loss(p):
                return sum(stage[2](p, w.r, *t) for stage, w, t in zip(stages, moved, targets)) / len(stages)

            loss, grads = jax.value_and_grad(total_loss)(params)
            walkers = WalkerState(r=jnp.concatenate([w.r for w in moved]),
                                  step_size=jnp.stack([w.step_size for w in moved]),
                                  acceptance=jnp.stack([w.acceptance for w in moved]))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, walkers, loss

    return optimizer.init, step
