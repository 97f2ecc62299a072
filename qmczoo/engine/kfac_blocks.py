"""kfac-jax curvature blocks made safe for layers that get no gradient.

kfac-jax's repeated-dense block (``RepeatedDenseKroneckerFactored``, every
:class:`~qmczoo.layers.curvature.Dense` applied to a ``[N, D]`` input) masks the repeats whose
output derivative is exactly zero and scales its curvature by ``1 / average_repeats``, the mean
number of unmasked repeats. A layer whose output does not reach log|psi| at all -- every
derivative exactly zero, as for a layer that feeds only output heads that start at zero --
has ``average_repeats = 0``: the scale is ``1 / 0 = inf``, ``inf * 0`` puts NaN into the
preconditioned gradient, and through the norm constraint every parameter of the update is NaN
(every step rejected by the NaN guard). PESNet without pretraining met this: its encoder's
``global`` map feeds only heads whose kernels start at zero.

:class:`RepeatedDense` is that block with the scale taken as 1 where no repeat is unmasked (its
factors are then zero, and kfac-jax's zero-factor case gives a damped identity): identical
arithmetic wherever ``average_repeats > 0``, a zero update instead of NaN for a layer without
gradient. :data:`BLOCKS` is the ``layer_tag_to_block_ctor`` the VMC step gives kfac-jax.
"""

from __future__ import annotations

import jax.numpy as jnp
from kfac_jax import RepeatedDenseKroneckerFactored


class RepeatedDense(RepeatedDenseKroneckerFactored):
    """``RepeatedDenseKroneckerFactored`` whose scale is finite when no repeat has a derivative."""

    def state_dependent_scale(self, state) -> jnp.ndarray:
        repeats = state.average_repeats.value
        return 1.0 / jnp.where(repeats > 0, repeats, 1.0)


BLOCKS = {"repeated_dense": RepeatedDense}
