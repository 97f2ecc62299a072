"""Checkpoints: bit-exact round trips and helpful errors for a mismatched template."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from qmczoo.runs import checkpoint
from qmczoo.engine.sampler import WalkerState


def _state():
    rng = np.random.default_rng(0)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.0 / 3.0])
    arrays = {
        "f64": rng.normal(size=(3, 4)),
        "f32": rng.normal(size=(5,)).astype(np.float32),
        "special": special,
        "bf16": jnp.asarray(rng.normal(size=(2, 2)), dtype=jnp.bfloat16),
        "i32": np.arange(-3, 3, dtype=np.int32),
        "i64": np.array([2**62, -(2**62)], dtype=np.int64),
        "u8": np.array([0, 255, 7], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "c128": rng.normal(size=3) + 1j * rng.normal(size=3),
        "scalar": np.float64(np.pi),
        "empty": np.zeros((0, 3)),
    }
    model = nn.Sequential([nn.Dense(4), nn.tanh, nn.Dense(1)])
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.ones((2, 3)))
    walkers = WalkerState(
        r=jnp.asarray(rng.normal(size=(8, 4, 3))),
        step_size=jnp.asarray(0.02),
        acceptance=jnp.asarray(0.5234),
    )
    return {"arrays": arrays, "params": params, "walkers": walkers, "step": np.int64(1234),
            "key": jax.random.PRNGKey(42)}


def _zeros_like(tree):
    return jax.tree.map(lambda x: jnp.zeros(np.shape(x), dtype=np.asarray(x).dtype), tree)


def _assert_bit_exact(a, b):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_round_trip_is_bit_exact(tmp_path):
    state = _state()
    path = tmp_path / "run.ckpt"
    metadata = {"step": 1234, "ansatz": "ferminet", "energy": -8.07, "nested": {"seed": 7}}
    checkpoint.save(path, state, metadata=metadata)
    restored, meta = checkpoint.load(path, _zeros_like(state))
    _assert_bit_exact(restored, state)
    assert isinstance(restored["walkers"], WalkerState)
    assert meta == metadata
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary file left


def test_save_overwrites_and_metadata_defaults_to_empty(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save(path, {"x": np.ones(3)}, metadata={"step": 1})
    checkpoint.save(path, {"x": np.full(3, 2.0)})
    restored, meta = checkpoint.load(path, {"x": np.zeros(3)})
    np.testing.assert_array_equal(restored["x"], [2.0, 2.0, 2.0])
    assert meta == {}


def test_walker_state_alone_round_trips(tmp_path):
    walkers = _state()["walkers"]
    checkpoint.save(tmp_path / "walkers", walkers)
    restored, _ = checkpoint.load(tmp_path / "walkers", _zeros_like(walkers))
    _assert_bit_exact(restored, walkers)


def test_template_with_a_different_number_of_arrays(tmp_path):
    state = _state()
    path = tmp_path / "ckpt"
    checkpoint.save(path, state)
    n = len(jax.tree.leaves(state))
    smaller = dict(state)
    del smaller["step"]
    with pytest.raises(ValueError, match=rf"holds {n} arrays but the run expects {n - 1}.*different ansatz"):
        checkpoint.load(path, smaller)
    bigger = dict(state, extra=np.zeros(2))
    with pytest.raises(ValueError, match=rf"holds {n} arrays but the run expects {n + 1}"):
        checkpoint.load(path, bigger)


def test_template_with_a_different_shape(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save(path, {"a": np.zeros((2, 3)), "b": np.zeros(4)})
    with pytest.raises(ValueError, match=r"\['b'\] has shape \(4,\), expected \(5,\)"):
        checkpoint.load(path, {"a": np.zeros((2, 3)), "b": np.zeros(5)})


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.msgpack"
    path.write_bytes(serialization.msgpack_serialize({"format": "something-else", "leaves": {}}))
    with pytest.raises(ValueError, match="is not a qmczoo checkpoint"):
        checkpoint.load(path, {})


def test_template_with_same_shapes_but_different_structure(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save(path, {"kernel": np.ones((3, 3)), "bias": np.zeros(3)})
    # A different model whose two arrays happen to have the same shapes (in flatten order).
    with pytest.raises(ValueError, match="the run expects"):
        checkpoint.load(path, {"gain": np.zeros(3), "weights": np.zeros((3, 3))})


def test_checkpoint_of_another_precision_is_refused(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save(path, {"w": np.ones(3, np.float64)})
    with pytest.raises(ValueError, match="precision"):
        checkpoint.load(path, {"w": np.zeros(3, np.float32)})
