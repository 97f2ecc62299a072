"""Effective core potentials (issue 33): the valence-only system, the quadrature, the ECP's energy
against pyscf's, the random-key local energy, and the claims at a pseudo-nucleus.

All physics checks run in float64 (conftest switches jax to x64).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo.chemistry.ecp import apply_ecp, load_potential, pseudo_atoms
from qmczoo.chemistry.hartree_fock import run_hartree_fock
from qmczoo.chemistry.system import System
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.pseudopotential import (
    PseudopotentialTerms,
    icosahedron,
    legendre,
    local_term,
    make_batch_local_energy_with_ecp,
    nonlocal_term,
    random_rotations,
    rotated_icosahedra,
)
from qmczoo.errors import SystemSpecError
from qmczoo.layers.gaussian_orbitals import basis_of, eval_atomic_orbitals, occupied_orbitals
from qmczoo.wavefunction import Wavefunction

# --------------------------------------------------------------------------- the valence-only system


def test_the_benchmark_atoms_are_named_with_their_ccecp_references():
    for name, n_el, spin, ref in (("Be", 2, 0, -1.0102390), ("C", 4, 2, -5.4175), ("Si", 4, 2, -3.76207)):
        named = get_system(f"{name}_ccECP")
        assert (named.n_electrons, named.spin, named.charge) == (n_el, spin, 0)
        assert named.reference_energy == pytest.approx(ref)
        by_flag = get_system(name, ecp="ccecp")  # the element with --ecp finds the same reference
        assert (by_flag.n_up, by_flag.n_down, by_flag.ecp) == (named.n_up, named.n_down, named.ecp)
        assert by_flag.reference_energy == pytest.approx(ref)
    assert get_system("Si", ecp="ccecp", spin=0).reference_energy is None  # another state: no reference


def test_a_pseudo_atom_keeps_its_charge_and_loses_its_core():
    si = get_system("Si", ecp="ccecp")
    assert si.charges == (14.0,)  # the atomic number, for the networks
    np.testing.assert_array_equal(si.effective_charges, [4.0])
    assert si.core_electrons == (10,) and si.pseudo_nuclei == (True,)
    np.testing.assert_array_equal(si.cusp_charges, [0.0])
    assert si.atom_electron_counts() == [(3, 1)]
    lih = get_system("LiH", ecp="ccecp")  # hydrogen has no core: it stays all-electron
    assert lih.pseudo_nuclei == (True, False) and (lih.n_up, lih.n_down) == (1, 1)
    np.testing.assert_array_equal(lih.cusp_charges, [0.0, 1.0])
    assert lih.nuclear_repulsion == pytest.approx(1.0 / 3.015)
    assert "ECP ccecp on Li" in lih.describe()
    both = get_system("LiH", ecp="ccecp", ecp_atoms="Li,H")  # named: H gets ccECP's regularised potential
    assert both.pseudo_nuclei == (True, True)
    cation = get_system("Si", ecp="ccecp", charge=1)
    assert (cation.n_electrons, cation.charge) == (3, 1)


def test_the_system_round_trips_and_builds_pyscf_in_the_matching_basis():
    si = get_system("Si_ccECP")
    assert System.from_dict(si.to_dict()) == si
    assert "ecp" not in get_system("LiH").to_dict()  # all-electron config files stay as they were
    mol = si.to_pyscf("cc-pVDZ")
    assert mol.basis == {"Si": "ccecpccpvdz"} and mol.nelec == (3, 1) and mol.has_ecp()
    assert pseudo_atoms(mol) == (True,)
    hf = run_hartree_fock(si)
    assert hf.mol.basis == {"Si": "ccecpccpvdz"}
    assert hf is not run_hartree_fock(get_system("Si", spin=2))  # the all-electron SCF is another one
    lih = get_system("LiH", ecp="ccecp").to_pyscf("ccpvdz")
    assert lih.basis == {"Li": "ccecpccpvdz", "H": "ccpvdz"}


def test_a_custom_ecp_file_and_a_pyscf_molecule(tmp_path):
    from pyscf import gto

    block = ("Si nelec 10\nSi ul\n1 5.168316 4.000000\n3 8.861690 20.673264\n2 3.933474 -14.818174\n"
             "Si S\n2 9.447023 14.832760\n2 2.553812 26.349664\nSi P\n2 3.660001 7.621400\n2 1.903653 10.331583\n")
    path = tmp_path / "si.ecp"
    path.write_text(block)
    custom = get_system("Si", ecp=str(path))
    assert custom.ecp.atoms == get_system("Si_ccECP").ecp.atoms and custom.ecp.name == str(path)
    (tmp_path / "pyscf_style.ecp").write_text("ECP\n" + block + "END\n")
    assert get_system("Si", ecp=str(tmp_path / "pyscf_style.ecp")).ecp.atoms == custom.ecp.atoms
    mol = gto.M(atom="Si 0 0 0", basis="ccecp-ccpvdz", ecp="ccecp", spin=2, verbose=0)
    from_mole = get_system(mol)
    assert from_mole.ecp.atoms == custom.ecp.atoms and (from_mole.n_up, from_mole.n_down) == (3, 1)


@pytest.mark.parametrize("spec, kwargs, words", [
    ("Si", dict(ecp="nonsense"), ["unknown ECP", "nonsense"]),
    ("U", dict(ecp="ccecp", ecp_atoms="U"), ["does not cover U"]),
    ("U", dict(ecp="ccecp"), ["does not cover U"]),
    ("Si", dict(ecp="ccecp", charge=4), ["no valence electrons"]),
    ("Si", dict(ecp="ccecp", ecp_atoms="C"), ["C", "not in"]),
    ("Si", dict(ecp_atoms="Si"), ["without an ECP"]),
    ("H2", dict(ecp="ccecp"), ["no core", "--ecp-atoms"]),
    ("Si_ccECP", dict(ecp="bfd"), ["already carries"]),
])
def test_bad_ecp_input_is_one_clear_error(spec, kwargs, words):
    with pytest.raises(SystemSpecError) as err:
        get_system(spec, **kwargs)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


# --------------------------------------------------------------------------- the quadrature


def test_the_icosahedron_rule_integrates_legendre_polynomials_to_degree_five():
    points = icosahedron()
    np.testing.assert_allclose(np.linalg.norm(points, axis=-1), 1.0, atol=1e-15)
    u = np.random.default_rng(0).normal(size=(8, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    rotations = np.asarray(random_rotations(jax.random.PRNGKey(0), (8,), jnp.float64))
    np.testing.assert_allclose(np.einsum("kij,kjl->kil", rotations, rotations.transpose(0, 2, 1)),
                               np.broadcast_to(np.eye(3), (8, 3, 3)), atol=1e-12)
    rotated = np.einsum("kxy,qy->kqx", rotations, points)  # [8, 12, 3]
    p = np.asarray(legendre(jnp.asarray(np.einsum("kqx,kx->kq", rotated, u)), 8))  # [8, 12, 8]
    means = p.mean(axis=1)  # the rule's (1/4 pi) ∫ P_l(u · u') dΩ'
    np.testing.assert_allclose(means[:, 0], 1.0, atol=1e-14)
    np.testing.assert_allclose(means[:, 1:6], 0.0, atol=1e-14)  # exact up to degree 5
    assert np.max(np.abs(means[:, 6])) > 1e-3  # and not beyond: degree 6 is not integrated
    # products P_l P_k of degree <= 5: orthogonality, (1/4 pi) ∫ P_l P_k = delta_lk / (2l + 1)
    for l in range(4):
        for k in range(6 - l):
            expected = (l == k) / (2 * l + 1)
            np.testing.assert_allclose((p[..., l] * p[..., k]).mean(axis=1), expected, atol=1e-13)


def test_random_rotations_are_uniform():
    rotations = np.asarray(random_rotations(jax.random.PRNGKey(1), (20000,), jnp.float64))
    z = rotations[:, :, 2]  # the image of the z axis: uniform on the sphere, mean 0, <z z^T> = I/3
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(np.einsum("ki,kj->ij", z, z) / len(z), np.eye(3) / 3, atol=0.01)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)


# --------------------------------------------------------------------------- the ECP's energy against pyscf


def _hf_wavefunction(hf, system):
    """The UHF determinant (pyscf's ECP-HF orbitals) as a Wavefunction."""

    def signed_log_psi(params, r, R):
        up, down = occupied_orbitals(hf, r[:, None, :] - R[None])
        s_up, l_up = jnp.linalg.slogdet(up)
        s_down, l_down = jnp.linalg.slogdet(down)
        return s_up * s_down, l_up + l_down

    return Wavefunction(init=lambda key, r, R: {}, signed_log_psi=signed_log_psi, n_up=system.n_up,
                        n_down=system.n_down, name="uhf")


def _dense_directions(n_theta=24, n_phi=48):
    """A product rule on the sphere (Gauss–Legendre in cos θ, uniform in φ): ``[Q, 3]``, weights ``[Q]``."""
    x, w = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    s = np.sqrt(1 - x**2)
    dirs = np.stack([np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(x, np.ones(n_phi))], -1)
    return dirs.reshape(-1, 3), np.outer(w / 2, np.full(n_phi, 1 / n_phi)).reshape(-1)


def test_the_ecp_terms_equal_pyscfs_integrals_orbital_by_orbital():
    """Deterministic: sum over occupied orbitals of <phi|U_loc + V_nl|phi> on pyscf's grid, with a
    dense angular rule, equals tr(D ECPscalar) of pyscf's UHF (Si: an s and a p channel)."""
    from pyscf import dft

    system = get_system("Si_ccECP")
    hf = run_hartree_fock(system)
    terms = PseudopotentialTerms.from_system(system)
    grid = dft.gen_grid.Grids(hf.mol)
    grid.level = 3
    grid.build()
    dirs, weights = _dense_directions(12, 24)
    points = jnp.asarray(dirs)[None, None]
    R = jnp.zeros((1, 3))
    coords = jnp.asarray(grid.coords)[:, None, :]
    ours = 0.0
    for coeff in np.concatenate([hf.coeff_up, hf.coeff_down], axis=1).T:
        c = jnp.asarray(coeff)

        def orbital(x, c=c):
            value = eval_atomic_orbitals(basis_of(hf.mol), x[:, None, :] - R[None])[0] @ c
            return jnp.sign(value), jnp.log(jnp.abs(value))

        each = jax.jit(jax.vmap(lambda x: (orbital(x)[1], local_term(terms, x, R)
                                           + nonlocal_term(orbital, terms, x, R, points, jnp.asarray(weights)))))
        log_phi, e = (np.asarray(a) for a in each(coords))
        density = grid.weights * np.exp(2 * log_phi)
        ours += np.sum(np.where(density > 0, density * e, 0.0))
    from pyscf import scf

    mf = scf.UHF(hf.mol)
    mf.verbose = 0
    mf.kernel()
    reference = np.einsum("ij,sji->", hf.mol.intor("ECPscalar"), np.asarray(mf.make_rdm1()))
    assert ours == pytest.approx(reference, abs=2e-5)


@pytest.mark.slow
def test_the_local_energy_of_the_ecp_hf_determinant_matches_pyscf_within_monte_carlo_error():
    """Monte Carlo: <U_loc + V_nl> over |psi_HF|^2 (random rotations) equals pyscf's ECP energy
    tr(D ECPscalar), and <E_L> equals the UHF energy, within 4 reblocked standard errors."""
    from pyscf import scf

    from qmczoo.engine.sampler import init_walkers, make_mcmc, psi_squared
    from qmczoo.engine.statistics import reblock

    system = get_system("Si_ccECP")
    hf = run_hartree_fock(system)
    wf = _hf_wavefunction(hf, system)
    terms = PseudopotentialTerms.from_system(system)
    R = jnp.asarray(system.positions)
    batch_e_l = jax.jit(make_batch_local_energy_with_ecp(wf, system.effective_charges, terms, "folx"))

    def ecp_part(r, key):
        pts = rotated_icosahedra(key, r.shape[0], 1, r.dtype)
        return local_term(terms, r, R) + nonlocal_term(lambda x: wf.signed_log_psi({}, x, R), terms, r, R, pts,
                                                       jnp.full(12, 1 / 12))

    batch_ecp = jax.jit(jax.vmap(ecp_part))
    mcmc = jax.jit(make_mcmc(psi_squared(wf.batch_log_psi), 10))
    walkers = init_walkers(jax.random.PRNGKey(0), system, 256, step_size=0.3, dtype=jnp.float64)
    for i in range(20):
        walkers = mcmc({}, walkers, jax.random.PRNGKey(i), R)
    energies, ecp = [], []
    for i in range(40):
        walkers = mcmc({}, walkers, jax.random.PRNGKey(100 + i), R)
        key = jax.random.PRNGKey(1000 + i)
        energies.append(float(jnp.mean(batch_e_l({}, walkers.r, R, key))))
        ecp.append(float(jnp.mean(batch_ecp(walkers.r, jax.random.split(key, 256)))))
    mf = scf.UHF(hf.mol)
    mf.verbose = 0
    mf.kernel()
    ecp_reference = np.einsum("ij,sji->", hf.mol.intor("ECPscalar"), np.asarray(mf.make_rdm1()))
    e, pp = reblock(np.asarray(energies)), reblock(np.asarray(ecp))
    assert abs(pp.mean - ecp_reference) < 4 * pp.error + 1e-4, (pp.mean, pp.error, ecp_reference)
    assert abs(e.mean - hf.energy) < 4 * e.error + 1e-4, (e.mean, e.error, hf.energy)
    assert pp.error < 0.02 and e.error < 0.02  # the check has teeth


# --------------------------------------------------------------------------- the local energy takes a key


@pytest.fixture(scope="module")
def si_ferminet():
    from qmczoo.registry import get_ansatz

    system = get_system("Si_ccECP")
    wf = get_ansatz("ferminet", preset="tiny").build(system)
    R = jnp.asarray(system.positions)
    r0 = jnp.asarray([[0.9, 0.3, -0.4], [-0.6, 1.1, 0.5], [0.2, -1.3, 0.8], [-0.7, -0.5, -1.2]])
    params = jax.tree.map(lambda x: x.astype(jnp.float64), wf.init(jax.random.PRNGKey(2), r0, R))
    return system, wf, params, r0, R


def test_the_local_energy_with_a_fixed_key_is_deterministic(si_ferminet):
    system, wf, params, r0, R = si_ferminet
    e_l = jax.jit(make_batch_local_energy_with_ecp(wf, system.effective_charges,
                                                   PseudopotentialTerms.from_system(system), "folx"))
    r = jnp.stack([r0, r0 * 1.1, r0[::-1]])
    a, b = e_l(params, r, R, jax.random.PRNGKey(5)), e_l(params, r, R, jax.random.PRNGKey(5))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.asarray(e_l(params, r, R, jax.random.PRNGKey(6))) != np.asarray(a))
    with pytest.raises(ValueError, match="needs a random key"):
        e_l(params, r, R)
    chunked = jax.jit(make_batch_local_energy_with_ecp(wf, system.effective_charges,
                                                       PseudopotentialTerms.from_system(system), "folx",
                                                       chunk_size=2))
    np.testing.assert_allclose(np.asarray(chunked(params, r, R, jax.random.PRNGKey(5))), np.asarray(a), rtol=1e-12)


