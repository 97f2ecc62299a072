"""Runs of several states (issue 32): bad input writes nothing, a tiny NES run on He and its files,
the penalty objective runs, a k-state run resumes, the bench carries the setting."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from qmczoo import runs
from qmczoo.chemistry.excited_references import state_references
from qmczoo.chemistry.systems import get_system
from qmczoo.cli import app
from qmczoo.engine.config import TrainConfig

runner = CliRunner()
FAST = ["--preset", "tiny", "--steps", "4", "--pretrain-steps", "2", "--batch-size", "16", "--eval-steps", "0",
        "--burn-in", "2", "--no-progress"]


@pytest.mark.parametrize("args, words", [
    (["--system", "He", "--states", "0"], ["states", ">= 1", "0"]),
    (["--system", "He", "--states", "-2"], ["states", ">= 1"]),
    (["--system", "H2", "--states", "2", "--scan", "bond=1.0:2.0:3", "--ansatz", "pesnet"],
     ["--states 2", "scan", "not supported"]),
    (["--system", "H", "--states", "6"], ["6 states", "5 determinants", "ccpvdz"]),
    (["--system", "He", "--objective", "penalty"], ["--objective", "--states"]),
    (["--system", "He", "--states", "2", "--penalty", "2"], ["--penalty", "penalty"]),
    (["--system", "He", "--states", "2", "--objective", "ortho"], ["objective", "ortho", "nes", "penalty"]),
    (["--system", "He", "--states", "2", "--objective", "penalty", "--penalty", "0"], ["penalty", "0"]),
], ids=["zero", "negative", "scan", "beyond-basis", "objective-alone", "penalty-with-nes", "unknown-objective",
        "zero-penalty"])
def test_bad_states_input_is_one_error_line_and_writes_nothing(tmp_path, args, words):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *args, *FAST, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()


def test_bench_refuses_states_beyond_the_basis_before_any_cell(tmp_path):
    result = runner.invoke(app, ["bench", "-a", "ferminet", "-s", "H", "--states", "6", "--preset", "tiny",
                                 "--steps", "2", "--out", str(tmp_path / "b"), "--no-progress"])
    assert result.exit_code == 2 and result.output.startswith("error: "), result.output
    assert "6 states" in result.output and not (tmp_path / "b").exists()


def test_bench_settings_of_one_state_are_stored_as_before():
    from qmczoo.runs.bench import BenchSettings

    one = BenchSettings(ansatze=["ferminet"], systems=["He"], seeds=[0])
    assert "states" not in one.to_dict()
    three = BenchSettings(ansatze=["ferminet"], systems=["He"], seeds=[0], states=3, objective="penalty", penalty=2.0)
    assert three.to_dict()["states"] == 3
    config = three.train_config(0)
    assert (config.states, config.objective, config.penalty) == (3, "penalty", 2.0)


def test_reference_states_of_helium():
    refs = state_references(get_system("He"))
    assert [r["term"] for r in refs[:3]] == ["1 1S", "2 3S", "2 1S"]
    assert len(refs) == 9  # 2 3P and 2 1P have three components each in the (1, 1) sector
    assert state_references(get_system("He", spin=2)) is None


@pytest.fixture(scope="module")
def helium_nes(tmp_path_factory):
    out = tmp_path_factory.mktemp("he") / "run"
    config = TrainConfig(steps=20, batch_size=32, pretrain_steps=40, burn_in=40, states=3, checkpoint_every=10,
                         monitor_walkers=0, dtype="float64", seed=1)
    result = runs.train("He", "ferminet", config, out, preset="tiny", progress=False, eval_steps=20)
    return out, result


def test_tiny_nes_run_on_helium_gives_three_ordered_states_above_the_exact_ones(helium_nes):
    out, result = helium_nes
    record = json.loads((out / "evaluation.json").read_text())
    states = record["states"]
    assert len(states) == 3 and record["objective"] == "nes"
    energies = [s["energy"] for s in states]
    assert energies == sorted(energies) and len(set(energies)) == 3
    for s in states:
        assert np.isfinite(s["energy"]) and s["energy_error"] > 0
        assert s["energy"] >= s["reference_energy"] - 3 * s["energy_error"], s  # the variational bound, per state
        assert 0.0 <= s["spin_squared"] + 3 * (s["spin_squared_error"] or 0) and s["spin_squared"] < 2.5
    assert states[1]["excitation_energy"] > 0
    overlaps = np.asarray(record["overlaps"])
    assert overlaps.shape == (3, 3) and np.allclose(np.diag(overlaps), 1.0)
    for name in ("states.csv", "states.png", "train_states.csv", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert "reference_energy" not in summary  # the sum of three energies has no reference
    assert [s["energy"] for s in summary["states"]["states"]] == energies
    rows = (out / "states.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("state,energy,energy_error")
    log = runs.read_log(out)
    assert log["step"].size == 20 and np.all(np.isfinite(log["energy"]))


def test_a_run_of_several_states_evaluates_and_resumes(helium_nes):
    out, _ = helium_nes
    result = runner.invoke(app, ["evaluate", str(out), "--steps", "5", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "E - E_0" in result.output and "<S^2>" in result.output and "S_01" in result.output
    resumed = runs.train(out_dir=out, resume=True, config=TrainConfig(steps=24), progress=False)
    assert int(resumed.state.step) == 24 and len(resumed.state.params) == 3
    steps = (out / "train_states.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in steps] == list(range(1, 25))


def test_penalty_objective_trains_and_reports_overlaps(tmp_path):
    config = TrainConfig(steps=6, batch_size=32, pretrain_steps=5, burn_in=10, states=2, objective="penalty",
                         penalty=2.0, monitor_walkers=0, checkpoint_every=6)
    result = runs.train("He", "ferminet", config, tmp_path / "run", preset="tiny", progress=False, eval_steps=4)
    record = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert record["objective"] == "penalty" and len(record["states"]) == 2
    assert result.state.n_rejected == 0
    lines = (tmp_path / "run" / "train_states.csv").read_text().splitlines()
    assert lines[0] == "step,state_0,state_1,penalty" and all(r.split(",")[-1] != "" for r in lines[1:])
    assert np.isfinite(np.asarray(record["overlaps"])).all()
