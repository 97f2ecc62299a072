"""PESNet and the engine's geometry axis: one network over many geometries (issue 17).

Physics checks in float64: rotating/translating nuclei with electrons and permuting identical
nuclei leave log|psi| unchanged; the geometry stage gives the same values as the plain
contract; the multi-geometry loss is the mean of the per-geometry losses (centred and clipped
per geometry); each geometry's walkers keep their own step size. Then a tiny PESNet trained on
two H2 geometries puts the lower energy where the exact curve does, and bad scans are one
``error:`` line with exit code 2.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from qmczoo import testing
from qmczoo.cli import app
from qmczoo.chemistry.scans import parse_scan
from qmczoo.chemistry.reference_curves import reference_curve
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.vmc import VMC
from qmczoo.engine.config import TrainConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def water_pesnet():
    """A tiny PESNet on a bent, asymmetric H2O (identical H nuclei), float64 parameters."""
    system = get_system("O 0 0 0; H 1.8 0 0; H -0.5 1.7 0.2", unit="bohr")
    wf = get_ansatz("pesnet", "tiny").build(system)
    R = jnp.asarray(system.positions)
    r = testing.random_configuration(jax.random.PRNGKey(0), system)
    params = testing.to_float64(jax.jit(wf.init)(jax.random.PRNGKey(1), r, R))
    return system, wf, params, r, R


def test_pesnet_is_invariant_to_moving_the_molecule_with_its_electrons(water_pesnet):
    system, wf, params, r, R = water_pesnet
    sign, logabs = wf.signed_log_psi(params, r, R)
    for seed in range(3):
        rot = jnp.asarray(testing.random_rotation(seed))
        shift = jnp.asarray([0.3, -1.1, 2.0]) * seed
        s2, l2 = wf.signed_log_psi(params, r @ rot.T + shift, R @ rot.T + shift)
        assert float(s2) == float(sign)
        np.testing.assert_allclose(l2, logabs, atol=1e-9)


def test_pesnet_is_invariant_to_permuting_identical_nuclei(water_pesnet):
    system, wf, params, r, R = water_pesnet
    testing.contract.check_nuclear_permutation_invariance(wf, params, r, R, system.charges, atol=1e-9)
    # and the check sees a wavefunction that is not: FermiNet's per-nucleus input weights
    ferminet = get_ansatz("ferminet", "tiny").build(system)
    p = testing.to_float64(jax.jit(ferminet.init)(jax.random.PRNGKey(2), r, R))
    with pytest.raises(AssertionError, match="swapping identical nuclei"):
        testing.contract.check_nuclear_permutation_invariance(ferminet, p, r, R, system.charges, atol=1e-9)


def test_pesnet_passes_the_contract_and_its_claims_through_the_registry():
    testing.check_spec(get_ansatz("pesnet", "tiny"), get_system("O 0 0 0; H 1.8 0 0; H -0.5 1.7 0.2", unit="bohr"))


def _rotation(axis, angle) -> jnp.ndarray:
    """The proper rotation by ``angle`` about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return jnp.asarray(np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K)


def _tiny_pesnet(system, seed=1, **options):
    wf = get_ansatz("pesnet", "tiny", **options).build(system)
    R = jnp.asarray(system.positions)
    r = testing.random_configuration(jax.random.PRNGKey(0), system)
    params = testing.to_float64(jax.jit(wf.init)(jax.random.PRNGKey(seed), r, R))
    return wf, params, r, R


@pytest.mark.parametrize("name", ["LiH", "H2"])
def test_pesnet_on_a_linear_molecule_tells_mirror_images_of_the_electrons_apart(name):
    """A reflection of the electrons through a plane containing the bond changes psi (with the
    squared, radial frame it did not: only Sigma-plus states could be represented, not O2's
    Sigma-g-minus); rotating the whole system does not. Rotating the electrons alone about the
    bond does not either: an exactly rotation-invariant psi of a linear molecule is a Sigma
    state (Lambda = 0), which the frame imposes."""
    system = get_system(name)
    wf, params, r, R = _tiny_pesnet(system)
    f = jax.jit(wf.signed_log_psi)
    sign, logabs = f(params, r, R)
    axis = np.asarray(R[1] - R[0])
    c = jnp.asarray(np.asarray(system.charges, float) @ np.asarray(R) / np.sum(system.charges))
    normal = np.cross(axis, [0.3, 0.9, 0.1])
    normal /= np.linalg.norm(normal)
    mirror = jnp.asarray(np.eye(3) - 2 * np.outer(normal, normal))  # the plane contains the bond
    s2, l2 = f(params, (r - c) @ mirror.T + c, R)
    assert abs(float(l2 - logabs)) > 1e-3 or float(s2) != float(sign)
    for seed in range(2):
        rot = jnp.asarray(testing.random_rotation(seed))
        s3, l3 = f(params, r @ rot.T, R @ rot.T)
        assert float(s3) == float(sign)
        np.testing.assert_allclose(l3, logabs, atol=1e-9)
    s4, l4 = f(params, (r - c) @ _rotation(axis, 1.1).T + c, R)
    assert float(s4) == float(sign)
    np.testing.assert_allclose(l4, logabs, atol=1e-9)