def test_random_rotations_make_the_nonlocal_term_unbiased(si_ferminet):
    """Mean over many random keys of the 12-point estimate = a dense quadrature (float64)."""
    system, wf, params, r0, R = si_ferminet
    terms = PseudopotentialTerms.from_system(system)
    signed = lambda x: wf.signed_log_psi(params, x, R)  # noqa: E731
    dirs, weights = _dense_directions()
    dense = float(nonlocal_term(signed, terms, r0, R, jnp.broadcast_to(jnp.asarray(dirs), (4, 1) + dirs.shape),
                                jnp.asarray(weights)))
    keys = jax.random.split(jax.random.PRNGKey(3), 3000)
    estimates = np.asarray(jax.jit(jax.vmap(lambda k: nonlocal_term(
        signed, terms, r0, R, rotated_icosahedra(k, 4, 1, jnp.float64), jnp.full(12, 1 / 12))))(keys))
    error = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - dense) < 4 * error, (estimates.mean(), error, dense)
    assert estimates.std() > 1e-6  # the rotations do change the estimate: a real check


# --------------------------------------------------------------------------- claims at a pseudo-nucleus


def test_the_cusp_jastrow_puts_no_cusp_at_a_pseudo_nucleus():
    from qmczoo.layers.features import electron_nuclear
    from qmczoo.layers.jastrow import ElectronNuclearCuspJastrow
    from qmczoo.layers.slots import ElectronFeatures

    R = jnp.zeros((1, 3))
    r = jnp.asarray([[0.3, 0.1, -0.2]])
    en_disp, en_dist = electron_nuclear(r, R)
    features = ElectronFeatures(one=en_dist[..., 0], two=jnp.zeros((1, 1, 1)), en_disp=en_disp, en_dist=en_dist,
                                ee_disp=jnp.zeros((1, 1, 3)), ee_dist=jnp.zeros((1, 1, 1)))
    pseudo = ElectronNuclearCuspJastrow(charges=(14.0,), cusp_charges=(0.0,))
    full = ElectronNuclearCuspJastrow(charges=(14.0,))
    params = full.init(jax.random.PRNGKey(0), features)
    assert float(pseudo.apply(params, features)) == 0.0 and float(full.apply(params, features)) > 1.0


