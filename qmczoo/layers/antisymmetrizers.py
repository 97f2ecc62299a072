"""Antisymmetrizers: from orbital matrices to the sign and log-magnitude of psi.

An orbital matrix ``phi[k, i, j]`` holds orbital ``j`` of determinant ``k`` evaluated for
electron ``i``. A wavefunction is a sum of determinants, each a product over spin blocks:

    psi = sum_k prod_blocks det(phi_block[k])

computed in log space: signed log-determinants per block, summed over blocks, then a
signed log-sum-exp over ``k``. A 1x1 block (a lone electron of one spin with block-diagonal
determinants) is kept in linear scale and multiplies the exponentials inside the sum, so that
its zeros (a node of that orbital) never pass through ``log 0``.

Antisymmetrizer-slot fillers (flax modules, call ``(blocks) -> (sign, log|psi|)``):

* :class:`MultiDeterminant`: :func:`multi_determinant`, no parameters (all determinants
  weigh the same; their scale is learned by the orbitals).
* :class:`WeightedDeterminants`: ``psi = sum_k w_k prod_b det(blocks[b][k])`` with learned
  determinant weights (CI coefficients) ``w_k``, registered with
  :func:`~qmczoo.layers.curvature.scale` (a per-walker diagonal KFAC block).
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmczoo.layers.curvature import scale
from qmczoo.layers.geometry_params import geometry_value


def signed_logsumexp(signs: jnp.ndarray, logs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``log|sum_k s_k e^{l_k}|`` and its sign, stably. Inputs ``[K]``; outputs scalars.

    ``signs`` may be any real weights (signs, or signs times linear-scale factors).
    """
    shift = jax.lax.stop_gradient(jnp.max(logs))
    total = jnp.sum(signs * jnp.exp(logs - shift))
    return jnp.sign(total), jnp.log(jnp.abs(total)) + shift


def multi_determinant(blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sign and log|psi| of ``sum_k prod_b det(blocks[b][k])``.

    Args:
      blocks: orbital matrices, each ``[K, n_b, n_b]`` (same ``K``); one block for a dense
        determinant over all electrons, two (up, down) for block-diagonal determinants.
        Empty blocks (``n_b = 0``) must be left out by the caller.

    Returns:
      ``(sign, logabs)``, scalars.
    """
    signs, logdets = _signed_log_terms(blocks)
    return signed_logsumexp(signs, logdets)


def _signed_log_terms(blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per determinant ``k``: (sign times the linear-scale 1x1 factors, sum of log|det|), ``[K]``."""
    linear, sign, logdet = 1.0, 1.0, 0.0
    for block in blocks:
        if block.shape[-1] == 1:
            linear = linear * block[..., 0, 0]
        else:
            s, l = jnp.linalg.slogdet(block)
            sign, logdet = sign * s, logdet + l
    zeros = jnp.zeros_like(blocks[0][..., 0, 0])
    return sign * linear + zeros, logdet + zeros


def _check_blocks(name: str, blocks, determinants: Optional[int]) -> None:
    if not blocks:
        raise ValueError(f"{name}: no orbital blocks")
    ks = {b.shape[0] for b in blocks}
    if any(b.ndim != 3 or b.shape[1] != b.shape[2] for b in blocks) or len(ks) != 1:
        raise ValueError(f"{name}: blocks must be [K, n, n] with one K, got {[b.shape for b in blocks]}")
    if determinants is not None and ks != {determinants}:
        raise ValueError(f"{name}: built for {determinants} determinants, got blocks {[b.shape for b in blocks]}")


class MultiDeterminant(nn.Module):
    """:func:`multi_determinant` as an antisymmetrizer-slot filler (no parameters).

    Attributes:
      determinants: the number ``K`` of determinants the blocks must have (``None``: any).

    Call: ``blocks`` (list of ``[K, n_b, n_b]``). Returns ``(sign, log|psi|)``.
    """

    determinants: Optional[int] = None

    def __call__(self, blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
        _check_blocks("MultiDeterminant", blocks, self.determinants)
        return multi_determinant(blocks)


class WeightedDeterminants(nn.Module):
    """``psi = sum_k w_k prod_b det(blocks[b][k])`` with learned weights ``w`` ``[K]``.

    Attributes:
      determinants: the number ``K`` of determinants.
      weight_init: initial weights when ``weights`` is not given: "ci" (default; the
        ``initial_weights`` the model hands over, e.g. PauliNet's CASSCF CI coefficients, and
        without them ``[1, 0, ..., 0]``), "hf" (``w = [1, 0, ..., 0]``, the first determinant
        alone, as a Hartree–Fock reference) or "uniform" (``w_k = 1/K``).
      weights: initial weights ``[K]`` given by the user, overriding everything else.
        (Not called ``init``: that name is flax's ``Module.init``.)
      initial_weights: context from the model: the reference's weights ``[K]`` (CI
        coefficients of its determinants), used by ``weight_init="ci"``.

    With ``[1, 0, ..., 0]`` the weights ``w_k``, ``k > 0``, still get a gradient at the start
    (``d log|psi| / d w_k = prod_b det_k / psi``), but the orbitals of determinants ``k > 0`` do
    not until their weight has moved away from zero (their contribution is ``w_k`` times theirs);
    with identical determinants the weights' energy gradient is zero too. CI weights over
    distinct determinants (PauliNet's CASSCF reference) avoid both.

    Parameter ``weights`` ``[K]``, registered with :func:`~qmczoo.layers.curvature.scale`; under a
    geometry encoder (PESNet) a global geometry value instead (:mod:`qmczoo.layers.geometry_params`).
    1x1 blocks stay in linear scale, as in :func:`multi_determinant`.

    Call: ``blocks`` (list of ``[K, n_b, n_b]``). Returns ``(sign, log|psi|)``.
    """

    determinants: int
    weight_init: str = "ci"
    weights: Optional[Sequence[float]] = None
    initial_weights: Optional[Sequence[float]] = None

    def starting_weights(self, dtype=jnp.float32) -> jnp.ndarray:
        """The weights ``[K]`` the parameter starts at (see the attributes)."""
        k = self.determinants
        given = self.weights if self.weights is not None else (
            self.initial_weights if self.weight_init == "ci" else None)
        if given is not None:
            w = jnp.asarray(given, dtype=dtype)
            if w.shape != (k,):
                raise ValueError(f"WeightedDeterminants: weights must have shape ({k},), got {w.shape}")
            return w
        if self.weight_init in ("hf", "ci"):
            return jnp.zeros((k,), dtype).at[0].set(1.0)
        if self.weight_init == "uniform":
            return jnp.full((k,), 1.0 / k, dtype)
        raise ValueError(f"WeightedDeterminants: unknown weight_init {self.weight_init!r}; "
                         "choose 'ci', 'hf' or 'uniform'")

    @nn.compact
    def __call__(self, blocks: Sequence[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]:
        _check_blocks("WeightedDeterminants", blocks, self.determinants)
        def init(key, shape, dtype=jnp.float32):
            return self.starting_weights(dtype)

        signs, logdets = _signed_log_terms(blocks)
        # under a geometry encoder (PESNet) the weights are a global geometry value
        supplied = geometry_value(self, "weights", (self.determinants,), init, per_nucleus=False)
        if supplied is not None:
            return signed_logsumexp(signs * supplied, logdets)
        w = self.param("weights", init, (self.determinants,))
        # the weight multiplies a per-walker factor: a per-walker diagonal KFAC block
        return signed_logsumexp(scale(signs, w), logdets)
