"""Pretraining targets come from the basis of the ansatz's own Hartree–Fock orbitals, and PauliNet
(which starts at its CASSCF reference) is not Hartree–Fock-pretrained."""

from __future__ import annotations

import pytest

from qmczoo import runs
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.vmc import VMC
from qmczoo.errors import ConfigError
from qmczoo.registry import get_ansatz
from qmczoo.runs.checks import with_pretrain_basis


@pytest.mark.parametrize("ansatz, preset, options, expected", [
    ("paulinet", "paper", {}, "6-311g"),  # its orbitals are 6-311G: so are the targets
    ("paulinet", "tiny", {"hf_basis": "sto-3g"}, "sto-3g"),
    ("hybrid", "tiny", {"hf_basis": "6-31g"}, "6-31g"),  # envelopes fitted to 6-31G orbitals
    ("ferminet", "tiny", {}, "ccpvdz"),
    ("deepwf", "tiny", {}, "ccpvdz"),  # no hf_basis option: the default
])
def test_pretraining_targets_use_the_ansatz_hf_basis(ansatz, preset, options, expected):
    spec = get_ansatz(ansatz, preset, **options)
    assert TrainConfig().pretrain_basis is None
    assert with_pretrain_basis(TrainConfig(), spec).pretrain_basis == expected
    # a basis given on purpose is kept
    assert with_pretrain_basis(TrainConfig(pretrain_basis="sto-3g"), spec).pretrain_basis == "sto-3g"


def test_a_run_stores_the_basis_it_pretrained_in(tmp_path):
    config = TrainConfig(steps=0, batch_size=8, pretrain_steps=1, burn_in=1, mcmc_steps=1, monitor_walkers=0)
    result = runs.train("H2", get_ansatz("ferminet", "tiny", hf_basis="sto-3g"), config, tmp_path / "run",
                        progress=False)
    assert result.vmc.config.pretrain_basis == "sto-3g"
    stored = runs.read_config_file(tmp_path / "run")["train"]["pretrain_basis"]
    assert stored == "sto-3g"


def test_paulinet_skips_hartree_fock_pretraining():
    system = get_system("H2")
    wf = get_ansatz("paulinet", preset="tiny").build(system)
    assert wf.orbitals is None
    vmc = VMC(system, wf, TrainConfig(batch_size=8, pretrain_steps=5, burn_in=1, mcmc_steps=1, monitor_walkers=0))
    state, losses = vmc.pretrain(vmc.initial_state(optimizer=False))
    assert losses == [] and state.opt_state is not None


def test_a_bad_pretrain_basis_is_still_refused():
    with pytest.raises(ConfigError, match="basis-set name"):
        TrainConfig(pretrain_basis="  ")
