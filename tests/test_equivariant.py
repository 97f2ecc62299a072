"""Equivariant (e3nn-jax) and attention (Psiformer) layers: Wigner-D equivariance, rotation
invariance of whole ansätze, KFAC blocks, and that both fill FermiNet's and the hybrid's
embedding slot by configuration alone."""

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo import testing
from qmczoo.layers.attention import LayerNorm, SelfAttention
from qmczoo.layers.e3nn_embedding import E3nnEmbedding, IrrepsDense, hidden_irreps
from qmczoo.layers.features import ferminet_features
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.testing.contract import kfac_block_types, random_configuration, random_rotation, to_float64
from qmczoo.wavefunction import Wavefunction


def _embedding_irreps(dtype, seed=0):
    """(params, irreps at r, irreps at rotated r and R, rotation) of an e3nn embedding on BH."""
    system = get_system("B 0 0 0; H 0 0 2.329", unit="bohr")
    module = E3nnEmbedding(n_up=system.n_up, n_down=system.n_down, charges=tuple(system.charges), channels=4, lmax=2)
    R = jnp.asarray(system.positions, dtype)
    r = random_configuration(jax.random.PRNGKey(seed), system, dtype)
    apply = jax.jit(lambda p, x, y: module.apply(p, ferminet_features(x, y)).irreps)
    params = module.init(jax.random.PRNGKey(1), ferminet_features(r, R))
    if dtype == jnp.float64:
        params = to_float64(params)
    rot = jnp.asarray(random_rotation(seed + 5), dtype)
    return apply(params, r, R), apply(params, r @ rot.T, R @ rot.T), rot


