"""Gaussian-basis orbitals in JAX: AOs as pyscf's, derivatives, the baseline layer, the HF cache."""

import dataclasses

import flax.linen as nn
import folx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.chemistry import hartree_fock
from qmczoo.chemistry.hartree_fock import HartreeFock, run_hartree_fock
from qmczoo.layers.features import electron_nuclear, ferminet_features
from qmczoo.layers.gaussian_orbitals import (GaussianBasis, HartreeFockOrbitals, eval_atomic_orbitals,
                                             isotropic_envelope_from_hf)
from qmczoo.layers.slots import make_layer
from qmczoo.engine.pretrain import hf_orbitals_jax
from qmczoo.chemistry.systems import get_system

WATER = "O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587"
NITROGEN = "N 0 0 0; N 0 0 1.098"


def sample_points(R: np.ndarray, rng, n_random: int = 40) -> np.ndarray:
    """Points ``[P, 3]``: random ones around the nuclei, every nucleus, and points 1e-4 off one."""
    around = R[rng.integers(len(R), size=n_random)] + rng.normal(scale=1.5, size=(n_random, 3))
    near = R + rng.normal(scale=1e-4, size=R.shape)
    return np.concatenate([around, R, near])


def displacements(points: np.ndarray, R: np.ndarray) -> jnp.ndarray:
    """``r_i - R_I`` ``[P, M, 3]`` for points ``[P, 3]`` (each point one electron)."""
    return jnp.asarray(points[:, None, :] - R[None, :, :])


@pytest.mark.parametrize("spec, basis", [
    ("H", "sto-3g"), ("LiH", "sto-3g"), ("LiH", "ccpvdz"), ("LiH", "cc-pvtz"),  # cc-pVTZ Li: s, p, d, f
    (WATER, "ccpvdz"), (NITROGEN, "cc-pvtz"),
])
def test_atomic_orbitals_equal_pyscf(spec, basis, rng):
    system = get_system(spec)
    mol, R = system.to_pyscf(basis), system.positions
    points = sample_points(R, rng)
    ao = jax.jit(eval_atomic_orbitals, static_argnums=0)(GaussianBasis.from_mole(mol), displacements(points, R))
    assert ao.shape == (len(points), mol.nao)
    np.testing.assert_allclose(ao, mol.eval_gto("GTOval_sph", points), rtol=0, atol=1e-10)


def test_cc_pvtz_lithium_has_f_functions():
    basis = GaussianBasis.from_mole(get_system("LiH").to_pyscf("cc-pvtz"))
    assert max(shell.l for shell in basis.shells) == 3


