"""The harness a layer is checked in (:func:`layer_harness`): the layer in its slot of a small
ansatz on a two-nucleus system (:data:`HARNESS_GEOMETRY`; a geometry encoder on an asymmetric
H2O, :data:`GEOMETRY_ENCODER_HARNESS`), fed by the default fillers of the slots before it."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from qmczoo.layers.filler import Layer
from qmczoo.registry.symmetry import UPSTREAM


HARNESS_GEOMETRY = "B 0 0 0; H 0 0 2.329"  # bohr; 3 up + 3 down electrons, two nuclei
GEOMETRY_ENCODER_HARNESS = "O 0 0 0; H 1.8 0 0; H -0.5 1.7 0.2"  # bohr; asymmetric, two identical nuclei
HARNESS_GEOMETRIES = {"geometry_encoder": GEOMETRY_ENCODER_HARNESS}
"""Slots whose harness molecule is not :data:`HARNESS_GEOMETRY` (BH has no identical nuclei)."""
DETERMINANTS = 2
ENVELOPE_ORBITALS = 3


@functools.lru_cache(maxsize=None)
def _harness_system(geometry: str = HARNESS_GEOMETRY):
    from qmczoo.chemistry.systems import get_system

    return get_system(geometry, unit="bohr")


class _Harness(nn.Module):
    """Feeds ``layer`` what its slot receives in an ansatz; returns the layer's output."""

    layer: Layer
    n_up: int
    n_down: int
    charges: tuple
    hartree_fock: Any = None
    fed_by: Layer | None = None  # the orbitals filler whose blocks an antisymmetrizer receives
    invariant_inputs: bool = False  # feed invariant inputs (the `preserves` check)

    @nn.compact
    def __call__(self, r, R):
        from qmczoo.layers.envelopes import IsotropicEnvelope
        from qmczoo.layers.features import ferminet_features
        from qmczoo.layers.ferminet_embedding import FermiNetEmbedding
        from qmczoo.layers.filler import make_layer
        from qmczoo.layers.orbitals import OrbitalMatrices

        envelope = make_layer("isotropic_envelope", "envelope", IsotropicEnvelope)
        context = dict(n_up=self.n_up, n_down=self.n_down, charges=self.charges, determinants=DETERMINANTS,
                       full_det=True, envelope=envelope, orbitals=ENVELOPE_ORBITALS,
                       hartree_fock=self.hartree_fock)
        slot = self.layer.slot
        built = self.layer.build(name="layer", **context) if slot != "features" else self.layer.build(**context)
        if slot == "features":
            return built(r, R)
        if slot == "geometry_encoder":
            # In training the encoder runs vmapped over walkers with each walker's geometry, so its
            # weights see a walker axis (repeated-dense KFAC blocks, one derivative per walker).
            # kfac_block_types vmaps over r only (R unbatched): R is tied to the walker here with
            # zero weight and no gradient, which changes no value and gives R that walker axis.
            tie = 0.0 * jax.lax.stop_gradient(jnp.sum(r))
            return built(R + tie)
        features = ferminet_features(r, R)
        # the `preserves` check: invariant stream inputs for the harness embedding, and for the layer
        # itself only if it may read them (qmczoo.registry.symmetry.UPSTREAM); its raw displacements rotate
        invariant = _invariant_streams(features) if self.invariant_inputs else features
        if "features" in UPSTREAM.get(slot, ()):
            features = invariant
        if slot == "envelope":
            return built(features.en_disp, features.en_dist)
        if slot == "baseline":
            return built(features)
        embedding = FermiNetEmbedding(n_up=self.n_up, hidden_dims=((8, 4),), name="harness_embedding")(invariant)
        if self.invariant_inputs:  # invariant h, shared, pair; a rotating irreps part for heads that (wrongly) read it
            embedding = embedding.replace(irreps=_rotating_irreps(features))
        if slot == "embedding":
            return built(features)
        if slot == "orbitals":
            return built(embedding, features)
        if slot == "jastrow":
            return built(features, embedding)
        if slot == "backflow":  # baseline-like orbitals of the up electrons: fixed functions of r
            if self.invariant_inputs:  # functions of the distances to the first nucleus
                d = features.en_dist[: self.n_up, 0]
                phi = jnp.exp(-d * jnp.asarray([1.0, 0.6, 0.3], r.dtype))
            else:
                centres = jnp.asarray([[0.3, -0.2, 0.1], [0.0, 0.5, 1.2], [-0.4, 0.0, 2.0]], r.dtype)
                phi = jnp.exp(-jnp.linalg.norm(r[: self.n_up, None] - centres[None], axis=-1))
            return built(embedding.h[: self.n_up], phi)
        if slot == "antisymmetrizer":
            if self.fed_by is None or self.invariant_inputs:  # (invariant blocks: any square blocks do)
                head = OrbitalMatrices(n_up=self.n_up, n_down=self.n_down, envelope=envelope,
                                       determinants=DETERMINANTS, full_det=False, name="harness_orbitals")
            else:
                head = self.fed_by.build(name="harness_orbitals", **{**context, "full_det": False})
            return built(head(embedding, features))
        raise ValueError(f"check_layer has no harness for slot {slot!r}")


def _invariant_streams(features):
    """``features`` with stream inputs invariant under rotations and inversion: ``one`` the
    electron-nuclear distances ``[N, M]``, ``two`` the electron-electron distances ``[N, N, 1]``
    (the raw displacements stay: they always rotate)."""
    return features.replace(one=features.en_dist[..., 0], two=features.ee_dist)


def _rotating_irreps(features):
    """An equivariant ``1o`` feature per electron (the sum of its displacements from the nuclei)."""
    import e3nn_jax as e3nn

    return e3nn.IrrepsArray("1o", jnp.sum(features.en_disp, axis=1))


def layer_harness(layer: Layer, fed_by: Layer | None = None, invariant_inputs: bool = False):
    """``(init, apply, system)`` of the harness of ``layer``: ``apply(params, r [N,3], R [M,3])``
    returns what the layer returns in its slot. An antisymmetrizer receives the blocks of
    ``fed_by`` (an orbitals filler; default ``orbital_matrices``, block-diagonal). With
    ``invariant_inputs`` what the layer reads from other slots is invariant under joint
    rotations and inversion (for the ``preserves`` claim; an antisymmetrizer then receives
    ``orbital_matrices`` blocks of an invariant embedding, whatever ``fed_by`` says)."""
    system = _harness_system(HARNESS_GEOMETRIES.get(layer.slot, HARNESS_GEOMETRY))
    hf = None
    if layer.slot == "baseline":
        from qmczoo.chemistry.hartree_fock import run_hartree_fock

        hf = run_hartree_fock(system, "sto-3g")
    module = _Harness(layer=layer, n_up=system.n_up, n_down=system.n_down,
                      charges=tuple(float(z) for z in system.charges), hartree_fock=hf, fed_by=fed_by,
                      invariant_inputs=invariant_inputs)
    return module.init, module.apply, system
