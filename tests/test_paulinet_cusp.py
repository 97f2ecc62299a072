"""PauliNet's cusp-corrected Gaussian orbitals (Ma et al. 2005) and what they buy (float64).

The orbitals equal pyscf's outside the cusp spheres, carry Kato's cusp ``-Z`` at every nucleus,
are continuous with two derivatives at ``r_c``, the forward Laplacian goes through them, and the
local energy of PauliNet's baseline stays bounded when an electron approaches a nucleus (the
double-counted cusp of Gaussian orbitals times an electron–nuclear Jastrow gave +300 Ha for Li
at 1e-3 bohr).
"""

from __future__ import annotations

import flax.linen as nn
import folx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.chemistry.casscf import as_reference, multi_reference
from qmczoo.chemistry.hartree_fock import run_hartree_fock
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.hamiltonian import make_batch_local_energy
from qmczoo.engine.sampler import init_walkers, make_mcmc, psi_squared
from qmczoo.layers.cusp_correction import corrected_orbitals, cusp_radii, fit_cusp
from qmczoo.layers.features import ferminet_features
from qmczoo.layers.gaussian_orbitals import CuspCorrectedOrbitals, basis_of, eval_atomic_orbitals
from qmczoo.registry import get_ansatz
from qmczoo.testing import cusps, random_configuration

OH = "O 0 0 0; H 0 1.43 1.11"  # bohr: a hydroxyl radical, no symmetry axis through both nuclei along z


def orbital_function(ref, R, cusp: bool = True):
    """``x [P, 3] -> [P, n_orb]``: the reference's (up) orbitals at points, corrected or not."""
    basis, coeff = basis_of(ref.mol), jnp.asarray(ref.coeff_up)
    R = jnp.asarray(R)
    charges = ref.mol.atom_charges()

    def f(x):
        disp = x[:, None, :] - R[None]
        ao = eval_atomic_orbitals(basis, disp)
        if not cusp:
            return ao @ coeff
        fit = fit_cusp(basis, coeff, charges, R)
        return corrected_orbitals(basis, coeff, fit, ao, jnp.linalg.norm(disp, axis=-1))

    return jax.jit(f)


def references():
    """``(label, system, reference)``: a UHF atom, a CASSCF molecule and a molecule without symmetry."""
    li, lih, oh = get_system("Li"), get_system("LiH"), get_system(OH, unit="bohr")
    return [("Li-UHF", li, as_reference(run_hartree_fock(li, "ccpvdz"))),
            ("LiH-CASSCF", lih, multi_reference(lih, "ccpvdz", determinants=4)),
            ("OH-UHF", oh, as_reference(run_hartree_fock(oh, "6-31g")))]


@pytest.mark.parametrize("case", range(3), ids=["Li-UHF", "LiH-CASSCF", "OH-UHF"])
def test_outside_the_cusp_spheres_the_orbitals_are_pyscfs_and_inside_they_change(case, rng):
    label, system, ref = references()[case]
    R = np.asarray(system.positions)
    rc = np.asarray(cusp_radii(system.charges, jnp.asarray(R)))
    points = R[rng.integers(len(R), size=400)] + rng.normal(scale=0.8, size=(400, 3))
    dist = np.linalg.norm(points[:, None] - R[None], axis=-1)
    outside = points[np.all(dist > rc, axis=1)]
    inside = R[:, None] + 0.5 * rc[:, None, None] * rng.normal(size=(len(R), 20, 3)) / np.sqrt(3)
    inside = inside.reshape(-1, 3)[np.linalg.norm(inside.reshape(-1, 3)[:, None] - R[None], axis=-1).min(1)
                                   < rc.min()]
    corrected = orbital_function(ref, R)
    pyscf = ref.mol.eval_gto("GTOval_sph", outside) @ ref.coeff_up
    np.testing.assert_allclose(corrected(jnp.asarray(outside)), pyscf, rtol=0, atol=1e-12)
    assert len(outside) > 100 and len(inside) > 5
    change = np.abs(np.asarray(corrected(jnp.asarray(inside))) - ref.mol.eval_gto("GTOval_sph", inside) @ ref.coeff_up)
    assert change.max() > 1e-3  # the s parts were replaced


