"""Electron-pair streams with separate weights for same-spin and opposite-spin pairs.

A pair stream holds one vector per ordered electron pair, ``x[i, j]`` ``[N, N, F]``. Electrons
are ordered spin-up first, so the pairs fall into four spin blocks: up-up and down-down (the
*same-spin* pairs, diagonal ``i = j`` included) and up-down and down-up (the *opposite-spin*
pairs). DeepErwin's hybrid embedding (Gerard, Scherbela, Marquetand & Grohs, NeurIPS 2022) and
PauliNet's SchNet filters (Hermann, Schätzle & Noé, Nat. Chem. 12, 891, 2020) give the two kinds
their own weights.

The layers here *gather* each kind into one flat ``[P, F]`` array and apply one
:class:`~qmczoo.layers.curvature.Dense` to it (one repeated-dense KFAC block per kind, each
seeing only its own pairs), instead of applying both maps to all ``N^2`` pairs and selecting
with a mask, which would double the cost.
"""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense


def _blocks(n: int, n_up: int, same: bool) -> list[tuple[slice, slice]]:
    """The non-empty ``(rows, cols)`` spin blocks of one kind in an ``[n, n]`` pair array."""
    channels = [c for c in (slice(0, n_up), slice(n_up, n)) if c.stop > c.start]
    if same:
        return [(c, c) for c in channels]
    return [(a, b) for a in channels for b in channels if a != b]


def split_pairs(x: jnp.ndarray, n_up: int) -> tuple[Optional[jnp.ndarray], Optional[jnp.ndarray]]:
    """Gather the same-spin and the opposite-spin pairs of ``x`` ``[N, N, F]``.

    Returns:
      ``(same, opposite)``: ``same`` ``[n_up^2 + n_down^2, F]`` (the up-up block row-major,
      then the down-down block), ``opposite`` ``[2 n_up n_down, F]`` (up-down, then down-up);
      either is ``None`` when it has no pairs (``opposite`` for a single spin channel).
    """
    n, f = x.shape[0], x.shape[-1]
    out = []
    for same in (True, False):
        parts = [x[a, b].reshape(-1, f) for a, b in _blocks(n, n_up, same)]
        out.append(jnp.concatenate(parts, axis=0) if parts else None)
    return out[0], out[1]


def merge_pairs(same: Optional[jnp.ndarray], opposite: Optional[jnp.ndarray], n: int, n_up: int) -> jnp.ndarray:
    """The inverse of :func:`split_pairs`: ``[N, N, F]`` from the two flat pair arrays."""
    n_down = n - n_up
    f = (same if same is not None else opposite).shape[-1]

    def block(flat, offset, rows, cols):
        return flat[offset:offset + rows * cols].reshape(rows, cols, f)

    uu = block(same, 0, n_up, n_up) if n_up else None
    dd = block(same, n_up * n_up, n_down, n_down) if n_down else None
    ud = block(opposite, 0, n_up, n_down) if n_up and n_down else None
    du = block(opposite, n_up * n_down, n_down, n_up) if n_up and n_down else None
    rows = []
    if n_up:
        rows.append(uu if ud is None else jnp.concatenate([uu, ud], axis=1))
    if n_down:
        rows.append(dd if du is None else jnp.concatenate([du, dd], axis=1))
    return jnp.concatenate(rows, axis=0) if len(rows) > 1 else rows[0]


class SpinSplitPairDense(nn.Module):
    """``y[i, j] = x[i, j] @ W_s + b_s`` with ``s`` = same or opposite spin of ``i`` and ``j``.

    Each kind of pair has its own :class:`~qmczoo.layers.curvature.Dense` (kernel and bias in
    one repeated-dense KFAC block), applied to the gathered pairs of that kind only.

    Attributes:
      features: output width ``F'``.
      n_up: number of spin-up electrons (rows and columns ``[:n_up]``).
      use_bias: add a bias per kind.
      fan_in: the fan-in that sets the initial kernel scale (default ``F``).

    Call: ``x`` ``[N, N, F]``. Returns ``[N, N, F']``.
    """

    features: int
    n_up: int
    use_bias: bool = True
    fan_in: Optional[int] = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        same, opposite = split_pairs(x, self.n_up)
        dense = lambda kind: Dense(self.features, use_bias=self.use_bias, fan_in=self.fan_in, name=kind)  # noqa: E731
        same = None if same is None else dense("same")(same)
        opposite = None if opposite is None else dense("opposite")(opposite)
        return merge_pairs(same, opposite, x.shape[0], self.n_up)


class SpinSplitPairMap(nn.Module):
    """Apply ``make(kind)`` (a module per kind of pair) to the same-/opposite-spin pairs.

    For a small network on a pair stream (e.g. a SchNet filter) the pairs are gathered and
    scattered back once, not once per layer.

    Attributes:
      n_up: number of spin-up electrons.
      make: ``make("same")`` / ``make("opposite")`` builds the module for that kind (called
        inside this module, so the name given becomes a submodule name); it maps ``[P, F]``
        to ``[P, F']``.

    Call: ``x`` ``[N, N, F]``. Returns ``[N, N, F']``.
    """

    n_up: int
    make: Callable[[str], nn.Module]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        same, opposite = split_pairs(x, self.n_up)
        same = None if same is None else self.make("same")(same)
        opposite = None if opposite is None else self.make("opposite")(opposite)
        return merge_pairs(same, opposite, x.shape[0], self.n_up)
