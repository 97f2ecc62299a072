"""A small flax ansatz that fills qmczoo slots: features -> embedding -> orbitals x envelope ->
one determinant per spin, times a Jastrow factor.

The factory gets each slot as a resolved :class:`qmczoo.layers.slots.Layer` (``None`` for an
empty optional slot) and builds it with the context its slot defines (``docs/slots.md``).
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from qmczoo.layers.curvature import Dense
from qmczoo.layers.slots import Layer


class SlaterJastrow(nn.Module):
    """``psi = det[phi_j(x_i)]_up det[phi_j(x_i)]_down exp(J)``.

    Call: ``r`` ``[N, 3]``, ``R`` ``[M, 3]`` -> ``(sign, log|psi|)`` (qmczoo's ansatz contract).
    """

    n_up: int
    n_down: int
    charges: tuple
    features: Layer
    embedding: Layer
    envelope: Layer
    jastrow: Optional[Layer] = None

    @nn.compact
    def __call__(self, r, R):
        f = self.features.build()(r, R)
        h = self.embedding.build(name="embedding", n_up=self.n_up, n_down=self.n_down, charges=self.charges)(f).h
        sign, log_abs = jnp.ones((), r.dtype), jnp.zeros((), r.dtype)
        for spin, (lo, n) in enumerate(((0, self.n_up), (self.n_up, self.n_down))):
            if n == 0:
                continue
            rows = slice(lo, lo + n)
            envelope = self.envelope.build(name=f"envelope_{spin}", orbitals=n, charges=self.charges, initial=None)
            phi = Dense(n, name=f"orbitals_{spin}")(h[rows]) * envelope(f.en_disp[rows], f.en_dist[rows])
            s, l = jnp.linalg.slogdet(phi)
            sign, log_abs = sign * s, log_abs + l
        if self.jastrow is not None:
            log_abs = log_abs + self.jastrow.build(name="jastrow", n_up=self.n_up, n_down=self.n_down,
                                                   charges=self.charges)(f, None)
        return sign, log_abs


def make_slater_jastrow(system, features: Layer, embedding: Layer, envelope: Layer,
                        jastrow: Optional[Layer] = None) -> SlaterJastrow:
    """The registry factory: ``factory(system, **options)`` with every slot resolved."""
    return SlaterJastrow(n_up=system.n_up, n_down=system.n_down, charges=tuple(float(z) for z in system.charges),
                         features=features, embedding=embedding, envelope=envelope, jastrow=jastrow)
