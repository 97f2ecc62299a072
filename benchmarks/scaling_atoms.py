"""Seconds per KFAC step against the number of electrons, He to Ne: qmczoo beside FermiNet's code
(in its best CPU setting: the forward Laplacian, one BLAS thread), in one run, and peak memory.

The workload is the anchors' LiH workload (shared/anchors) on the atoms: FermiNet `small`
(4 layers of (128, 16), 8 dense determinants), 256 walkers, 10 Metropolis steps per step, KFAC,
float32, no pretraining, no monitor chain. Each code runs in its own process (wall time and peak
resident memory from ``/usr/bin/time``); s/step is the median step-to-step time after the first
``--skip`` steps (compilation excluded): qmczoo's from ``train.csv``, FermiNet's from the time
stamps of its per-step log lines.

    python benchmarks/scaling_atoms.py                       # He ... Ne, 40 steps each
    python benchmarks/scaling_atoms.py --atoms Ne --steps 20
    python benchmarks/scaling_atoms.py --atoms none --molecule C2H4 --steps 6     # qmczoo alone on a molecule

Needs the anchors built with ../shared/anchors/setup.sh (ANCHORS, default ${TMPDIR:-/tmp}/anchors)
for FermiNet's columns (without them, qmczoo alone).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ATOMS = ("He", "Li", "Be", "B", "C", "N", "O", "F", "Ne")
ELECTRONS = {"He": 2, "Li": 3, "Be": 4, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Ne": 10}
_STAMP = re.compile(r"^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d+).*Step (\d+):")


def _timed(cmd: list[str], env: dict, log: Path) -> tuple[int, float, float]:
    """Run ``cmd`` under /usr/bin/time: (return code, wall seconds, peak RSS in MiB)."""
    stats = log.with_suffix(".time")
    with open(log, "w") as f:
        rc = subprocess.call(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *cmd], env=env, stdout=f,
                             stderr=subprocess.STDOUT)
    wall, rss_kib = stats.read_text().split()[-2:]
    return rc, float(wall), float(rss_kib) / 1024


def _median_step(times: np.ndarray, skip: int) -> float:
    d = np.diff(times[skip:])
    return float(np.median(d)) if d.size else float("nan")


def qmczoo_step(system: str, steps: int, batch: int, skip: int, work: Path) -> tuple[float, float, float]:
    """(s/step, wall seconds, peak RSS MiB) of ``qmczoo train`` on ``system``."""
    out = work / f"qmczoo-{system}"
    cmd = [sys.executable, "-m", "qmczoo.cli", "train", "--system", system, "--preset", "small",
           "--batch-size", str(batch), "--steps", str(steps), "--pretrain-steps", "0", "--burn-in", "10",
           "--mcmc-steps", "10", "--optimizer", "kfac", "--dtype", "float32", "--monitor-walkers", "0",
           "--eval-steps", "0", "--checkpoint-every", str(10 * steps), "--no-progress", "--out", str(out)]
    rc, wall, rss = _timed(cmd, dict(os.environ), work / f"qmczoo-{system}.log")
    if rc != 0:
        print((work / f"qmczoo-{system}.log").read_text()[-2000:], file=sys.stderr)
        return float("nan"), wall, rss
    from qmczoo.runs import read_log

    return _median_step(np.asarray(read_log(out)["wall_time"]), skip), wall, rss


def ferminet_step(atom: str, steps: int, batch: int, skip: int, work: Path, anchors: Path):
    """(s/step, wall seconds, peak RSS MiB) of FermiNet's code on ``atom`` in its best CPU setting."""
    exe = anchors / "venv-fn" / "bin" / "ferminet"
    config = anchors / "ferminet" / "ferminet" / "configs" / "atom.py"
    if not exe.exists() or not config.exists():
        return None
    out = work / f"ferminet-{atom}"
    cmd = [str(exe), "--config", str(config), f"--config.system.atom={atom}", f"--config.batch_size={batch}",
           "--config.network.ferminet.hidden_dims=((128,16),(128,16),(128,16),(128,16))",
           "--config.network.determinants=8", "--config.pretrain.iterations=0", "--config.mcmc.burn_in=10",
           "--config.mcmc.steps=10", f"--config.optim.iterations={steps}", "--config.optim.optimizer=kfac",
           "--config.optim.laplacian=folx", f"--config.log.save_path={out}", "--config.log.save_frequency=1000",
           "--alsologtostderr"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    log = work / f"ferminet-{atom}.log"
    rc, wall, rss = _timed(cmd, env, log)
    stamps = []
    for line in log.read_text(errors="replace").splitlines():
        m = _STAMP.match(line)
        if m:
            stamps.append(3600 * int(m[2]) + 60 * int(m[3]) + float(m[4]))
    if rc != 0 or len(stamps) < skip + 2:
        print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
        return float("nan"), wall, rss
    return _median_step(np.unwrap(np.asarray(stamps), period=86400.0), skip), wall, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", default=",".join(ATOMS), help="comma-separated atoms, or 'none'")
    ap.add_argument("--molecule", default=None, help="also a molecule (qmczoo alone), e.g. C2H4")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--molecule-steps", type=int, default=8)
    ap.add_argument("--skip", type=int, default=5, help="steps left out of the median (compilation, warm-up)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--anchors", default=os.environ.get("ANCHORS", os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                                                 "anchors")))
    args = ap.parse_args()
    atoms = [] if args.atoms == "none" else [a.strip() for a in args.atoms.split(",")]
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores; {args.batch} walkers, "
          f"FermiNet small, KFAC, float32; s/step: median after {args.skip} steps; RSS: peak of the process")
    print(f"{'system':>7} {'N_e':>4} | {'qmczoo s/step':>13} {'RSS MiB':>8} {'MiB/walker':>10} | "
          f"{'FermiNet s/step':>15} {'RSS MiB':>8} | {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="qmczoo-scaling-") as tmp:
        work = Path(tmp)
        rows = [(a, ELECTRONS.get(a, 0), args.steps, True) for a in atoms]
        if args.molecule:
            rows.append((args.molecule, 0, args.molecule_steps, False))
        for system, n_e, steps, with_fn in rows:
            q, _, q_rss = qmczoo_step(system, steps, args.batch, min(args.skip, steps - 3), work)
            fn = ferminet_step(system, steps, args.batch, args.skip, work, Path(args.anchors)) if with_fn else None
            if not n_e:
                from qmczoo import get_system

                n_e = get_system(system).n_electrons
            f_txt = f"{fn[0]:>15.3f} {fn[2]:>8.0f}" if fn else f"{'–':>15} {'–':>8}"
            ratio = f"{q / fn[0]:>6.2f}" if fn and np.isfinite(fn[0]) and fn[0] > 0 else f"{'–':>6}"
            print(f"{system:>7} {n_e:>4} | {q:>13.3f} {q_rss:>8.0f} {q_rss / args.batch:>10.2f} | {f_txt} | {ratio}",
                  flush=True)
    print("MiB/walker: the qmczoo process's peak RSS over the walkers (an upper bound: it includes the "
          "parameters, jax's compiled programs and the Python process)")


if __name__ == "__main__":
    main()
