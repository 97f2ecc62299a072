"""Checkpoint integrity, the NaN guard on new parameters, the rejected-steps stop, honest
interrupt messages, NaN-free summaries and repeating a run from its config.yaml (issue 18).
Everything here avoids compiling a training step (fake steps, a one-parameter toy)."""

import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization
from typer.testing import CliRunner

from qmczoo import runs
from qmczoo.runs.run_config import save_config

from qmczoo.runs import checkpoint
from qmczoo.cli import app
from qmczoo.errors import ConfigError
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.vmc import VMC, StepStats
from qmczoo.engine.config import TrainConfig
from qmczoo.wavefunction import Wavefunction

runner = CliRunner()


# ----------------------------------------------------------------------------- checkpoints

def _tree():
    return {"w": np.arange(1000, dtype=np.float64).reshape(10, 100), "b": np.ones(3, np.float32)}


def _template():
    return jax.tree.map(np.zeros_like, _tree())


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "flipped", "header", "not-msgpack-map"])
def test_every_damaged_checkpoint_is_a_config_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "checkpoint.msgpack"
    checkpoint.save(path, _tree(), {"step": 3})
    data = bytearray(path.read_bytes())
    if damage == "empty":
        data = b""
    elif damage == "truncated":
        data = data[: len(data) - 100]
    elif damage == "random":
        data = np.random.default_rng(1).bytes(len(data))
    elif damage == "flipped":  # 64 bytes inside the array data
        for i in range(len(data) - 2000, len(data) - 1936):
            data[i] ^= 0xFF
    elif damage == "header":
        data[:4] = b"\xff\xff\xff\xff"
    else:
        data = serialization.msgpack_serialize([1, 2, 3])
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=str(path).replace(".", r"\.")):
        checkpoint.load(path, _template())


def test_flipped_data_is_caught_by_the_checksum(tmp_path):
    path = tmp_path / "ck"
    checkpoint.save(path, _tree())
    data = bytearray(path.read_bytes())
    data[-3000] ^= 0x01  # one bit inside w's bytes: still valid msgpack
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load(path, _template())


def test_checkpoints_of_the_first_format_still_load(tmp_path):
    tree = _tree()
    payload = {"format": "qmczoo-checkpoint-1", "metadata": {"step": 7},
               "leaves": {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))},
               "paths": {str(i): jax.tree_util.keystr(p) for i, (p, _) in
                         enumerate(jax.tree_util.tree_leaves_with_path(tree))}}
    (tmp_path / "old").write_bytes(serialization.msgpack_serialize(payload))
    restored, meta = checkpoint.load(tmp_path / "old", _template())
    assert meta == {"step": 7}
    np.testing.assert_array_equal(restored["w"], tree["w"])


def test_the_checksum_covers_the_payload(tmp_path):
    checkpoint.save(tmp_path / "ck", _tree())
    outer = serialization.msgpack_restore((tmp_path / "ck").read_bytes())
    assert outer["format"] == checkpoint.FORMAT
    assert outer["sha256"] == hashlib.sha256(outer["body"]).hexdigest()


# ----------------------------------------------------------------------------- NaN guard

def _hydrogen_1s():
    def signed_log_psi(params, r, R):
        return jnp.ones((), r.dtype), -params["zeta"] * jnp.linalg.norm(r[0] - R[0])

    return Wavefunction(init=lambda key, r, R: {"zeta": jnp.ones((), r.dtype)},
                        signed_log_psi=signed_log_psi, n_up=1, n_down=0, name="hydrogen_1s")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_step_to_non_finite_parameters_is_rejected(optimizer):
    config = TrainConfig(batch_size=16, optimizer=optimizer, dtype="float64", pretrain_steps=0, mcmc_steps=2)
    config.learning_rate = float("inf")  # past validation: what a diverging schedule could produce
    vmc = VMC(get_system("H"), _hydrogen_1s(), config)
    state = vmc.burn_in(vmc.initial_state(), 4)
    state = state.replace(params={"zeta": jnp.asarray(0.7)})  # a finite gradient
    new, stats = vmc.step(state)
    assert stats.rejected and int(new.n_rejected) == 1
    assert float(new.params["zeta"]) == 0.7


def test_learning_rates_that_are_not_finite_and_positive_are_refused():
    for lr in (float("nan"), float("inf"), 0.0, -1.0, "0.1"):
        with pytest.raises(ConfigError, match="learning rate"):
            TrainConfig(learning_rate=lr)
    assert TrainConfig(learning_rate=100).lr == 100.0  # legal: the NaN guard handles what it does


# ----------------------------------------------------------------------------- runs without compiling a step

def _config(**kw):
    return TrainConfig(**{**dict(steps=10, batch_size=8, optimizer="adam", pretrain_steps=0, burn_in=0,
                                 checkpoint_every=100, dtype="float64"), **kw})


