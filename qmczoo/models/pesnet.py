"""PESNet (Gao & Günnemann, ICLR 2022): one wavefunction for a whole potential-energy surface.

A geometry encoder (a graph network over the nuclei, the ``geometry_encoder`` slot) maps the
nuclear geometry ``(Z, R)`` to per-nucleus and global vectors; output heads turn them into the
*geometry values* that the FermiNet's layers declare (:mod:`qmczoo.layers.geometry_params`):
the per-nucleus input maps of ``pesnet_features``, the per-nucleus envelope weights and
exponents and the determinant weights of ``weighted_determinants``. The FermiNet
(:class:`~qmczoo.models.ferminet.FermiNet`, any slot fillers) runs with them. The ansatz uses the contract's per-geometry stage: the encoder and its heads run once per
geometry (``geometry_stage``), the FermiNet once per walker (``electron_stage``).

Electron features are expressed in a frame that moves with the molecule (``pesnet_features``),
and every per-nucleus value follows its nucleus, so log|psi| is invariant to rotating and
translating the molecule with its electrons. The frame is signed wherever the molecule allows
(``frame: signed``, :mod:`qmczoo.layers.molecular_frame`): where the nuclear moments leave an
axis open (symmetric molecules) a designated nucleus fixes it, and relabelling that nucleus
with an identical one may change psi; with ``frame: symmetric`` psi is invariant to permuting
identical nuclei but then also to the molecule's proper symmetry rotations.

As in the ICLR 2022 model (n-gao/pesnet at its first release: ``LogSumDet`` with weights
``w`` that the MetaGNN's global output sets) the determinants carry geometry-dependent weights
(``antisymmetrizer: weighted_determinants``, all equal at the start), and there is no Jastrow
factor; the ``jastrow`` slot is open (``--set jastrow=ee_cusp_jastrow``). The later PESNet++
(Gao & Günnemann, ICLR 2023; the same repository's current ``FermiNet``) adds a neural Jastrow
and a learnable electron-electron cusp term: not part of this entry.
"""

from __future__ import annotations

import dataclasses
import math
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qmczoo.layers import geometry_params
from qmczoo.layers.curvature import Dense
from qmczoo.layers.filler import Layer
from qmczoo.models.ferminet import FermiNet, cusp_charges_of
from qmczoo.wavefunction import GeometryAnsatz


@dataclasses.dataclass(frozen=True)
class Declared:
    """One geometry value a layer declared: where (module path), shape, kind and start.

    ``start`` is the initialiser's value averaged over nuclei (per-nucleus values) as a flat
    tuple, ``spread`` its standard deviation: a head starts at ``start`` and its kernel is scaled
    so the head's initial output varies by about ``spread``.
    """

    path: tuple[str, ...]
    shape: tuple[int, ...]
    per_nucleus: bool
    start: tuple[float, ...]
    spread: float


def _scaled_normal(std: float, fan_in: int):
    def init(key, shape, dtype=jnp.float32):
        return (std / math.sqrt(max(1, fan_in))) * jax.random.normal(key, shape, dtype)

    return init


class GeometryHeads(nn.Module):
    """The encoder and one dense head per declared geometry value.

    ``(R [M,3]) -> {collection path: value}``: the nested dict that the FermiNet is applied with
    as the :data:`~qmczoo.layers.geometry_params.SUPPLIED` collection.
    """

    encoder: Layer
    charges: tuple
    declared: tuple  # of Declared

    @nn.compact
    def __call__(self, R: jnp.ndarray) -> dict:
        embedding = self.encoder.build(name="encoder", charges=self.charges)(R)
        supplied: dict = {}
        for d in self.declared:
            x = embedding.nuclei if d.per_nucleus else embedding.global_
            out_shape = d.shape[1:] if d.per_nucleus else d.shape
            size = int(np.prod(out_shape)) if out_shape else 1
            head = Dense(size, kernel_init=_scaled_normal(d.spread, x.shape[-1]), name="head_" + "_".join(d.path))(x)
            start = jnp.asarray(d.start, head.dtype)
            value = (head + start).reshape((x.shape[0], *out_shape) if d.per_nucleus else out_shape)
            node = supplied
            for part in d.path[:-1]:
                node = node.setdefault(part, {})
            node[d.path[-1]] = value
        return supplied