@pytest.mark.parametrize("case", range(3), ids=["Li-UHF", "LiH-CASSCF", "OH-UHF"])
def test_every_orbital_has_katos_cusp_at_every_nucleus(case):
    label, system, ref = references()[case]
    R = np.asarray(system.positions)
    checked = 0
    for cusp in (True, False):
        f = orbital_function(ref, R, cusp)
        at_nuclei = np.asarray(f(jnp.asarray(R)))  # [M, P]
        for I, z in enumerate(system.charges):
            for mu in range(at_nuclei.shape[1]):
                if abs(at_nuclei[I, mu]) < 1e-2:  # a node at the nucleus (a p orbital there): no cusp to have
                    continue
                slope = cusps.electron_nuclear_cusp(lambda x, mu=mu: jnp.log(jnp.abs(f(x)[0, mu])),
                                                    np.zeros((1, 3)), R, electron=0, nucleus=I)
                if cusp:
                    assert slope == pytest.approx(-z, abs=1e-3), f"{label}: orbital {mu} at nucleus {I}"
                    checked += 1
                else:  # Gaussians: no cusp at all (the check would see it)
                    assert abs(slope) < 0.05 * z
    assert checked >= 2


@pytest.mark.parametrize("case", range(3), ids=["Li-UHF", "LiH-CASSCF", "OH-UHF"])
def test_value_slope_and_curvature_are_continuous_at_rc(case, rng):
    label, system, ref = references()[case]
    R = jnp.asarray(system.positions)
    rc = np.asarray(cusp_radii(system.charges, R))
    f = orbital_function(ref, R)
    one = jax.jit(lambda x: f(x[None])[0])  # [3] -> [P]
    jac, hess = jax.jit(jax.jacfwd(one)), jax.jit(jax.hessian(one))
    delta = 1e-7
    for I in range(len(R)):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        a, b = (R[I] + (rc[I] + s * delta) * jnp.asarray(u) for s in (-1, 1))
        scale = 1.0 + np.abs(np.asarray(one(a))).max()
        np.testing.assert_allclose(one(a), one(b), atol=1e-5 * scale)
        np.testing.assert_allclose(jac(a), jac(b), atol=1e-5 * scale * 10)
        np.testing.assert_allclose(hess(a), hess(b), atol=1e-4 * scale * 100)  # only the third derivative jumps


class SlaterDeterminant(nn.Module):
    """log|det up| + log|det down| of the first determinant of a reference, cusp-corrected orbitals."""

    reference: object
    n_up: int
    n_down: int

    @nn.compact
    def __call__(self, r, R):
        up, down = CuspCorrectedOrbitals(hartree_fock=self.reference, n_up=self.n_up, n_down=self.n_down)(
            ferminet_features(r, R))
        ref = as_reference(self.reference)
        return sum(jnp.linalg.slogdet(m[:, occ])[1] for m, occ in ((up, ref.occ_up[0]), (down, ref.occ_down[0]))
                   if occ.size)


def test_forward_laplacian_equals_hessian_trace_inside_the_cusp_spheres():
    system = get_system("LiH")
    ref = multi_reference(system, "ccpvdz", determinants=4)
    R = jnp.asarray(system.positions)
    module = SlaterDeterminant(reference=ref, n_up=system.n_up, n_down=system.n_down)
    r = random_configuration(jax.random.PRNGKey(0), system, jnp.float64)
    r = r.at[0].set(R[0] + jnp.array([0.05, -0.02, 0.04])).at[2].set(R[0] + jnp.array([-0.03, 0.06, 0.01]))
    r = r.at[3].set(R[1] + jnp.array([0.2, 0.1, -0.3]))  # inside H's sphere (r_c = 1)
    f = lambda x: module.apply({}, x.reshape(-1, 3), R)  # noqa: E731
    x = r.reshape(-1)
    reference = jax.jit(lambda x: jnp.trace(jax.hessian(f)(x)))(x)
    fwd = jax.jit(folx.forward_laplacian(f, sparsity_threshold=0))(x)
    np.testing.assert_allclose(fwd.laplacian, reference, rtol=1e-9)
    np.testing.assert_allclose(fwd.jacobian.dense_array, jax.jit(jax.grad(f))(x), rtol=1e-9, atol=1e-12)


