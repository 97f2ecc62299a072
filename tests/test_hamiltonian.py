"""The local energy: Laplacian methods agree, exactly solvable hydrogen-like states, potential."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.errors import ConfigError
from qmczoo.engine.hamiltonian import make_kinetic_energy, make_local_energy
from qmczoo.engine.hamiltonian import potential_energy as _potential_energy
from qmczoo.chemistry.systems import get_system
from qmczoo.testing import random_configuration
from qmczoo.wavefunction import Wavefunction, from_module

METHODS = ["folx", "hessian", "jvp"]
potential_energy = jax.jit(_potential_energy)


def _batched_local_energy(log_psi, charges, method):
    return jax.jit(jax.vmap(make_local_energy(log_psi, charges, method), in_axes=(None, 0, None)))


# ----------------------------------------------------------------- (a) Laplacian methods agree


def test_laplacian_methods_agree_on_ferminet(lih, lih_ferminet):
    wf, params, R = lih_ferminet
    keys = jax.random.split(jax.random.PRNGKey(11), 3)
    r = jnp.stack([random_configuration(k, lih, jnp.float64) for k in keys])
    energies = {}
    for m in METHODS:  # one configuration at a time: compiles faster than a vmap
        local_energy = jax.jit(make_local_energy(wf.log_psi, lih.atomic_charges, m))
        energies[m] = np.array([float(local_energy(params, x, R)) for x in r])
    assert energies["folx"].shape == (3,) and np.all(np.isfinite(energies["folx"]))
    assert len(set(np.round(energies["folx"], 6))) == 3  # three different configurations
    for m in ("hessian", "jvp"):
        np.testing.assert_allclose(energies["folx"], energies[m], rtol=1e-8, atol=0, err_msg=m)


def test_kinetic_energy_methods_agree_on_a_gaussian_product():
    """T of log psi = -sum_i a_i |r_i|^2 is sum_i (3 a_i - 2 a_i^2 |r_i|^2), known exactly."""
    a = jnp.asarray([0.3, 0.7, 1.1])
    log_psi = lambda params, r, R: -jnp.sum(a[:, None] * r**2)  # noqa: E731
    r = jnp.asarray(np.random.default_rng(5).normal(size=(3, 3)))
    expected = float(jnp.sum(3 * a - 2 * a**2 * jnp.sum(r**2, axis=-1)))
    for m in METHODS:
        t = jax.jit(make_kinetic_energy(log_psi, m))(None, r, jnp.zeros((1, 3)))
        np.testing.assert_allclose(float(t), expected, rtol=1e-12, err_msg=m)


# ----------------------------------------------------------------- (b) exactly solvable states
#
# Hydrogen-like ions (one electron, nuclear charge Z), written here, outside the models
# folder, through the public contract only:
#   1s: psi = exp(-Z r)                  E = -Z^2 / 2
#   2s: psi = (1 - Z r / 2) exp(-Z r / 2) E = -Z^2 / 8   (sign changes on the node r = 2 / Z)
#   2p: psi = z exp(-Z r / 2)             E = -Z^2 / 8


def _distance(r, R):
    return jnp.linalg.norm(r[0] - R[0])


def hydrogen_like_wavefunction(Z, state="1s"):
    """A plain :class:`Wavefunction` for one electron around the nucleus ``R[0]``."""

    def signed_log_psi(params, r, R):
        d = _distance(r, R)
        if state == "1s":
            return jnp.ones_like(d), -params["Z"] * d
        if state == "2s":
            amp = 1.0 - params["Z"] * d / 2
        else:  # 2p_z
            amp = r[0, 2] - R[0, 2]
        return jnp.sign(amp), jnp.log(jnp.abs(amp)) - params["Z"] * d / 2

    return Wavefunction(
        init=lambda key, r, R: {"Z": jnp.asarray(float(Z), dtype=r.dtype)},
        signed_log_psi=signed_log_psi,
        n_up=1,
        n_down=0,
        name=f"hydrogen_like_{state}",
    )


class HydrogenLike1s(nn.Module):
    """The 1s state as a flax module: log psi = log c - alpha |r - R|, alpha starting at Z."""

    Z: float

    @nn.compact
    def __call__(self, r, R):
        alpha = self.param("alpha", nn.initializers.constant(self.Z), (), r.dtype)
        log_norm = self.param("log_norm", nn.initializers.constant(0.37), (), r.dtype)
        return jnp.ones((), r.dtype), log_norm - alpha * _distance(r, R)


def _ion(Z):
    system = get_system("H") if Z == 1 else get_system("He", charge=1)
    assert (system.n_up, system.n_down) == (1, 0)
    assert tuple(system.charges) == (float(Z),)
    return system


def _configurations(system, n, seed=0):
    """``n`` random one-electron configurations spread over ~0.1..6 bohr from the nucleus."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n, 1, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = rng.uniform(0.1, 6.0, size=(n, 1, 1))
    return jnp.asarray(np.asarray(system.positions)[None] + radius * direction)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("Z", [1, 2])
