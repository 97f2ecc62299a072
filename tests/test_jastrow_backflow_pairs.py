"""Jastrow factors, weighted determinants, backflow, the pair product and the cusp checks (float64)."""

from __future__ import annotations

import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.testing import cusps as cusp_checks
from qmczoo.layers.antisymmetrizers import MultiDeterminant, WeightedDeterminants, multi_determinant
from qmczoo.layers.backflow import AdditiveBackflow, MultiplicativeBackflow
from qmczoo.layers.curvature import Dense
from qmczoo.layers.envelopes import IsotropicEnvelope
from qmczoo.layers.features import electron_electron, ferminet_inputs
from qmczoo.layers.jastrow import (CuspJastrow, ElectronElectronCuspJastrow, ElectronNuclearCuspJastrow,
                                   NeuralJastrow)
from qmczoo.layers.pair_product import PairOrbitals, PairProduct, pair_product
from qmczoo.layers.slots import ElectronFeatures, EmbeddingOutput, make_layer
from qmczoo.layers.spin_pooling import spin_means
from qmczoo.chemistry.systems import System
from qmczoo.testing import check_finite, kfac_block_types, same_spin_pairs, to_float64
from qmczoo.wavefunction import Wavefunction, from_module

ENVELOPE = make_layer("isotropic_envelope", "envelope", IsotropicEnvelope)
R2 = jnp.asarray([[0.0, 0.0, 0.0], [1.9, 0.4, -0.3]])
CHARGES = (3.0, 2.0)
LIHE = System(name="LiHe", symbols=("Li", "He"), charges=CHARGES, coords=tuple(map(tuple, np.asarray(R2).tolist())),
              n_up=3, n_down=2)


# ----------------------------------------------------------------- helpers


def features(r, R) -> ElectronFeatures:
    one, two, en_disp, en_dist = ferminet_inputs(r, R)
    ee_disp, ee_dist = electron_electron(r)
    return ElectronFeatures(one=one, two=two, en_disp=en_disp, en_dist=en_dist, ee_disp=ee_disp, ee_dist=ee_dist)


class TinyEmbedding(nn.Module):
    """Same-spin equivariant toy embedding; ``mode``: "full", "distances" (rotation invariant)
    or "raw" (``h_i`` a function of ``x_i`` alone: with it the pair orbitals are DeepWF)."""

    n_up: int
    mode: str = "full"
    width: int = 8

    @nn.compact
    def __call__(self, f: ElectronFeatures) -> EmbeddingOutput:
        x, two = (f.en_dist[..., 0], f.ee_dist) if self.mode == "distances" else (f.one, f.two)
        if self.mode == "raw":
            return EmbeddingOutput(h=jnp.tanh(Dense(self.width)(x)))
        means = jnp.concatenate(spin_means(x, self.n_up), axis=-1)
        pair = jnp.concatenate(spin_means(jnp.tanh(Dense(4)(two)), self.n_up, axis=1), axis=-1)
        h = jnp.tanh(Dense(self.width)(x) + Dense(self.width, use_bias=False)(means)[None, :]
                     + Dense(self.width, use_bias=False)(pair))
        return EmbeddingOutput(h=h, shared=jnp.concatenate(spin_means(h, self.n_up), axis=-1), pair=pair)


def gaussian_orbitals(x, n):
    """``n`` smooth (cusp-free) orbitals at points ``x`` ``[p, 3]`` -> ``[p, n]``."""
    polys = [jnp.ones_like(x[:, 0]), x[:, 0] + 0.3, x[:, 1] - 0.2 * x[:, 2], x[:, 2] + 0.5 * x[:, 0] * x[:, 1]]
    decay = jnp.exp(-0.5 * jnp.sum(x**2, axis=-1))
    return jnp.stack([polys[m] * decay * (1.0 + 0.1 * m * x[:, 0]) for m in range(n)], axis=-1)


def smooth_determinants(r, n_up, n_down):
    blocks = [gaussian_orbitals(r[lo:hi], hi - lo)[None] for lo, hi in ((0, n_up), (n_up, n_up + n_down)) if hi > lo]
    return multi_determinant(blocks)


