"""Checkpoint and resume continue the very same run.

One 3-step run (checkpointed at step 3) is trained once per module and copied for each test
that continues it: resuming it reproduces an uninterrupted 8-step run, a resume after a crash
discards the steps logged past its checkpoint, and a run interrupted past its checkpoint keeps
its finished steps and resumes.
"""

import shutil

import numpy as np
import pytest

from qmczoo import runs
from qmczoo.engine.config import TrainConfig


def _config(steps):
    return TrainConfig(steps=steps, batch_size=32, pretrain_steps=5, burn_in=10, mcmc_steps=5,
                       checkpoint_every=3, dtype="float64", seed=3, monitor_every=4)


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
    """A run folder of 3 trained steps, checkpointed at step 3 (copy it before continuing it)."""
    run = tmp_path_factory.mktemp("resume") / "three"
    runs.train("H2", "ferminet", _config(3), run, preset="tiny", progress=False)
    assert list(runs.read_log(run)["step"]) == [1, 2, 3]
    return run


def _copy(run, to):
    shutil.copytree(run, to)
    return to


def test_resume_reproduces_uninterrupted_run(tmp_path, three_steps):
    full = tmp_path / "full"
    runs.train("H2", "ferminet", _config(8), full, preset="tiny", progress=False)
    part = _copy(three_steps, tmp_path / "part")
    result = runs.train(out_dir=part, resume=True, config=TrainConfig(steps=8), progress=False)
    assert int(result.state.step) == 8
    a, b = runs.read_log(full), runs.read_log(part)
    np.testing.assert_array_equal(a["step"], b["step"])
    np.testing.assert_allclose(b["energy"], a["energy"], rtol=1e-10, atol=0)
    np.testing.assert_allclose(b["variance"], a["variance"], rtol=1e-10, atol=0)
    # the monitor chain (measured at steps 4 and 8 here) is part of the checkpointed state
    assert list(np.flatnonzero(np.isfinite(a["monitor_energy"]))) == [3, 7]
    np.testing.assert_allclose(b["monitor_energy"], a["monitor_energy"], rtol=1e-10, atol=0)
    for name in ("config.yaml", "train.csv", "checkpoint.msgpack", "energy.png", "summary.json"):
        assert (part / name).exists(), name


def test_resume_after_a_crash_discards_steps_past_the_checkpoint(tmp_path, three_steps):
    run = _copy(three_steps, tmp_path / "run")
    # a crash after logging steps 4 and 5 but before the next checkpoint
    with (run / "train.csv").open("a") as f:
        f.write("4,-1.0,0.1,0.5,0.1,1.0,0,\n5,-1.0,0.1,0.5,0.1,1.0,0,-1.0\n")
    runs.train(out_dir=run, resume=True, config=TrainConfig(steps=4), progress=False)
    log = runs.read_log(run)
    assert list(log["step"]) == [1, 2, 3, 4]
    assert log["energy"][-1] != -1.0


def test_an_interrupted_run_keeps_its_finished_steps_and_resumes(tmp_path, monkeypatch, three_steps):
    from qmczoo.engine.vmc import VMC

    original, calls = VMC.step, {"n": 0}

    def flaky_step(self, state):
        calls["n"] += 1
        if calls["n"] == 3:  # the run's 6th step (it continues from step 3)
            raise KeyboardInterrupt
        return original(self, state)

    run = _copy(three_steps, tmp_path / "run")
    monkeypatch.setattr(VMC, "step", flaky_step)
    try:
        runs.train(out_dir=run, resume=True, config=TrainConfig(steps=8), progress=False)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt must reach the caller")
    monkeypatch.setattr(VMC, "step", original)
    assert calls["n"] == 3
    # steps 4 and 5 came after the last periodic checkpoint (step 3) and are kept all the same
    assert list(runs.read_log(run)["step"]) == [1, 2, 3, 4, 5]
    result = runs.train(out_dir=run, resume=True, config=TrainConfig(steps=7), progress=False)
    assert int(result.state.step) == 7
    assert list(runs.read_log(run)["step"]) == [1, 2, 3, 4, 5, 6, 7]