def near_nucleus_energies(system_name: str, walkers: int = 128, **options):
    """Local energies of PauliNet's baseline (cusp-corrected reference times its e-e cusp term)
    on walkers from |psi|^2, and on the same walkers with the electron nearest to each nucleus
    moved radially to 1e-4 .. 1e-2 bohr of it: ``(bulk [B], {nucleus: near [B]})``."""
    system = get_system(system_name)
    spec = get_ansatz("paulinet", preset="tiny", backflow="none", neural_jastrow="none", **options)
    wf = spec.build(system)
    R = jnp.asarray(system.positions)
    key = jax.random.PRNGKey(0)
    state = init_walkers(key, system, walkers, dtype=jnp.float64, width=0.7)
    params = wf.init(key, state.r[0], R)
    mcmc = jax.jit(make_mcmc(psi_squared(wf.batch_log_psi), 10))
    for i in range(20):
        state = mcmc(params, state, jax.random.fold_in(key, i), R)
    local_energy = jax.jit(make_batch_local_energy(wf, system.charges))
    bulk = np.asarray(local_energy(params, state.r, R))
    rng = np.random.default_rng(1)
    near = {}
    for I, centre in enumerate(np.asarray(R)):
        r = np.array(state.r)
        d = np.linalg.norm(r - centre, axis=-1)
        b, i = np.arange(len(r)), np.argmin(d, axis=1)
        rho = 10.0 ** rng.uniform(-4, -2, size=len(r))
        r[b, i] = centre + (r[b, i] - centre) * (rho / d[b, i])[:, None]
        near[I] = np.asarray(local_energy(params, jnp.asarray(r), R))
    return system, bulk, near


@pytest.mark.parametrize("system_name", ["Li", "N"])
def test_local_energy_of_the_baseline_stays_bounded_near_the_nucleus(system_name):
    """Gaussian orbitals times an e-n cusp Jastrow (the old PauliNet): +299 Ha mean, 12 Ha spread
    within 0.01 bohr of Li (N: +1,621 Ha, spread 281); corrected orbitals: a few Ha from the bulk."""
    system, bulk, near = near_nucleus_energies(system_name)
    z = system.charges[0]
    values = near[0]
    assert np.all(np.isfinite(values))
    assert np.std(values) < 5.0, f"spread {np.std(values):.2f} Ha within 0.01 bohr of the nucleus"
    assert abs(np.mean(values) - np.mean(bulk)) < z**2, (np.mean(values), np.mean(bulk))
    assert np.std(bulk) < 5.0


def test_without_the_correction_the_baseline_misses_the_cusp():
    """The check above would catch Gaussian orbitals: the local energy runs off like -Z/r."""
    system, bulk, near = near_nucleus_energies("Li", walkers=32, **{"baseline.cusp_correction": False})
    assert np.mean(near[0]) < np.mean(bulk) - 9.0 * 10


def test_flattened_orbitals_have_a_flat_effective_local_energy_inside_rc():
    """Ma et al.'s free parameter (the value at the nucleus), chosen by ``flattest_value_shifts``:
    Li's 1s and 2s effective local energies dip by about 3.9 Ha from r_c to the nucleus with the
    Gaussians' value, and by well under 1 Ha with a shift of about 3 per cent."""
    from qmczoo.layers.cusp_correction import _effective_local_energy, flattest_value_shifts

    system = get_system("Li")
    ref = as_reference(run_hartree_fock(system, "ccpvdz"))
    R = np.asarray(system.positions)
    shifts = flattest_value_shifts(basis_of(ref.mol), ref.coeff_up, system.charges, R)
    assert shifts.shape == (1, 2) and np.all((shifts > 0.01) & (shifts < 0.05)), shifts
    assert flattest_value_shifts(basis_of(ref.mol), ref.coeff_up, system.charges, R) is shifts  # cached
    rc = float(cusp_radii(system.charges, jnp.asarray(R))[0])
    radii = jnp.asarray(rc * np.linspace(1 / 16, 1, 16))
    dirs = jnp.asarray(np.concatenate([np.eye(3), -np.eye(3)]))
    charges, coeff = jnp.asarray(system.charges), jnp.asarray(ref.coeff_up)
    for shift, bound in ((0.0, (2.0, 6.0)), (shifts, (0.0, 1.0))):
        e = np.asarray(_effective_local_energy(basis_of(ref.mol), coeff, charges, jnp.asarray(R), 1.0, 0, shift, radii, dirs))
        deviation = np.max(np.abs(e - e[-1:]), axis=0)
        assert np.all((deviation > bound[0]) & (deviation < bound[1])), (shift, deviation)