def test_common_translation_of_electrons_and_nuclei_leaves_orbitals_unchanged(rng):
    system = get_system(WATER)
    hf, R = run_hartree_fock(system, "sto-3g"), jnp.asarray(system.positions)
    r = jnp.asarray(rng.normal(size=(3, system.n_electrons, 3)))
    shift = jnp.array([1.7, -0.4, 2.3])
    orbitals = jax.jit(lambda r, R: hf_orbitals_jax(hf, R)(r))
    for a, b in zip(orbitals(r, R), orbitals(r + shift, R + shift)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_gradients_equal_pyscf_first_derivatives(rng):
    system = get_system(NITROGEN)
    mol, R = system.to_pyscf("cc-pvtz"), jnp.asarray(system.positions)
    basis = GaussianBasis.from_mole(mol)
    points = sample_points(system.positions, rng, n_random=20)

    def aos_at(point):  # [3] -> [n_ao]
        return eval_atomic_orbitals(basis, electron_nuclear(point[None], R)[0])[0]

    gradients = jax.jit(jax.vmap(jax.jacfwd(aos_at)))(jnp.asarray(points))  # [P, n_ao, 3]
    reference = mol.eval_gto("GTOval_sph_deriv1", points)[1:]  # [3, P, n_ao]
    np.testing.assert_allclose(np.moveaxis(gradients, -1, 0), reference, rtol=0, atol=1e-9)


def test_folx_laplacian_equals_trace_of_hessian_and_pyscf(rng):
    system = get_system("LiH")
    mol, R = system.to_pyscf("cc-pvtz"), jnp.asarray(system.positions)
    basis = GaussianBasis.from_mole(mol)
    r = np.concatenate([system.positions, rng.normal(size=(2, 3))])  # two electrons on the nuclei

    def aos(x):  # [3N] -> [N * n_ao]
        return eval_atomic_orbitals(basis, electron_nuclear(x.reshape(-1, 3), R)[0]).ravel()

    x = jnp.asarray(r.ravel())
    laplacian = folx.forward_laplacian(aos, sparsity_threshold=0)(x).laplacian
    hessian_trace = jnp.trace(jax.jit(jax.hessian(aos))(x), axis1=-2, axis2=-1)
    np.testing.assert_allclose(laplacian, hessian_trace, rtol=1e-10, atol=1e-8)
    second = mol.eval_gto("GTOval_sph_deriv2", r)  # xx, xy, xz, yy, yz, zz at indices 4..9
    np.testing.assert_allclose(laplacian, (second[4] + second[7] + second[9]).ravel(), rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("spec, basis", [("LiH", "ccpvdz"), ("H", "ccpvdz"), (WATER, "sto-3g")])
def test_baseline_layer_equals_pyscf_orbital_matrices(spec, basis, rng):
    system = get_system(spec)
    hf, R = run_hartree_fock(system, basis), jnp.asarray(system.positions)
    layer = HartreeFockOrbitals(hartree_fock=hf, n_up=system.n_up, n_down=system.n_down)
    r = jnp.asarray(rng.normal(size=(system.n_electrons, 3)))
    variables = layer.init(jax.random.PRNGKey(0), ferminet_features(r, R))
    assert jax.tree.leaves(variables) == []
    up, down = jax.jit(layer.apply)(variables, ferminet_features(r, R))
    want_up, want_down = hf.orbital_matrices(np.asarray(r))
    assert up.shape == (system.n_up, system.n_up) and down.shape == (system.n_down, system.n_down)
    np.testing.assert_allclose(up, want_up, rtol=0, atol=1e-10)
    np.testing.assert_allclose(down, want_down, rtol=0, atol=1e-10)


def test_a_model_holding_the_baseline_layer_jits_and_differentiates(rng):
    system = get_system("LiH")
    hf, R = run_hartree_fock(system, "sto-3g"), jnp.asarray(system.positions)

    class HartreeFockDeterminant(nn.Module):  # log|psi_HF| through a registry-built baseline layer
        baseline: nn.Module

        def __call__(self, r, R):
            return sum(jnp.linalg.slogdet(m)[1] for m in self.baseline(ferminet_features(r, R)))

    layer = make_layer("hartree_fock_orbitals", "baseline", HartreeFockOrbitals)
    model = HartreeFockDeterminant(layer.build(hartree_fock=hf, n_up=2, n_down=2, charges=system.charges))
    r = jnp.asarray(rng.normal(size=(4, 3)))
    variables = model.init(jax.random.PRNGKey(0), r, R)
    up, down = hf.orbital_matrices(np.asarray(r))
    want = np.linalg.slogdet(up)[1] + np.linalg.slogdet(down)[1]
    np.testing.assert_allclose(jax.jit(model.apply)(variables, r, R), want, rtol=1e-10)
    assert np.all(np.isfinite(jax.jit(jax.grad(model.apply, argnums=1))(variables, r, R)))


def test_baseline_layer_is_hashed_by_identity_of_its_solution():
    system = get_system("LiH")
    hf = run_hartree_fock(system, "sto-3g")
    twin = dataclasses.replace(hf)  # equal arrays, another object
    layer = HartreeFockOrbitals(hartree_fock=hf, n_up=2, n_down=2)
    assert layer == HartreeFockOrbitals(hartree_fock=hf, n_up=2, n_down=2)
    assert layer != HartreeFockOrbitals(hartree_fock=twin, n_up=2, n_down=2)
    assert isinstance(hash(layer), int)


def test_baseline_layer_rejects_wrong_electron_counts():
    system = get_system("LiH")
    hf, R = run_hartree_fock(system, "sto-3g"), jnp.asarray(system.positions)
    features = ferminet_features(jnp.zeros((4, 3)), R)
    with pytest.raises(ValueError, match="2 up and 2 down"):
        HartreeFockOrbitals(hartree_fock=hf, n_up=3, n_down=1).init(jax.random.PRNGKey(0), features)


def test_hartree_fock_runs_once_per_geometry_and_basis(monkeypatch):
    system = get_system("LiH")
    first = run_hartree_fock(system, "sto-3g")
    monkeypatch.setattr(hartree_fock, "_solve_uhf", lambda *a: pytest.fail("a second SCF ran"))
    assert run_hartree_fock(system, "sto-3g") is first
    assert run_hartree_fock(dataclasses.replace(system, name="renamed"), "sto-3g") is first
    assert isinstance(first, HartreeFock) and not first.coeff_up.flags.writeable
    from qmczoo.engine.pretrain import HartreeFock as reexported, run_hartree_fock as rerun

    assert reexported is HartreeFock and rerun is run_hartree_fock


def test_hartree_fock_of_another_geometry_is_a_new_solution():
    system = get_system("LiH")
    moved = dataclasses.replace(system, coords=(system.coords[0], (0.0, 0.0, 3.2)))
    assert run_hartree_fock(moved, "sto-3g") is not run_hartree_fock(system, "sto-3g")


def test_envelope_from_hartree_fock_of_hydrogen_has_the_exact_exponent():
    system = get_system("H")
    (pi_up, sigma_up), (pi_down, sigma_down) = isotropic_envelope_from_hf(
        run_hartree_fock(system, "cc-pvqz"), system.positions)
    assert pi_up.shape == sigma_up.shape == (1, 1) and pi_down.shape == sigma_down.shape == (1, 0)
    assert pi_up[0, 0] == pytest.approx(1.0, abs=1e-6)  # the whole orbital is on the one atom
    assert sigma_up[0, 0] == pytest.approx(1.0, abs=0.02)  # hydrogen 1s: exp(-r)


def test_envelope_from_hartree_fock_of_lih_is_tight_on_lithium_core():
    system = get_system("LiH")
    (pi, sigma), _ = isotropic_envelope_from_hf(run_hartree_fock(system, "ccpvdz"), system.positions)
    assert pi.shape == sigma.shape == (2, 2) and np.all(sigma > 0)
    assert pi[0, 0] > 0.99 and pi[1, 0] < 0.05  # the 1s core is on Li (nucleus 0)
    assert 2.0 < sigma[0, 0] < 3.0  # Li 1s, Z_eff ~ 2.7
