"""The command line: the spellings users and docs rely on, and one-line errors."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from qmczoo.cli import app

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_and_info():
    out = _ok(["list", "--systems"])
    assert "ferminet" in out and "LiH" in out and "isotropic_envelope" in out
    out = _ok(["info", "ferminet"])
    assert "presets" in out and "tiny" in out and "Pfau" in out
    assert "-8.070548" in _ok(["info", "LiH"])


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--system", "Xx 0 0 0"], ["unknown element", "Xx"]),
        (["train", "--system", "H 0 0 0; H 0 0 zero"], ["zero"]),
        (["train", "--system", "H2", "--charge", "2"], ["electron"]),
        (["train", "--system", "H2", "--spin", "1"], ["spin"]),
        (["train", "--system", "H 0 0 0; H 0 0 0.01"], ["0.01"]),
        (["train", "--system", "nonsense_molecule"], ["nonsense_molecule"]),
        (["train", "--system", "H2", "--ansatz", "fermnet"], ["fermnet", "ferminet"]),
        (["train", "--system", "H2", "--preset", "huge"], ["huge", "tiny"]),
        (["train", "--system", "H2", "--set", "depth=3"], ["depth", "determinants"]),
        (["train", "--system", "H2", "--optimizer", "lbfgs"], ["lbfgs", "kfac"]),
        (["train", "--system", "H2", "--unit", "furlong"], ["furlong"]),
        (["info", "no_such_thing"], ["no_such_thing"]),
        (["evaluate", "/nonexistent/run"], ["config.yaml"]),
    ],
)
def test_bad_input_is_one_clear_line(args, words):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.output.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, result.output
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def test_bad_input_in_a_real_process_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "qmczoo.cli", "train", "--system", "H 0 0 0; Q 0 0 1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.slow
def test_train_resume_evaluate(tmp_path):
    run = tmp_path / "run"
    common = ["--preset", "tiny", "--batch-size", "32", "--pretrain-steps", "5", "--burn-in", "10",
              "--mcmc-steps", "5", "--no-progress", "--checkpoint-every", "5"]
    out = _ok(["train", "--system", "H 0 0 0; H 0 0 0.74", "--unit", "angstrom", "--steps", "10", "--seed", "0",
               "--out", str(run), "--eval-steps", "10", "--set", "determinants=1", "--monitor-every", "1", *common])
    assert "evaluated energy" in out
    for name in ("config.yaml", "train.csv", "checkpoint.msgpack", "energy.png", "summary.json", "evaluation.json"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("energy", "energy_error", "training_energy", "monitor_energy", "steps", "seconds_per_step"):
        assert key in summary
    assert summary["steps"] == 10
    # the top-level energy is the evaluated one; the training mean keeps its own key
    assert summary["energy_source"] == "evaluation"
    assert summary["energy"] == summary["evaluation"]["energy"]
    # an existing run folder is not overwritten
    result = runner.invoke(app, ["train", "--system", "H2", "--out", str(run), *common])
    assert result.exit_code == 2 and "--resume" in result.output
    _ok(["train", "--resume", str(run), "--steps", "15", "--eval-steps", "0", "--no-progress"])
    assert json.loads((run / "summary.json").read_text())["steps"] == 15
    _ok(["evaluate", str(run), "--steps", "10", "--no-progress"])
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["trained_steps"] == 15 and ev["energy_error"] > 0
