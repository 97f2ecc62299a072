"""ccECP atoms (Be, C, Si): energy against wall time, seconds per step, and the cost of the nonlocal term.

Trains FermiNet (``--preset``, default ``small``) on a valence-only atom with the ccECP for a time
budget, taking fixed-parameter snapshots every ``--eval-every`` seconds that are evaluated after
the budget (so they do not eat into it), and prints the evaluated energies against the ccECP
reference (``Be_ccECP`` etc. in molecules.yaml). Then it measures, on the trained walkers:

* the batched local energy with and without its nonlocal term (the rest: kinetic energy,
  Coulomb and local ECP terms), median of ``--repeat`` jitted calls;
* optionally (``--all-electron-steps N``) the seconds per step of the same ansatz and settings
  on the all-electron atom, for N steps after compilation.

    python benchmarks/ecp_atoms.py --atom Be --budget 900 --eval-every 150
    python benchmarks/ecp_atoms.py --atom Si --budget 120 --all-electron-steps 20
    python benchmarks/ecp_atoms.py --atom Si --speed 6      # s/step only: valence-only and all-electron
                                                            # steps in 6 interleaved blocks of 10

Times count from the start of training (after imports). Prints one line per snapshot.
"""

from __future__ import annotations

import argparse
import dataclasses
import time