class JastrowWF(nn.Module):
    """psi = exp(J) (times a smooth determinant with ``smooth_det``), sign +1 for the bare Jastrow."""

    n_up: int
    n_down: int
    charges: tuple = CHARGES
    kind: str = "cusp"
    smooth_det: bool = False

    @nn.compact
    def __call__(self, r, R):
        f = features(r, R)
        emb = TinyEmbedding(self.n_up, mode="distances")(f) if self.kind == "neural" else None
        jastrow = {"ee": lambda: ElectronElectronCuspJastrow(n_up=self.n_up),
                   "en": lambda: ElectronNuclearCuspJastrow(charges=self.charges),
                   "cusp": lambda: CuspJastrow(n_up=self.n_up, charges=self.charges),
                   "neural": lambda: NeuralJastrow(hidden=(8,), init_scale=1.0)}[self.kind]()
        j = jastrow(f, emb)
        if not self.smooth_det:
            return jnp.ones_like(j), j
        sign, logabs = smooth_determinants(r, self.n_up, self.n_down)
        return sign, logabs + j


class PairWF(nn.Module):
    n_up: int
    n_down: int
    charges: tuple = CHARGES
    terms: int = 2
    mode: str = "full"
    pair_inputs: bool = True
    jastrow: bool = False

    def setup(self):
        self.embedding = TinyEmbedding(self.n_up, mode=self.mode)
        self.pairs = PairOrbitals(n_up=self.n_up, n_down=self.n_down, envelope=ENVELOPE, charges=self.charges,
                                  determinants=self.terms, hidden=(8,), pair_inputs=self.pair_inputs)
        self.antisymmetrizer = PairProduct(determinants=self.terms)
        if self.jastrow:
            self.cusp = CuspJastrow(n_up=self.n_up, charges=self.charges)
            self.neural = NeuralJastrow(hidden=(8,))

    def orbitals(self, r, R):
        f = features(r, R)
        return self.pairs(self.embedding(f), f)

    def __call__(self, r, R):
        f = features(r, R)
        emb = self.embedding(f)
        sign, logabs = self.antisymmetrizer(self.pairs(emb, f))
        if self.jastrow:
            logabs = logabs + self.cusp(f, emb) + self.neural(f, emb)
        return sign, logabs


class BackflowWF(nn.Module):
    """Smooth baseline orbitals with multiplicative (up) and additive (down) backflow."""

    n_up: int
    n_down: int
    terms: int = 2
    weighted: bool = True

    @nn.compact
    def __call__(self, r, R):
        f = features(r, R)
        emb = TinyEmbedding(self.n_up)(f)
        blocks = []
        for spin, lo, hi, cls in (("up", 0, self.n_up, MultiplicativeBackflow),
                                  ("down", self.n_up, self.n_up + self.n_down, AdditiveBackflow)):
            if hi > lo:
                phi = gaussian_orbitals(r[lo:hi] - R[0], hi - lo)
                blocks.append(cls(determinants=self.terms, hidden=(8,), name=f"backflow_{spin}")(emb.h[lo:hi], phi))
        if self.weighted:
            return WeightedDeterminants(determinants=self.terms, weight_init="uniform")(blocks)
        return MultiDeterminant(determinants=self.terms)(blocks)


def key(seed=0):
    """A PRNG key whose random ops compile quickly (threefry makes every init take seconds here)."""
    return jax.random.key(seed, impl="rbg")


def init(module, *args, seed=0):
    """float64 parameters of ``module`` (a jitted init: eager flax init dispatches op by op)."""
    return to_float64(jax.jit(module.init)(key(seed), *args))