@pytest.mark.parametrize("dtype, atol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_e3nn_embedding_irreps_rotate_by_their_wigner_d_matrices(dtype, atol):
    with jax.enable_x64(dtype == jnp.float64):
        out, turned, rot = _embedding_irreps(dtype)
        assert out.irreps == hidden_irreps(4, 2)
        expected = out.transform_by_matrix(rot)
        scale = float(jnp.max(jnp.abs(out.array)))
        assert float(jnp.max(jnp.abs(turned.array - expected.array))) <= atol * max(1.0, scale)
        # and the l >= 1 parts really move (a trivially invariant output would pass the check)
        vectors = out.filter(drop="0e").array
        assert float(jnp.max(jnp.abs(turned.filter(drop="0e").array - vectors))) > 1e-2 * float(jnp.max(jnp.abs(vectors)))


def test_irreps_dense_is_equivariant_and_every_parameter_has_a_kfac_block():
    out_irreps = "4x0e + 3x1o + 2x2e + 1x1e"  # 1e is absent from the input: zero
    with jax.enable_x64(True):
        x = e3nn.normal("3x0e + 2x1o + 1x2e", jax.random.PRNGKey(0), (5,), dtype=jnp.float64)
        layer = IrrepsDense(out_irreps)
        params = to_float64(layer.init(jax.random.PRNGKey(1), x))
        y = layer.apply(params, x)
        assert y.irreps == e3nn.Irreps(out_irreps)
        rot = jnp.asarray(random_rotation(2))
        np.testing.assert_allclose(layer.apply(params, x.transform_by_matrix(rot)).array,
                                   y.transform_by_matrix(rot).array, atol=1e-12)
        assert float(jnp.max(jnp.abs(y.filter(keep="1e").array))) == 0.0

    class Toy(nn.Module):  # a wavefunction-shaped wrapper, so that kfac-jax sees a walker axis
        @nn.compact
        def __call__(self, r, R):
            x = e3nn.concatenate([e3nn.IrrepsArray("1x0e", jnp.sum((r - R[0]) ** 2, -1, keepdims=True)),
                                  e3nn.spherical_harmonics("1o + 2e", r - R[0], normalize=False)])
            return jnp.ones(()), jnp.sum(jnp.tanh(IrrepsDense("2x0e + 2x1o + 2x2e", name="dense")(x).array))

    toy = Toy()
    wf = Wavefunction(init=toy.init, signed_log_psi=toy.apply, n_up=2, n_down=1, name="irreps_dense")
    blocks = kfac_block_types(wf, get_system("Li"))
    assert len(blocks) == 4 and all(b != "NaiveDiagonal" for b in blocks.values()), blocks


def test_a_false_rotation_equivariance_claim_is_caught(monkeypatch):
    """An embedding whose 'vectors' are displacement components in the wrong order does not
    rotate by the Wigner-D matrices of 1o."""
    from qmczoo import registry
    from qmczoo.layers.slots import EmbeddingOutput

    class Scrambled(nn.Module):
        n_up: int

        @nn.compact
        def __call__(self, features):
            v = jnp.sum(features.en_disp, axis=1)[:, [1, 2, 0]] * jnp.asarray([1.0, -1.0, 1.0])
            h = jnp.sum(features.en_dist, axis=1)
            return EmbeddingOutput(h=h, irreps=e3nn.IrrepsArray("1o", v))

    entry = dict(slot="embedding", factory=Scrambled, description="", options={},
                 claims={"equivariant": ["rotation"]})
    monkeypatch.setitem(registry._load()["layers"], "scrambled_embedding", entry)
    with pytest.raises(AssertionError, match="Wigner"):
        testing.check_layer("scrambled_embedding")


@pytest.mark.parametrize("ansatz", ["ferminet", "hybrid"])
@pytest.mark.parametrize("embedding", ["e3nn_embedding", "psiformer_embedding"])
def test_new_embeddings_fill_the_embedding_slot_by_configuration_alone(ansatz, embedding):
    spec = get_ansatz(ansatz, preset="tiny", embedding=embedding)
    assert spec.slots["embedding"] == embedding
    testing.check_spec(spec, get_system("LiH"))


@pytest.mark.parametrize("system_name", ["Li", "LiH"])
def test_ferminet_with_the_e3nn_embedding_is_invariant_only_with_the_invariant_readout(system_name):
    """With the invariant readout (and isotropic envelopes) log|psi| does not change when the
    electrons and nuclei are rotated together; with the raw components (the default), as with
    FermiNet's own embedding, it does: the orbital head's lab-frame vectors pick directions."""
    system = get_system(system_name)
    with jax.enable_x64(True):
        R = jnp.asarray(system.positions, jnp.float64)
        r = random_configuration(jax.random.PRNGKey(3), system, jnp.float64)
        rot = jnp.asarray(random_rotation(7))
        changes = {}
        for label, options in (("invariant", {"embedding": "e3nn_embedding", "embedding.readout": "invariant"}),
                               ("components", {"embedding": "e3nn_embedding"}),
                               ("ferminet", {"embedding": "ferminet_embedding"})):
            wf = get_ansatz("ferminet", preset="tiny", **options).build(system)
            params = to_float64(wf.init(jax.random.PRNGKey(4), r, R))
            log_psi = jax.jit(wf.log_psi)
            changes[label] = abs(float(log_psi(params, r @ rot.T, R @ rot.T) - log_psi(params, r, R)))
        assert changes["invariant"] < 1e-10
        assert changes["components"] > 1e-4
        assert changes["ferminet"] > 1e-4


def test_attention_is_permutation_equivariant_and_layer_norm_normalises():
    with jax.enable_x64(True):
        h = jax.random.normal(jax.random.PRNGKey(0), (5, 8), jnp.float64)
        att = SelfAttention(heads=2, head_dim=3)
        params = att.init(jax.random.PRNGKey(1), h)
        perm = np.array([3, 0, 4, 1, 2])
        np.testing.assert_allclose(att.apply(params, h[perm]), att.apply(params, h)[perm], atol=1e-12)
        assert att.apply(params, h).shape == (5, 8)
        ln = LayerNorm()
        out = ln.apply(ln.init(jax.random.PRNGKey(2), h), 3.0 * h + 1.0)
        np.testing.assert_allclose(np.mean(out, -1), 0.0, atol=1e-10)
        np.testing.assert_allclose(np.std(out, -1), 1.0, rtol=1e-4)


def test_psiformer_is_registered_with_a_cusp_jastrow_and_rescaled_inputs():
    spec = get_ansatz("psiformer")
    assert spec.slots["embedding"] == "psiformer_embedding"
    assert spec.slots["jastrow"] == "ee_cusp_jastrow"
    assert spec.options["features.rescale"] is True
    assert "electron_electron" in spec.claims.get("cusp", [])
    paper = get_ansatz("psiformer", preset="paper")
    assert paper.options["embedding.head_dim"] == 64 and paper.options["determinants"] == 16
