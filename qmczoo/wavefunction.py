"""The one contract between an ansatz and the engine.

Every ansatz is a ``flax.linen.Module`` whose ``apply(params, r, R)`` returns
``(sign, log|psi|)`` for ONE configuration: ``r`` ``[N, 3]`` electron positions (spin-up
first), ``R`` ``[M, 3]`` nuclear positions. It may also provide ``orbitals(r, R)`` returning a
list of orbital blocks ``[K, n_b, n_b]`` (used by Hartree–Fock pretraining). Nothing in the
engine looks at which ansatz it is: it sees a :class:`Wavefunction`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

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
    """

    init: Callable[..., Params]
    signed_log_psi: Callable[..., tuple[jnp.ndarray, jnp.ndarray]]
    n_up: int
    n_down: int
    orbitals: Callable[..., list] | None = None
    name: str = "ansatz"

    @property
    def n_electrons(self) -> int:
        return self.n_up + self.n_down

    def log_psi(self, params: Params, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
        """``log|psi|`` of one configuration, a scalar."""
        return self.signed_log_psi(params, r, R)[1]

    def batch_log_psi(self, params: Params, r: jnp.ndarray, R: jnp.ndarray) -> jnp.ndarray:
        """``log|psi|`` of walkers ``r`` ``[B, N, 3]`` -> ``[B]``."""
        return jax.vmap(self.log_psi, in_axes=(None, 0, None))(params, r, R)


def from_module(module, n_up: int, n_down: int, name: str | None = None) -> Wavefunction:
    """Wrap a flax module honouring the contract (see the module docstring)."""
    orbitals = None
    if callable(getattr(module, "orbitals", None)):
        def orbitals(params, r, R):
            return module.apply(params, r, R, method=type(module).orbitals)

    return Wavefunction(
        init=lambda key, r, R: module.init(key, r, R),
        signed_log_psi=lambda params, r, R: module.apply(params, r, R),
        n_up=n_up,
        n_down=n_down,
        orbitals=orbitals,
        name=name or type(module).__name__,
    )


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