def _median_seconds(fn, repeat):
    import jax

    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atom", default="Be", help="Be, C or Si (the named system ATOM_ccECP)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds of training (pretraining included)")
    ap.add_argument("--eval-every", type=float, default=150.0, help="seconds between parameter snapshots")
    ap.add_argument("--eval-steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--pretrain", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning-rate", type=float, default=None, help="KFAC's initial rate (default: TrainConfig's)")
    ap.add_argument("--norm-constraint", type=float, default=None, help="KFAC's norm constraint (default: TrainConfig's)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--all-electron-steps", type=int, default=0)
    ap.add_argument("--speed", type=int, default=0,
                    help="only measure: this many interleaved blocks of 10 steps, valence-only and all-electron")
    args = ap.parse_args()
    if args.speed:
        return speed(args)

    import jax
    import numpy as np

    from qmczoo.chemistry.systems import get_system
    from qmczoo.engine.config import TrainConfig
    from qmczoo.engine.evaluate import evaluate
    from qmczoo.engine.hamiltonian import make_batch_local_energy
    from qmczoo.engine.vmc import VMC
    from qmczoo.registry import get_ansatz

    system = get_system(f"{args.atom}_ccECP")
    spec = get_ansatz("ferminet", preset=args.preset)
    tuned = {k: v for k, v in (("learning_rate", args.learning_rate), ("norm_constraint", args.norm_constraint))
             if v is not None}
    config = TrainConfig(steps=10**9, batch_size=args.batch, pretrain_steps=args.pretrain, seed=args.seed, **tuned)
    start = time.perf_counter()
    vmc = VMC(system, spec.build(system), config)
    state = vmc.initial_state(optimizer=config.pretrain_steps == 0)
    state, _ = vmc.pretrain(state)
    state = vmc.burn_in(state)
    print(f"{system.describe()}; reference {system.reference_energy} Ha; learning rate {config.lr}, "
          f"norm constraint {config.norm_constraint}; pretraining and burn-in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    snapshots, step_times, next_eval = [], [], args.eval_every
    while True:
        t = time.perf_counter()
        state, stats = vmc.step(state)
        step_times.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        if elapsed >= next_eval or elapsed >= args.budget:
            snapshots.append((elapsed, int(state.step), jax.tree.map(np.asarray, state.params), state.walkers))
            next_eval += args.eval_every
            print(f"  {elapsed:6.0f} s  step {int(state.step):5d}  training energy {stats.energy:.5f}", flush=True)
        if elapsed >= args.budget:
            break
    sps = float(np.median(step_times[1:]))
    print(f"{len(step_times)} steps, median {sps:.3f} s/step (first step, with compilation: {step_times[0]:.1f} s)")
    for elapsed, step, params, walkers in snapshots:
        ev = evaluate(vmc, params, walkers, args.eval_steps, jax.random.PRNGKey(7), burn_in=20)
        diff = 1e3 * (ev.energy - system.reference_energy)
        print(f"evaluated after {elapsed:6.0f} s ({step} steps): {ev.energy:.5f} +- {ev.energy_error:.5f} Ha, "
              f"{diff:+.2f} +- {1e3 * ev.energy_error:.2f} mHa from the reference", flush=True)

    # the nonlocal term's share of the local energy, on the trained walkers
    terms = vmc.pseudopotential
    local_only = dataclasses.replace(terms, nonlocal_power=terms.nonlocal_power[:, :0],
                                     nonlocal_exponent=terms.nonlocal_exponent[:, :0],
                                     nonlocal_coefficient=terms.nonlocal_coefficient[:, :0])
    chunk = config.local_energy_chunk or None
    from qmczoo.engine.hamiltonian import default_chunk_size

    chunk = chunk or default_chunk_size(system.n_electrons)
    with_nl = jax.jit(vmc.batch_local_energy)
    without = jax.jit(make_batch_local_energy(vmc.wf, system.effective_charges, config.laplacian, chunk_size=chunk,
                                              pseudopotential=local_only))
    key = jax.random.PRNGKey(3)
    t_with = _median_seconds(lambda: with_nl(state.params, state.walkers.r, vmc.R, key), args.repeat)
    t_without = _median_seconds(lambda: without(state.params, state.walkers.r, vmc.R, key), args.repeat)
    print(f"local energy of {args.batch} walkers: {t_with * 1e3:.0f} ms with the nonlocal term, "
          f"{t_without * 1e3:.0f} ms without: the nonlocal term costs {(t_with - t_without) * 1e3:.0f} ms "
          f"({(t_with - t_without) / sps:.0%} of a step)")

    if args.all_electron_steps:
        ae = get_system(args.atom)
        ae_vmc = VMC(ae, spec.build(ae), dataclasses.replace(config, pretrain_steps=0))
        ae_state = ae_vmc.burn_in(ae_vmc.initial_state(), 10)
        times = []
        for _ in range(args.all_electron_steps + 1):
            t = time.perf_counter()
            ae_state, _ = ae_vmc.step(ae_state)
            times.append(time.perf_counter() - t)
        print(f"all-electron {ae.describe()}: median {float(np.median(times[1:])):.3f} s/step "
              f"over {args.all_electron_steps} steps (valence-only: {sps:.3f} s/step)")


def speed(args):
    """Seconds per step of the valence-only and the all-electron atom, in interleaved blocks (the
    machine's speed drifts: interleaving compares like with like), and the local energy with and
    without its nonlocal term. No pretraining: the cost of a step does not depend on the parameters."""
    import jax
    import numpy as np

    from qmczoo.chemistry.systems import get_system
    from qmczoo.engine.config import TrainConfig
    from qmczoo.engine.hamiltonian import default_chunk_size, make_batch_local_energy
    from qmczoo.engine.vmc import VMC
    from qmczoo.registry import get_ansatz

    spec = get_ansatz("ferminet", preset=args.preset)
    config = TrainConfig(batch_size=args.batch, pretrain_steps=0, seed=args.seed)
    runs = {}
    for label, system in (("valence-only", get_system(f"{args.atom}_ccECP")), ("all-electron", get_system(args.atom))):
        vmc = VMC(system, spec.build(system), config)
        state = vmc.burn_in(vmc.initial_state(), 20)
        state, _ = vmc.step(state)  # compile
        runs[label] = [vmc, state, []]
    for _ in range(args.speed):
        for label, run in runs.items():
            vmc, state, times = run
            t = time.perf_counter()
            for _ in range(10):
                state, _ = vmc.step(state)
            times.append((time.perf_counter() - t) / 10)
            run[1] = state
    for label, (vmc, state, times) in runs.items():
        print(f"{label:>13} {vmc.system.describe()}: {np.median(times):.3f} s/step (blocks: "
              f"{', '.join(f'{t:.3f}' for t in times)})")
    vmc, state, _ = runs["valence-only"]
    terms = vmc.pseudopotential
    local_only = dataclasses.replace(terms, nonlocal_power=terms.nonlocal_power[:, :0],
                                     nonlocal_exponent=terms.nonlocal_exponent[:, :0],
                                     nonlocal_coefficient=terms.nonlocal_coefficient[:, :0])
    chunk = config.local_energy_chunk or default_chunk_size(vmc.system.n_electrons)
    with_nl = jax.jit(vmc.batch_local_energy)
    without = jax.jit(make_batch_local_energy(vmc.wf, vmc.system.effective_charges, config.laplacian,
                                              chunk_size=chunk, pseudopotential=local_only))
    key = jax.random.PRNGKey(3)
    pairs = [(_median_seconds(lambda: with_nl(state.params, state.walkers.r, vmc.R, key), args.repeat),
              _median_seconds(lambda: without(state.params, state.walkers.r, vmc.R, key), args.repeat))
             for _ in range(3)]
    t_with, t_without = (float(np.median(x)) for x in zip(*pairs))
    sps = float(np.median(runs["valence-only"][2]))
    print(f"local energy of {args.batch} walkers: {t_with * 1e3:.0f} ms with the nonlocal term, "
          f"{t_without * 1e3:.0f} ms without: the nonlocal term costs {(t_with - t_without) * 1e3:.0f} ms "
          f"({(t_with - t_without) / sps:.0%} of a valence-only step)")


if __name__ == "__main__":
    main()
