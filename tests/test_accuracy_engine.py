"""What accuracy per minute rests on: KFAC curvature for every parameter, the initial scale,
the pretraining density, lone-electron determinants, the energy gradient, the monitor chain."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.errors import ConfigError
from qmczoo.engine.hamiltonian import make_local_energy
from qmczoo.layers.antisymmetrizers import multi_determinant
from qmczoo.layers.spin_pooling import EquivariantDense, residual
from qmczoo.engine.loss import make_energy_loss
from qmczoo.engine.pretrain import pretraining_log_density, run_hartree_fock
from qmczoo.registry import get_ansatz
from qmczoo.engine.sampler import init_walkers
from qmczoo.chemistry.systems import get_system
from qmczoo.testing import kfac_block_types, to_float64
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.vmc import VMC, run_steps
from qmczoo.wavefunction import from_module

# ------------------------------------------------------------------ KFAC curvature

OPTION_SETS = {
    "dense-isotropic": {},
    "block-full-jastrow": {"full_det": False, "envelope": "full_envelope", "jastrow": "ee_cusp_jastrow", "features.rescale": True},
}


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_every_ferminet_parameter_lands_in_a_proper_kfac_block(options):
    system = get_system("LiH")
    blocks = kfac_block_types(get_ansatz("ferminet", preset="tiny", **options).build(system), system)
    assert "NaiveDiagonal" not in blocks.values(), blocks
    for path, block in blocks.items():
        if path.endswith("['bias']") or (path.endswith("['kernel']") and "['shared']" not in path):
            # biases share the repeated-dense block of their kernel; per-electron kernels are repeated
            assert block == "RepeatedDenseKroneckerFactored", (path, block)
        elif "['shared']" in path:
            assert block == "DenseTwoKroneckerFactored", (path, block)
        else:  # envelope weights and exponents, Jastrow length scales
            assert block == "ScaleAndShiftDiagonal", (path, block)
    assert any("bias" in p for p in blocks)


# ------------------------------------------------------------------ initial scale

def test_equivariant_dense_starts_at_the_scale_of_one_dense_layer():
    """Three separately initialised kernels add up to unit variance on unit-variance inputs."""
    key = jax.random.PRNGKey(0)
    h, shared, pair = (jax.random.normal(k, s) for k, s in zip(jax.random.split(key, 3),
                                                                ((512, 64), (64,), (512, 32))))
    layer = EquivariantDense(256)
    variances = []
    for seed in range(8):
        params = layer.init(jax.random.PRNGKey(seed), h, shared, pair)
        variances.append(float(jnp.var(layer.apply(params, h, shared, pair))))
    assert 0.8 < np.mean(variances) < 1.2, variances  # the old per-part init gave about 3


def test_residual_is_a_plain_skip():
    a, b = jax.random.normal(jax.random.PRNGKey(1), (2, 5))
    np.testing.assert_array_equal(residual(a, b), a + b)
    assert residual(a[:3], b[:4]).shape == (3,)  # shapes differ: no skip


def test_initial_orbitals_are_at_the_hartree_fock_scale():
    system = get_system("LiH")
    wf = get_ansatz("ferminet", preset="small").build(system)
    R = jnp.asarray(system.positions)
    r = init_walkers(jax.random.PRNGKey(0), system, 64, dtype=jnp.float64).r
    params = to_float64(wf.init(jax.random.PRNGKey(1), r[0], R))
    orbitals = jax.vmap(lambda x: wf.orbitals(params, x, R))(r)[0]
    up, down = run_hartree_fock(system, basis="sto-3g").orbital_matrices(np.asarray(r))
    target = np.sqrt(np.mean(np.concatenate([up.ravel(), down.ravel()]) ** 2))
    rms = float(jnp.sqrt(jnp.mean(orbitals**2)))
    assert 0.5 * target < rms < 3.0 * target, (rms, target)  # the old init started 5x too large


# ------------------------------------------------------------------ pretraining density

def test_pretraining_density_is_a_geometric_mix_and_hf_only_by_default():
    log_hf = lambda r: jnp.sum(r, axis=(1, 2))  # noqa: E731
    log_net = lambda params, r, R: params * jnp.sum(r**2, axis=(1, 2))  # noqa: E731
    r = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 3))
    hf, net = 2 * log_hf(r), 2 * log_net(0.3, r, None)
    np.testing.assert_allclose(pretraining_log_density(log_hf, log_net, 1.0)(0.3, r, None), hf)
    np.testing.assert_allclose(pretraining_log_density(log_hf, log_net, 0.0)(0.3, r, None), net)
    np.testing.assert_allclose(pretraining_log_density(log_hf, log_net, 0.25)(0.3, r, None), 0.25 * hf + 0.75 * net)
    assert TrainConfig().pretrain_hf_fraction == 1.0


# ------------------------------------------------------------------ 1x1 determinants

def test_lone_electron_block_is_kept_in_linear_scale():
    """A 1x1 block that vanishes for one determinant leaves log|psi| and its gradient finite."""
    rng = np.random.default_rng(0)
    up = jnp.asarray(rng.normal(size=(2, 2, 2)))
    down = jnp.asarray([[[0.0]], [[0.7]]])  # determinant 0's lone down orbital sits on its node
    sign, logabs = multi_determinant([up, down])
    expected = np.linalg.det(np.asarray(up[1])) * 0.7
    assert float(sign) == np.sign(expected)
    np.testing.assert_allclose(float(logabs), np.log(abs(expected)), rtol=1e-12)
    grads = jax.grad(lambda blocks: multi_determinant(blocks)[1])([up, down])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    # d log|psi| / d down[0] = det(up[0]) / psi: finite although down[0] = 0
    np.testing.assert_allclose(float(grads[1][0, 0, 0]), np.linalg.det(np.asarray(up[0])) / expected, rtol=1e-10)


def test_lithium_with_block_determinants_is_finite_on_the_lone_orbital_node():
    system = get_system("Li")  # 2 up, 1 down: the down block is 1x1
    wf = get_ansatz("ferminet", preset="tiny", full_det=False, determinants=2).build(system)
    R = jnp.asarray(system.positions)
    r = init_walkers(jax.random.PRNGKey(2), system, 1, dtype=jnp.float64).r[0]
    params = to_float64(wf.init(jax.random.PRNGKey(3), r, R))
    # zero determinant 0's lone down orbital everywhere (its head's column 0)
    head = params["params"]["orbital_matrices"]["head_down"]
    for part in head.values():
        part["kernel"] = part["kernel"].at[:, 0].set(0.0)
    blocks = wf.orbitals(params, r, R)
    assert blocks[-1].shape == (2, 1, 1) and float(blocks[-1][0, 0, 0]) == 0.0
    logabs, grads = jax.value_and_grad(wf.log_psi)(params, r, R)
    assert np.isfinite(float(logabs))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


# ------------------------------------------------------------------ the energy gradient

class _Exponential(nn.Module):
    """``psi = exp(-zeta r)`` for one electron: E(zeta) = zeta^2/2 - zeta, dE/dzeta = zeta - 1."""

    @nn.compact
    def __call__(self, r, R):
        zeta = self.param("zeta", nn.initializers.constant(1.3), ())
        return jnp.ones(()), -zeta * jnp.linalg.norm(r[0] - R[0])


def test_energy_gradient_matches_finite_difference_of_the_exact_energy():
    system = get_system("H")
    wf = from_module(_Exponential(), 1, 0)
    R = jnp.asarray(system.positions, jnp.float64)
    zeta = 1.3
    # exact samples of |psi|^2 ~ r^2 exp(-2 zeta r): r ~ Gamma(3, 1 / (2 zeta)), uniform direction
    rng = np.random.default_rng(0)
    n = 200_000
    radius = rng.gamma(3.0, 1.0 / (2 * zeta), size=n)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    r = jnp.asarray((radius[:, None] * direction)[:, None, :])
    params = {"params": {"zeta": jnp.asarray(zeta)}}
    local_energy = jax.vmap(make_local_energy(wf.log_psi, np.asarray(system.charges)), in_axes=(None, 0, None))
    loss = make_energy_loss(wf.batch_log_psi, local_energy, clip_scale=0.0)
    grad = jax.grad(lambda p: loss(p, None, (r, R))[0])(params)["params"]["zeta"]
    exact = lambda z: z**2 / 2 - z  # noqa: E731
    h = 1e-4
    finite_difference = (exact(zeta + h) - exact(zeta - h)) / (2 * h)  # = zeta - 1 = 0.3
    # the estimator is 2 <(E_L - E) d log|psi|>: its statistical error here is ~0.002
    assert float(grad) == pytest.approx(finite_difference, abs=0.01)


def test_clipping_window_centres_on_the_median_or_the_mean():
    from qmczoo.engine.loss import clip_local_energy

    e_l = jnp.asarray([-8.0, -8.1, -7.9, -8.0, -8.2, -7.8, -8.0, -20.0], jnp.float64)
    median, mean = float(jnp.median(e_l)), float(jnp.mean(e_l))
    for centre, c in (("median", median), ("mean", mean)):
        width = 1.0 * float(jnp.mean(jnp.abs(e_l - c)))
        clipped = np.asarray(clip_local_energy(e_l, 1.0, centre))
        np.testing.assert_allclose(clipped, np.clip(np.asarray(e_l), c - width, c + width))
        assert clipped[-1] == pytest.approx(c - width)  # the spike is pulled to the window's edge
    np.testing.assert_array_equal(np.asarray(clip_local_energy(e_l, 0.0, "mean")), np.asarray(e_l))
    with pytest.raises(ConfigError, match="clip_centre"):
        TrainConfig(clip_centre="mode")


# ------------------------------------------------------------------ the monitor chain

def test_monitor_chain_is_never_used_for_an_update():
    system = get_system("H2")
    spec = get_ansatz("ferminet", preset="tiny")
    histories = {}
    for walkers in (0, 16):
        config = TrainConfig(steps=6, batch_size=32, pretrain_steps=0, burn_in=10, mcmc_steps=5, dtype="float64",
                             optimizer="adam", seed=4, monitor_walkers=walkers, monitor_every=2)
        vmc = VMC(system, spec.build(system), config)
        state = vmc.burn_in(vmc.initial_state())
        _, histories[walkers] = run_steps(vmc, state, 6)
    without, with_monitor = histories[0], histories[16]
    # identical training: the monitor's walkers and keys never touch the update
    np.testing.assert_array_equal([h.energy for h in without], [h.energy for h in with_monitor])
    assert all(h.monitor_energy is None for h in without)
    measured = [h.monitor_energy for h in with_monitor]
    assert [m is not None for m in measured] == [False, True] * 3
    # 16 walkers of an untrained ansatz: noisy, but a finite energy of the right order
    assert all(np.isfinite(m) and -20.0 < m < 20.0 for m in measured if m is not None)
