"""The ansatz contract: every registered ansatz, and the checkers in qmczoo.testing themselves."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmczoo import testing
from qmczoo.layers.antisymmetrizers import multi_determinant
from qmczoo.registry import get_ansatz, list_ansatze
from qmczoo.chemistry.systems import get_system
from qmczoo.wavefunction import Wavefunction

REGISTRY_NAMES = sorted(list_ansatze())
CONTRACT_SYSTEMS = ["LiH", "Li", "H"]  # (2, 2), odd (2, 1), and no down electron (1, 0)


@functools.lru_cache(maxsize=None)
def _system(name):
    return get_system(name)


@functools.lru_cache(maxsize=None)
def _ferminet(system_name, **options):
    """``(wf, params, r, R)`` for a tiny FermiNet on ``system_name``, float64."""
    system = _system(system_name)
    wf = get_ansatz("ferminet", preset="tiny", **options).build(system)
    R = jnp.asarray(system.positions, dtype=jnp.float64)
    r = testing.random_configuration(jax.random.PRNGKey(3), system, jnp.float64)
    params = testing.to_float64(jax.jit(wf.init)(jax.random.PRNGKey(4), r, R))
    return wf, params, r, R


# ----------------------------------------------------------------- every registered ansatz


def test_registry_is_not_empty():
    assert "ferminet" in REGISTRY_NAMES


@pytest.mark.parametrize("system_name", CONTRACT_SYSTEMS)
@pytest.mark.parametrize("name", REGISTRY_NAMES)
def test_registered_ansatz_honours_contract(name, system_name):
    """The contract, plus what the ansatz claims (PauliNet: both Kato cusps, measured)."""
    system = _system(system_name)
    spec = get_ansatz(name, preset="tiny")
    wf = spec.build(system)
    assert (wf.n_up, wf.n_down) == (system.n_up, system.n_down)
    testing.check_spec(spec, system, seed=0)


# ----------------------------------------------------------------- FermiNet options

BLOCK_OPTIONS = {"full_det": False, "envelope": "full_envelope", "jastrow": "ee_cusp_jastrow", "features.rescale": True}


def test_ferminet_other_options_honour_contract():
    # full_det=True, isotropic envelope, no Jastrow is the tiny preset, covered above; this
    # switches every other option at once (block-diagonal determinants, full envelope, the
    # cusp Jastrow and log-rescaled inputs). Same checks as run_contract_checks, on
    # parameters shared with the orbital test below.
    wf, params, r, R = _ferminet("LiH", **BLOCK_OPTIONS)
    testing.check_finite(wf, params, r, R)
    testing.check_antisymmetry(wf, params, r, R)
    testing.check_translation_invariance(wf, params, r, R, shift=jnp.array([0.7, -1.3, 2.1]))
    testing.check_orbital_shapes(wf, params, r, R)


def _param_shapes(system_name, **options):
    system = _system(system_name)
    wf = get_ansatz("ferminet", preset="tiny", **options).build(system)
    r = jnp.zeros((system.n_electrons, 3))
    shapes = jax.eval_shape(wf.init, jax.random.PRNGKey(0), r, jnp.asarray(system.positions))
    return {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(shapes)}


def test_ferminet_options_reach_the_layers():
    """The options exercised above are not silently ignored: they change the parameters."""
    k, n_up, m = 2, 2, 2  # tiny preset determinants, LiH up electrons, LiH nuclei
    dense = _param_shapes("LiH")
    block = _param_shapes("LiH", full_det=False)
    full = _param_shapes("LiH", envelope="full_envelope")
    jastrow = _param_shapes("LiH", jastrow="ee_cusp_jastrow")
    sigma = "['params']['orbital_matrices']['envelope_up']['sigma']"
    head = "['params']['orbital_matrices']['head_up']['per_electron']['kernel']"
    assert dense[sigma] == (m, k * 4) and dense[head][-1] == k * 4
    assert block[sigma] == (m, k * n_up) and block[head][-1] == k * n_up
    full_sigma = "['params']['orbital_matrices']['envelope_up']['sigma_1']['kernel']"
    assert full[full_sigma] == (3, 3 * k * 4) and sigma not in full  # one 3x3 per orbital, per nucleus
    assert not any("jastrow" in key for key in dense)
    assert {key for key in jastrow if "jastrow" in key} == {
        "['params']['jastrow']['log_alpha_parallel']", "['params']['jastrow']['log_alpha_anti']"}


def test_ferminet_symmetries(lih_ferminet):
    """Same-spin swaps flip the sign; translations change nothing; rotations DO change psi
    (FermiNet sees raw displacement vectors, so it is not rotation invariant)."""
    wf, params, R = lih_ferminet
    r = testing.random_configuration(jax.random.PRNGKey(5), _system("LiH"), jnp.float64)
    pairs = testing.same_spin_pairs(wf.n_up, wf.n_down)
    assert pairs == [(0, 1), (2, 3)]
    perms = [np.arange(r.shape[0])]
    for i, j in pairs:
        perm = np.arange(r.shape[0])
        perm[[i, j]] = [j, i]
        perms.append(perm)
    rs = [r[p] for p in perms]
    Rs = [R] * len(perms)
    shift, rot = jnp.asarray([10.0, -3.0, 0.5]), jnp.asarray(_random_rotation(2))
    rs += [r + shift, r @ rot.T]
    Rs += [R + shift, R @ rot.T]
    evaluate = jax.jit(jax.vmap(wf.signed_log_psi, in_axes=(None, 0, 0)))
    signs, logs = evaluate(params, jnp.stack(rs), jnp.stack(Rs))
    n = len(perms)
    np.testing.assert_array_equal(signs[1:n], -signs[0])
    np.testing.assert_allclose(logs[1:n], logs[0], rtol=0, atol=1e-10)
    assert signs[n] == signs[0]
    np.testing.assert_allclose(logs[n], logs[0], rtol=0, atol=1e-10)
    assert abs(float(logs[n + 1] - logs[0])) > 1e-6


# ----------------------------------------------------------------- orbitals


ORBITAL_CASES = [
    pytest.param("LiH", {}, id="LiH-dense"),
    pytest.param("LiH", BLOCK_OPTIONS, id="LiH-block"),  # with full envelope and Jastrow
    pytest.param("H", {"full_det": False}, id="H-block"),  # the empty down block is left out
]


@pytest.mark.parametrize("system_name, options", ORBITAL_CASES)
def test_ferminet_orbital_blocks(system_name, options, lih_ferminet):
    full_det = options.get("full_det", True)
    if system_name == "LiH" and not options:
        wf, params, R = lih_ferminet
        r = testing.random_configuration(jax.random.PRNGKey(3), _system("LiH"), jnp.float64)
    else:
        wf, params, r, R = _ferminet(system_name, **options)
    k = get_ansatz("ferminet", preset="tiny").options["determinants"]
    n_up, n_down = wf.n_up, wf.n_down
    perm = np.arange(r.shape[0])
    if n_up >= 2:
        perm[[0, 1]] = [1, 0]

    @jax.jit
    def evaluate(params, r):
        return wf.orbitals(params, r, R), wf.orbitals(params, r[perm], R), wf.signed_log_psi(params, r, R)

    blocks, swapped, (sign, logabs) = evaluate(params, r)
    shapes = [b.shape for b in blocks]
    if full_det:
        assert shapes == [(k, n_up + n_down, n_up + n_down)]
    else:
        assert shapes == [(k, n, n) for n in (n_up, n_down) if n > 0]
    testing.check_orbital_shapes(wf, params, r, R)

    # Without a Jastrow, psi is exactly the multi-determinant of the orbitals (a Jastrow
    # factor is positive: it can change the magnitude only).
    s_det, l_det = multi_determinant(blocks)
    assert float(s_det) == float(sign)
    if options.get("jastrow", "none") == "none":
        np.testing.assert_allclose(l_det, logabs, rtol=0, atol=1e-12)

    # Orbitals are equivariant: swapping up electrons 0 and 1 swaps rows 0 and 1 (and
    # leaves the down block alone), which is what makes the determinant antisymmetric.
    if n_up >= 2:
        np.testing.assert_allclose(swapped[0], blocks[0][:, perm[: blocks[0].shape[1]]], rtol=0, atol=1e-12)
        assert not np.allclose(swapped[0], blocks[0])
        for b_new, b_old in zip(swapped[1:], blocks[1:]):
            np.testing.assert_allclose(b_new, b_old, rtol=0, atol=1e-12)


# ----------------------------------------------------------------- the checkers themselves


def _distances(r, R):
    return jnp.sum(jnp.linalg.norm(r[:, None, :] - R[None, :, :], axis=-1), axis=1)  # [N]


def _external_wavefunction(n_up, n_down, signed_log_psi, name="external"):
    """A Wavefunction written by hand outside the models folder (no parameters to speak of)."""
    return Wavefunction(
        init=lambda key, r, R: {"scale": jnp.ones(())},
        signed_log_psi=signed_log_psi,
        n_up=n_up,
        n_down=n_down,
        name=name,
    )


def _good_signed_log_psi(params, r, R):
    """psi = (d_0 - d_1) exp(-scale sum_i d_i) for two up electrons, d_i = sum_I |r_i - R_I|.

    Antisymmetric in the up electrons 0 and 1, and invariant under translations and rotations.
    """
    d = _distances(r, R)
    amp = d[0] - d[1]
    return jnp.sign(amp), jnp.log(jnp.abs(amp)) - params["scale"] * jnp.sum(d)


def _li_config():
    li = _system("Li")
    r = testing.random_configuration(jax.random.PRNGKey(7), li, jnp.float64)
    return li, r, jnp.asarray(li.positions)


def _random_rotation(seed=0):
    q, rr = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(rr))
    return q if np.linalg.det(q) > 0 else -q


def test_hand_made_antisymmetric_wavefunction_passes_every_check():
    li, r, R = _li_config()
    wf = _external_wavefunction(2, 1, _good_signed_log_psi)
    testing.run_contract_checks(wf, li)
    params = {"scale": jnp.ones((), jnp.float64)}
    testing.check_rotation_invariance(wf, params, r, R, _random_rotation())
    testing.check_orbital_shapes(wf, params, r, R)  # no orbitals: nothing to check


def test_check_antisymmetry_catches_a_symmetric_wavefunction():
    li, r, R = _li_config()
    bosonic = _external_wavefunction(
        2, 1, lambda p, r, R: (jnp.ones(()), -jnp.sum(_distances(r, R))), name="bosonic")
    with pytest.raises(AssertionError, match=r"bosonic: swapping up-spin electrons 0 and 1 should flip the sign"):
        testing.check_antisymmetry(bosonic, {}, r, R)
    with pytest.raises(AssertionError, match="flip the sign"):
        testing.run_contract_checks(bosonic, li)


def test_check_antisymmetry_catches_a_changed_magnitude():
    _, r, R = _li_config()

    def lopsided(p, r, R):  # sign flips under 0 <-> 1, but |psi| does not stay the same
        d = _distances(r, R)
        amp = d[0] - d[1]
        return jnp.sign(amp), jnp.log(jnp.abs(amp)) - 2.0 * d[0] - 0.5 * d[1]

    wf = _external_wavefunction(2, 1, lopsided, name="lopsided")
    with pytest.raises(AssertionError, match=r"changed log\|psi\|"):
        testing.check_antisymmetry(wf, {}, r, R)


def test_check_antisymmetry_checks_down_electrons_too():
    lih = _system("LiH")
    r = testing.random_configuration(jax.random.PRNGKey(2), lih, jnp.float64)
    R = jnp.asarray(lih.positions)

    def up_only(p, r, R):  # antisymmetric in the up pair, symmetric in the down pair
        s, l = _good_signed_log_psi({"scale": 1.0}, r, R)
        return s, l

    wf = _external_wavefunction(2, 2, up_only, name="up_only")
    with pytest.raises(AssertionError, match="down-spin electrons 2 and 3"):
        testing.check_antisymmetry(wf, {}, r, R)


def test_check_translation_invariance_catches_absolute_positions():
    li, r, R = _li_config()

    def anchored(p, r, R):  # depends on positions from the origin, not from the nucleus
        s, l = _good_signed_log_psi({"scale": 1.0}, r, R)
        return s, l - 0.1 * jnp.sum(r ** 2)

    wf = _external_wavefunction(2, 1, anchored, name="anchored")
    params = {"scale": jnp.ones(())}
    testing.check_translation_invariance(wf, params, r, R, shift=jnp.zeros(3))  # no shift: fine
    with pytest.raises(AssertionError, match="not translation invariant"):
        testing.check_translation_invariance(wf, params, r, R, shift=jnp.array([0.0, 0.0, 1.0]))
    with pytest.raises(AssertionError, match="not translation invariant"):
        testing.run_contract_checks(wf, li)


def test_check_rotation_invariance_catches_a_preferred_axis():
    _, r, R = _li_config()

    def polarised(p, r, R):
        s, l = _good_signed_log_psi({"scale": 1.0}, r, R)
        return s, l + 0.3 * jnp.sum(r[:, 2] - R[0, 2])

    wf = _external_wavefunction(2, 1, polarised, name="polarised")
    testing.check_rotation_invariance(wf, {}, r, R, np.eye(3))
    testing.check_translation_invariance(wf, {}, r, R, shift=jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(AssertionError, match="not rotation invariant"):
        testing.check_rotation_invariance(wf, {}, r, R, _random_rotation(1))
    with pytest.raises(ValueError, match="orthogonal"):
        testing.check_rotation_invariance(wf, {}, r, R, 2 * np.eye(3))


def test_check_finite_catches_nan_values_and_gradients():
    _, r, R = _li_config()
    nan_value = _external_wavefunction(2, 1, lambda p, r, R: (jnp.ones(()), jnp.log(-jnp.sum(r ** 2))),
                                       name="nan_value")
    with pytest.raises(AssertionError, match=r"log\|psi\| at the given configuration is nan"):
        testing.check_finite(nan_value, {}, r, R)

    def cusp_nan(p, r, R):  # finite value, but the gradient of sqrt at 0 is infinite
        return jnp.ones(()), jnp.sqrt(jnp.sum((r[0] - r[0]) ** 2))

    wf = _external_wavefunction(2, 1, cusp_nan, name="cusp_nan")
    testing.check_finite(wf, {}, r, R, grad=False)
    with pytest.raises(AssertionError, match="dr is not finite"):
        testing.check_finite(wf, {}, r, R)

    zero_sign = _external_wavefunction(2, 1, lambda p, r, R: (jnp.zeros(()), jnp.zeros(())), name="zero")
    with pytest.raises(AssertionError, match=r"sign of psi .* is 0.0"):
        testing.check_finite(zero_sign, {}, r, R)


def test_check_orbital_shapes_catches_bad_blocks():
    _, r, R = _li_config()
    good = _external_wavefunction(2, 1, _good_signed_log_psi)

    def with_orbitals(blocks):
        return Wavefunction(init=good.init, signed_log_psi=good.signed_log_psi, n_up=2, n_down=1,
                            orbitals=lambda p, r, R: blocks, name="orb")

    testing.check_orbital_shapes(with_orbitals([jnp.ones((3, 3, 3))]), {}, r, R)
    testing.check_orbital_shapes(with_orbitals([jnp.ones((3, 2, 2)), jnp.ones((3, 1, 1))]), {}, r, R)
    with pytest.raises(AssertionError, match="neither one dense block"):
        testing.check_orbital_shapes(with_orbitals([jnp.ones((3, 2, 2))]), {}, r, R)
    with pytest.raises(AssertionError, match=r"\[K, n, n\]"):
        testing.check_orbital_shapes(with_orbitals([jnp.ones((3, 3, 2))]), {}, r, R)
    with pytest.raises(AssertionError, match="number of determinants"):
        testing.check_orbital_shapes(with_orbitals([jnp.ones((3, 2, 2)), jnp.ones((2, 1, 1))]), {}, r, R)


def test_checks_reject_non_scalar_outputs():
    _, r, R = _li_config()
    per_electron = _external_wavefunction(
        2, 1, lambda p, r, R: (jnp.ones(3), -_distances(r, R)), name="per_electron")
    with pytest.raises(AssertionError, match=r"two scalars.*\(3,\), \(3,\)"):
        testing.check_finite(per_electron, {}, r, R)
    with pytest.raises(AssertionError, match=r"r must be \[N, 3\] = \[3, 3\]"):
        testing.check_antisymmetry(per_electron, {}, r[:2], R)


def test_checks_accept_unhashable_callables():
    """Plug-ins may pass callable objects that define __eq__ (hence no __hash__)."""

    class Ansatz:
        def __eq__(self, other):
            return isinstance(other, Ansatz)

        def __call__(self, params, r, R):
            return _good_signed_log_psi(params, r, R)

    assert Ansatz.__hash__ is None
    li, _, _ = _li_config()
    testing.run_contract_checks(_external_wavefunction(2, 1, Ansatz(), name="callable_object"), li)


def test_run_contract_checks_rejects_electron_count_mismatch():
    wf = _external_wavefunction(2, 1, _good_signed_log_psi)
    with pytest.raises(AssertionError, match=r"\(n_up, n_down\) = \(2, 1\).*LiH has \(2, 2\)"):
        testing.run_contract_checks(wf, _system("LiH"))


def test_random_configuration_shape_and_dtype():
    lih = _system("LiH")
    r = testing.random_configuration(jax.random.PRNGKey(0), lih, jnp.float64)
    assert r.shape == (4, 3) and r.dtype == jnp.float64
    r2 = testing.random_configuration(jax.random.PRNGKey(0), lih, jnp.float64)
    np.testing.assert_array_equal(r, r2)