def test_pesnet_on_h2_designates_a_nucleus_unless_asked_for_the_symmetric_frame():
    """Swapping H2's nuclei is the perpendicular C2 rotation of the molecule: with the signed
    frame (a designated nucleus signs the bond axis) psi(r; P R) = psi(C2^-1 r; R), which is not
    psi(r; R) for random parameters (the network may learn the symmetry, as the gerade ground
    state has it); with frame=symmetric psi is invariant under the swap, and therefore even
    under C2 (no Sigma-g-minus state)."""
    system = get_system("H2")
    positions = np.asarray(system.positions)
    swapped = jnp.asarray(positions[::-1].copy())
    c = positions.mean(axis=0)
    c2 = np.asarray(_rotation(np.cross(positions[1] - positions[0], [0.2, 0.5, 0.9]), np.pi))  # perpendicular C2
    np.testing.assert_allclose((positions - c) @ c2.T + c, swapped, atol=1e-12)

    def turned(r):  # C2^-1 r about the centre
        return (r - c) @ c2 + c

    wf, params, r, R = _tiny_pesnet(system)
    f = jax.jit(wf.log_psi)
    assert abs(float(f(params, r, swapped) - f(params, r, R))) > 1e-3
    np.testing.assert_allclose(f(params, r, swapped), f(params, turned(r), R), atol=1e-9)
    wf, params, r, R = _tiny_pesnet(system, frame="symmetric")
    f = jax.jit(wf.log_psi)
    np.testing.assert_allclose(f(params, r, swapped), f(params, r, R), atol=1e-9)
    np.testing.assert_allclose(f(params, turned(r), R), f(params, r, R), atol=1e-9)


def test_pesnet_has_geometry_dependent_determinant_weights():
    """As in the ICLR 2022 model: psi = sum_k w_k det_k with w set by the encoder's global output
    for each geometry, starting equal (1/K), and no Jastrow."""
    system = get_system("H2")
    spec = get_ansatz("pesnet", "tiny")
    assert spec.options["antisymmetrizer"] == "weighted_determinants" and spec.options["jastrow"] == "none"
    gset = parse_scan(system, "bond=1.0,3.0")
    wf, params, *_ = _tiny_pesnet(system)
    stage = jax.jit(lambda p, R: wf.geometry_stage(p, R))
    weights = [stage(params, R)["antisymmetrizer"]["weights"] for R in jnp.asarray(gset.positions)]
    k = spec.options["determinants"]
    assert weights[0].shape == (k,)
    np.testing.assert_allclose(weights[0], np.full(k, 1.0 / k), atol=1e-12)  # equal at the start
    moved = jax.tree.map(lambda x: x + 0.1, params)  # the heads' kernels move off zero
    w_near, w_far = (stage(moved, R)["antisymmetrizer"]["weights"] for R in jnp.asarray(gset.positions))
    assert float(jnp.max(jnp.abs(w_near - w_far))) > 1e-3  # they depend on the geometry
    assert "antisymmetrizer" not in params["electrons"]["params"]  # supplied, never also a parameter