@pytest.mark.slow
def test_paulinet_has_katos_cusp_at_hydrogen_and_none_at_a_pseudo_lithium():
    """check_spec on LiH with ccECP on Li only: PauliNet's claimed electron–nuclear cusp is -1 at H
    and 0 at the pseudo-nucleus (its ECP-HF orbitals, in ccecp-cc-pVDZ, are smooth there)."""
    from qmczoo.registry import get_ansatz
    from qmczoo.testing import check_spec

    system = get_system("LiH", ecp="ccecp")
    spec = get_ansatz("paulinet", preset="tiny")
    assert "electron_nuclear" in spec.claims["cusp"]
    check_spec(spec, system, kfac=False)
    # the same ansatz told to put Kato's -Z cusp at the pseudo-nucleus fails the check
    wrong = dataclasses.replace(system, ecp=None, n_up=2, n_down=2)
    assert wrong.cusp_charges[0] == 3.0
    from qmczoo.testing.contract import to_float64
    from qmczoo.testing.cusps import check_electron_nuclear_cusp

    wf = spec.build(system)
    r = jnp.asarray([[0.4, -0.3, 0.2], [2.6, 0.5, -0.4]])
    R = jnp.asarray(system.positions)
    params = to_float64(wf.init(jax.random.PRNGKey(0), r, R))
    with pytest.raises(AssertionError, match="nucleus 0"):
        check_electron_nuclear_cusp(wf, params, r, R, np.asarray([3.0, 1.0]))


