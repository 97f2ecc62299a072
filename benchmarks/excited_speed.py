"""Seconds per training step of a run of several states, in wall time and in process CPU time.

    python benchmarks/excited_speed.py --system He --states 3 --preset tiny --steps 60

Times ``--steps`` KFAC steps (after 10 untimed ones that compile) of NES-VMC, of the penalty
method and of the ground state alone (``--states 1``), same ansatz, walkers and settings. On a
machine shared with other jobs the wall time per step depends on the load; the process CPU time
per step does much less, and bounds the wall time of a quiet machine from above for a process that
keeps at least one core busy.
"""

from __future__ import annotations

import argparse
import os
import time

from qmczoo.chemistry.systems import get_system
from qmczoo.engine.config import TrainConfig
from qmczoo.engine.states import make_vmc
from qmczoo.registry import get_ansatz


def measure(system, spec, states: int, objective: str, steps: int, batch_size: int) -> tuple[float, float]:
    config = TrainConfig(states=states, objective=objective, batch_size=batch_size, pretrain_steps=0, burn_in=20,
                         monitor_walkers=0)
    vmc = make_vmc(system, spec.build(system), config)
    state = vmc.burn_in(vmc.initial_state())
    for _ in range(10):
        state, _ = vmc.step(state)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        state, _ = vmc.step(state)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="He")
    parser.add_argument("--ansatz", default="ferminet")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--states", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    system, spec = get_system(args.system), get_ansatz(args.ansatz, args.preset)
    print(f"{system.name}, {args.ansatz} ({args.preset}), {args.batch_size} walkers, load {os.getloadavg()[0]:.1f}")
    for states, objective in ((args.states, "nes"), (args.states, "penalty"), (1, "nes")):
        wall, cpu = measure(system, spec, states, objective, args.steps, args.batch_size)
        label = "ground state" if states == 1 else f"{states} states, {objective}"
        print(f"{label:<22} {wall:.3f} s/step wall, {cpu:.3f} s/step process CPU")
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
