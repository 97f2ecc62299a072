"""Layers: features, the FermiNet embedding, envelopes, the antisymmetrizer, Jastrow factors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.layers.antisymmetrizers import multi_determinant
from qmczoo.layers.envelopes import FullEnvelope, IsotropicEnvelope
from qmczoo.layers.features import electron_electron, electron_nuclear, ferminet_features, ferminet_inputs, log_rescale
from qmczoo.layers.ferminet_embedding import FermiNetEmbedding
from qmczoo.layers.jastrow import ElectronElectronCuspJastrow
from qmczoo.layers.slots import ElectronFeatures
from qmczoo.testing import to_float64


@pytest.fixture
def config(rng):
    """5 electrons (3 up, 2 down) around 2 nuclei."""
    r = jnp.asarray(rng.normal(size=(5, 3)))
    R = jnp.asarray([[0.0, 0.0, 0.0], [1.4, 0.3, -0.2]])
    return r, R


# ----------------------------------------------------------------- features


def test_electron_nuclear_shapes_and_values(config):
    r, R = config
    disp, dist = electron_nuclear(r, R)
    assert disp.shape == (5, 2, 3) and dist.shape == (5, 2, 1)
    r_np, R_np = np.asarray(r), np.asarray(R)
    for i in range(5):
        for j in range(2):
            np.testing.assert_allclose(disp[i, j], r_np[i] - R_np[j], rtol=0, atol=1e-15)
            np.testing.assert_allclose(dist[i, j, 0], np.linalg.norm(r_np[i] - R_np[j]), rtol=1e-14)


def test_electron_electron_shapes_values_and_zero_diagonal(config):
    r, _ = config
    disp, dist = electron_electron(r)
    assert disp.shape == (5, 5, 3) and dist.shape == (5, 5, 1)
    np.testing.assert_array_equal(np.diagonal(dist[..., 0]), 0.0)
    np.testing.assert_array_equal(np.diagonal(disp, axis1=0, axis2=1), 0.0)
    r_np = np.asarray(r)
    expected = np.linalg.norm(r_np[:, None] - r_np[None], axis=-1)
    np.testing.assert_allclose(dist[..., 0], expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(disp, -np.swapaxes(np.asarray(disp), 0, 1), atol=0)


def test_electron_electron_distance_gradient_is_finite_and_exact(config):
    r, _ = config
    grad = jax.jit(jax.grad(lambda x: jnp.sum(electron_electron(x)[1])))(r)
    assert np.all(np.isfinite(grad))
    # d/dr_i sum_{a != b} |r_a - r_b| = 2 sum_{j != i} (r_i - r_j) / |r_i - r_j|; the zero
    # diagonal must contribute nothing.
    r_np = np.asarray(r)
    expected = np.zeros_like(r_np)
    for i in range(5):
        for j in range(5):
            if i != j:
                d = r_np[i] - r_np[j]
                expected[i] += 2 * d / np.linalg.norm(d)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rescale", [False, True])
def test_ferminet_inputs_translation_invariant(config, rescale):
    r, R = config
    shift = jnp.asarray([3.0, -7.5, 0.25])
    before = ferminet_inputs(r, R, rescale=rescale)
    after = ferminet_inputs(r + shift, R + shift, rescale=rescale)
    shapes = [(5, 4 * 2), (5, 5, 4), (5, 2, 3), (5, 2, 1)]
    for a, b, shape in zip(before, after, shapes):
        assert a.shape == shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("rescale", [False, True])
def test_ferminet_inputs_permute_with_the_electrons(config, rescale):
    r, R = config
    perm = np.array([2, 0, 4, 1, 3])
    one, two, en_disp, en_dist = ferminet_inputs(r, R, rescale=rescale)
    one_p, two_p, en_disp_p, en_dist_p = ferminet_inputs(r[perm], R, rescale=rescale)
    np.testing.assert_allclose(one_p, one[perm], rtol=0, atol=1e-15)
    np.testing.assert_allclose(two_p, two[perm][:, perm], rtol=0, atol=1e-15)
    np.testing.assert_allclose(en_disp_p, en_disp[perm], rtol=0, atol=1e-15)
    np.testing.assert_allclose(en_dist_p, en_dist[perm], rtol=0, atol=1e-15)


def test_log_rescale_lengths_and_finite_gradient(config):
    r, R = config
    disp, dist = electron_electron(r)
    d2, r2 = log_rescale(disp, dist)
    np.testing.assert_allclose(jnp.linalg.norm(d2, axis=-1, keepdims=True), jnp.log1p(dist), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(r2, jnp.log1p(dist), rtol=0, atol=0)
    grad = jax.jit(jax.grad(lambda x: sum(jnp.sum(f) for f in ferminet_inputs(x, R, rescale=True))))(r)
    assert np.all(np.isfinite(grad))


# ----------------------------------------------------------------- FermiNet embedding


@pytest.fixture(scope="module")
def embedding():
    """A FermiNet embedding for 3 up + 2 down electrons, float64 parameters."""
    module = FermiNetEmbedding(n_up=3, hidden_dims=((8, 4), (8, 4)))
    r = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)))
    R = jnp.asarray([[0.0, 0.0, 0.0], [1.4, 0.3, -0.2]])
    params = to_float64(jax.jit(module.init)(jax.random.PRNGKey(0), ferminet_features(r, R)))

    @jax.jit
    def embed(params, r):
        out = module.apply(params, ferminet_features(r, R))
        return out.h, out.shared, out.pair

    return embed, params, r


@pytest.mark.parametrize(
    "perm, spin",
    [
        (np.array([2, 0, 1, 3, 4]), "up"),
        (np.array([1, 0, 2, 3, 4]), "up"),
        (np.array([0, 1, 2, 4, 3]), "down"),
        (np.array([1, 2, 0, 4, 3]), "both"),
    ],
)
def test_embedding_equivariant_within_spin(embedding, perm, spin):
    embed, params, r = embedding
    h, shared, pair = embed(params, r)
    assert h.shape == (5, 8) and shared.shape == (2 * 8,) and pair.shape == (5, 2 * 4)
    h_p, shared_p, pair_p = embed(params, r[perm])
    np.testing.assert_allclose(h_p, h[perm], rtol=0, atol=1e-12)
    np.testing.assert_allclose(pair_p, pair[perm], rtol=0, atol=1e-12)
    np.testing.assert_allclose(shared_p, shared, rtol=0, atol=1e-12)
    assert not np.allclose(h_p, h)  # the permutation did move something


def test_embedding_distinguishes_spins(embedding):
    """Swapping an up and a down electron is not a symmetry: the spin-split means change."""
    embed, params, r = embedding
    _, shared, _ = embed(params, r)
    perm = np.array([3, 1, 2, 0, 4])
    _, shared_p, _ = embed(params, r[perm])
    assert np.max(np.abs(shared_p - shared)) > 1e-3


def test_embedding_with_one_spin_channel():
    module = FermiNetEmbedding(n_up=2, hidden_dims=((6, 3),))
    r = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3)))
    out, _ = jax.jit(module.init_with_output)(jax.random.PRNGKey(0), ferminet_features(r, jnp.zeros((1, 3))))
    h, shared, pair = out.h, out.shared, out.pair
    assert h.shape == (2, 6) and shared.shape == (6,) and pair.shape == (2, 3)
    np.testing.assert_allclose(shared, jnp.mean(h, axis=0), rtol=1e-6)


# ----------------------------------------------------------------- envelopes


def _envelope_at(module, params, points, R):
    disp, dist = electron_nuclear(points, R)
    return module.apply(params, disp, dist)


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("cls", [IsotropicEnvelope, FullEnvelope])
def test_envelope_decays_far_from_the_nuclei(cls):
    module = cls(orbitals=3)
    R = jnp.asarray([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    direction = _unit([0.3, -0.8, 0.5])
    points = jnp.asarray(np.stack([direction * 1.0, direction * 50.0]))
    disp, dist = electron_nuclear(points, R)
    params = module.init(jax.random.PRNGKey(0), disp, dist)
    env = np.asarray(_envelope_at(module, params, points, R))
    assert env.shape == (2, 3)
    assert np.all(env[0] > 0)
    assert np.all(env[1] >= 0) and np.all(env[1] < 1e-10 * env[0])


def test_full_envelope_at_init_equals_isotropic_envelope():
    R = jnp.asarray([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    points = jnp.asarray(np.random.default_rng(2).normal(size=(4, 3)))
    disp, dist = electron_nuclear(points, R)
    iso, full = IsotropicEnvelope(orbitals=5), FullEnvelope(orbitals=5)
    env_iso = iso.apply(to_float64(iso.init(jax.random.PRNGKey(0), disp, dist)), disp, dist)
    env_full = full.apply(to_float64(full.init(jax.random.PRNGKey(0), disp, dist)), disp, dist)
    expected = np.exp(-np.asarray(dist)[..., 0]).sum(axis=1)[:, None]  # sum_I exp(-|r - R_I|)
    np.testing.assert_allclose(env_iso, np.broadcast_to(expected, (4, 5)), rtol=1e-13)
    np.testing.assert_allclose(env_full, env_iso, rtol=1e-12)


def test_full_envelope_applies_sigma_to_the_displacement():
    """env = pi exp(-|Sigma (r - R)|) with Sigma acting on the displacement from the left."""
    sigma = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    module = FullEnvelope(orbitals=1)
    R = jnp.zeros((1, 3))
    points = jnp.asarray(np.random.default_rng(3).normal(size=(6, 3)))
    disp, dist = electron_nuclear(points, R)
    # nucleus 0's kernel [3, 3K] maps the displacement d (a row) to d @ kernel = (Sigma d)^T
    params = {"params": {"pi": jnp.full((1, 1), 0.7), "sigma_0": {"kernel": jnp.asarray(sigma.T)}}}
    env = module.apply(params, disp, dist)
    expected = 0.7 * np.exp(-np.linalg.norm(np.asarray(points) @ sigma.T, axis=-1))
    np.testing.assert_allclose(env[:, 0], expected, rtol=1e-12)


def test_isotropic_envelope_uses_abs_sigma():
    module = IsotropicEnvelope(orbitals=2)
    R = jnp.zeros((1, 3))
    points = jnp.asarray([[0.0, 0.0, 3.0]])
    disp, dist = electron_nuclear(points, R)
    params = {"params": {"pi": jnp.ones((1, 2)), "sigma": jnp.asarray([[-2.0, 2.0]])}}
    env = module.apply(params, disp, dist)
    np.testing.assert_allclose(env, [[np.exp(-6.0), np.exp(-6.0)]], rtol=1e-14)


# ----------------------------------------------------------------- multi_determinant


def _reference(blocks):
    """Direct numpy: psi = sum_k prod_b det(block_b[k]) -> (sign, log|psi|)."""
    blocks = [np.asarray(b, dtype=np.float64) for b in blocks]
    psi = sum(np.prod([np.linalg.det(b[k]) for b in blocks]) for k in range(blocks[0].shape[0]))
    return np.sign(psi), np.log(np.abs(psi))


def _check_against_reference(blocks, rtol=1e-12):
    sign, logabs = multi_determinant([jnp.asarray(b) for b in blocks])
    ref_sign, ref_log = _reference(blocks)
    assert float(sign) == ref_sign
    np.testing.assert_allclose(float(logabs), ref_log, rtol=rtol, atol=rtol)
    return float(sign), float(logabs)


@pytest.mark.parametrize("sizes", [(4,), (3, 2), (2, 2), (2, 1)])
def test_multi_determinant_matches_numpy(rng, sizes):
    for _ in range(5):
        _check_against_reference([rng.normal(size=(4, n, n)) for n in sizes])


def test_multi_determinant_one_by_one_blocks(rng):
    a = rng.normal(size=(3, 1, 1))
    b = rng.normal(size=(3, 1, 1))
    _check_against_reference([a, b])  # e.g. H2 with block-diagonal determinants
    _check_against_reference([a])  # e.g. the hydrogen atom
    sign, logabs = multi_determinant([jnp.asarray(a)])
    psi = np.sum(a[:, 0, 0])
    assert float(sign) == np.sign(psi)
    np.testing.assert_allclose(float(logabs), np.log(abs(psi)), rtol=1e-13)


def test_multi_determinant_partial_cancellation(rng):
    m = rng.normal(size=(3, 3))
    det = np.linalg.det(m)
    # Determinant 1 is -0.95 times determinant 0: 95% of psi cancels.
    blocks = [np.stack([m, -(0.95 ** (1 / 3)) * m])]
    sign, logabs = _check_against_reference(blocks, rtol=1e-10)
    assert sign == np.sign(det)
    np.testing.assert_allclose(logabs, np.log(0.05 * abs(det)), rtol=1e-10)
    # Up/down blocks whose products cancel in sign: +d_up d_down - 0.5 d_up d_down.
    up, down = rng.normal(size=(2, 2)), rng.normal(size=(1, 1))
    blocks = [np.stack([up, up]), np.stack([down, -0.5 * down])]
    sign, logabs = _check_against_reference(blocks, rtol=1e-12)
    np.testing.assert_allclose(logabs, np.log(0.5 * abs(np.linalg.det(up) * down[0, 0])), rtol=1e-12)


def test_multi_determinant_does_not_overflow(rng):
    blocks = [rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 3, 3))]
    sign, logabs = _check_against_reference(blocks)
    scale = 1e90  # prod of determinants scales by 1e630: far beyond float64
    big = [b * scale for b in blocks]
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(_reference(big)[1])
    big_sign, big_log = multi_determinant([jnp.asarray(b) for b in big])
    assert float(big_sign) == sign
    np.testing.assert_allclose(float(big_log), logabs + 7 * np.log(scale), rtol=1e-12)


def test_multi_determinant_gradient(rng):
    blocks = [jnp.asarray(rng.normal(size=(3, 2, 2))), jnp.asarray(rng.normal(size=(3, 2, 2)))]
    grad = jax.jit(jax.grad(lambda b: multi_determinant(b)[1]))(blocks)
    eps = 1e-6
    for b in range(2):
        for idx in [(0, 0, 0), (1, 1, 0), (2, 0, 1)]:
            plus = [x.at[idx].add(eps) if i == b else x for i, x in enumerate(blocks)]
            minus = [x.at[idx].add(-eps) if i == b else x for i, x in enumerate(blocks)]
            fd = (_reference(plus)[1] - _reference(minus)[1]) / (2 * eps)
            np.testing.assert_allclose(grad[b][idx], fd, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------- Jastrow


def _jastrow_features(r):
    """The features slot's output for electrons ``r`` around one nucleus at the origin."""
    one, two, en_disp, en_dist = ferminet_inputs(r, jnp.zeros((1, 3), r.dtype))
    ee_disp, ee_dist = electron_electron(r)
    return ElectronFeatures(one=one, two=two, en_disp=en_disp, en_dist=en_dist, ee_disp=ee_disp, ee_dist=ee_dist)