# --------------------------------------------------------------------------- through the engine


@pytest.mark.slow
def test_a_valence_only_run_trains_evaluates_and_resumes(tmp_path):
    import yaml

    from qmczoo import runs
    from qmczoo.engine.config import TrainConfig

    config = TrainConfig(steps=3, batch_size=16, pretrain_steps=3, burn_in=4, checkpoint_every=2,
                         monitor_walkers=8, monitor_every=1)
    result = runs.train("Be_ccECP", "ferminet", config, tmp_path / "run", preset="tiny", progress=False,
                        eval_steps=2)
    assert result.vmc.pseudopotential is not None and np.isfinite(result.evaluation.energy)
    from qmczoo.runs.train_log import read_log

    assert np.isfinite(read_log(tmp_path / "run")["monitor_energy"]).all()  # the monitor chain measured each step
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["system"]
    assert stored["ecp"]["name"] == "ccecp" and stored["n_up"] == 1
    again = runs.train(out_dir=tmp_path / "run", resume=True, config=TrainConfig(steps=4), progress=False)
    assert int(again.state.step) == 4 and again.vmc.system == get_system("Be_ccECP")


def test_an_all_electron_vmc_keeps_its_local_energy_signature():
    """Without an ECP the engine builds exactly the functions it built before: no key reaches
    the local energy, so the all-electron programs are unchanged."""
    from qmczoo.engine.config import TrainConfig
    from qmczoo.engine.vmc import VMC
    from qmczoo.registry import get_ansatz

    system = get_system("H2")
    vmc = VMC(system, get_ansatz("ferminet", preset="tiny").build(system),
              TrainConfig(batch_size=4, pretrain_steps=0, dtype="float64"))
    assert vmc.pseudopotential is None and vmc.local_energy_key(jax.random.PRNGKey(0)) == ()
    state = vmc.initial_state()
    e_l = vmc.batch_local_energy(state.params, state.walkers.r, vmc.R)  # three arguments, as before
    assert e_l.shape == (4,)
    si = get_system("Si_ccECP")
    assert len(VMC(si, get_ansatz("ferminet", preset="tiny").build(si),
                   TrainConfig(batch_size=4, pretrain_steps=0)).local_energy_key(jax.random.PRNGKey(0))) == 1


