"""PESNet's input features: electrons seen from a frame that moves with the molecule.

The features-slot filler ``pesnet_features`` (Gao & Günnemann, ICLR 2022) differs from
FermiNet's in two ways, both needed for one network over many geometries:

* displacements are expressed in the molecular frame of :mod:`qmczoo.layers.molecular_frame`
  (its ``frame_coordinates``: signed components wherever the nuclei fix the axes, squared or
  radial ones where they cannot), so the features are invariant to rotating and translating
  the molecule with its electrons but not to reflecting the electrons alone;
* the one-electron input is a sum over nuclei, ``one_i = sum_I tanh(x_iI @ W_I + b_I)``, with
  ``x_iI`` the frame coordinates of ``r_i - R_I`` and ``|r_i - R_I|``. ``W_I`` and ``b_I`` are
  per-nucleus geometry values (:mod:`qmczoo.layers.geometry_params`): under a geometry
  encoder they are computed from nucleus ``I``'s embedding, so that permuting identical nuclei
  permutes the terms of the sum and changes nothing, and they change with the geometry. On its
  own the layer has one registered dense map per nucleus instead. Under an encoder, a global
  geometry value shifts ``one`` as a whole (from the encoder's global vector).

The pair input is ``[frame coordinates of r_i - r_j, |r_i - r_j|, t_ij]`` ``[N, N, K + 1 + P]``,
where ``t_ij = u . ((r_i - c) x (r_j - c))`` (``P = 1``) is the pseudoscalar that a linear
molecule's frame hands on instead of the angle about its axis (``frame_chirality``; ``P = 0``
for other frames): with it ψ is not forced to be symmetric under reflections through a plane
containing the axis (Σ⁻ states). Raw displacements and distances are handed on unchanged for
envelopes and Jastrows.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense, fan_in_normal
from qmczoo.layers.features import electron_electron, electron_nuclear, log_rescale
from qmczoo.layers.geometry_params import geometry_value
from qmczoo.layers.molecular_frame import FrameKind, frame_chirality, frame_coordinates, molecular_frame
from qmczoo.layers.slots import ElectronFeatures

SPHERICAL = FrameKind(groups=((0, 1, 2),), signs=("none",))


class PESNetFeatures(nn.Module):
    """Features in the molecular frame (module docstring). ``(r [N,3], R [M,3]) -> ElectronFeatures``
    with ``one`` ``[N, width]`` and ``two`` ``[N, N, K + 1 + P]``.

    Attributes:
      charges: nuclear charges ``[M]`` (the frame is charge-weighted).
      frame: the static frame kind of the geometries the ansatz serves (``frame_kind``,
        handed over by the model); ``None``: the spherical kind (``|d|^2`` only), which is
        invariant for any molecule.
      width: width of the one-electron input.
      rescale: log-rescale displacements and distances (and the positions entering ``t_ij``)
        before the frame projection.
    """

    charges: tuple
    frame: object = None
    width: int = 32
    rescale: bool = False

    @nn.compact
    def __call__(self, r: jnp.ndarray, R: jnp.ndarray) -> ElectronFeatures:
        kind = self.frame if self.frame is not None else SPHERICAL
        origin, axes = molecular_frame(R, self.charges, kind)
        en_disp, en_dist = electron_nuclear(r, R)
        ee_disp, ee_dist = electron_electron(r)
        d1, r1 = (log_rescale(en_disp, en_dist) if self.rescale else (en_disp, en_dist))
        d2, r2 = (log_rescale(ee_disp, ee_dist) if self.rescale else (ee_disp, ee_dist))
        x = jnp.concatenate([frame_coordinates(d1, axes, kind), r1], axis=-1)  # [N, M, K+1]
        pos = r - origin  # positions from the centre of nuclear charge, for the pseudoscalar t_ij
        if self.rescale:
            pos, _ = log_rescale(pos, jnp.linalg.norm(pos, axis=-1, keepdims=True))
        two = jnp.concatenate([frame_coordinates(d2, axes, kind), r2, frame_chirality(pos, axes, kind)],
                              axis=-1)  # [N, N, K+1+P]
        m, k = x.shape[1], x.shape[2]
        kernel_init = fan_in_normal(k)
        kernel = geometry_value(self, "nuclear_kernel", (m, k, self.width), kernel_init, per_nucleus=True)
        bias = geometry_value(self, "nuclear_bias", (m, self.width), nn.initializers.zeros, per_nucleus=True)
        if kernel is not None and bias is not None:  # supplied by a geometry encoder
            terms = jnp.einsum("nmk,mkf->nmf", x, kernel) + bias[None]
        else:  # on its own: one registered dense map per nucleus
            terms = jnp.stack([Dense(self.width, name=f"nucleus_{i}")(x[:, i]) for i in range(m)], axis=1)
        one = jnp.sum(jnp.tanh(terms), axis=1)
        shift = geometry_value(self, "global_shift", (self.width,), nn.initializers.zeros, per_nucleus=False)
        if shift is not None:  # a global, geometry-dependent shift (the encoder's global vector)
            one = one + shift
        return ElectronFeatures(one=one, two=two, en_disp=en_disp, en_dist=en_dist, ee_disp=ee_disp,
                                ee_dist=ee_dist)