def _fake_steps(monkeypatch, rejected_from: int):
    """Steps that cost nothing: accepted until step ``rejected_from``, then rejected."""

    def step(self, state):
        n = int(state.step) + 1
        bad = n >= rejected_from
        params = state.params if bad else jax.tree.map(lambda x: x + 1.0, state.params)
        new = state.replace(step=state.step + 1, params=params, n_rejected=state.n_rejected + int(bad))
        return new, StepStats(step=n, energy=float("nan") if bad else -1.0, variance=0.1, acceptance=0.5,
                              step_size=0.1, rejected=bad)

    monkeypatch.setattr(VMC, "step", step)


def _stopped_after_three_rejections(run):
    """Train H2 until three consecutive rejected steps stop the run (the steps are faked by the
    caller); returns the checkpointed state, its metadata and a fresh initial state of the run."""
    with pytest.raises(runs.TrainingStopped, match=r"3 consecutive steps were rejected.*step 3\) is checkpointed"):
        runs.train("H2", "ferminet", _config(max_rejected_steps=3), run, preset="tiny", progress=False)
    system, spec, config = runs.load_run_config(run)
    fresh = VMC(system, spec.build(system), config).initial_state()
    state, meta = checkpoint.load(run / runs.CHECKPOINT, fresh)
    return state, meta, fresh


def test_consecutive_rejected_steps_stop_the_run_with_a_good_checkpoint(tmp_path, monkeypatch):
    _fake_steps(monkeypatch, rejected_from=4)
    state, meta, _ = _stopped_after_three_rejections(tmp_path / "run")
    assert meta["step"] == 3 and int(state.step) == 3
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def test_steps_0_writes_valid_json_and_lists_only_existing_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--system", "H2", "--preset", "tiny", "--steps", "0", "--pretrain-steps",
                                 "0", "--burn-in", "0", "--optimizer", "adam", "--batch-size", "8",
                                 "--eval-steps", "0", "--no-progress", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.lower()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert summary["steps"] == 0 and summary["energy"] is None and summary["seconds_per_step"] is None
    listed = result.output.strip().splitlines()[-1].split(": ", 1)[1].split()
    assert listed and all((tmp_path / "run" / name).exists() for name in listed)


def test_first_line_config_and_summary_say_the_unit_and_the_bohr_geometry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--system", "H 0 0 0; H 0 0 0.74", "--preset", "tiny", "--steps", "0",
                                 "--pretrain-steps", "0", "--burn-in", "0", "--optimizer", "adam",
                                 "--batch-size", "8", "--eval-steps", "0", "--no-progress", "--out", "run"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "read in angstrom" in first and "H (0.0000, 0.0000, 1.3984)" in first
    import yaml

    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["input_unit"] == "angstrom" and cfg["length_unit"] == "bohr"
    assert cfg["system"]["coords"][1][2] == pytest.approx(0.74 * 1.8897261246)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["input_unit"] == "angstrom"
    assert summary["geometry_bohr"][1][0] == "H" and summary["geometry_bohr"][1][3] == pytest.approx(1.398397332)


def test_an_implausible_bond_prints_a_warning_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--system", "H 0 0 0; H 0 0 0.74", "--unit", "bohr", "--preset", "tiny",
                                 "--steps", "0", "--pretrain-steps", "0", "--burn-in", "0", "--optimizer", "adam",
                                 "--batch-size", "8", "--eval-steps", "0", "--no-progress", "--out", "run"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "0.74 bohr" in warnings[0] and "--unit angstrom" in warnings[0]