def test_apply_ecp_refuses_a_system_that_already_has_one():
    si = get_system("Si_ccECP")
    with pytest.raises(SystemSpecError, match="already carries"):
        apply_ecp(si, "ccecp")
    assert load_potential("ccecp", ["Si"]).for_symbol("Si").n_core == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ferminet", "paulinet", "hybrid", "psiformer", "deepwf", "pair_product", "pesnet"])
def test_every_ansatz_of_the_zoo_gives_a_finite_valence_only_local_energy(name):
    """Every registered ansatz builds for a pseudo-atom (PauliNet's baseline and the hybrid's envelope
    fit in the ECP basis) and its ECP local energy is finite."""
    from qmczoo.engine.hamiltonian import make_batch_local_energy
    from qmczoo.registry import get_ansatz

    system = get_system("C_ccECP")
    wf = get_ansatz(name, preset="tiny").build(system)
    R = jnp.asarray(system.positions)
    r = jnp.asarray([[[0.9, 0.3, -0.4], [-0.6, 1.1, 0.5], [0.2, -1.3, 0.8], [-0.7, -0.5, -1.2]]])
    params = jax.jit(wf.init)(jax.random.PRNGKey(0), r[0], R)
    e_l = jax.jit(make_batch_local_energy(wf, system.effective_charges, "folx",
                                          pseudopotential=PseudopotentialTerms.from_system(system)))
    assert np.all(np.isfinite(np.asarray(e_l(params, r, R, jax.random.PRNGKey(1)))))


