"""A small Haiku ansatz for qmczoo (registry entry with ``framework: haiku``).

``psi = prod_spin det[phi_j(x_i)]``, ``phi_j(x_i) = (W f_i + b)_j sum_I exp(-decay |r_i - R_I|)``
with ``f_i`` the electron's displacements and distances to the nuclei. ``hk.Linear`` is a plain
dense map, which kfac-jax's graph matcher recognises, so its parameters get KFAC blocks.
"""

from __future__ import annotations


def make_haiku_slater(system, width: int = 16, decay: float = 1.0):
    """``hk.transform`` of ``f(r [N,3], R [M,3]) -> (sign, log|psi|)``."""
    import haiku as hk
    import jax.numpy as jnp

    n_up, n_down = system.n_up, system.n_down

    def wavefunction(r, R):
        disp = r[:, None, :] - R[None, :, :]  # [N, M, 3]
        dist = jnp.linalg.norm(disp, axis=-1)  # [N, M]
        f = jnp.concatenate([disp.reshape(r.shape[0], -1), dist], axis=-1)
        h = jnp.tanh(hk.Linear(width, name="hidden")(f))
        envelope = jnp.sum(jnp.exp(-decay * dist), axis=-1, keepdims=True)  # [N, 1]
        sign, log_abs = jnp.ones((), r.dtype), jnp.zeros((), r.dtype)
        for spin, (lo, n) in enumerate(((0, n_up), (n_up, n_down))):
            if n == 0:
                continue
            phi = hk.Linear(n, name=f"orbitals_{spin}")(h[lo:lo + n]) * envelope[lo:lo + n]
            s, l = jnp.linalg.slogdet(phi)
            sign, log_abs = sign * s, log_abs + l
        return sign, log_abs

    return hk.transform(wavefunction)
