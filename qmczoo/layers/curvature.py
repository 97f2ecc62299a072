"""KFAC curvature for every parameter: the registration helpers layer authors use.

kfac-jax builds a Kronecker-factored (or per-example diagonal) curvature block only for
operations it recognises, either by its graph matcher or because they are *tagged* with
``kfac_jax.register_*``. Any other parameter lands in a ``NaiveDiagonal`` block, whose
estimate is the square of the batch-summed gradient instead of the per-walker Fisher
diagonal: off by orders of magnitude, and it wastes KFAC's norm-constrained step budget.

The rule for a new layer (see ``docs/engine.md``, "KFAC curvature"):

* a linear map ``y = x @ W + b`` of a per-configuration input ``x`` ``[D]`` or ``[..., D]``:
  use :class:`Dense` (kernel and bias in one Kronecker-factored block);
* an elementwise product with a parameter, ``y = x * s`` (envelope exponents and weights):
  use :func:`scale` (per-walker diagonal block); with a shift, ``y = x * s + b`` (a layer
  norm): :func:`scale_and_shift`;
* any other parameter (it enters nonlinearly, e.g. a Jastrow length scale): read it through
  :func:`tracked_parameter`, which gives it a per-walker diagonal block;
* then check with :func:`qmczoo.testing.kfac_block_types` (the invariance suite does so for
  every registry entry) that no parameter is left in a ``NaiveDiagonal`` block.

Tags are identity operations at run time; folx's forward Laplacian is taught here to pass
them through (otherwise it would fall back to a dense Hessian for them).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import folx
import jax
import jax.numpy as jnp
import kfac_jax
from kfac_jax._src.layers_and_loss_tags import layer_tag

Dtype = Any


def _tag_passthrough(args, kwargs, sparsity_threshold):
    """folx rule for kfac-jax's ``layer_tag``: it returns its output operands unchanged."""
    del sparsity_threshold
    outputs = [args[i] for i in kwargs["meta"].outputs_index]
    return outputs if layer_tag.multiple_results else outputs[0]


folx.register_function(layer_tag, _tag_passthrough)


def fan_in_normal(fan_in: int):
    """Normal initialiser with variance ``1 / fan_in`` (``fan_in`` may exceed the kernel's rows).

    Layers that add several linear maps (:class:`~qmczoo.layers.spin_pooling.EquivariantDense`)
    pass the *total* fan-in, so that the sum has the variance of one dense layer over the
    concatenated input.
    """
    std = 1.0 / math.sqrt(max(1, fan_in))

    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)

    return init


class Dense(nn.Module):
    """``y = x @ kernel + bias`` with kernel and bias registered in one KFAC block.

    Attributes:
      features: output width ``F``.
      use_bias: add a bias (registered with the kernel).
      fan_in: the fan-in that sets the initial kernel scale (default: ``x.shape[-1]``).
      kernel_init: an initialiser replacing the fan-in normal one.
      bias_init: the bias's initialiser (default: zeros).

    Call: ``x`` ``[D]`` (one vector per configuration: a dense block) or ``[..., D]`` (one per
    electron or electron pair: a repeated-dense block). Returns ``[..., F]``.
    """

    features: int
    use_bias: bool = True
    fan_in: int | None = None
    kernel_init: Any = None
    bias_init: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        d = x.shape[-1]
        init = self.kernel_init or fan_in_normal(self.fan_in or d)
        kernel = self.param("kernel", init, (d, self.features))
        bias = None
        if self.use_bias:
            bias = self.param("bias", self.bias_init or nn.initializers.zeros, (self.features,))
        # no dtype casts: the tag must see the parameter leaves themselves
        y = jnp.dot(x, kernel)
        if bias is not None:
            y = y + bias
        # one vector per walker: a dense block; several (kfac-jax flattens the leading axes
        # of a repeated-dense block itself): a repeated-dense block
        variant = "dense" if x.ndim == 1 else "repeated_dense"
        return kfac_jax.register_dense(y, x, kernel, bias, variant=variant)


def scale(x: jnp.ndarray, s: jnp.ndarray) -> jnp.ndarray:
    """``x * s`` with the parameter ``s`` in a per-walker diagonal KFAC block.

    ``s`` must be a parameter leaf itself (not a function of one); ``x`` is broadcast to the
    shape of the product first, and ``s`` broadcasts against its trailing axes.
    """
    shape = jnp.broadcast_shapes(x.shape, s.shape)
    x = jnp.broadcast_to(x, shape)
    return kfac_jax.register_scale_and_shift(x * s, x, scale=s)


def scale_and_shift(x: jnp.ndarray, s: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``x * s + b`` with the parameters ``s`` and ``b`` in one per-walker scale-and-shift KFAC block
    (a layer norm's gain and bias). ``s`` and ``b`` are parameter leaves broadcasting against
    the trailing axes of ``x``."""
    return kfac_jax.register_scale_and_shift(x * s + b, x, scale=s, shift=b)


def tracked_parameter(value: jnp.ndarray, anchor: jnp.ndarray) -> jnp.ndarray:
    """Return ``value`` (a parameter leaf) so that kfac-jax gives it a per-walker diagonal block.

    For a parameter that enters its layer nonlinearly. The value is passed through a
    registered scale ``1 * value``; the ones depend (with zero weight and no gradient) on
    ``anchor``, any array computed from the walker's positions, so that the tag carries a
    walker axis once the model is vmapped and kfac-jax sees one derivative per walker.
    """
    tie = 0.0 * jax.lax.stop_gradient(jnp.sum(anchor)).astype(value.dtype)
    ones = jnp.ones(value.shape, value.dtype) + tie
    return scale(ones, value)
