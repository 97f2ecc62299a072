"""The slots an ansatz is composed of, what goes in and out of each, and a resolved filler.

An ansatz is a few typed slots filled by layers (see ``docs/slots.md``). A model never imports
a concrete layer to fill a slot: it receives a :class:`Layer` for each slot, resolved through
the registry from the name that ``qmczoo list`` shows (``--set embedding=schnet_embedding``),
and builds it with :meth:`Layer.build`, handing over the *context* that the slot defines
(electron counts, charges, orbital counts...). A filler declares the context fields it needs as
dataclass fields (a flax module) or keyword parameters (a function); it gets only those.

Every call is on ONE configuration (no batch axis). Electrons are ordered spin-up first.
``charges`` are the atomic numbers Z (also with an effective core potential); ``cusp_charges``
is None, or, for a system with pseudo-nuclei, Kato's cusp of each nucleus (0 at a pseudo-nucleus).

======================  =====================================  ===================================
slot                    call                                   context a model hands over
======================  =====================================  ===================================
features                ``f(r [N,3], R [M,3]) -> ElectronFeatures``  (none)
embedding               ``m(features) -> EmbeddingOutput``      ``n_up, n_down, charges``
orbitals                ``m(embedding, features) -> blocks``    ``n_up, n_down, determinants,
                                                               full_det, envelope, charges,
                                                               envelope_initial``
envelope                ``m(en_disp [N,M,3], en_dist [N,M,1]) -> [N,K]``  ``orbitals, charges,
                                                               initial``
baseline                ``m(features[, R]) -> (up [n_up,P_up], down [n_down,P_down])``
                                                               ``hartree_fock, n_up, n_down``
backflow                ``m(h [n,D], phi [n,P] | [K,n,P]) -> [K,n,P]``  ``determinants, n_up``
antisymmetrizer         ``m(blocks) -> (sign, log|psi|)``       ``determinants, initial_weights``
jastrow                 ``m(features, embedding) -> scalar``    ``n_up, n_down, charges,
                                                               cusp_charges``
geometry_encoder        ``m(R [M,3]) -> NuclearEmbedding``      ``charges``
======================  =====================================  ===================================

A baseline returns the ``P`` orbitals its reference's determinants draw from (``P = n`` for a
Hartree–Fock determinant); the model picks each determinant's columns and may hand the backflow
one block per determinant ``[K, n, P]``. ``initial_weights`` are the reference's CI coefficients.

A geometry encoder (PESNet) sees the nuclei only: its :class:`NuclearEmbedding` holds a vector
per nucleus ``[M, D]`` (equivariant under permutations of identical nuclei) and one for the
whole geometry ``[Dg]``, both invariant under rotations and translations of ``R``.

``blocks`` is a list of ``[K, n_b, n_b]`` matrices (one dense ``[K, N, N]`` block, or one block
per non-empty spin channel); for a determinant antisymmetrizer entry ``[k, i, j]`` is orbital
``j`` of term ``k`` at electron ``i``, for the pair product see
:mod:`qmczoo.layers.pair_product`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Protocol, runtime_checkable

import flax.struct
import jax.numpy as jnp

from qmczoo.layers.filler import NONE, Layer, make_layer  # noqa: F401  (re-exported)


# ----------------------------------------------------------------------------- data between slots


@flax.struct.dataclass
class ElectronFeatures:
    """What the features slot hands on (one configuration).

    Attributes:
      one: one-electron stream input ``[N, F1]`` (possibly rescaled).
      two: electron-pair stream input ``[N, N, F2]`` (possibly rescaled).
      en_disp: raw electron–nuclear displacements ``r_i - R_I`` ``[N, M, 3]``.
      en_dist: raw electron–nuclear distances ``[N, M, 1]``.
      ee_disp: raw electron–electron displacements ``r_i - r_j`` ``[N, N, 3]``.
      ee_dist: raw electron–electron distances ``[N, N, 1]`` (zero diagonal, finite derivative).
    """

    one: jnp.ndarray
    two: jnp.ndarray
    en_disp: jnp.ndarray
    en_dist: jnp.ndarray
    ee_disp: jnp.ndarray
    ee_dist: jnp.ndarray

    @property
    def n_electrons(self) -> int:
        return self.en_disp.shape[0]


@flax.struct.dataclass
class EmbeddingOutput:
    """What the embedding slot hands on (one configuration).

    Attributes:
      h: per-electron features ``[N, D]``, equivariant under same-spin permutations.
      shared: per-configuration features ``[Dg]`` (e.g. spin means of ``h``) or ``None``.
      pair: per-electron summaries of the pair stream ``[N, Dp]`` or ``None``.
      irreps: equivariant per-electron features, an ``e3nn.IrrepsArray`` ``[N, dim]`` that
        rotates with the molecule (an equivariant embedding hands them on), or ``None``.

    A head combines the three parts with
    :class:`~qmczoo.layers.spin_pooling.EquivariantDense` (``shared`` is multiplied once, not
    once per electron).
    """

    h: jnp.ndarray
    shared: Optional[jnp.ndarray] = None
    pair: Optional[jnp.ndarray] = None
    irreps: Any = None


@flax.struct.dataclass
class NuclearEmbedding:
    """What the geometry-encoder slot hands on (one geometry).

    Attributes:
      nuclei: per-nucleus vectors ``[M, D]``, equivariant under permutations of identical nuclei.
      global_: a vector of the whole geometry ``[Dg]``, invariant under those permutations.

    Both are invariant under rotations and translations of the nuclear positions.
    """

    nuclei: jnp.ndarray
    global_: jnp.ndarray


# ----------------------------------------------------------------------------- slot protocols


@runtime_checkable
class Features(Protocol):
    def __call__(self, r: jnp.ndarray, R: jnp.ndarray) -> ElectronFeatures: ...


@runtime_checkable
class Embedding(Protocol):
    def __call__(self, features: ElectronFeatures) -> EmbeddingOutput: ...


@runtime_checkable
class Orbitals(Protocol):
    def __call__(self, embedding: EmbeddingOutput, features: ElectronFeatures) -> list[jnp.ndarray]: ...


@runtime_checkable
class Envelope(Protocol):
    def __call__(self, en_disp: jnp.ndarray, en_dist: jnp.ndarray) -> jnp.ndarray: ...


@runtime_checkable
class Baseline(Protocol):
    def __call__(self, features: ElectronFeatures) -> tuple[jnp.ndarray, jnp.ndarray]: ...


@runtime_checkable
class Backflow(Protocol):
    def __call__(self, h: jnp.ndarray, phi: jnp.ndarray) -> jnp.ndarray: ...


@runtime_checkable
class Antisymmetrizer(Protocol):
    def __call__(self, blocks: list[jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray]: ...


@runtime_checkable
class Jastrow(Protocol):
    def __call__(self, features: ElectronFeatures, embedding: Optional[EmbeddingOutput]) -> jnp.ndarray: ...


@runtime_checkable
class GeometryEncoderSlot(Protocol):
    def __call__(self, R: jnp.ndarray) -> NuclearEmbedding: ...


@dataclasses.dataclass(frozen=True)
class SlotInfo:
    """A slot: its protocol, a one-line job, and the context keys a model hands over."""

    name: str
    protocol: type
    job: str
    context: tuple[str, ...]


SLOTS: dict[str, SlotInfo] = {s.name: s for s in (
    SlotInfo("features", Features, "raw inputs from r and R", ()),
    SlotInfo("embedding", Embedding, "permutation-equivariant per-electron vectors", ("n_up", "n_down", "charges")),
    SlotInfo("orbitals", Orbitals, "orbital (or pair) matrices from the embedding",
             ("n_up", "n_down", "determinants", "full_det", "envelope", "charges", "envelope_initial")),
    SlotInfo("envelope", Envelope, "decay of the orbitals far from the nuclei", ("orbitals", "charges", "initial")),
    SlotInfo("baseline", Baseline, "fixed reference orbitals (Hartree-Fock in JAX)", ("hartree_fock", "n_up", "n_down")),
    SlotInfo("backflow", Backflow, "corrections of baseline orbitals by the embedding", ("determinants", "n_up")),
    SlotInfo("antisymmetrizer", Antisymmetrizer, "sign and log|psi| from the matrices",
             ("determinants", "initial_weights")),
    SlotInfo("jastrow", Jastrow, "symmetric log-factor added to log|psi|", ("n_up", "n_down", "charges", "cusp_charges")),
    SlotInfo("geometry_encoder", GeometryEncoderSlot, "maps nuclear geometry (Z, R) to per-nucleus and global vectors",
             ("charges",)),
)}
