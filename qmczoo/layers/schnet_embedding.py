"""PauliNet's SchNet-style electron embedding (Hermann, Schätzle & Noé, Nat. Chem. 12, 891, 2020).

Continuous-filter convolutions (Schütt et al., NeurIPS 2017) on the graph of electrons and
nuclei. Each electron starts from a learned vector of its spin; each interaction layer sends it
messages from every other electron ``j`` (a filter of the distance ``|r_i - r_j|``, one filter
for same-spin and one for opposite-spin pairs, times a linear map of ``x_j``) and from every
nucleus ``I`` (a filter of ``|r_i - R_I|`` times a learned vector of the nucleus' charge), and
adds a function of their sum to ``x_i``.

Only distances enter, through functions that are even in the distance and vanish beyond a
cutoff, so the embedding is invariant under translations and rotations, equivariant under
permutations of same-spin electrons, invariant under permutations of identical nuclei, and
smooth at electron-electron and electron-nuclear coalescence (it adds no cusp; the cusps are a
Jastrow factor's job).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.layers.curvature import Dense
from qmczoo.layers.activations import activation
from qmczoo.layers.pair_streams import split_pairs, merge_pairs
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput
from qmczoo.layers.spin_pooling import spin_means


# ----------------------------------------------------------------------------- distance bases


_TINY = 1e-20
"""Added to squared distances under the square root, so that the derivatives stay finite at
exact coalescence (also the second ones in float32: ``_TINY ** -1.5`` does not overflow)."""


def squared_distance(disp: jnp.ndarray) -> jnp.ndarray:
    """``|disp|^2`` ``[..., 1]`` from displacements ``[..., 3]`` (smooth everywhere, unlike ``|disp|``)."""
    return jnp.sum(jnp.square(disp), axis=-1, keepdims=True)


def even_radial_basis(dist2: jnp.ndarray, n_rbf: int, cutoff: float) -> jnp.ndarray:
    """Gaussians of the distance ``d``, each mirrored at ``-mu_k`` so that the basis is even in ``d``.

    ``e_k(d) = exp(-((d - mu_k) / s_k)^2) + exp(-((d + mu_k) / s_k)^2)``, a smooth function of
    ``d^2`` and so of the displacement vector, also at ``d = 0``. Centres ``mu_k = c q_k^2``
    with ``q_k`` evenly spaced in ``[0, 1]`` (denser at short range), widths
    ``s_k = (1 + c q_k) / 7`` (PauliNet's spacing).

    Args:
      dist2: squared distances ``[..., 1]`` (see :func:`squared_distance`); ``d`` is taken as
        ``sqrt(d^2 + 1e-20)``, whose derivative is finite even at ``d = 0`` (and zero once
        multiplied by that of ``d^2``).
      n_rbf: number ``K`` of basis functions.
      cutoff: ``c``, the largest centre.

    Returns:
      ``[..., K]``.
    """
    q = np.linspace(0.0, 1.0, n_rbf)
    mu = jnp.asarray(cutoff * q**2, dist2.dtype)
    inv_width = jnp.asarray(7.0 / (1.0 + cutoff * q), dist2.dtype)
    dist = jnp.sqrt(dist2 + _TINY)
    return jnp.exp(-jnp.square((dist - mu) * inv_width)) + jnp.exp(-jnp.square((dist + mu) * inv_width))


def smooth_cutoff(dist2: jnp.ndarray, cutoff: float) -> jnp.ndarray:
    """``max(0, 1 - d^2 / c^2)^3`` of squared distances: 1 at ``d = 0``, a polynomial in ``d^2``
    inside the cutoff, zero beyond it (twice continuously differentiable there). Shape unchanged."""
    return jnp.maximum(0.0, 1.0 - dist2 / cutoff**2) ** 3


# ----------------------------------------------------------------------------- learned vectors


def _tied(x: np.ndarray, anchor: jnp.ndarray) -> jnp.ndarray:
    """The constant ``x`` as an array that depends (with zero weight) on ``anchor``.

    A linear map of a constant (a one-hot label) must still carry the walker axis once the
    model is vmapped, so that kfac-jax sees one derivative per walker (see
    :func:`qmczoo.layers.curvature.tracked_parameter`).
    """
    tie = 0.0 * jax.lax.stop_gradient(jnp.sum(anchor))
    return jnp.asarray(x, anchor.dtype) + tie


def spin_vectors(width: int, n_up: int, n_down: int, anchor: jnp.ndarray, name: str) -> jnp.ndarray:
    """A learned vector per spin, one row per electron ``[N, width]`` (spin-up rows first).

    A :class:`~qmczoo.layers.curvature.Dense` of the one-hot spin label (a repeated-dense KFAC
    block), initialised with unit variance. Call inside a compact module.
    """
    spin = np.repeat(np.eye(2), [n_up, n_down], axis=0)
    return Dense(width, use_bias=False, fan_in=1, name=name)(_tied(spin, anchor))


def nucleus_vectors(width: int, charges, anchor: jnp.ndarray, name: str) -> jnp.ndarray:
    """A learned vector per nucleus keyed by its charge ``[M, width]``: nuclei of the same
    element share one, so the result permutes with identical nuclei. A Dense of the one-hot
    element label, initialised with unit variance. Call inside a compact module."""
    species = sorted(set(float(z) for z in charges))
    onehot = np.asarray([[float(z) == s for s in species] for z in charges], dtype=np.float64)
    return Dense(width, use_bias=False, fan_in=1, name=name)(_tied(onehot, anchor))


def without_self(n: int, dtype) -> jnp.ndarray:
    """``[n, n, 1]``: ones off the diagonal, zeros on it (drops an electron's own pair)."""
    return jnp.asarray(1.0 - np.eye(n)[..., None], dtype)


def spin_pair_filters(basis: tuple, n_up: int, n_down: int, width: int, make_filter) -> jnp.ndarray:
    """Filters of electron pairs, one network for same-spin and one for opposite-spin pairs.

    Args:
      basis: ``split_pairs`` of a pair basis ``[N, N, K]`` (same-spin, opposite-spin rows).
      n_up, n_down: electrons of each spin.
      width: output width ``F`` of the filters.
      make_filter: ``make_filter("same" | "opposite")`` builds the filter module (call inside a
        compact module), ``[P, K] -> [P, F]``.

    Returns:
      ``[N, N, F]``. With at most one electron per spin the only same-spin "pairs" are the
      electrons' own, which callers drop: they get zeros and no filter, since a filter with no
      gradient at all breaks KFAC's damping.
    """
    same, opposite = basis
    if same is not None:
        same = (make_filter("same")(same) if max(n_up, n_down) >= 2
                else jnp.zeros(same.shape[:-1] + (width,), same.dtype))
    opposite = None if opposite is None else make_filter("opposite")(opposite)
    return merge_pairs(same, opposite, n_up + n_down, n_up)


# ----------------------------------------------------------------------------- the embedding


class _Filter(nn.Module):
    """A two-layer filter network ``Dense -> act -> Dense`` on ``[P, K]`` -> ``[P, width]``.

    The last kernel starts with variance ``1 / (hidden * neighbours)``, so that a sum of
    ``neighbours`` filtered messages starts at unit scale.
    """

    hidden: int
    width: int
    neighbours: int
    activation: str

    @nn.compact
    def __call__(self, basis):
        act = activation(self.activation)
        hidden = act(Dense(self.hidden, name="hidden")(basis))
        return Dense(self.width, fan_in=self.hidden * self.neighbours, name="out")(hidden)


class SchNetEmbedding(nn.Module):
    """PauliNet's electron embedding: SchNet interactions on distances only.

    Attributes:
      n_up, n_down: electrons per spin (rows ordered up first).
      charges: nuclear charges ``(Z_1, ..., Z_M)``; nuclei with equal charge share a vector.
      width: width ``D`` of the electron vectors and of the filters.
      n_interactions: number of interaction layers.
      n_rbf: number of radial basis functions per distance.
      cutoff: distance (bohr) beyond which filters vanish.
      filter_width: hidden width of the filter networks.
      activation: nonlinearity of the filter and update networks.

    Call:
      ``features``: :class:`~qmczoo.layers.slots.ElectronFeatures`; only the lengths of
      ``ee_disp`` ``[N, N, 3]`` and ``en_disp`` ``[N, M, 3]`` are used (recomputed from the
      displacements, so that the derivative stays finite for an electron exactly on a
      nucleus or on another electron).

    Returns:
      :class:`~qmczoo.layers.slots.EmbeddingOutput` with ``h`` ``[N, D]``, ``shared`` the spin
      means of ``h`` concatenated ``[c D]`` (``c`` non-empty spin channels) and ``pair=None``.

    Interaction ``l``, with ``e(d)`` the :func:`even_radial_basis` times :func:`smooth_cutoff`
    applied to the filter::

        z_i = sum_{j != i} W^{s(i,j)}_l(e(|r_ij|)) * (V_l x_j) + sum_I W^n_l(e(|r_iI|)) * Y_l[Z_I]
        x_i <- x_i + G_l(z_i)

    with ``s(i, j)`` same or opposite spin, ``W`` two-layer filter networks, ``V_l`` linear,
    ``G_l`` a two-layer network.
    """

    n_up: int
    n_down: int
    charges: tuple[float, ...]
    width: int = 64
    n_interactions: int = 3
    n_rbf: int = 16
    cutoff: float = 10.0
    filter_width: int = 64
    activation: str = "tanh"

    @nn.compact
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput:
        act = activation(self.activation)
        n, m = features.n_electrons, features.en_disp.shape[1]
        # bases and cutoffs once for all layers; an electron's own pair (its diagonal distance
        # set to 1, away from the square root's singularity) gets a zero cutoff
        ee_dist2 = squared_distance(features.ee_disp) + jnp.eye(n, dtype=features.ee_disp.dtype)[..., None]
        en_dist2 = squared_distance(features.en_disp)
        ee_basis = split_pairs(even_radial_basis(ee_dist2, self.n_rbf, self.cutoff), self.n_up)
        ee_cut = smooth_cutoff(ee_dist2, self.cutoff) * without_self(n, ee_dist2.dtype)
        en_basis = even_radial_basis(en_dist2, self.n_rbf, self.cutoff)
        en_cut = smooth_cutoff(en_dist2, self.cutoff)
        neighbours = n - 1 + m

        def filters(name):
            return _Filter(self.filter_width, self.width, neighbours, self.activation, name=name)

        x = spin_vectors(self.width, self.n_up, self.n_down, ee_dist2, name="spin_vectors")
        for layer in range(self.n_interactions):
            w_ee = spin_pair_filters(ee_basis, self.n_up, self.n_down, self.width,
                                     lambda kind: filters(f"{kind}_filter_{layer}")) * ee_cut
            w_en = filters(f"nuclear_filter_{layer}")(en_basis) * en_cut
            v = Dense(self.width, use_bias=False, name=f"electron_values_{layer}")(x)
            y = nucleus_vectors(self.width, self.charges, en_dist2, name=f"nucleus_vectors_{layer}")
            # products then sums, not einsum: folx's forward Laplacian is faster on them
            z = jnp.sum(w_ee * v[None], axis=1) + jnp.sum(w_en * y[None], axis=1)
            update = Dense(self.width, name=f"update_out_{layer}")(act(Dense(self.width, name=f"update_in_{layer}")(z)))
            x = x + update
        shared = jnp.concatenate(spin_means(x, self.n_up), axis=-1)
        return EmbeddingOutput(h=x, shared=shared, pair=None)
