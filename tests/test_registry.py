"""Registry look-ups, presets, option checking, registration from outside, adapters."""

import collections

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from qmczoo.errors import ConfigError
from qmczoo.layers.curvature import tracked_parameter
from qmczoo.registry import (get_ansatz, list_ansatze, list_layers, parse_overrides, register_ansatz,
                             resolve)
from qmczoo.chemistry.systems import get_system
from qmczoo.testing import kfac_block_types, run_contract_checks
from qmczoo.wavefunction import from_haiku, from_module


def test_presets_and_options_apply_over_defaults():
    spec = get_ansatz("ferminet", preset="small", determinants=4)
    assert spec.options["determinants"] == 4
    assert spec.options["embedding.hidden_dims"] == [[128, 16]] * 4
    assert get_ansatz("ferminet", preset="tiny").options["determinants"] == 2
    # the defaults, completed with each filler's own option defaults from its layer entry
    defaults = get_ansatz("ferminet").options
    assert {k: v for k, v in defaults.items() if k in list_ansatze()["ferminet"]["defaults"]} == \
        list_ansatze()["ferminet"]["defaults"]
    assert defaults["embedding.activation"] == list_layers()["ferminet_embedding"]["options"]["activation"]
    for name in ("tiny", "small", "paper"):
        assert name in list_ansatze()["ferminet"]["presets"]


@pytest.mark.parametrize("call, words", [
    (lambda: get_ansatz("psiformer_xl"), ["psiformer_xl", "ferminet"]),
    (lambda: get_ansatz("ferminet", preset="large"), ["large", "tiny", "small", "paper"]),
    (lambda: get_ansatz("ferminet", determinant=3), ["determinant", "did you mean 'determinants'"]),
    (lambda: parse_overrides(["determinants"]), ["key=value"]),
    (lambda: resolve("qmczoo.models.ferminet:no_such_factory"), ["no_such_factory"]),
])
def test_unknown_names_fail_listing_what_exists(call, words):
    with pytest.raises(ConfigError) as info:
        call()
    for w in words:
        assert w in str(info.value)


def test_every_layer_entry_resolves_to_an_object():
    for name, e in list_layers().items():
        assert callable(resolve(e["factory"])), name
        assert e["slot"], name


def test_overrides_are_parsed_as_yaml():
    assert parse_overrides(["determinants=4", "embedding.hidden_dims=[[8, 2]]", "envelope=full_envelope", "full_det=false"]) == {
        "determinants": 4, "embedding.hidden_dims": [[8, 2]], "envelope": "full_envelope", "full_det": False}


class _SlaterOfGaussians(nn.Module):
    """A one-determinant ansatz written outside the package (for registration tests)."""

    n_up: int
    n_down: int
    width: float = 1.0
    curvature: bool = True  # False: leave the centres unregistered with KFAC

    @nn.compact
    def __call__(self, r, R):
        n = self.n_up + self.n_down
        centres = self.param("centres", nn.initializers.normal(1.0), (n, 3))
        if self.curvature:  # a nonlinear parameter: tracked so that KFAC gets per-walker curvature
            centres = tracked_parameter(centres, r)
        # Gaussians centred at offsets from the first nucleus, so a common shift changes nothing
        orbitals = jnp.exp(-jnp.sum((r[:, None] - R[0] - centres[None]) ** 2, -1) / self.width)  # [N, N]
        blocks = [orbitals[: self.n_up, : self.n_up], orbitals[self.n_up:, self.n_up:]]
        sign, logabs = 1.0, 0.0
        for b in blocks:
            if b.shape[0]:
                s, l = jnp.linalg.slogdet(b)
                sign, logabs = sign * s, logabs + l
        return sign, logabs


def test_an_ansatz_registered_from_outside_runs_through_the_engine():
    register_ansatz("test_gaussians", lambda system, **o: _SlaterOfGaussians(system.n_up, system.n_down, **o),
                    defaults={"width": 1.0}, presets={"tiny": {"width": 0.5}})
    spec = get_ansatz("test_gaussians", preset="tiny")
    system = get_system("Li")
    wf = spec.build(system)
    assert wf.orbitals is None
    run_contract_checks(wf, system)
    with pytest.raises(ConfigError, match="width"):
        get_ansatz("test_gaussians", depth=2)


def test_contract_checks_catch_a_parameter_without_kfac_curvature():
    system = get_system("Li")
    wf = from_module(_SlaterOfGaussians(2, 1, curvature=False), 2, 1, name="untracked")
    assert kfac_block_types(wf, system) == {"['params']['centres']": "NaiveDiagonal"}
    with pytest.raises(AssertionError, match=r"untracked: parameters without proper KFAC curvature.*centres"):
        run_contract_checks(wf, system)
    tracked = from_module(_SlaterOfGaussians(2, 1), 2, 1)
    assert kfac_block_types(tracked, system) == {"['params']['centres']": "ScaleAndShiftDiagonal"}


def test_haiku_style_transformed_functions_are_adapted():
    Transformed = collections.namedtuple("Transformed", "init apply")
    module = _SlaterOfGaussians(2, 1)
    with_rng = Transformed(init=module.init, apply=lambda params, rng, r, R: module.apply(params, r, R))
    without_rng = Transformed(init=module.init, apply=module.apply)
    system = get_system("Li")
    for transformed, takes_rng in ((with_rng, True), (without_rng, False)):
        wf = from_haiku(transformed, 2, 1, takes_rng=takes_rng)
        run_contract_checks(wf, system)
        r = jnp.ones((3, 3)) * jnp.arange(3)[:, None]
        params = wf.init(jax.random.PRNGKey(0), r, jnp.zeros((1, 3)))
        assert jnp.isfinite(wf.log_psi(params, r, jnp.zeros((1, 3))))


def test_top_level_api_names_are_stable():
    import qmczoo
    import qmczoo.engine.vmc as trainer_module
    from qmczoo import runs

    assert qmczoo.run_training is runs.train and qmczoo.evaluate_run is runs.evaluate_run
    assert qmczoo.TrainConfig is trainer_module.TrainConfig and qmczoo.VMC is trainer_module.VMC
    assert qmczoo.get_ansatz is get_ansatz
    for name in qmczoo.__all__:
        assert getattr(qmczoo, name) is not None, name