def test_the_geometry_stage_gives_the_plain_contract_values_and_runs_once_per_geometry():
    system = get_system("H2")
    wf = get_ansatz("pesnet", "tiny").build(system)
    gset = parse_scan(system, "bond=1.0:2.0:2")
    R = jnp.asarray(gset.positions)
    key = jax.random.PRNGKey(0)
    r = jnp.stack([testing.random_configuration(k, gset.system_at(i // 3)) for i, k in
                   enumerate(jax.random.split(key, 6))])
    params = testing.to_float64(jax.jit(wf.init)(jax.random.PRNGKey(1), r[0], R[0]))
    grouped = wf.batch_log_psi(params, r, R)  # walkers 0-2 at geometry 0, 3-5 at geometry 1
    log_psi = jax.jit(wf.log_psi)
    one_by_one = [log_psi(params, r[i], R[i // 3]) for i in range(6)]
    np.testing.assert_allclose(grouped, one_by_one, atol=1e-12)
    np.testing.assert_allclose(wf.gradient_log_psi(params, r, R), one_by_one, atol=1e-12)
    # the encoder's first dense map appears once per geometry in the batched computation, not once per walker
    jaxpr = jax.make_jaxpr(lambda p, x: wf._batch_log_psi_one_geometry(p, x, R[0]))(params, r[:3])
    shapes = [tuple(v.aval.shape) for eqn in jaxpr.eqns if eqn.primitive.name == "dot_general" for v in eqn.outvars]
    assert all(s[0] != 3 for s in shapes if len(s) == 2 and s[1] == 8)  # [M, width] only, never [3, M, width]


def test_the_multi_geometry_gradient_is_the_mean_of_the_per_geometry_gradients():
    """Centring and clipping are per geometry: the grouped loss's gradient equals the mean of
    the one-geometry gradients on the same walkers."""
    system = get_system("H2")
    gset = parse_scan(system, "bond=1.2:2.4:2")
    spec = get_ansatz("pesnet", "tiny")
    config = TrainConfig(batch_size=8, pretrain_steps=0, monitor_walkers=0, dtype="float64", optimizer="adam")
    multi = VMC(system, spec.build(system, geometries=gset.positions), config, geometries=gset.positions)
    state = multi.initial_state()
    r = state.walkers.r
    grad = jax.jit(jax.grad(lambda p: multi.loss(p, None, (r, multi.R))[0]))(state.params)
    single = VMC(gset.system_at(0), multi.wf, config)  # its loss takes the geometry from the batch
    single_grad = jax.jit(jax.grad(lambda p, x, R: single.loss(p, None, (x, R))[0]))
    singles = [single_grad(state.params, r[4 * g:4 * g + 4], multi.R[g]) for g in range(2)]
    expected = jax.tree.map(lambda a, b: 0.5 * (a + b), *singles)
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_each_geometry_keeps_its_own_step_size():
    system = get_system("H2")
    gset = parse_scan(system, "bond=1.0,4.0")
    spec = get_ansatz("pesnet", "tiny")
    config = TrainConfig(batch_size=16, pretrain_steps=0, monitor_walkers=0, burn_in=200, mcmc_steps=10,
                         step_size=0.05, dtype="float64", optimizer="adam")  # (no KFAC state to build: not stepped)
    vmc = VMC(system, spec.build(system, geometries=gset.positions), config, geometries=gset.positions)
    state = vmc.burn_in(vmc.initial_state())
    assert state.walkers.step_size.shape == (2,) and state.walkers.acceptance.shape == (2,)
    assert float(state.walkers.step_size[0]) != float(state.walkers.step_size[1])
    # grouped walkers stay near their own geometry's nuclei
    centres = np.asarray(state.walkers.r).reshape(2, 8, 2, 3).mean(axis=(1, 2))
    np.testing.assert_allclose(centres, gset.positions.mean(axis=1), atol=1.0)


def test_batch_size_is_rounded_up_to_a_multiple_of_the_geometries():
    system = get_system("H2")
    gset = parse_scan(system, "bond=1.0:3.0:3")
    spec = get_ansatz("pesnet", "tiny")
    vmc = VMC(system, spec.build(system, geometries=gset.positions),
              TrainConfig(batch_size=16, monitor_walkers=4, pretrain_steps=0, optimizer="adam"),
              geometries=gset.positions)  # (adam: the optimizer state is not what is tested, KFAC's is slow to build)
    assert (vmc.batch_size, vmc.monitor_walkers) == (18, 6)
    state = vmc.initial_state()
    assert state.walkers.r.shape == (18, 2, 3) and state.monitor.r.shape == (6, 2, 3)


@pytest.fixture(scope="module")
def h2_pes_run(tmp_path_factory):
    """A tiny PESNet trained for 300 steps on two H2 geometries and evaluated: its run folder
    (tests copy it before they change it)."""
    out = tmp_path_factory.mktemp("pes") / "pes"
    result = runner.invoke(app, ["train", "--ansatz", "pesnet", "--preset", "tiny", "--system", "H2",
                                 "--scan", "bond=1.4,3.0", "--steps", "300", "--pretrain-steps", "100",
                                 "--batch-size", "128", "--eval-steps", "100", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_a_tiny_pesnet_on_two_h2_geometries_puts_the_minimum_where_the_exact_curve_does(h2_pes_run, tmp_path):
    out = h2_pes_run
    rows = json.loads((out / "summary.json").read_text())["pes"]
    x, e, _ = reference_curve()
    exact = dict(zip(np.round(x, 6), e))
    near, far = rows
    assert (near["value"], far["value"]) == (1.4, 3.0)
    # the exact curve is 117 mHa lower at 1.4 bohr than at 3.0 bohr; the short run must see it
    assert near["energy"] + 3 * near["energy_error"] < far["energy"] - 3 * far["energy_error"]
    for row in rows:  # the variational bound, loosely (a short float32 run)
        assert row["energy"] > exact[row["value"]] - 3 * row["energy_error"] - 2e-3
        assert row["error_mha"] == pytest.approx(1000 * (row["energy"] - exact[row["value"]]))
    assert (out / "pes.png").stat().st_size > 0 and (out / "pes.csv").read_text().count("\n") == 3
    assert (out / "train_geometries.csv").read_text().count("\n") == 1 + 2 * 300
    # evaluate the same parameters at geometries it was not trained on
    out = shutil.copytree(h2_pes_run, tmp_path / "pes")
    result = runner.invoke(app, ["evaluate", str(out), "--scan", "bond=2.0", "--steps", "20", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "energy" in result.output


@pytest.mark.parametrize("args, words", [
    (["--scan", "bnd=1.0:2.0:3"], "unknown scan coordinate 'bnd'"),
    (["--scan", "bond=1.0:2.0:1"], "COUNT must be an integer >= 2"),
    (["--scan", "bond=1.0:2.0"], "START:STOP:COUNT"),
    (["--scan", "bond=1.0:x:3"], "as a number"),
    (["--scan", "bond=0.0:2.0:3"], "must be positive"),
    (["--scan", "bond=1e-6,1.0"], "apart"),
    (["--scan", "bond=1:2:3", "--geometries", "g.yaml"], "not both"),
    (["--scan", "bond=1:2:3", "--ansatz", "ferminet"], "cannot share one network"),
])
def test_bad_scans_give_one_error_line_and_exit_code_2(tmp_path, args, words):
    out = tmp_path / "run"
    argv = ["train", "--system", "H2", "--ansatz", "pesnet", "--preset", "tiny", "--out", str(out), *args]
    if "--ansatz" in args:
        argv = ["train", "--system", "H2", "--preset", "tiny", "--out", str(out), *args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.output
    assert not out.exists()


def test_a_scan_of_a_molecule_without_a_bond_coordinate_is_refused():
    result = runner.invoke(app, ["train", "--system", "H2O", "--ansatz", "pesnet", "--scan", "bond=1:2:3"])
    assert result.exit_code == 2 and result.output.startswith("error:") and "bond" in result.output


@pytest.mark.slow
def test_a_pes_run_resumes_with_its_geometries(h2_pes_run, tmp_path):
    """The 300-step run above, continued for 2 more steps (and evaluated) from its checkpoint."""
    out = shutil.copytree(h2_pes_run, tmp_path / "pes")
    (out / "evaluation.json").unlink()  # the one read below must be the resumed run's own
    result = runner.invoke(app, ["train", "--resume", str(out), "--steps", "302", "--eval-steps", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = (out / "train_geometries.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 302 and rows[-1].startswith("302,1,")
    record = json.loads((out / "evaluation.json").read_text())
    assert record["steps"] == 4
    assert [r["label"] for r in record["pes"]] == ["bond=1.400", "bond=3.000"]
    # evaluated with other walkers: the batch is rounded up to a multiple of the geometries
    result = runner.invoke(app, ["evaluate", str(out), "--batch-size", "5", "--steps", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "evaluation.json").read_text())
    assert record["batch_size"] == 6 and len(record["pes"]) == 2
    # the stored geometries cannot be changed on resume
    result = runner.invoke(app, ["train", "--resume", str(out), "--steps", "304", "--scan", "bond=1:2:3"])
    assert result.exit_code == 2 and result.output.startswith("error:")


def test_pesnet_without_any_layer_that_takes_geometry_values_is_refused(tmp_path):
    """Found when the ansatz is built (after the run's header line): an error line, exit 2, no folder."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--system", "H2", "--ansatz", "pesnet", "--preset", "tiny",
                                 "--set", "features=ferminet_features", "--set", "envelope=full_envelope",
                                 "--set", "antisymmetrizer=multi_determinant",
                                 "--steps", "1", "--pretrain-steps", "0", "--no-progress", "--out", str(out)])
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 2 and last.startswith("error:") and "geometry values" in last, result.output
    assert not out.exists()
