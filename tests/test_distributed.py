"""One run over two processes on 127.0.0.1 (:mod:`qmczoo.distributed`, jax's distributed runtime
with its CPU collectives): real ``qmczoo train --distributed`` processes, one CPU device each.

- two processes give the energies of one process (float64, to 1e-9 relative), and only
  process 0 writes the run folder;
- two processes evaluate a run to the numbers one process gets;
- SIGKILL of one process of a running pair leaves a checkpoint, written by the pair, that resumes
  in one process to the one-process energies.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from qmczoo import runs
from qmczoo.runs import checkpoint

ARGS = ["--system", "H2", "--preset", "tiny", "--pretrain-steps", "2", "--batch-size", "16", "--eval-steps", "0",
        "--burn-in", "2", "--mcmc-steps", "2", "--checkpoint-every", "1", "--dtype", "float64", "--optimizer", "kfac",
        "--monitor-walkers", "8", "--seed", "2", "--no-progress"]

pytestmark = pytest.mark.slow


def _env(tmp_path):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="1", OMP_NUM_THREADS="1",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.pop("QMCZOO_TEST_KILL", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_pair(tmp_path, args, kill_second=None, command="train"):
    """Two processes of one run; ``kill_second``: the second SIGKILLs itself at this test-hook event
    (``QMCZOO_TEST_KILL`` of :mod:`qmczoo.runs.checkpoint`). Their output goes to files: a pipe
    nobody reads while waiting on the other process would fill and stall the pair."""
    port = _free_port()
    procs = []
    for i in range(2):
        env = _env(tmp_path)
        if i == 1 and kill_second:
            env["QMCZOO_TEST_KILL"] = kill_second
        logs = [open(tmp_path / f"process{i}-{port}.{s}", "w+") for s in ("out", "err")]  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "qmczoo.cli", command, *args, "--distributed",
                                 "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
                                 str(i)], cwd=tmp_path, env=env, stdout=logs[0], stderr=logs[1], text=True)
        proc.logs = logs
        procs.append(proc)
    return procs


def _output(proc):
    """``(stdout, stderr)`` of a finished process of :func:`_start_pair`."""
    texts = []
    for f in proc.logs:
        f.seek(0)
        texts.append(f.read())
        f.close()
    return tuple(texts)


def _wait(procs, timeout=600):
    for p in procs:
        p.wait(timeout=timeout)
    outs = [_output(p) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def _one(tmp_path, args, command="train"):
    proc = subprocess.run([sys.executable, "-m", "qmczoo.cli", command, *args], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _energies(folder):
    log = runs.read_log(folder)
    return log["step"], log["energy"]


def _same(run, ref):
    (s1, e1), (s2, e2) = _energies(run), _energies(ref)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(e1, e2, rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A 4-step run on two processes and the same run on one process, to 6 steps in one process."""
    tmp = tmp_path_factory.mktemp("distributed")
    outs = _wait(_start_pair(tmp, [*ARGS, "--steps", "4", "--out", str(tmp / "pair")]))
    _one(tmp, [*ARGS, "--steps", "6", "--out", str(tmp / "one")])
    return tmp, outs


def test_two_processes_train_to_the_energies_of_one(pair):
    tmp, (out0, out1) = pair
    steps, energies = _energies(tmp / "pair")
    assert list(steps) == [1, 2, 3, 4]
    _, ref = _energies(tmp / "one")
    np.testing.assert_allclose(energies, ref[:4], rtol=1e-9, atol=0)
    summary = (tmp / "pair" / "summary.json").read_text()
    assert '"devices": 2' in summary  # one device in each of two processes
    assert "steps" in out0[0] and not out1[0].strip()  # process 0 alone prints the summary


def test_only_process_zero_writes_the_run_folder(pair):
    tmp, _ = pair
    names = sorted(p.name for p in (tmp / "pair").iterdir())
    assert "checkpoint.msgpack" in names and "train.csv" in names
    assert not [n for n in names if n.endswith(".tmp")]
    lines = (tmp / "pair" / "train.csv").read_text().splitlines()
    assert len(lines) == 5  # a header and four steps: written once, not once per process


def test_sigkill_of_one_process_leaves_a_checkpoint_that_resumes(pair):
    """Process 1 is SIGKILLed right after its third checkpoint (step 2); process 0 is stuck at the
    next collective and is killed too: the folder's checkpoint (step 1 or 2, whichever process 0
    had renamed into place), a checkpoint of two processes, resumes in one process to the
    one-process energies."""
    tmp, _ = pair
    run = tmp / "killed"
    procs = _start_pair(tmp, [*ARGS, "--steps", "6", "--out", str(run)], kill_second="checkpoint-after-rename:3")
    procs[1].wait(timeout=600)
    assert procs[1].returncode == -signal.SIGKILL, _output(procs[1])[1][-3000:]
    time.sleep(2.0)
    if procs[0].poll() is None:
        os.kill(procs[0].pid, signal.SIGKILL)
    procs[0].wait(timeout=60)
    _output(procs[0])
    assert checkpoint.saved_step(run / runs.CHECKPOINT) in (1, 2)
    _one(tmp, ["--resume", str(run)])
    _same(run, tmp / "one")


def test_two_processes_evaluate_a_run_to_the_numbers_of_one(pair):
    tmp, _ = pair
    for name in ("eval-one", "eval-pair"):
        shutil.copytree(tmp / "one", tmp / name)
    _one(tmp, [str(tmp / "eval-one"), "--steps", "20", "--no-progress"], command="evaluate")
    _wait(_start_pair(tmp, [str(tmp / "eval-pair"), "--steps", "20", "--no-progress"], command="evaluate"))
    one, pair_ = (json.loads((tmp / n / "evaluation.json").read_text()) for n in ("eval-one", "eval-pair"))
    for key in ("energy", "energy_error", "variance", "acceptance"):
        np.testing.assert_allclose(pair_[key], one[key], rtol=1e-9, atol=0)
