"""Runs that survive SIGKILL: a real ``qmczoo train`` process is killed at several moments
(during a checkpoint write, between writing a checkpoint and renaming it, before the first
checkpoint), and ``--resume`` must always work and reproduce the uninterrupted run's
energies to 1e-10 (float64).

The moments inside a checkpoint write use the test-only hook ``QMCZOO_TEST_KILL=event:n``
of :mod:`qmczoo.runs.checkpoint` (the process SIGKILLs itself at the n-th such event); the kill
before the first checkpoint comes from outside, at whatever moment the process has reached.
A shared JAX compilation cache keeps the repeated process starts cheap.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from qmczoo import runs

from qmczoo.runs import checkpoint

def _env(tmp_path, kill=None):
    # one OpenMP thread: pyscf's Hartree-Fock (the target of pretraining) sums in a fixed order only then
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
               OMP_NUM_THREADS="1")
    env.pop("QMCZOO_TEST_KILL", None)
    if kill:
        env["QMCZOO_TEST_KILL"] = kill
    return env


def _qmczoo(tmp_path, args, kill=None, expect_killed=False):
    proc = subprocess.run([sys.executable, "-m", "qmczoo.cli", "train", *args], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=_env(tmp_path, kill))
    if expect_killed:
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _kill_once_started(tmp_path, args, out):
    """Start ``qmczoo train ARGS`` and SIGKILL it from outside as soon as ``out/config.yaml``
    exists (during setup, pretraining or compilation); the file must be there."""
    proc = subprocess.Popen([sys.executable, "-m", "qmczoo.cli", "train", *args], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "config.yaml").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "config.yaml").exists()


def _checkpoint_step(run):
    """The step of the run's checkpoint (it must load), or None when there is none yet."""
    path = run / runs.CHECKPOINT
    if not path.exists():
        return None
    return checkpoint._read_payload(path)["metadata"]["step"]


def _assert_same_energies(run, ref):
    a, b = runs.read_log(ref), runs.read_log(run)
    np.testing.assert_array_equal(b["step"], a["step"])
    np.testing.assert_allclose(b["energy"], a["energy"], rtol=1e-10, atol=0)
    np.testing.assert_allclose(b["variance"], a["variance"], rtol=1e-10, atol=0)


# a PES run (PESNet over three H2 geometries) with Hartree-Fock pretraining
PES_ARGS = ["--system", "H2", "--ansatz", "pesnet", "--preset", "tiny", "--scan", "bond=1.0:2.0:3", "--steps", "6",
            "--pretrain-steps", "3", "--batch-size", "12", "--eval-steps", "0", "--burn-in", "2", "--mcmc-steps", "2",
            "--checkpoint-every", "2", "--dtype", "float64", "--optimizer", "adam", "--seed", "3", "--no-progress"]


def _assert_same_geometry_logs(run, ref):
    import csv

    def rows(folder):
        with (folder / "train_geometries.csv").open() as f:
            return list(csv.reader(f))

    a, b = rows(ref), rows(run)
    assert [r[:2] for r in b] == [r[:2] for r in a]
    np.testing.assert_allclose(np.array([r[2:4] for r in b[1:]], float), np.array([r[2:4] for r in a[1:]], float),
                               rtol=1e-10, atol=0)


@pytest.mark.slow
def test_sigkill_at_any_moment_of_a_pes_run_with_pretraining_resumes_to_the_same_energies(tmp_path):
    """A PES run with pretraining killed at every kind of moment resumes to the uninterrupted
    run's energies, per step and per geometry, to 1e-10 (float64, one BLAS/OpenMP thread): during
    setup or pretraining, before or just after its first checkpoint (it starts again, or from that
    checkpoint); half-way through writing a later checkpoint (the half-written file never replaces
    the good one); between writing the next checkpoint and renaming it (on resume). One chain of
    processes on one run folder; one run covers the single-geometry path too: the checkpoint and
    the resume are the same code."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    _qmczoo(tmp_path, [*PES_ARGS, "--out", str(ref)])
    assert list(runs.read_log(ref)["step"]) == [1, 2, 3, 4, 5, 6]

    # 1. killed from outside as soon as the run folder exists
    _kill_once_started(tmp_path, [*PES_ARGS, "--out", str(run)], run)
    early = _checkpoint_step(run)
    assert early in (None, 0)
    # 2. resumed (from the start, or from step 0), then killed half-way through writing its third
    #    checkpoint: steps 0, 2, 4 when it starts again; 2, 4, 6 after the step-0 checkpoint
    _qmczoo(tmp_path, ["--resume", str(run)], kill="checkpoint-partial:3", expect_killed=True)
    good = 2 if early is None else 4
    assert _checkpoint_step(run) == good
    assert (run / (runs.CHECKPOINT + ".tmp")).exists()
    # 3. resumed, then killed after the next checkpoint is fully written but before its rename
    _qmczoo(tmp_path, ["--resume", str(run)], kill="checkpoint-before-rename:1", expect_killed=True)
    assert _checkpoint_step(run) == good
    # 4. resumed to the end
    _qmczoo(tmp_path, ["--resume", str(run)])
    _assert_same_energies(run, ref)
    _assert_same_geometry_logs(run, ref)


def test_kfac_stop_after_rejections_checkpoints_the_last_good_state_and_resumes(tmp_path, monkeypatch):
    """Under KFAC (which donates the last good state's arrays to the next step) the stop after
    too many rejected steps wrote no checkpoint ("Array has been deleted") and --resume crashed
    the same way (issue 29); now the last good state is checkpointed and the run resumes."""
    from qmczoo.engine.config import TrainConfig
    from qmczoo.engine.vmc import VMC

    original = VMC._build_kfac

    def build_rejecting(self):  # the NaN guard rejects every step from the third on
        original(self)
        finite, calls = self._finite, {"n": 0}

        def guard(params, energy):
            calls["n"] += 1
            return finite(params, energy) & (calls["n"] < 3)

        self._finite = guard

    run = tmp_path / "run"
    config = TrainConfig(steps=8, batch_size=16, optimizer="kfac", pretrain_steps=0, burn_in=2, mcmc_steps=2,
                         dtype="float64", max_rejected_steps=3, checkpoint_every=100)
    with monkeypatch.context() as m:
        m.setattr(VMC, "_build_kfac", build_rejecting)
        with pytest.raises(runs.TrainingStopped, match=r"3 consecutive steps.*step 2\) is checkpointed"):
            runs.train("H2", "ferminet", config, run, preset="tiny", progress=False)
    assert _checkpoint_step(run) == 2
    result = runs.train(out_dir=run, resume=True, config=TrainConfig(steps=4), progress=False)
    assert int(result.state.step) == 4 and int(result.state.n_rejected) == 0
    assert list(runs.read_log(run)["step"]) == [1, 2, 3, 4]
