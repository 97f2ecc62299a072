"""Embedding-slot layers: SchNet (PauliNet), the FermiNet-PauliNet hybrid (DeepErwin), raw features,
and the spin-split pair dense block."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.layers.features import ferminet_features
from qmczoo.layers.hybrid_embedding import HybridEmbedding
from qmczoo.layers.pair_streams import SpinSplitPairDense, merge_pairs, split_pairs
from qmczoo.layers.raw_embedding import RawFeaturesEmbedding
from qmczoo.layers.schnet_embedding import SchNetEmbedding, even_radial_basis, smooth_cutoff
from qmczoo.layers.spin_pooling import EquivariantDense
from qmczoo.testing import kfac_block_types, random_configuration, to_float64
from qmczoo.wavefunction import Wavefunction

N_UP, N_DOWN = 3, 2
CHARGES = (1.0, 3.0, 1.0)  # nuclei 0 and 2 are identical
R_NUC = np.array([[0.0, 0.0, 0.0], [1.4, 0.3, -0.2], [-0.5, 1.1, 0.6]])


def _modules(n_up, n_down, charges, layers=2):
    return {
        "schnet": SchNetEmbedding(n_up=n_up, n_down=n_down, charges=charges, width=8, n_interactions=layers,
                                  n_rbf=6, filter_width=8),
        "hybrid": HybridEmbedding(n_up=n_up, n_down=n_down, charges=charges, hidden_dims=((8, 4),) * layers,
                                  conv_width=4, nuclear_width=4),
        "raw": RawFeaturesEmbedding(n_up=n_up),
    }


class _Built:
    """A layer with float64 parameters and a jitted ``embed(r, R) -> EmbeddingOutput``."""

    def __init__(self, module, r, R):
        self.module = module
        self.params = to_float64(jax.jit(module.init)(jax.random.PRNGKey(0), ferminet_features(r, R)))
        self.embed = jax.jit(lambda r, R: module.apply(self.params, ferminet_features(r, R)))


@pytest.fixture(scope="module")
def reference():
    r = jnp.asarray(np.random.default_rng(0).normal(size=(N_UP + N_DOWN, 3)))
    return r, jnp.asarray(R_NUC)


@pytest.fixture(scope="module")
def built(reference):
    r, R = reference
    return {name: _Built(m, r, R) for name, m in _modules(N_UP, N_DOWN, CHARGES).items()}


def _close(a, b, atol=1e-11):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


# ----------------------------------------------------------------- spin-split pair streams


def test_split_and_merge_pairs_roundtrip(rng):
    x = jnp.asarray(rng.normal(size=(5, 5, 2)))
    same, opposite = split_pairs(x, 3)
    assert same.shape == (9 + 4, 2) and opposite.shape == (2 * 6, 2)
    np.testing.assert_array_equal(merge_pairs(same, opposite, 5, 3), x)
    same, opposite = split_pairs(x, 5)  # one spin channel: no opposite pairs
    assert same.shape == (25, 2) and opposite is None
    np.testing.assert_array_equal(merge_pairs(same, opposite, 5, 5), x)


def test_spin_split_pair_dense_uses_the_kernel_of_each_pair(rng):
    x = jnp.asarray(rng.normal(size=(5, 5, 3)))
    layer = SpinSplitPairDense(4, n_up=3)
    params = layer.init(jax.random.PRNGKey(0), x)
    y = layer.apply(params, x)
    p = params["params"]
    spin = np.array([0, 0, 0, 1, 1])
    for i in range(5):
        for j in range(5):
            kind = "same" if spin[i] == spin[j] else "opposite"
            expected = x[i, j] @ p[kind]["kernel"] + p[kind]["bias"]
            np.testing.assert_allclose(y[i, j], expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- shapes and symmetries


def test_output_shapes(built, reference):
    r, R = reference
    n, m, c = N_UP + N_DOWN, len(CHARGES), 2
    schnet, hybrid, raw = (built[k].embed(r, R) for k in ("schnet", "hybrid", "raw"))
    assert schnet.h.shape == (n, 8) and schnet.shared.shape == (c * 8,) and schnet.pair is None
    assert hybrid.h.shape == (n, 8) and hybrid.shared.shape == (c * 8,) and hybrid.pair.shape == (n, c * 4)
    assert raw.h.shape == (n, 4 * m) and raw.shared.shape == (c * 4 * m,) and raw.pair.shape == (n, c * 4)
    np.testing.assert_array_equal(raw.h, ferminet_features(r, R).one)
    np.testing.assert_allclose(schnet.shared, jnp.concatenate([schnet.h[:N_UP].mean(0), schnet.h[N_UP:].mean(0)]))


@pytest.mark.parametrize("name", ["schnet", "hybrid", "raw"])
@pytest.mark.parametrize("perm", [[2, 0, 1, 3, 4], [0, 1, 2, 4, 3], [1, 2, 0, 4, 3]], ids=["up", "down", "both"])
def test_equivariant_within_each_spin(built, reference, name, perm):
    r, R = reference
    perm = np.asarray(perm)
    out, moved = built[name].embed(r, R), built[name].embed(r[perm], R)
    np.testing.assert_allclose(moved.h, out.h[perm], rtol=0, atol=1e-11)
    np.testing.assert_allclose(moved.shared, out.shared, rtol=0, atol=1e-11)
    if out.pair is not None:
        np.testing.assert_allclose(moved.pair, out.pair[perm], rtol=0, atol=1e-11)
    assert not np.allclose(moved.h, out.h)


@pytest.mark.parametrize("name", ["schnet", "hybrid", "raw"])
def test_swapping_an_up_and_a_down_electron_is_not_a_symmetry(built, reference, name):
    r, R = reference
    perm = np.array([3, 1, 2, 0, 4])
    out, moved = built[name].embed(r, R), built[name].embed(r[perm], R)
    assert np.max(np.abs(moved.shared - out.shared)) > 1e-3
    if name == "raw":  # h is the spin-blind input itself; the spin means of the pairs see the swap
        assert np.max(np.abs(moved.pair - out.pair[perm])) > 1e-3
    else:
        assert np.max(np.abs(moved.h - out.h[perm])) > 1e-3


@pytest.mark.parametrize("name", ["schnet", "hybrid", "raw"])
def test_translation_invariant(built, reference, name):
    r, R = reference
    shift = jnp.asarray([0.7, -1.3, 2.1])
    _close(built[name].embed(r + shift, R + shift), built[name].embed(r, R))


def _rotation(seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return jnp.asarray(q * np.sign(np.linalg.det(q)))


def test_schnet_rotation_invariant(built, reference):
    r, R = reference
    rot = _rotation()
    _close(built["schnet"].embed(r @ rot.T, R @ rot.T), built["schnet"].embed(r, R))


def test_schnet_invariant_under_permuting_identical_nuclei(built, reference):
    r, R = reference
    _close(built["schnet"].embed(r, R[np.array([2, 1, 0])]), built["schnet"].embed(r, R))
    # exchanging nuclei of different charges is a different molecule
    moved = built["schnet"].embed(r, R[np.array([1, 0, 2])])
    assert np.max(np.abs(moved.h - built["schnet"].embed(r, R).h)) > 1e-3


# ----------------------------------------------------------------- smoothness at coalescence


def _antipodal_directions(count=12):
    v = np.random.default_rng(7).normal(size=(count, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return jnp.asarray(np.concatenate([v, -v]))


def _mean_radial_slope(embed, place, r, R, s=1e-6):
    """Direction-averaged ``d h / d s`` at separation ``s``, ``place(r, s n)`` putting one
    particle at ``s n`` from another: zero (to O(s)) for a smooth function, ``dh/d|x|`` at 0+
    for one with a kink (a cusp)."""

    def slope(n):
        return jax.jacfwd(lambda t: embed(place(r, t * n), R).h)(s)

    slopes = jax.vmap(slope)(_antipodal_directions())  # [directions, N, D]
    return jnp.mean(slopes, axis=0), jnp.sqrt(jnp.mean(slopes**2))


def _at_nucleus(R):
    return lambda r, x: r.at[0].set(R[1] + x)


def _at_electron(other):
    return lambda r, x: r.at[0].set(r[other] + x)


@pytest.mark.parametrize("where", ["nucleus", "same_spin_electron", "opposite_spin_electron"])
def test_schnet_is_smooth_at_coalescence(built, reference, where):
    r, R = reference
    place = {"nucleus": _at_nucleus(R), "same_spin_electron": _at_electron(1),
             "opposite_spin_electron": _at_electron(3)}[where]
    mean, rms = _mean_radial_slope(built["schnet"].embed, place, r, R)
    assert float(rms) > 1e-3  # the directional slopes themselves are not zero...
    assert float(jnp.max(jnp.abs(mean))) < 1e-4  # ...but they average out: no kink


def test_the_smoothness_check_detects_a_cusp(built, reference):
    """Raw FermiNet inputs hold |r - R_I|: a kink at the nucleus the check must see."""
    r, R = reference
    mean, _ = _mean_radial_slope(built["raw"].embed, _at_nucleus(R), r, R)
    np.testing.assert_allclose(mean[0, 4 * 1 + 3], 1.0, rtol=1e-6)  # d|r_0 - R_1| / d|r_0 - R_1|


# ----------------------------------------------------------------- gradients, curvature, scale


def _scalar(out):
    return sum(jnp.sum(jnp.tanh(x) * jnp.cos(jnp.arange(x.size).reshape(x.shape)))
               for x in jax.tree.leaves(out))


@pytest.mark.parametrize("name", ["schnet", "hybrid", "raw"])
def test_finite_gradients_near_coalescence(built, reference, name):
    r, R = reference
    b = built[name]
    grad = jax.jit(jax.grad(lambda p, x: _scalar(b.module.apply(p, ferminet_features(x, R))), argnums=(0, 1)))
    close_pair = r.at[1].set(r[0] + 1e-9)
    near_nucleus = r.at[0].set(R[1] + 1e-9).at[3].set(R[0] + 1e-9)
    configs = [close_pair, near_nucleus]
    if name == "schnet":  # it reads squared distances from the displacements: exact coalescence is fine too
        configs += [r.at[1].set(r[0]), r.at[0].set(R[1]).at[3].set(R[0])]
    for x in configs:
        g_params, g_r = grad(b.params, x)
        assert np.all(np.isfinite(g_r))
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(g_params))


class _ScalarHead(nn.Module):
    """A log|psi|-like scalar of an embedding: the sum of a dense map of its output."""

    embedding: nn.Module

    @nn.compact
    def __call__(self, r, R):
        out = self.embedding(ferminet_features(r, R))
        return jnp.sum(EquivariantDense(1, name="head")(out.h, out.shared, out.pair))


@pytest.mark.parametrize("name", ["schnet", "hybrid", "raw"])
def test_every_parameter_has_a_proper_kfac_block(lih, name):
    module = _ScalarHead(_modules(lih.n_up, lih.n_down, tuple(lih.charges), layers=1)[name])
    wf = Wavefunction(init=module.init, signed_log_psi=lambda p, r, R: (jnp.ones((), r.dtype), module.apply(p, r, R)),
                      n_up=lih.n_up, n_down=lih.n_down, name=name)
    blocks = kfac_block_types(wf, lih, batch_size=2)
    own = [k for k in blocks if "['embedding']" in k]
    assert bool(own) == (name != "raw")  # the raw embedding has no parameters
    bad = {k: v for k, v in blocks.items() if v == "NaiveDiagonal"}
    assert not bad, bad


@pytest.mark.parametrize("name", ["schnet", "hybrid"])
def test_initial_scale_is_order_one_for_lih(lih, name):
    """RMS of h at initialisation with the default options, over a few LiH configurations."""
    charges = tuple(lih.charges)
    module = {"schnet": SchNetEmbedding(n_up=lih.n_up, n_down=lih.n_down, charges=charges),
              "hybrid": HybridEmbedding(n_up=lih.n_up, n_down=lih.n_down, charges=charges)}[name]
    R = jnp.asarray(lih.positions)
    r = jnp.stack([random_configuration(k, lih) for k in jax.random.split(jax.random.PRNGKey(1), 16)])

    @jax.jit
    def h_at_init(key, walkers):  # one compilation for initialisation and evaluation
        return jax.vmap(lambda x: module.init_with_output(key, ferminet_features(x, R))[0].h)(walkers)

    h = h_at_init(jax.random.PRNGKey(0), r)
    rms = float(jnp.sqrt(jnp.mean(h**2)))
    print(f"{name}: RMS of h at init on LiH = {rms:.3f}")
    assert 0.3 < rms < 3.0


def test_hybrid_updates_its_electron_nuclear_stream_in_every_layer_but_the_last(built, reference):
    """DeepErwin's hybrid carries an electron-nuclear stream that a residual dense layer updates
    after each layer's one-electron update (none after the last): the nuclear messages of layer
    l > 0 see the updated stream. With those updates zeroed (tanh(0) = 0: the stream passes
    unchanged) the output differs, and the last layer has no update."""
    r, R = reference
    b = built["hybrid"]
    own = b.params["params"]
    assert "nuclear_stream_0" in own and "nuclear_stream_1" not in own  # two layers: one update
    assert own["nuclear_stream_0"]["kernel"].shape == (4, 4)  # nuclear_width -> nuclear_width
    frozen = jax.tree.map(lambda x: x, b.params)
    frozen["params"]["nuclear_stream_0"] = jax.tree.map(jnp.zeros_like, own["nuclear_stream_0"])
    out = b.embed(r, R)
    stale = b.module.apply(frozen, ferminet_features(r, R))
    assert float(jnp.max(jnp.abs(out.h - stale.h))) > 1e-3


def test_radial_basis_is_even_and_cut_off():
    d = jnp.linspace(0.0, 12.0, 50)[:, None]
    basis = even_radial_basis(d**2, 8, 10.0)
    assert basis.shape == (50, 8) and np.all(np.isfinite(basis))
    slope_at_zero = jax.jacfwd(lambda x: even_radial_basis(jnp.square(x), 8, 10.0))(jnp.zeros(1))
    np.testing.assert_allclose(slope_at_zero, 0.0, atol=1e-12)
    cut = smooth_cutoff(d**2, 10.0)
    assert float(cut[0, 0]) == 1.0 and np.all(cut[d[:, 0] >= 10.0] == 0.0)


def test_schnet_forward_laplacian_is_finite_in_float32(reference):
    """folx's Laplacian through SchNet, in float32: the second derivatives of its own distances
    on the electron-electron diagonal must not overflow (they did with a sqrt at zero)."""
    from qmczoo.engine.hamiltonian import make_local_energy

    r, R = (x.astype(jnp.float32) for x in reference)
    module = _ScalarHead(_modules(N_UP, N_DOWN, CHARGES, layers=1)["schnet"])
    params = jax.tree.map(lambda x: x.astype(jnp.float32), module.init(jax.random.PRNGKey(0), r, R))
    local_energy = jax.jit(make_local_energy(module.apply, np.asarray(CHARGES), "folx"))
    for x in (r, r.at[1].set(r[0] + 1e-3)):
        e = local_energy(params, x, R)
        assert e.dtype == jnp.float32 and np.isfinite(float(e))
