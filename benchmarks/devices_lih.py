"""Seconds per KFAC step of the LiH workload on 1 and 2 devices of one process and on two
processes (jax's distributed runtime on 127.0.0.1), in one run.

On a CPU the devices are ``JAX_NUM_CPU_DEVICES=N`` slices of the same cores, so this measures
the cost of spreading the walkers (the sharded programs and their collectives), not a speed-up;
on GPUs each device brings its own compute, and the same collectives (an all-reduce of the
gradient and KFAC's factors, an all-gather of the [B] local energies) cost microseconds to
milliseconds per step against a step of tens of milliseconds.

    python benchmarks/devices_lih.py --steps 60
    python benchmarks/devices_lih.py --steps 60 --devices 1,2,4 --no-processes     # on a machine with 4 GPUs

Workload: LiH, FermiNet `small`, 256 walkers, 10 Metropolis steps per step, KFAC, float32, no
pretraining, no monitor chain. s/step is the median step-to-step time of ``train.csv`` after
the first 10 steps (compilation excluded).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _args(steps: int, batch: int, out: Path) -> list[str]:
    return ["--system", "LiH", "--preset", "small", "--batch-size", str(batch), "--steps", str(steps),
            "--pretrain-steps", "0", "--burn-in", "10", "--mcmc-steps", "10", "--optimizer", "kfac",
            "--dtype", "float32", "--monitor-walkers", "0", "--eval-steps", "0",
            "--checkpoint-every", str(10 * steps), "--no-progress", "--out", str(out)]


def _seconds_per_step(out: Path, skip: int = 10) -> float:
    from qmczoo.runs import read_log

    t = np.asarray(read_log(out)["wall_time"])
    return float(np.median(np.diff(t[skip:])))


def _cpu_env(devices: int) -> dict:
    env = dict(os.environ)
    if not os.environ.get("CUDA_VISIBLE_DEVICES") and "gpu" not in os.environ.get("JAX_PLATFORMS", ""):
        env["JAX_NUM_CPU_DEVICES"] = str(devices)
    return env


def one_process(devices: int, steps: int, batch: int, work: Path) -> float:
    out = work / f"devices{devices}"
    subprocess.run([sys.executable, "-m", "qmczoo.cli", "train", *_args(steps, batch, out), "--devices", str(devices)],
                   env=_cpu_env(devices), check=True, capture_output=True)
    return _seconds_per_step(out)


def two_processes(steps: int, batch: int, work: Path) -> float:
    out = work / "processes2"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for i in range(2):
        log = open(work / f"process{i}.log", "w")  # noqa: SIM115 - closed with the temporary folder
        procs.append(subprocess.Popen([sys.executable, "-m", "qmczoo.cli", "train", *_args(steps, batch, out),
                                       "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                       "--process-id", str(i)], env=_cpu_env(1), stdout=log, stderr=log))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"a process failed: see {work}/process*.log")
    return _seconds_per_step(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--devices", default="1,2", help="device counts of one process, comma-separated")
    ap.add_argument("--no-processes", action="store_true", help="leave out the two-process run")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="qmczoo-devices-") as tmp:
        work = Path(tmp)
        for d in (int(x) for x in args.devices.split(",")):
            rows.append((f"1 process x {d} device{'s' if d > 1 else ''}", one_process(d, args.steps, args.batch, work)))
        if not args.no_processes:
            rows.append(("2 processes x 1 device", two_processes(args.steps, args.batch, work)))
    base = rows[0][1]
    print(f"LiH, FermiNet small, {args.batch} walkers, KFAC, float32, {args.steps} steps; {os.cpu_count()} cores")
    print(f"{'layout':<26} {'s/step':>8} {'walkers/s':>10} {'vs first':>9}")
    for name, sps in rows:
        print(f"{name:<26} {sps:>8.4f} {args.batch / sps:>10.0f} {sps / base:>8.2f}x")


if __name__ == "__main__":
    main()