def test_ctrl_c_before_the_first_checkpoint_says_so_and_resume_starts_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(VMC, "pretrain", interrupted)
    args = ["train", "--system", "H2", "--preset", "tiny", "--steps", "0", "--pretrain-steps", "1", "--burn-in",
            "0", "--optimizer", "adam", "--batch-size", "8", "--eval-steps", "0", "--no-progress", "--out", "run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert "checkpointed" not in result.output and "before the first checkpoint" in result.output
    assert (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / runs.CHECKPOINT).exists()
    monkeypatch.setattr(VMC, "pretrain", lambda self, state, **kw: (state, []))
    result = runner.invoke(app, ["train", "--resume", "run", "--no-progress", "--eval-steps", "0"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / runs.CHECKPOINT).exists()


def test_config_repeats_a_run_into_a_new_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    system = get_system("H 0 0 0; H 0 0 0.74")
    (tmp_path / "old").mkdir()
    save_config(tmp_path / "old", system, get_ansatz("ferminet", "tiny", determinants=1),
                      _config(steps=0, seed=5, pretrain_basis="ccpvdz"), "angstrom")  # settled, as a run stores it
    result = runner.invoke(app, ["train", "--config", "old/config.yaml", "--out", "new", "--no-progress",
                                 "--eval-steps", "0"])
    assert result.exit_code == 0, result.output
    old, new = runs.read_config_file("old"), runs.read_config_file("new")
    for key in ("system", "ansatz", "train", "input_unit"):
        assert new[key] == old[key], key
    result = runner.invoke(app, ["train", "--config", "old", "--out", "new2", "--steps", "0", "--no-progress",
                                 "--eval-steps", "0", "--seed", "5"])  # equal to the stored value: fine
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- issue 29: safe writes

def test_write_file_replaces_a_link_never_writes_through_it(tmp_path):
    from qmczoo.runs.folder import LinkError, append_text, write_file

    outside = tmp_path / "outside.txt"
    outside.write_text("theirs")
    folder = tmp_path / "run"
    folder.mkdir()
    write_file(folder / "summary.json", "{}")
    assert (folder / "summary.json").read_text() == "{}" and not (folder / "summary.json.tmp").exists()
    (folder / "evaluation.json").symlink_to(outside)
    with pytest.raises(LinkError, match="symbolic link"):
        write_file(folder / "evaluation.json", "{}")
    (folder / "pes.csv.tmp").symlink_to(outside)  # a planted temporary file
    with pytest.raises(LinkError, match="pes.csv.tmp"):
        write_file(folder / "pes.csv", "a,b\n")
    (folder / "train.csv").symlink_to(outside)
    with pytest.raises(LinkError, match="train.csv"):
        append_text(folder / "train.csv", "1,2\n")
    assert outside.read_text() == "theirs"
    (folder / "stale.json.tmp").write_text("left by a kill")  # a stale temporary file is replaced
    write_file(folder / "stale.json", "new")
    assert (folder / "stale.json").read_text() == "new" and not (folder / "stale.json.tmp").exists()


def test_a_planted_checkpoint_tmp_link_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"theirs")
    (tmp_path / "checkpoint.msgpack.tmp").symlink_to(outside)
    with pytest.raises(ConfigError, match="symbolic link"):
        checkpoint.save(tmp_path / "checkpoint.msgpack", _tree(), {"step": 1})
    assert outside.read_bytes() == b"theirs" and not (tmp_path / "checkpoint.msgpack").exists()


def test_a_full_disk_during_a_checkpoint_write_leaves_no_tmp(tmp_path, monkeypatch):
    import errno
    import os

    checkpoint.save(tmp_path / "ck", _tree(), {"step": 1})
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(tmp_path / "ck", _tree(), {"step": 2})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not (tmp_path / "ck.tmp").exists()
    assert checkpoint.load(tmp_path / "ck", _template())[1] == {"step": 1}  # the old one is intact


# ----------------------------------------------------------------------------- issue 29: the stop path

def _donating_steps(monkeypatch, rejected_from: int, interrupt_at: int | None = None):
    """Fake steps that treat their input as kfac-jax does: the parameter and optimizer arrays
    they are given are deleted (donated); a rejected step hands back copies of the old values.
    ``interrupt_at``: send this process SIGINT in the middle of that step (after the donation)."""
    import os
    import signal

    def step(self, state):
        n = int(state.step) + 1
        bad = n >= rejected_from
        backup = jax.tree.map(jnp.copy, (state.params, state.opt_state))
        new_params = jax.tree.map(lambda x: x + 1.0, state.params)
        for leaf in jax.tree.leaves((state.params, state.opt_state)):
            leaf.delete()
        if n == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        params, opt_state = backup if bad else (new_params, backup[1])
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            n_rejected=state.n_rejected + int(bad))
        return new, StepStats(step=n, energy=float("nan") if bad else -1.0, variance=0.1, acceptance=0.5,
                              step_size=0.1, rejected=bad)

    monkeypatch.setattr(VMC, "step", step)


def test_the_stop_after_rejections_survives_donated_arrays(tmp_path, monkeypatch):
    """kfac-jax donates the last good state's arrays to the next step: the stop path must still
    checkpoint that state (it raised "Array has been deleted"), and the run resumes from it."""
    _donating_steps(monkeypatch, rejected_from=4)
    run = tmp_path / "run"
    state, meta, fresh = _stopped_after_three_rejections(run)
    assert meta["step"] == 3 and int(state.step) == 3 and int(state.n_rejected) == 0
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(fresh.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) + 3.0)  # three accepted steps of +1
    _donating_steps(monkeypatch, rejected_from=100)
    result = runs.train(out_dir=run, resume=True, config=_config(steps=5), progress=False)
    assert int(result.state.step) == 5 and list(runs.read_log(run)["step"]) == [1, 2, 3, 4, 5]


