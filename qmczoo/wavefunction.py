"""The one contract between an ansatz and the engine.

Every ansatz is a ``flax.linen.Module`` whose ``apply(params, r, R)`` returns
``(sign, log|psi|)`` for ONE configuration: ``r`` ``[N, 3]`` electron positions (spin-up
first), ``R`` ``[M, 3]`` nuclear positions. It may also provide ``orbitals(r, R)`` returning a
list of orbital blocks ``[K, n_b, n_b]`` (used by Hartree–Fock pretraining). Nothing in the
engine looks at which ansatz it is: it sees a :class:`Wavefunction`.

**The optional per-geometry stage.** An ansatz whose parameters depend on the geometry (PESNet:
a graph network over the nuclei sets parameters of a FermiNet) splits its evaluation in two:
``geometry_stage(params, R [M,3]) -> G`` (anything that depends on ``R`` only, computed once
per geometry) and ``electron_stage(params, G, r [N,3], R [M,3]) -> (sign, log|psi|)``. The
batched helpers below run the geometry stage once per call and the electron stage per walker;
``signed_log_psi`` is their composition, so every other caller sees the plain contract.

**Walkers and geometries.** A batch of walkers ``r`` ``[B, N, 3]`` belongs either to one
geometry (``R`` ``[M, 3]``) or to ``G`` geometries (``R`` ``[G, M, 3]``): then the walkers are
grouped, ``B = G * b``, walkers ``g*b .. (g+1)*b - 1`` at geometry ``g``
(:func:`per_geometry`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

SUPPLIED = "geometry"
"""The variable collection through which a per-geometry stage hands its values to the electron module
(:class:`GeometryAnsatz`; the layers that take them: :mod:`qmczoo.layers.geometry_params`)."""

Params = Any


@dataclasses.dataclass(frozen=True)
class Wavefunction:
    """A wavefunction as the engine sees it: plain functions of ``(params, r, R)``.

    Attributes:
      init: ``init(key, r [N,3], R [M,3]) -> params``.
      signed_log_psi: ``(params, r [N,3], R [M,3]) -> (sign, log|psi|)``, scalars.
      orbitals: ``(params, r, R) -> list of [K, n_b, n_b]`` or ``None`` if the ansatz has none.
      n_up, n_down: electrons per spin.
      name: a label for logs.
      geometry_stage, electron_stage: the optional per-geometry split (module docstring);
        both or neither.
    """

    init: Callable[..., Params]
    signed_log_psi: Callable[..., tuple[jnp.ndarray, jnp.ndarray]]
    n_up: int
    n_down: int
    orbitals: Callable[..., list] | None = None
    name: str = "ansatz"
    geometry_stage: Callable[..., Any] | None = None
    electron_stage: Callable[..., tuple[jnp.ndarray, jnp.ndarray]] | None = None

    @property
    def has_geometry_stage(self) -> bool:
        return self.geometry_stage is not None

    @property
    def n_electrons(self) -> int:
        return self.n_up + self.n_down

    def log_psi(self, params: Params, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
        """``log|psi|`` of one configuration, a scalar."""
        return self.signed_log_psi(params, r, R)[1]

    def batch_log_psi(self, params: Params, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
        """``log|psi|`` of walkers ``r`` ``[B, N, 3]`` -> ``[B]`` at one geometry ``R`` ``[M, 3]``
        or, grouped, at ``G`` geometries ``R`` ``[G, M, 3]`` (the geometry stage runs once per
        geometry)."""
        return per_geometry(self._batch_log_psi_one_geometry)(params, r, R)

    def _batch_log_psi_one_geometry(self, params, r, R):
        if self.geometry_stage is None:
            return jax.vmap(self.log_psi, in_axes=(None, 0, None))(params, r, R)
        stage = self.geometry_stage(params, R)
        return jax.vmap(lambda x: self.electron_stage(params, stage, x, R)[1])(r)

    def gradient_log_psi(self, params: Params, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
        """``log|psi|`` ``[B]`` as the optimizer differentiates it (same values as
        :meth:`batch_log_psi`).

        KFAC estimates its curvature from each walker's own derivative of every registered
        layer. A layer of the geometry stage (or any ansatz trained on several geometries)
        therefore has to see a walker axis: the geometry is broadcast to every walker,
        ``[B, M, 3]``, and the whole ansatz is mapped over walkers. A one-geometry ansatz
        without a geometry stage takes the plain path of :meth:`batch_log_psi`.
        """
        if self.geometry_stage is None and R.ndim == 2:
            return jax.vmap(self.log_psi, in_axes=(None, 0, None))(params, r, R)
        return jax.vmap(self.log_psi, in_axes=(None, 0, 0))(params, r, walker_geometries(R, r.shape[0]))


def n_geometries(R: jnp.ndarray) -> int:
    """1 for one geometry ``[M, 3]``, ``G`` for grouped geometries ``[G, M, 3]``."""
    return 1 if R.ndim == 2 else R.shape[0]


def walker_geometries(R: jnp.ndarray, batch_size: int) -> jnp.ndarray:
    """The geometry of each of ``batch_size`` grouped walkers: ``[B, M, 3]`` from ``R`` ``[M, 3]``
    or ``[G, M, 3]`` (``B`` a multiple of ``G``)."""
    if R.ndim == 2:
        return jnp.broadcast_to(R, (batch_size, *R.shape))
    return jnp.repeat(R, batch_size // R.shape[0], axis=0)


def per_geometry(batch_fn):
    """Lift ``batch_fn(params, r [b, N, 3], R [M, 3]) -> [b, ...]`` to grouped walkers.

    The result takes ``R`` ``[M, 3]`` (then it is ``batch_fn`` itself, unchanged) or ``R``
    ``[G, M, 3]`` with ``r`` ``[G*b, N, 3]`` grouped by geometry (then ``batch_fn`` is mapped
    over the ``G`` groups and the outputs are concatenated back to ``[G*b, ...]``).
    """

    def lifted(params, r, R, *args):
        if R.ndim == 2:
            return batch_fn(params, r, R, *args)
        g = R.shape[0]
        grouped = r.reshape(g, r.shape[0] // g, *r.shape[1:])
        out = jax.vmap(batch_fn, in_axes=(None, 0, 0) + (None,) * len(args))(params, grouped, R, *args)
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)

    return lifted


def from_module(module, n_up: int, n_down: int, name: str | None = None) -> Wavefunction:
    """Wrap a flax module honouring the contract (see the module docstring)."""
    orbitals = None
    if callable(getattr(module, "orbitals", None)):
        def orbitals(params, r, R):
            return module.apply(params, r, R, method=type(module).orbitals)

    return Wavefunction(
        # only the parameters: a module's other collections (geometry declarations) stay out
        init=lambda key, r, R: module.init(key, r, R, mutable=["params"]),
        signed_log_psi=lambda params, r, R: module.apply(params, r, R),
        n_up=n_up,
        n_down=n_down,
        orbitals=orbitals,
        name=name or type(module).__name__,
    )


@dataclasses.dataclass(frozen=True)
class GeometryAnsatz:
    """What the factory of an ansatz with a per-geometry stage returns (PESNet).

    Attributes:
      geometry: a flax module, ``geometry.apply(params, R [M,3]) -> supplied`` (a tree).
      electrons: a flax module applied as ``{"params": ..., SUPPLIED: supplied}`` on
        ``(r [N,3], R [M,3]) -> (sign, log|psi|)``, optionally with an ``orbitals`` method
        (see :mod:`qmczoo.layers.geometry_params`).
    """

    geometry: Any
    electrons: Any


def from_geometry_ansatz(ansatz: GeometryAnsatz, n_up: int, n_down: int, name: str = "ansatz") -> Wavefunction:
    """Wrap a :class:`GeometryAnsatz` as a :class:`Wavefunction` with a per-geometry stage.

    Parameters are ``{"geometry": ..., "electrons": ...}``. The electron module's own
    parameters are created with the supplied values in place, so a value the encoder supplies
    is never also a parameter of the electron module.
    """
    geometry, electrons = ansatz.geometry, ansatz.electrons

    def init(key, r, R):
        k_geometry, k_electrons = jax.random.split(key)
        geometry_params = geometry.init(k_geometry, R, mutable=["params"])
        supplied = geometry.apply(geometry_params, R)
        _, electron_params = electrons.apply({SUPPLIED: supplied}, r, R, rngs={"params": k_electrons},
                                             mutable=["params"])
        return {"geometry": geometry_params, "electrons": electron_params}

    def geometry_stage(params, R):
        return geometry.apply(params["geometry"], R)

    def electron_stage(params, supplied, r, R):
        return electrons.apply({**params["electrons"], SUPPLIED: supplied}, r, R)

    orbitals = None
    if callable(getattr(electrons, "orbitals", None)):
        def orbitals(params, r, R):
            return electrons.apply({**params["electrons"], SUPPLIED: geometry_stage(params, R)}, r, R,
                                   method=type(electrons).orbitals)

    return Wavefunction(init=init, signed_log_psi=lambda p, r, R: electron_stage(p, geometry_stage(p, R), r, R),
                        n_up=n_up, n_down=n_down, orbitals=orbitals, name=name,
                        geometry_stage=geometry_stage, electron_stage=electron_stage)


def from_haiku(transformed, n_up: int, n_down: int, name: str = "haiku", takes_rng: bool = True) -> Wavefunction:
    """Wrap a Haiku ``transform``-ed function ``f(r, R) -> (sign, log|psi|)``.

    ``transformed`` is anything with ``init(key, r, R)`` and ``apply(params, rng, r, R)``
    (``hk.transform``; the engine passes ``rng=None``) or, with ``takes_rng=False``,
    ``apply(params, r, R)`` (``hk.without_apply_rng``).
    """
    if takes_rng:
        apply = lambda params, r, R: transformed.apply(params, None, r, R)  # noqa: E731
    else:
        apply = transformed.apply
    return Wavefunction(init=transformed.init, signed_log_psi=apply, n_up=n_up, n_down=n_down, name=name)


# ------------------------------------------------------------------ several states of one ansatz


@dataclasses.dataclass(frozen=True)
class StateSet:
    """``k`` states of one ansatz: ``k`` independent copies of its parameters.

    The per-state output of the contract. Any :class:`Wavefunction` gives ``k`` states: the
    parameters are a tuple of ``k`` parameter trees, one per state, each evaluated by the
    ansatz's own ``signed_log_psi``. Nothing is asked of the ansatz (plug-ins, Haiku models
    and ansätze with a per-geometry stage included), and a single-state ansatz is unchanged.

    Why copies and not one network with ``k`` outputs (FermiNet's choice: a shared embedding
    and ``k`` sets of orbitals)? Copies need nothing from an ansatz: every model would otherwise
    have to learn a ``states`` option and where to put it (orbital heads, envelopes, Jastrow,
    pair orbitals, geometry encoders...). KFAC then sees ``k`` copies of every layer, each in
    its own Kronecker block, exactly as for one state. The cost is ``k`` times the parameters
    and no shared features between states; for the small systems excited states are trained
    on here that is affordable, and the states start apart by pretraining, not by sharing.

    Attributes:
      wf: the single-state :class:`Wavefunction`.
      k: number of states (>= 1).
    """

    wf: Wavefunction
    k: int

    @property
    def n_up(self) -> int:
        return self.wf.n_up

    @property
    def n_down(self) -> int:
        return self.wf.n_down

    @property
    def n_electrons(self) -> int:
        return self.wf.n_electrons

    @property
    def name(self) -> str:
        return f"{self.wf.name} x{self.k} states"

    @property
    def orbitals(self):
        """``(params, r, R) -> [blocks of state 0, ..., blocks of state k-1]``, or None when the
        ansatz has no ``orbitals``."""
        if self.wf.orbitals is None:
            return None
        return lambda params, r, R: [self.wf.orbitals(p, r, R) for p in params]

    def init(self, key, r: jnp.ndarray, R: jnp.ndarray) -> tuple:
        """A tuple of ``k`` parameter trees, each from its own key; ``r`` ``[N, 3]``, ``R`` ``[M, 3]``."""
        return tuple(self.wf.init(k, r, R) for k in jax.random.split(key, self.k))

    def signed_log_psi_states(self, params: tuple, r: jnp.ndarray, R: jnp.ndarray):
        """Every state at one configuration ``r`` ``[N, 3]``: ``(sign [k], log|psi| [k])``."""
        out = [self.wf.signed_log_psi(p, r, R) for p in params]
        return jnp.stack([s for s, _ in out]), jnp.stack([l for _, l in out])

    def state(self, i: int) -> Wavefunction:
        """State ``i`` as a plain :class:`Wavefunction` of the whole parameter tuple (it reads
        ``params[i]``), with the ansatz's orbitals and per-geometry stage where it has them."""
        wf = self.wf
        orbitals = None if wf.orbitals is None else (lambda p, r, R: wf.orbitals(p[i], r, R))
        geometry_stage = electron_stage = None
        if wf.has_geometry_stage:
            geometry_stage = lambda p, R: wf.geometry_stage(p[i], R)  # noqa: E731
            electron_stage = lambda p, g, r, R: wf.electron_stage(p[i], g, r, R)  # noqa: E731
        return Wavefunction(init=self.init, signed_log_psi=lambda p, r, R: wf.signed_log_psi(p[i], r, R),
                            n_up=wf.n_up, n_down=wf.n_down, orbitals=orbitals, name=f"{wf.name}[state {i}]",
                            geometry_stage=geometry_stage, electron_stage=electron_stage)


def states(wf: Wavefunction, k: int) -> StateSet:
    """``k`` states of ``wf`` (:class:`StateSet`): ``k`` copies of its parameters."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of states must be an integer >= 1, got {k!r}")
    return StateSet(wf=wf, k=k)