def test_hydrogen_like_1s_local_energy_is_exact(Z, method):
    system = _ion(Z)
    wf = hydrogen_like_wavefunction(Z)
    R = jnp.asarray(system.positions)
    r = _configurations(system, 50, seed=Z)
    params = wf.init(jax.random.PRNGKey(0), r[0], R)
    e_l = _batched_local_energy(wf.log_psi, system.atomic_charges, method)(params, r, R)
    np.testing.assert_allclose(e_l, np.full(50, -Z**2 / 2), rtol=0, atol=1e-8)


@pytest.mark.parametrize("Z", [1, 2])
def test_hydrogen_like_1s_flax_module_local_energy_is_exact(Z):
    system = _ion(Z)
    wf = from_module(HydrogenLike1s(Z=float(Z)), system.n_up, system.n_down)
    R = jnp.asarray(system.positions)
    r = _configurations(system, 50, seed=10 + Z)
    params = wf.init(jax.random.PRNGKey(0), r[0], R)
    assert float(params["params"]["alpha"]) == Z
    e_l = _batched_local_energy(wf.log_psi, system.atomic_charges, "folx")(params, r, R)
    np.testing.assert_allclose(e_l, np.full(50, -Z**2 / 2), rtol=0, atol=1e-8)
    # A wrong exponent is not an eigenstate: E_L = -alpha^2/2 + (alpha - Z)/r varies.
    wrong = jax.tree.map(lambda x: x, params)
    wrong["params"]["alpha"] = jnp.asarray(Z * 0.8)
    e_wrong = np.asarray(_batched_local_energy(wf.log_psi, system.atomic_charges, "folx")(wrong, r, R))
    radius = np.linalg.norm(np.asarray(r - R[None])[:, 0], axis=-1)
    np.testing.assert_allclose(e_wrong, -(0.8 * Z) ** 2 / 2 - 0.2 * Z / radius, rtol=1e-10)


@pytest.mark.parametrize("state", ["2s", "2p"])
@pytest.mark.parametrize("Z", [1, 2])
def test_hydrogen_like_excited_states_local_energy_is_exact(Z, state):
    system = _ion(Z)
    wf = hydrogen_like_wavefunction(Z, state)
    R = jnp.asarray(system.positions)
    r = _configurations(system, 50, seed=20 + Z)
    params = wf.init(jax.random.PRNGKey(0), r[0], R)
    signs = jax.vmap(wf.signed_log_psi, in_axes=(None, 0, None))(params, r, R)[0]
    assert set(np.asarray(signs).tolist()) == {-1.0, 1.0}  # both sides of the node are sampled
    e_l = _batched_local_energy(wf.log_psi, system.atomic_charges, "folx")(params, r, R)
    np.testing.assert_allclose(e_l, np.full(50, -Z**2 / 8), rtol=0, atol=1e-8)


# ----------------------------------------------------------------- (c) potential energy


