"""The local-energy matrix of ``k`` states and the local values of the states' spin.

For a walker of ``k`` electron sets, ``A[j, i] = psi_i(x^j)`` and ``(HA)[j, i] = (H psi_i)(x^j)
= A[j, i] e[j, i]`` with ``e[j, i]`` the ordinary local energy of state ``i`` at set ``j``
(forward Laplacian, :func:`qmczoo.engine.hamiltonian.make_local_energy`: ``k^2`` evaluations).
NES-VMC's local-energy matrix is

    E_L = A^-1 (HA) = A^-1 (A * e)                                   [k, k]

Its average over ``|det A|^2`` is ``S^-1 H`` with ``S_il = <psi_i|psi_l>`` and
``H_il = <psi_i|H|psi_l>``, whose eigenvalues are the energies of the best states in the span
of the ``psi_i``; its trace is the local energy of ``det A`` under ``sum_j H(x^j)`` (Jacobi's
formula), which is what the loss minimises. Exact eigenstates give ``E_L = diag(E_i)`` at every
walker: zero variance.

The same construction with ``S^2`` in place of ``H`` gives the spin matrix; the local value of
``S^2`` for a state with ``n_up`` and ``n_down`` electrons (spin-up first) is

    s(x) = M (M + 1) + n_down - sum_{a up, b down} psi(x with r_a <-> r_b) / psi(x),   M = (n_up - n_down) / 2

(the exchange of an up and a down electron's positions is how ``S_- S_+`` acts on a
spin-assigned real-space wavefunction).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmczoo.engine.hamiltonian import make_local_energy, map_in_chunks
from qmczoo.engine.states.total import electron_sets, scaled_matrix, state_matrix


def make_state_local_energies(states, charges, method: str = "folx"):
    """``e(params, r [k*N, 3], R) -> [k, k]``: ``e[j, i]`` the local energy of state ``i`` at set ``j``."""
    fns = [make_local_energy(states.state(i).log_psi, charges, method) for i in range(states.k)]

    def local_energies(params, r, R):
        x = electron_sets(r, states.k)
        return jnp.stack([jax.vmap(f, in_axes=(None, 0, None))(params, x, R) for f in fns], axis=1)

    return local_energies


def make_own_local_energies(states, charges, method: str = "folx"):
    """``e(params, r [k*N, 3], R) -> [k]``: each state's local energy at its own set (the penalty
    method's walkers; ``k`` evaluations)."""
    fns = [make_local_energy(states.state(i).log_psi, charges, method) for i in range(states.k)]

    def own(params, r, R):
        x = electron_sets(r, states.k)
        return jnp.stack([f(params, x[i], R) for i, f in enumerate(fns)])

    return own


def matrix_of_local_values(sign: jnp.ndarray, logabs: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
    """``A^-1 (A * values)`` ``[k, k]`` for ``A[j, i] = sign * exp(logabs)`` and local values
    ``values[j, i]`` of an operator (the rows of ``A`` are scaled first: exact, see
    :func:`~qmczoo.engine.states.total.scaled_matrix`)."""
    scaled, _ = scaled_matrix(sign, logabs)
    return jnp.linalg.solve(scaled, scaled * values)


def make_energy_matrix(states, charges, method: str = "folx"):
    """``E_L(params, r [k*N, 3], R) -> [k, k]``, NES-VMC's local-energy matrix of one walker."""
    local_energies = make_state_local_energies(states, charges, method)

    def energy_matrix(params, r, R):
        return matrix_of_local_values(*state_matrix(states, params, r, R), local_energies(params, r, R))

    return energy_matrix


def make_batch_energy_matrix(states, charges, method: str = "folx", chunk_size: int | None = None):
    """``(params, r [B, k*N, 3], R [M, 3]) -> [B, k, k]``, in chunks of ``chunk_size`` walkers."""
    one = make_energy_matrix(states, charges, method)
    return map_in_chunks(jax.vmap(one, in_axes=(None, 0, None)), chunk_size)


def make_local_spin_squared(signed_log_psi, n_up: int, n_down: int):
    """``s(params, x [N, 3], R) -> scalar``: the local value of ``S^2`` (module docstring)."""
    m = 0.5 * (n_up - n_down)
    pairs = [(a, b) for a in range(n_up) for b in range(n_up, n_up + n_down)]

    def local_spin_squared(params, x, R):
        if not pairs:
            return jnp.asarray(m * (m + 1) + n_down, x.dtype)
        sign, log_psi = signed_log_psi(params, x, R)
        swapped = jnp.stack([x.at[a].set(x[b]).at[b].set(x[a]) for a, b in pairs])
        s, logs = jax.vmap(lambda y: signed_log_psi(params, y, R))(swapped)
        return m * (m + 1) + n_down - jnp.sum(s * sign * jnp.exp(logs - log_psi))

    return local_spin_squared


def make_state_spins(states):
    """``s(params, r [k*N, 3], R) -> [k, k]``: ``s[j, i]`` the local ``S^2`` of state ``i`` at set ``j``."""
    fns = [make_local_spin_squared(states.state(i).signed_log_psi, states.n_up, states.n_down)
           for i in range(states.k)]

    def spins(params, r, R):
        x = electron_sets(r, states.k)
        return jnp.stack([jax.vmap(f, in_axes=(None, 0, None))(params, x, R) for f in fns], axis=1)

    return spins