def test_ctrl_c_inside_a_donating_step_is_exit_130_and_resumable(tmp_path, monkeypatch):
    """Ctrl-C while an optimizer step holds the donated arrays: the step finishes, the run stops
    at the step boundary with exit 130 and the interrupted message, and resumes."""
    monkeypatch.chdir(tmp_path)
    _donating_steps(monkeypatch, rejected_from=100, interrupt_at=5)
    args = ["train", "--system", "H2", "--preset", "tiny", "--steps", "8", "--pretrain-steps", "0", "--burn-in", "0",
            "--optimizer", "adam", "--batch-size", "8", "--eval-steps", "0", "--no-progress", "--out", "run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 130, (result.output, result.exception)
    assert "Traceback" not in result.output and "progress so far is checkpointed" in result.output
    assert checkpoint.saved_step(tmp_path / "run" / runs.CHECKPOINT) == 5
    assert list(runs.read_log(tmp_path / "run")["step"]) == [1, 2, 3, 4, 5]
    _donating_steps(monkeypatch, rejected_from=100)
    result = runner.invoke(app, ["train", "--resume", "run", "--no-progress", "--eval-steps", "0"])
    assert result.exit_code == 0, result.output
    assert list(runs.read_log(tmp_path / "run")["step"]) == list(range(1, 9))


def test_a_run_with_every_step_rejected_is_not_evaluated_as_if_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fake_steps(monkeypatch, rejected_from=1)
    args = ["train", "--system", "H2", "--preset", "tiny", "--steps", "3", "--pretrain-steps", "0", "--burn-in", "0",
            "--optimizer", "adam", "--batch-size", "8", "--eval-steps", "2", "--no-progress", "--out", "run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "every one of the run's 3 training steps was rejected" in errors[0]
    for name in ("evaluation.json", "summary.json", "pes.csv", "energy.png"):
        assert not (tmp_path / "run" / name).exists(), name
    assert checkpoint.saved_step(tmp_path / "run" / runs.CHECKPOINT) == 3


# ----------------------------------------------------------------------------- issue 29: full disks, damaged logs

def test_a_full_disk_during_a_run_is_one_error_line_and_the_run_resumes(tmp_path, monkeypatch):
    import errno

    from qmczoo.runs import train_log

    monkeypatch.chdir(tmp_path)
    _fake_steps(monkeypatch, rejected_from=100)
    real_append = train_log.append_text
    calls = []

    def append(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_append(path, text)

    monkeypatch.setattr(train_log, "append_text", append)
    args = ["train", "--system", "H2", "--preset", "tiny", "--steps", "6", "--pretrain-steps", "0", "--burn-in", "0",
            "--optimizer", "adam", "--batch-size", "8", "--eval-steps", "0", "--checkpoint-every", "2",
            "--no-progress", "--out", "run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "checkpointed at step 2" in errors[0]
    assert "--resume run" in errors[0] and "Traceback" not in result.output
    assert not list(tmp_path.glob("run/*.tmp"))
    monkeypatch.setattr(train_log, "append_text", real_append)
    result = runner.invoke(app, ["train", "--resume", "run", "--no-progress", "--eval-steps", "0"])
    assert result.exit_code == 0, result.output
    assert list(runs.read_log(tmp_path / "run")["step"]) == list(range(1, 7))


def _fake_run(tmp_path, monkeypatch, steps=4, every=2):
    monkeypatch.chdir(tmp_path)
    _fake_steps(monkeypatch, rejected_from=100)
    runs.train("H2", "ferminet", _config(steps=steps, checkpoint_every=every), tmp_path / "run", preset="tiny",
               progress=False)
    return tmp_path / "run"


def test_a_log_line_cut_by_a_kill_is_repaired_on_resume(tmp_path, monkeypatch):
    run = _fake_run(tmp_path, monkeypatch)
    (run / "summary.json").unlink()
    log = run / "train.csv"
    lines = log.read_text().splitlines(keepends=True)
    # killed while appending steps 5 and 6 (after the checkpoint of step 4): step 5 whole, step 6 cut
    log.write_text("".join(lines) + lines[-1].replace("4,", "5,", 1) + "6,-1.0,0.")
    result = runner.invoke(app, ["train", "--resume", "run", "--steps", "6", "--no-progress", "--eval-steps", "0"])
    assert result.exit_code == 0, result.output
    warnings_ = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 1 and "cut short" in warnings_[0]
    assert list(runs.read_log(run)["step"]) == [1, 2, 3, 4, 5, 6]


def test_a_missing_log_continues_with_a_warning(tmp_path, monkeypatch):
    run = _fake_run(tmp_path, monkeypatch)
    (run / "train.csv").unlink()  # e.g. moved away after a refusal
    result = runner.invoke(app, ["train", "--resume", "run", "--steps", "6", "--no-progress", "--eval-steps", "0"])
    assert result.exit_code == 0, result.output
    warnings_ = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 1 and "is missing" in warnings_[0] and "restarts at step 5" in warnings_[0]
    assert list(runs.read_log(run)["step"]) == [5, 6]