def perturb(params, seed, size=0.3):
    """``params`` plus Gaussian noise of standard deviation ``size`` (on the host: no compilation)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x) + size * rng.normal(size=np.shape(x))), params)


def build(module, n_up, n_down, r, R=R2, seed=0, noise=0.3):
    wf = from_module(module, n_up, n_down)
    params = to_float64(jax.jit(wf.init)(key(seed), r, R))
    return wf, (perturb(params, seed + 1, noise) if noise else params)


_EVALUATORS: dict = {}
BATCH = 16


def evaluate(wf, params, r, R):
    """``(signs, logs)`` (numpy) of configurations ``r`` ``[B, N, 3]`` with nuclei ``R`` ``[B, M, 3]``
    (or one ``[M, 3]`` for all): padded to a batch of 16, so one compilation per wavefunction."""
    if id(wf) not in _EVALUATORS:
        _EVALUATORS[id(wf)] = (wf, jax.jit(jax.vmap(wf.signed_log_psi, in_axes=(None, 0, 0))))
    r = np.asarray(r)
    R = np.broadcast_to(np.asarray(R), (r.shape[0],) + np.shape(R)[-2:])
    b = r.shape[0]
    assert b <= BATCH
    pad = lambda x: jnp.asarray(np.concatenate([x, np.repeat(x[:1], BATCH - b, axis=0)]))  # noqa: E731
    signs, logs = _EVALUATORS[id(wf)][1](params, pad(r), pad(R))
    return np.asarray(signs)[:b], np.asarray(logs)[:b]


def assert_antisymmetric_and_translation_invariant(wf, params, r, R, atol=1e-10):
    """Every same-spin transposition flips the sign and keeps log|psi|; a common shift of
    electrons and nuclei changes nothing (forward passes only, in one batch). Returns the
    ``(sign, log|psi|)`` at ``r``."""
    pairs = same_spin_pairs(wf.n_up, wf.n_down)
    perms = np.tile(np.arange(r.shape[0]), (len(pairs) + 1, 1))
    for row, (a, b) in enumerate(pairs, start=1):
        perms[row, [a, b]] = perms[row, [b, a]]
    shift = jnp.asarray([0.7, -1.3, 2.1])
    rs = jnp.concatenate([r[perms], (r + shift)[None]])
    Rs = jnp.stack([R] * len(perms) + [R + shift])
    signs, logs = evaluate(wf, params, rs, Rs)
    assert np.all(np.isfinite(logs)) and abs(signs[0]) == 1.0
    np.testing.assert_array_equal(signs[1:-1], -signs[0])
    np.testing.assert_allclose(logs[1:-1], logs[0], rtol=0, atol=atol)
    assert signs[-1] == signs[0]
    np.testing.assert_allclose(logs[-1], logs[0], rtol=0, atol=atol)
    return signs[0], logs[0]


@pytest.fixture(scope="module")
def r5():
    """3 up + 2 down electrons near two nuclei (generic: no two points close)."""
    return jnp.asarray(np.random.default_rng(7).normal(size=(5, 3)) + np.array([0.6, 0.1, 0.0]))


def rotation(seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


# ----------------------------------------------------------------- Jastrow factors


@pytest.mark.parametrize("kind", ["ee", "en", "cusp", "neural"])
def test_jastrows_are_symmetric_and_invariant(kind, r5):
    wf, params = build(JastrowWF(3, 2, kind=kind), 3, 2, r5)
    j = jax.jit(wf.log_psi)
    ref = float(j(params, r5, R2))
    for a, b in same_spin_pairs(3, 2):
        perm = np.arange(5)
        perm[[a, b]] = perm[[b, a]]
        np.testing.assert_allclose(j(params, r5[perm], R2), ref, rtol=1e-12, atol=1e-12)
    shift = jnp.asarray([0.7, -1.3, 2.1])
    np.testing.assert_allclose(j(params, r5 + shift, R2 + shift), ref, rtol=1e-12, atol=1e-12)
    rot = jnp.asarray(rotation())
    np.testing.assert_allclose(j(params, r5 @ rot.T, R2 @ rot.T), ref, rtol=1e-12, atol=1e-12)
    if kind in ("ee", "cusp"):  # an up-down swap is no symmetry: the cusps differ
        assert abs(float(j(params, r5[np.array([3, 1, 2, 0, 4])], R2)) - ref) > 1e-6


@jax.jit
@functools.partial(jax.grad, argnums=1)
def _en_slope(params, s, centre, u):
    """d J / d s for electron 0 at ``centre + s u`` (two more electrons elsewhere)."""
    others = jnp.asarray([[1.0, 1.0, 0.5], [-0.3, 0.9, 2.0]])
    r = jnp.concatenate([(centre + s * u)[None], others])
    return ElectronNuclearCuspJastrow(charges=CHARGES).apply(params, features(r, R2))


@pytest.mark.parametrize("log_alpha", [0.0, 0.8, -1.1])
def test_electron_nuclear_jastrow_slope_is_minus_z(log_alpha):
    """dJ/dr_iI = -Z_I at the nucleus (analytic derivative), whatever the learned length.

    The directional derivative also has the smooth gradient of the other nuclei's terms, which
    the spherical average removes: the mean over u and -u is exactly -Z_I."""
    params = {"params": {"log_alpha": jnp.asarray([log_alpha, -0.5 * log_alpha])}}
    u = jnp.asarray([0.48, -0.6, 0.64])
    for nucleus, z in enumerate(CHARGES):
        slope = (_en_slope(params, 1e-10, R2[nucleus], u) + _en_slope(params, 1e-10, R2[nucleus], -u)) / 2
        np.testing.assert_allclose(slope, -z, rtol=1e-8)
    module = ElectronNuclearCuspJastrow(charges=CHARGES)
    # decays far from the nuclei: J = sum Z a^2 / (a + r) -> 0
    far = features(1e8 * jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), R2)
    assert 0 < float(module.apply(params, far)) < 1e-6


@pytest.mark.parametrize("n_up, cusp", [(1, 0.5), (2, 0.25)], ids=["opposite", "parallel"])
def test_electron_electron_jastrow_slope_and_decay(n_up, cusp):
    module = ElectronElectronCuspJastrow(n_up=n_up)
    params = {"params": {"log_alpha_parallel": jnp.asarray(0.6), "log_alpha_anti": jnp.asarray(-0.9)}}
    u, c = jnp.asarray([0.0, 0.6, 0.8]), jnp.asarray([0.3, -0.2, 1.1])

    def j(s):
        return module.apply(params, features(jnp.stack([c + 0.5 * s * u, c - 0.5 * s * u]), R2))

    np.testing.assert_allclose(jax.jit(jax.grad(j))(1e-10), cusp, rtol=1e-8)
    assert abs(float(j(1e9))) < 1e-8


def test_cusp_jastrow_is_the_sum_of_its_parts(r5):
    f = features(r5, R2)
    both = CuspJastrow(n_up=3, charges=CHARGES)
    params = perturb(init(both, f, None), 1)

    @jax.jit
    def parts(params, f):
        ee = ElectronElectronCuspJastrow(n_up=3).apply({"params": params["params"]["ee"]}, f, None)
        en = ElectronNuclearCuspJastrow(charges=CHARGES).apply({"params": params["params"]["en"]}, f, None)
        return both.apply(params, f, None), ee + en

    total, summed = parts(params, f)
    np.testing.assert_allclose(total, summed, rtol=1e-13)


def test_neural_jastrow_starts_near_zero_and_needs_an_embedding(r5):
    f = features(r5, R2)
    rng = np.random.default_rng(0)
    emb = EmbeddingOutput(h=jnp.tanh(jnp.asarray(rng.normal(size=(5, 8)))), shared=jnp.asarray(rng.normal(size=(16,))),
                          pair=jnp.asarray(rng.normal(size=(5, 8))))
    j = NeuralJastrow()
    value = jax.jit(j.apply)(init(j, f, emb, seed=1), f, emb)
    assert 0 < abs(float(value)) < 0.1
    # init_scale = 0: the last layer starts at zero, so J = 0 exactly
    last = init(NeuralJastrow(init_scale=0.0), f, emb, seed=1)["params"]["dense_2"]
    assert np.all(np.asarray(last["kernel"]) == 0) and np.all(np.asarray(last["bias"]) == 0)
    with pytest.raises(ValueError, match="needs an embedding"):
        jax.eval_shape(j.init, key(1), f, None)


# ----------------------------------------------------------------- cusp checks


def hydrogen(log_psi, name):
    return Wavefunction(init=lambda key, r, R: {}, name=name, n_up=1, n_down=0,
                        signed_log_psi=lambda p, r, R: (jnp.ones(()), log_psi(r, R)))


def test_exact_hydrogen_passes_and_gaussian_fails_the_electron_nuclear_check():
    R = jnp.asarray([[0.1, -0.2, 0.3]])
    r = jnp.asarray([[0.5, 0.4, -0.2]])
    exact = hydrogen(lambda r, R: -jnp.linalg.norm(r[0] - R[0]), "exact_H")
    cusp_checks.check_electron_nuclear_cusp(exact, {}, r, R, charges=[1.0], atol=1e-6)
    measured = cusp_checks.electron_nuclear_cusp(lambda x: exact.log_psi({}, x, R), r, R, 0, 0)
    np.testing.assert_allclose(measured, -1.0, atol=1e-8)
    gaussian = hydrogen(lambda r, R: -jnp.sum((r[0] - R[0]) ** 2), "gaussian_H")
    with pytest.raises(AssertionError, match=r"gaussian_H: electron–nuclear cusp.*electron 0 at nucleus 0 "
                                             r"\(Z = 1\): measured d<log\|psi\|>/dr = -?0\.0+, expected -1"):
        cusp_checks.check_electron_nuclear_cusp(gaussian, {}, r, R, charges=[1.0])
    # a nucleus of the wrong charge is named too
    with pytest.raises(AssertionError, match=r"nucleus 0 \(Z = 2\): measured d<log\|psi\|>/dr = -1\.0000"):
        cusp_checks.check_electron_nuclear_cusp(exact, {}, r, R, charges=[2.0])


def test_gaussian_pair_fails_the_electron_electron_check():
    wf = Wavefunction(init=lambda key, r, R: {}, name="gaussian_pair", n_up=1, n_down=1,
                      signed_log_psi=lambda p, r, R: (jnp.ones(()), -jnp.sum(r**2)))
    r = jnp.asarray([[0.5, 0.4, -0.2], [-0.3, 0.1, 0.6]])
    with pytest.raises(AssertionError, match=r"opposite-spin electrons 0 and 1: measured slope -?0\.0+, expected 0\.5"):
        cusp_checks.check_electron_electron_cusp(wf, {}, r, jnp.zeros((1, 3)))


@pytest.mark.parametrize("smooth_det", [False, True], ids=["jastrow_alone", "times_smooth_determinant"])
def test_cusp_jastrow_passes_both_cusp_checks(r5, smooth_det):
    """Exact cusps at perturbed parameters; times a smooth antisymmetric function the same-spin
    node (psi ~ r) is detected and removed and the slope is still 1/4."""
    wf, params = build(JastrowWF(3, 2, kind="cusp", smooth_det=smooth_det), 3, 2, r5, noise=0.5)
    cusp_checks.check_electron_nuclear_cusp(wf, params, r5, R2, CHARGES, atol=1e-4)
    cusp_checks.check_electron_electron_cusp(wf, params, r5, R2, atol=1e-4)
    log_psi = lambda x: wf.log_psi(params, x, R2)  # noqa: E731
    np.testing.assert_allclose(cusp_checks.electron_electron_cusp(log_psi, r5, 0, 1), 0.25, atol=1e-4)
    np.testing.assert_allclose(cusp_checks.electron_electron_cusp(log_psi, r5, 4, 1), 0.5, atol=1e-4)
    np.testing.assert_allclose(cusp_checks.electron_nuclear_cusp(log_psi, r5, R2, 2, 1), -2.0, atol=1e-4)


def test_without_the_ee_part_the_electron_electron_check_fails(r5):
    wf, params = build(JastrowWF(3, 2, kind="en"), 3, 2, r5)
    with pytest.raises(AssertionError, match=r"same-spin electrons 0 and 1: measured slope -?0\.0+, expected 0\.25"):
        cusp_checks.check_electron_electron_cusp(wf, params, r5, R2)


def test_fibonacci_directions_are_unit_and_antipodal():
    d = cusp_checks.fibonacci_sphere(10)
    assert d.shape == (20, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(d[:10], -d[10:], rtol=0, atol=0)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=1e-15)


# ----------------------------------------------------------------- determinants


def _reference(blocks, weights):
    blocks = [np.asarray(b) for b in blocks]
    psi = sum(w * np.prod([np.linalg.det(b[k]) for b in blocks]) for k, w in enumerate(weights))
    return np.sign(psi), np.log(np.abs(psi))


@pytest.mark.parametrize("sizes", [(4,), (3, 2), (2, 1), (1,)])
def test_weighted_and_plain_determinants_agree_with_multi_determinant(rng, sizes):
    k = 3
    blocks = [jnp.asarray(rng.normal(size=(k, n, n))) for n in sizes]
    sign, logabs = multi_determinant(blocks)
    s, l = MultiDeterminant(determinants=k).apply({}, blocks)
    assert float(s) == float(sign) and float(l) == float(logabs)
    module = WeightedDeterminants(determinants=k, weights=(1.0, 1.0, 1.0))
    s, l = module.apply(init(module, blocks), blocks)
    assert float(s) == float(sign)
    np.testing.assert_allclose(l, logabs, rtol=1e-13)
    uniform = WeightedDeterminants(determinants=k, weight_init="uniform")
    params = init(uniform, blocks)
    np.testing.assert_allclose(params["params"]["weights"], 1 / k, rtol=1e-7)  # float32 parameters
    s, l = uniform.apply(params, blocks)
    assert float(s) == float(sign)
    np.testing.assert_allclose(l, logabs + np.log(float(params["params"]["weights"][0])), rtol=1e-13)
    w = rng.normal(size=k)
    s, l = module.apply({"params": {"weights": jnp.asarray(w)}}, blocks)
    ref_sign, ref_log = _reference(blocks, w)
    assert float(s) == ref_sign
    np.testing.assert_allclose(l, ref_log, rtol=1e-12)


def test_hf_weights_start_at_the_first_determinant_and_still_have_a_gradient(rng):
    blocks = [jnp.asarray(rng.normal(size=(3, 2, 2))), jnp.asarray(rng.normal(size=(3, 1, 1)))]
    module = WeightedDeterminants(determinants=3)
    params = init(module, blocks)
    np.testing.assert_array_equal(params["params"]["weights"], [1.0, 0.0, 0.0])
    s, l = module.apply(params, blocks)
    assert float(s) == _reference([b[:1] for b in blocks], [1.0])[0]
    np.testing.assert_allclose(l, _reference([b[:1] for b in blocks], [1.0])[1], rtol=1e-13)
    g_w, g_b = jax.grad(lambda p, b: module.apply(p, b)[1], argnums=(0, 1))(params, blocks)
    g_w = np.asarray(g_w["params"]["weights"])
    dets = np.linalg.det(np.asarray(blocks[0])) * np.asarray(blocks[1])[:, 0, 0]
    np.testing.assert_allclose(g_w, dets / dets[0], rtol=1e-10)  # d log|psi| / d w_k = D_k / psi
    assert np.all(np.abs(g_w[1:]) > 1e-3)
    # the orbitals of the other determinants wait until their weight moves away from zero
    assert np.all(np.asarray(g_b[0][1:]) == 0.0) and np.any(np.asarray(g_b[0][0]) != 0.0)
    with pytest.raises(ValueError, match="unknown weight_init"):
        jax.eval_shape(WeightedDeterminants(determinants=3, weight_init="random").init, key(), blocks)
    with pytest.raises(ValueError, match="built for 2 determinants"):
        MultiDeterminant(determinants=2).apply({}, blocks)


# ----------------------------------------------------------------- backflow


@pytest.fixture(scope="module")
def backflow_inputs():
    rng = np.random.default_rng(5)
    return jnp.asarray(rng.normal(size=(3, 6))), jnp.asarray(rng.normal(size=(3, 4)))


@pytest.mark.parametrize("cls", [MultiplicativeBackflow, AdditiveBackflow])
@pytest.mark.parametrize("hidden", [(), (5,)])
def test_backflow_starts_at_the_baseline_and_corrects_each_determinant(cls, hidden, backflow_inputs):
    h, phi = backflow_inputs
    k = 3
    module = cls(determinants=k, hidden=hidden)
    params = init(module, h, phi)
    out = module.apply(params, h, phi)
    assert out.shape == (k, 3, 4)
    np.testing.assert_array_equal(out, np.broadcast_to(phi, (k, 3, 4)))
    # one determinant's slice of the last layer moves that determinant only
    kernel = params["params"]["correction"]["out"]["kernel"]  # [D, K * P], columns (k, p)
    moved = kernel.reshape(kernel.shape[0], k, 4).at[:, 1, :].add(0.3).reshape(kernel.shape)
    new = jax.tree_util.tree_map(lambda x: x, params)
    new["params"]["correction"]["out"]["kernel"] = moved
    out2 = module.apply(new, h, phi)
    np.testing.assert_array_equal(np.asarray(out2)[[0, 2]], np.asarray(out)[[0, 2]])
    assert np.max(np.abs(out2[1] - out[1])) > 1e-3
    # perturbed: every determinant differs, rows follow the electrons (equivariance)
    params = perturb(params, 2)
    out = module.apply(params, h, phi)
    assert min(np.max(np.abs(out[a] - out[b])) for a, b in itertools.combinations(range(k), 2)) > 1e-3
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(module.apply(params, h[perm], phi[perm]), out[:, perm], rtol=1e-13)
    small = cls(determinants=k, hidden=hidden, init_scale=1e-3)
    out = small.apply(init(small, h, phi), h, phi)
    assert 0 < np.max(np.abs(out - phi[None])) < 0.05


@pytest.fixture(scope="module")
def backflow_wf(r5):
    """Multiplicative (up) and additive (down) backflow of smooth orbitals, weighted determinants."""
    return build(BackflowWF(3, 2), 3, 2, r5, noise=0.0)


def test_backflow_wavefunction_starts_at_the_baseline_determinant(r5, backflow_wf):
    wf, params = backflow_wf
    sign, logabs = evaluate(wf, params, r5[None], R2)
    ref_sign, ref_log = smooth_determinants(r5 - R2[0], 3, 2)
    assert sign[0] == float(ref_sign)
    np.testing.assert_allclose(logabs[0], ref_log, rtol=1e-12)  # K equal determinants weighted 1/K
    moved = perturb(params, 1)
    sign, logabs = assert_antisymmetric_and_translation_invariant(wf, moved, r5, R2)
    assert abs(logabs - float(ref_log)) > 1e-3  # the backflow moved away from the baseline


# ----------------------------------------------------------------- pair product


@pytest.fixture(scope="module")
def pair_wf(r5):
    """A pair product (K = 2) on the toy embedding, with cusp and neural Jastrows, 3 up + 2 down."""
    return build(PairWF(3, 2, jastrow=True), 3, 2, r5)


@pytest.mark.parametrize("mode, pair_inputs", [("full", True), ("raw", False)])
def test_pair_product_is_antisymmetric_and_translation_invariant(r5, pair_wf, mode, pair_inputs):
    if mode == "full":
        wf, params = pair_wf
        check_finite(wf, params, r5, R2)  # value and gradients
    else:
        wf, params = build(PairWF(3, 2, mode=mode, pair_inputs=pair_inputs), 3, 2, r5)
    assert_antisymmetric_and_translation_invariant(wf, params, r5, R2)
    if mode == "full":
        return  # the block layout is checked once (a compilation less)
    blocks = jax.jit(wf.orbitals)(params, r5, R2)
    assert [b.shape for b in blocks] == [(2, 3, 3), (2, 2, 2)]
    for b in blocks:  # phi antisymmetric, chi on the diagonal
        b = np.asarray(b)
        off = b - np.einsum("kii->ki", b)[:, :, None] * np.eye(b.shape[1])
        np.testing.assert_allclose(off, -np.swapaxes(off, 1, 2), rtol=0, atol=1e-15)
        assert np.all(np.abs(np.einsum("kii->ki", b)) > 0)


def test_pair_product_decays_far_from_the_nuclei(r5, pair_wf):
    wf, params = pair_wf
    u = jnp.asarray([0.36, 0.48, 0.8])
    configs = np.stack([r5.at[i].set(d * u) for i in range(5) for d in (8.0, 16.0, 32.0)])
    values = evaluate(wf, params, configs, R2)[1].reshape(5, 3)
    for i in range(5):
        assert values[i, 0] - values[i, 1] > 4 and values[i, 1] - values[i, 2] > 8, (i, values[i])


@pytest.mark.parametrize("n_up, n_down", [(2, 1), (1, 0)], ids=["Li", "H"])
def test_pair_product_lone_electron(n_up, n_down):
    n = n_up + n_down
    r = jnp.asarray(np.random.default_rng(2).normal(size=(n, 3)))
    R = R2[:1]
    wf, params = build(PairWF(n_up, n_down, charges=(3.0,)), n_up, n_down, r, R=R)
    blocks = jax.jit(wf.orbitals)(params, r, R)
    assert [b.shape for b in blocks] == [(2, s, s) for s in (n_up, n_down) if s]
    if n_up > 1:
        assert_antisymmetric_and_translation_invariant(wf, params, r, R)
    # psi is sum_k (up pair product)_k * chi_k(lone electron), chi a decaying orbital
    far = [r.at[n - 1].set(jnp.asarray([0.0, d, 0.0])) for d in (10.0, 20.0)]
    sign, logabs = evaluate(wf, params, np.stack([r] + far), R)
    lone = np.asarray(blocks[-1])[:, 0, 0]
    rest = np.ones(2) if len(blocks) == 1 else np.prod(np.asarray(blocks[0])[:, [0, 0, 1], [0, 1, 1]], axis=-1)
    np.testing.assert_allclose(sign[0] * np.exp(logabs[0]), np.sum(lone * rest), rtol=1e-12)
    assert np.isfinite(logabs).all() and logabs[1] - logabs[2] > 5


def test_two_electron_pair_product_is_a_two_by_two_determinant(rng):
    """For n_s = 2, chi_1 chi_2 phi(x_1, x_2) with phi a 2x2 determinant of orbitals is that
    determinant of chi-scaled orbitals, for every term k: the pair product is as general."""
    x = jnp.asarray(rng.normal(size=(2, 2, 3)))  # [K, 2 electrons, 3]
    orbs = jnp.stack([gaussian_orbitals(x[k], 2) for k in range(2)])  # [K, i, orbital]
    chi = jnp.asarray(rng.uniform(0.5, 1.5, size=(2, 2)))
    phi = orbs[:, 0, 0] * orbs[:, 1, 1] - orbs[:, 0, 1] * orbs[:, 1, 0]  # phi(x1, x2) = a(1) b(2) - b(1) a(2)
    block = jnp.stack([jnp.asarray([[chi[k, 0], phi[k]], [-phi[k], chi[k, 1]]]) for k in range(2)])
    sign, logabs = PairProduct().apply({}, [block])
    ref_sign, ref_log = multi_determinant([chi[:, :, None] * orbs])
    assert float(sign) == float(ref_sign)
    np.testing.assert_allclose(logabs, ref_log, rtol=1e-13)
    # with an opposite-spin block [K, 1, 1] the product multiplies as a 1x1 determinant would
    down = jnp.asarray(rng.normal(size=(2, 1, 1)))
    sign, logabs = pair_product([block, down])
    ref_sign, ref_log = multi_determinant([chi[:, :, None] * orbs, down])
    assert float(sign) == float(ref_sign)
    np.testing.assert_allclose(logabs, ref_log, rtol=1e-13)


def test_three_electron_pair_product_vanishes_on_each_pair_node():
    """DeepWF (phi a function of the pair alone), n_s = 3: a zero of phi(x1, x2), found by
    bisection along a path that exchanges electrons 1 and 2 without letting them meet, is a
    zero of psi whatever electron 3 does; a Slater determinant does not vanish there."""
    R = jnp.zeros((1, 3))
    module = PairWF(3, 0, charges=(3.0,), terms=1, mode="raw")
    r0 = jnp.asarray([[0.4, -0.3, 0.2], [-0.5, 0.6, 0.1], [0.2, 0.3, -0.7]])
    wf, params = build(module, 3, 0, r0, R=R, noise=0.0)
    centre, half = (r0[0] + r0[1]) / 2, (r0[0] - r0[1]) / 2
    axis = jnp.cross(half, jnp.asarray([0.0, 0.0, 1.0]))
    axis = axis / jnp.linalg.norm(axis)

    def pair_at(t, x3):  # rotate the pair by pi t about an axis through its centre
        c, s = jnp.cos(jnp.pi * t), jnp.sin(jnp.pi * t)
        rot = c * half + s * jnp.cross(axis, half) + (1 - c) * jnp.dot(axis, half) * axis
        return jnp.stack([centre + rot, centre - rot, x3])

    phi = jax.jit(lambda t, x3: wf.orbitals(params, pair_at(t, x3), R)[0][0, 0, 1])
    log_psi = jax.jit(lambda r: wf.log_psi(params, r, R))
    x3 = r0[2]
    np.testing.assert_allclose(phi(1.0, x3), -phi(0.0, x3), rtol=1e-12)  # the path exchanges them
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sign(phi(mid, x3)) == np.sign(phi(lo, x3)) else (lo, mid)
    t_node = lo
    assert abs(float(phi(t_node, x3))) < 1e-12 * abs(float(phi(0.0, x3)))
    r_node = pair_at(t_node, x3)
    assert float(jnp.linalg.norm(r_node[0] - r_node[1])) > 0.5  # a node away from coalescence
    others = [x3, jnp.asarray([1.0, -0.8, 0.3]), jnp.asarray([-0.2, -1.1, -0.4]), jnp.asarray([0.6, 0.9, 1.2])]
    for x in others:
        config = pair_at(t_node, x)
        assert float(log_psi(config)) < float(log_psi(pair_at(0.0, x))) - 20  # psi = 0 there
        orbs = gaussian_orbitals(config, 3)
        generic = np.abs(np.linalg.det(np.asarray(orbs)))
        assert generic > 1e-3 * np.abs(np.linalg.det(np.asarray(gaussian_orbitals(pair_at(0.0, x), 3))))
        assert generic > 1e-4


# ----------------------------------------------------------------- KFAC curvature


@pytest.mark.parametrize("case", ["pairs_with_jastrows", "backflow_weighted"])
def test_every_parameter_has_a_proper_kfac_block(case, pair_wf, backflow_wf):
    wf, params = pair_wf if case == "pairs_with_jastrows" else backflow_wf
    blocks = kfac_block_types(wf, LIHE, params=params, batch_size=2)
    naive = [p for p, b in blocks.items() if b == "NaiveDiagonal"]
    assert not naive, naive
    diag = {p: b for p, b in blocks.items() if "log_alpha" in p or "weights" in p or "envelope" in p}
    assert all(b.startswith("ScaleAndShift") for b in diag.values()), diag
    if case == "pairs_with_jastrows":
        assert any("log_alpha_anti" in p for p in diag) and any("['en']['log_alpha']" in p for p in diag)
        assert any("pair_up" in p and "pair_inputs" in p for p in blocks)
    else:
        assert any("weights" in p for p in diag)
        assert any("backflow_up" in p for p in blocks) and any("backflow_down" in p for p in blocks)