def test_the_cusp_correction_leaves_a_pseudo_nucleus_alone():
    """PauliNet's baseline on LiH with ccECP on Li: the Ma et al. correction changes the orbitals
    inside r_c of H (Kato's cusp there) and leaves them as they are near the pseudo-lithium,
    whose potential is finite (no cusp to correct)."""
    from qmczoo.layers.features import electron_nuclear
    from qmczoo.layers.gaussian_orbitals import CuspCorrectedOrbitals
    from qmczoo.layers.slots import ElectronFeatures

    system = get_system("LiH", ecp="ccecp", ecp_atoms="Li")
    hf = run_hartree_fock(system, "ccpvdz")
    assert pseudo_atoms(hf.mol) == (True, False)
    R = jnp.asarray(system.positions)
    offset = jnp.asarray([0.02, -0.01, 0.015])  # well inside r_c = 1/Z of either nucleus
    r = jnp.stack([R[0] + offset, R[1] + offset])  # electron 0 (up) by Li, electron 1 (down) by H
    en_disp, en_dist = electron_nuclear(r, R)
    features = ElectronFeatures(one=en_dist[..., 0], two=jnp.zeros((2, 2, 1)), en_disp=en_disp, en_dist=en_dist,
                                ee_disp=jnp.zeros((2, 2, 3)), ee_dist=jnp.zeros((2, 2, 1)))

    def orbitals(correct):
        layer = CuspCorrectedOrbitals(hartree_fock=hf, n_up=1, n_down=1, cusp_correction=correct)
        return layer.apply({}, features, R=R)

    (up, down), (up_raw, down_raw) = orbitals(True), orbitals(False)
    np.testing.assert_allclose(np.asarray(up), np.asarray(up_raw), rtol=1e-12, atol=1e-14)  # by the pseudo-Li
    assert np.max(np.abs(np.asarray(down) - np.asarray(down_raw))) > 1e-4  # by H: corrected


def test_casscfs_default_active_space_counts_no_core_an_ecp_removed():
    from qmczoo.chemistry.casscf import default_active_space

    assert default_active_space(get_system("Si_ccECP"), n_mo=40) == (4, 4)  # 3s3p, no frozen core
    assert default_active_space(get_system("Si"), n_mo=40) == (4, 4)  # 5 core orbitals frozen


def test_several_states_with_an_ecp_are_refused():
    from qmczoo.engine.config import TrainConfig
    from qmczoo.errors import ConfigError
    from qmczoo.runs.checks import check_states

    with pytest.raises(ConfigError, match="--states 2 with an effective core potential"):
        check_states(get_system("Be_ccECP"), TrainConfig(states=2, pretrain_steps=0))
    check_states(get_system("Be_ccECP"), TrainConfig(states=1))  # one state: fine