def test_potential_energy_h2_by_hand():
    h2 = get_system("H2")
    R = jnp.asarray(h2.positions)
    np.testing.assert_allclose(np.asarray(R), [[0, 0, 0], [1.4, 0, 0]])
    r = jnp.asarray([[0.0, 0.0, 1.0], [1.4, 0.0, -1.0]])
    # e1-n1 = 1, e1-n2 = sqrt(1.4^2 + 1), e2-n1 = sqrt(1.4^2 + 1), e2-n2 = 1,
    # e1-e2 = sqrt(1.4^2 + 2^2), n1-n2 = 1.4
    expected = -2 * (1.0 + 1 / np.sqrt(2.96)) + 1 / np.sqrt(5.96) + 1 / 1.4
    v = potential_energy(r, R, jnp.asarray(h2.atomic_charges))
    np.testing.assert_allclose(float(v), expected, rtol=1e-14)


def test_potential_energy_charges_by_hand(lih):
    R = jnp.asarray(lih.positions)  # Li (Z=3) at the origin, H at 3.015 bohr along x
    r = jnp.asarray([[0.0, 1.0, 0.0], [0.0, -2.0, 0.0], [3.015, 0.0, 0.5], [1.0, 0.0, 0.0]])
    en = np.linalg.norm(np.asarray(r)[:, None] - np.asarray(R)[None], axis=-1)
    ee = sum(1 / np.linalg.norm(np.asarray(r)[i] - np.asarray(r)[j]) for i in range(4) for j in range(i + 1, 4))
    expected = -np.sum(np.array([3.0, 1.0]) / en) + ee + 3.0 / 3.015
    v = potential_energy(r, R, jnp.asarray(lih.atomic_charges))
    np.testing.assert_allclose(float(v), expected, rtol=1e-14)
    np.testing.assert_allclose(3.0 / 3.015, lih.nuclear_repulsion, rtol=1e-14)


def test_potential_energy_one_electron_one_nucleus():
    v = potential_energy(jnp.asarray([[0.0, 0.0, 0.5]]), jnp.zeros((1, 3)), jnp.asarray([2.0]))
    assert float(v) == -4.0


# ----------------------------------------------------------------- (d) errors


def test_unknown_laplacian_method_raises_config_error():
    with pytest.raises(ConfigError, match="unknown laplacian method 'finite_difference'.*folx"):
        make_local_energy(lambda p, r, R: 0.0, jnp.ones(1), method="finite_difference")


# ----------------------------------------------------------------- (c) the batched local energy in chunks


def test_chunked_batch_local_energy_equals_one_piece(lih, lih_ferminet):
    """Chunks of walkers (with a padded last chunk) give the same energies as the whole batch,
    for one geometry and for walkers grouped over two geometries."""
    from qmczoo.engine.hamiltonian import make_batch_local_energy

    wf, params, R = lih_ferminet
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    r = jnp.stack([random_configuration(k, lih, jnp.float64) for k in keys])
    whole = jax.jit(make_batch_local_energy(wf, lih.atomic_charges, "folx"))
    chunked = jax.jit(make_batch_local_energy(wf, lih.atomic_charges, "folx", chunk_size=4))  # 6 = 4 + 2 padded
    expected = whole(params, r, R)
    assert expected.shape == (6,) and len(set(np.round(np.asarray(expected), 6))) == 6
    np.testing.assert_allclose(chunked(params, r, R), expected, rtol=1e-12)
    grouped_R = jnp.stack([R, R + 0.1])  # three walkers at each geometry, chunks of two
    grouped = jax.jit(make_batch_local_energy(wf, lih.atomic_charges, "folx", chunk_size=2))(params, r, grouped_R)
    np.testing.assert_allclose(grouped, whole(params, r, grouped_R), rtol=1e-12)
    np.testing.assert_allclose(grouped[:3], expected[:3], rtol=1e-12)


def test_default_chunk_size():
    from qmczoo.engine.hamiltonian import default_chunk_size

    assert default_chunk_size(4) == 32  # LiH, Be
    assert default_chunk_size(1) == 512 and default_chunk_size(2) == 128
    assert default_chunk_size(6) == 16 and default_chunk_size(10) == 16 and default_chunk_size(30) == 16  # at least 16