@functools.lru_cache(maxsize=None)
def _jastrow_along_line(n_up):
    """``J(params, s)`` and ``dJ/ds`` for two electrons at c +- s u / 2 (so r_12 = s)."""
    module = ElectronElectronCuspJastrow(n_up=n_up)
    centre = jnp.asarray([0.3, -0.2, 1.1])
    u = jnp.asarray(_unit([1.0, 2.0, -0.5]))

    def j(params, s):
        r = jnp.stack([centre + 0.5 * s * u, centre - 0.5 * s * u])
        return module.apply(params, _jastrow_features(r), None)

    return jax.jit(j), jax.jit(jax.grad(j, argnums=1))


@pytest.mark.parametrize("log_alpha", [(0.0, 0.0), (0.7, -0.4), (-1.2, 1.5)])
@pytest.mark.parametrize("n_up, cusp", [(1, 0.5), (2, 0.25), (0, 0.25)], ids=["opposite", "up-up", "down-down"])
def test_simple_ee_jastrow_satisfies_kato_cusp(n_up, cusp, log_alpha):
    j, dj = _jastrow_along_line(n_up)
    params = {"params": {"log_alpha_parallel": jnp.asarray(log_alpha[0]),
                         "log_alpha_anti": jnp.asarray(log_alpha[1])}}
    np.testing.assert_allclose(dj(params, 1e-9), cusp, rtol=1e-7)
    # finite differences as the electrons approach each other
    h = 1e-7
    fd = (j(params, 2 * h) - j(params, h)) / h
    np.testing.assert_allclose(fd, cusp, rtol=1e-5)
    # and the Jastrow vanishes for far-apart electrons
    assert abs(float(j(params, 1e10))) < 1e-8


def test_simple_ee_jastrow_value_is_a_sum_over_pairs(rng):
    r = jnp.asarray(rng.normal(size=(3, 3)))  # 2 up, 1 down
    module = ElectronElectronCuspJastrow(n_up=2)
    params = {"params": {"log_alpha_parallel": jnp.asarray(0.3), "log_alpha_anti": jnp.asarray(-0.2)}}
    a_par, a_anti = np.exp(0.3), np.exp(-0.2)
    r_np = np.asarray(r)
    d = lambda i, j: np.linalg.norm(r_np[i] - r_np[j])  # noqa: E731
    expected = (-0.25 * a_par**2 / (a_par + d(0, 1))
                - 0.5 * a_anti**2 / (a_anti + d(0, 2))
                - 0.5 * a_anti**2 / (a_anti + d(1, 2)))
    value, grad = jax.jit(jax.value_and_grad(lambda x: module.apply(params, _jastrow_features(x), None)))(r)
    np.testing.assert_allclose(value, expected, rtol=1e-13)
    assert np.all(np.isfinite(grad))