def _declarations(electrons: nn.Module, system) -> tuple[Declared, ...]:
    """Run the electron module once in declaration mode on the system's geometry."""
    from qmczoo.engine.sampler import initial_positions

    R = jnp.asarray(system.positions, jnp.float32)
    r = initial_positions(jax.random.PRNGKey(0), system, 1)[0]
    collections = [geometry_params.DECLARED_PER_NUCLEUS, geometry_params.DECLARED_GLOBAL]
    with geometry_params.declaring():  # traced (and so declared) inside this block; jit keeps it quick
        variables = jax.jit(lambda key, r, R: {k: v for k, v in electrons.init(
            key, r, R, mutable=["params", *collections]).items() if k in collections})(jax.random.PRNGKey(0), r, R)
    out = []
    for collection, per_nucleus in ((geometry_params.DECLARED_PER_NUCLEUS, True),
                                    (geometry_params.DECLARED_GLOBAL, False)):
        for path, value in jax.tree_util.tree_flatten_with_path(dict(variables.get(collection, {})))[0]:
            value = np.asarray(value, dtype=np.float64)
            start = value.mean(axis=0) if per_nucleus else value
            names = tuple(str(getattr(k, "key", k)) for k in path)
            out.append(Declared(path=names, shape=tuple(value.shape), per_nucleus=per_nucleus,
                                start=tuple(float(v) for v in start.ravel()), spread=float(value.std())))
    if not out:
        from qmczoo.errors import ConfigError

        raise ConfigError("pesnet's slot fillers declare no geometry values for its encoder to set: use "
                          "features=pesnet_features, envelope=isotropic_envelope or "
                          "antisymmetrizer=weighted_determinants")
    return tuple(out)


FRAMES = ("signed", "symmetric")
"""``frame`` option: designate nuclei where the moments leave the frame open (``signed``), or not."""


def make_pesnet(system, geometry_encoder: Layer, features: Layer, embedding: Layer, orbitals: Layer,
                envelope: Layer, antisymmetrizer: Layer, jastrow: Layer | None = None, determinants: int = 8,
                full_det: bool = True, frame: str = "signed", geometries=None) -> GeometryAnsatz:
    """Factory used by the registry. ``geometries`` ``[G, M, 3]`` (bohr): the geometries the
    ansatz will serve (they fix the static molecular-frame kind); default: the system's.
    ``frame``: one of :data:`FRAMES` (``frame_kind``'s ``designate``)."""
    from qmczoo.layers.frame_kind import frame_kind

    if frame not in FRAMES:
        raise ValueError(f"pesnet: frame must be one of {', '.join(FRAMES)}, got {frame!r}")
    charges = tuple(float(z) for z in system.charges)
    geoms = np.asarray(system.positions)[None] if geometries is None else np.asarray(geometries)
    kind = frame_kind(geoms, np.asarray(charges), designate=frame == "signed")
    electrons = FermiNet(n_up=system.n_up, n_down=system.n_down, charges=charges, features=features,
                         embedding=embedding, orbital_head=orbitals, envelope=envelope,
                         antisymmetrizer=antisymmetrizer, jastrow=jastrow, determinants=determinants,
                         full_det=full_det, frame=kind, cusp_charges=cusp_charges_of(system))
    heads = GeometryHeads(encoder=geometry_encoder, charges=charges, declared=_declarations(electrons, system))
    return GeometryAnsatz(geometry=heads, electrons=electrons)


__all__ = ["make_pesnet", "GeometryHeads", "Declared", "FRAMES"]
