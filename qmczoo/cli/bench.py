"""``qmczoo bench``: ansätze side by side on equal terms."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from qmczoo.cli.app import (COORDINATOR, DISTRIBUTED, NUM_PROCESSES, PROCESS_ID, app,
                            _friendly, _join_distributed, _quiet_jax)
from qmczoo import defaults
from qmczoo.defaults import RUN_DEFAULTS


@app.command()
@_friendly
def bench(
    ansatz: Optional[List[str]] = typer.Option(None, "--ansatz", "-a", show_default=False,
                                               help="Ansatz variants, comma-separated: NAME[:KEY=VALUE...], e.g. "
                                                    "'ferminet,ferminet:determinants=1:jastrow=ee_cusp_jastrow'; "
                                                    "'all': every registered ansatz (default: all)."),
    system: Optional[List[str]] = typer.Option(None, "--system", "-s", show_default=False,
                                               help="Systems, comma-separated (names, xyz files, inline geometries) "
                                                    f"(default: {defaults.BENCH_SYSTEMS})."),
    suite: Optional[str] = typer.Option(None, "--suite", show_default=False,
                                        help="A named comparison: 'papers' (every ansatz on H2, Li, LiH, Be, "
                                             "beside each paper's published energy) or 'papers-large' (adds B "
                                             "and C); --ansatz/--system narrow it."),
    preset: Optional[str] = typer.Option(defaults.PRESET, "--preset", "-p", help="Preset of every ansatz."),
    steps: Optional[int] = typer.Option(None, "--steps",
                                        help=f"Steps per cell (default {RUN_DEFAULTS['steps']}; with --time-budget alone: no cap)."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget",
                                              help="Training wall time per cell: 90s, 10m, 1h30m, 600 (s)."),
    seeds: str = typer.Option(str(RUN_DEFAULTS["seed"]), "--seeds", help="Seeds, comma-separated: 0,1."),
    set_: List[str] = typer.Option([], "--set", help="Option override for every ansatz: key=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bench folder (required; re-run to continue)."),
    batch_size: int = typer.Option(RUN_DEFAULTS["batch_size"], "--batch-size", "-b", help="Walkers."),
    optimizer: str = typer.Option(RUN_DEFAULTS["optimizer"], "--optimizer", help="kfac, adam or sgd."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default per optimizer)."),
    pretrain_steps: int = typer.Option(RUN_DEFAULTS["pretrain_steps"], "--pretrain-steps", help="Hartree-Fock pretraining steps."),
    mcmc_steps: int = typer.Option(RUN_DEFAULTS["mcmc_steps"], "--mcmc-steps", help="Metropolis steps per optimisation step."),
    burn_in: int = typer.Option(RUN_DEFAULTS["burn_in"], "--burn-in", help="Metropolis steps before training."),
    laplacian: str = typer.Option(RUN_DEFAULTS["laplacian"], "--laplacian", help="folx, jvp or hessian."),
    dtype: str = typer.Option(RUN_DEFAULTS["dtype"], "--dtype", help="float32 or float64."),
    eval_steps: int = typer.Option(RUN_DEFAULTS["eval_steps"], "--eval-steps", help="Evaluation steps of every cell's final parameters."),
    checkpoint_every: int = typer.Option(RUN_DEFAULTS["checkpoint_every"], "--checkpoint-every"),
    hf_basis: str = typer.Option(defaults.BENCH_HF_BASIS, "--hf-basis",
                                 help="Basis of the UHF energy for the share of correlation energy ('none': skip)."),
    monitor_walkers: Optional[int] = typer.Option(None, "--monitor-walkers",
                                                  help="Walkers of the monitor chain (default: the trainer's)."),
    monitor_every: Optional[int] = typer.Option(None, "--monitor-every", help="Steps between monitor measurements."),
    states: int = typer.Option(RUN_DEFAULTS["states"], "--states",
                               help="Train this many lowest states in every cell (excited states)."),
    objective: str = typer.Option(RUN_DEFAULTS["objective"], "--objective", help="With --states: nes or penalty."),
    penalty: float = typer.Option(RUN_DEFAULTS["penalty"], "--penalty", help="The penalty method's weight (Ha)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed cells again from scratch."),
    devices: Optional[int] = typer.Option(None, "--devices", show_default=False,
                                          help="Devices each cell spreads its walkers over; the batch must divide "
                                               "by it (default: every device)."),
    shard: Optional[str] = typer.Option(None, "--shard", show_default=False,
                                        help="I/N: run only the cells k with k % N == I (cells counted from 0), "
                                             "so that N jobs (a job array) fill one bench folder together; "
                                             "the last to finish writes the whole table."),
    ray_tasks: Optional[int] = typer.Option(None, "--ray-tasks", show_default=False,
                                            help="Spread the cells over this many Ray tasks (shards), on a local "
                                                 "Ray instance or the cluster at RAY_ADDRESS (needs the ray extra)."),
    distributed: bool = DISTRIBUTED,
    coordinator: Optional[str] = COORDINATOR,
    num_processes: Optional[int] = NUM_PROCESSES,
    process_id: Optional[int] = PROCESS_ID,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Compare ansätze on equal terms: every (ansatz, system, seed) cell is pretrained, trained and
    evaluated with the same settings; writes results.csv/json/md and convergence.png to --out.

    Exit code 0 when every cell finished, 1 when a cell failed (it is in the table), 2 on bad input.
    """
    _quiet_jax()
    _join_distributed(distributed, coordinator, num_processes, process_id)
    import shlex
    import sys

    from qmczoo.errors import ConfigError
    from qmczoo.registry import parse_overrides

    if out is None:
        raise ConfigError("--out DIR is required (the bench folder; run the same command again to continue)")
    from qmczoo.runs.bench import parse_duration, run_bench
    from qmczoo.runs.bench.spec import parse_shard

    parse_duration(time_budget)  # a bad budget or shard fails before anything is imported or computed
    parse_shard(shard)
    if ray_tasks is not None and (shard is not None or distributed):
        raise ConfigError("--ray-tasks makes the shards itself: leave out --shard and --distributed")
    from qmczoo.runs.bench.spec import suite_defaults

    chosen = suite_defaults(suite)
    ansatz = list(ansatz) if ansatz else [chosen["ansatze"]]
    system = list(system) if system else [chosen["systems"]]
    try:
        if ray_tasks is not None:
            from qmczoo.runs.bench.ray_tasks import run_bench_on_ray

            run, options = run_bench_on_ray, {"tasks": ray_tasks}  # tasks: no display
        else:
            run, options = run_bench, {"progress": progress, "shard": shard}
        results = run(list(ansatz), list(system), out_dir=out, preset=preset, steps=steps,
                            time_budget=time_budget, seeds=seeds, sets=parse_overrides(set_), batch_size=batch_size,
                            pretrain_steps=pretrain_steps, eval_steps=eval_steps, optimizer=optimizer,
                            learning_rate=lr, mcmc_steps=mcmc_steps, burn_in=burn_in, laplacian=laplacian,
                            dtype=dtype, checkpoint_every=checkpoint_every,
                            hf_basis=None if hf_basis.lower() == "none" else hf_basis,
                            monitor_walkers=monitor_walkers, monitor_every=monitor_every, states=states,
                            objective=objective, penalty=penalty, retry_failed=retry_failed,
                            **options, devices=devices, command=("qmczoo bench " + shlex.join(sys.argv[2:]))
                            if sys.argv[1:2] == ["bench"] else None)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished cells and checkpoints are kept; run the same command again to continue",
                   err=True)
        raise typer.Exit(130)
    from rich.console import Console

    console = Console(width=max(160, Console().width))
    console.print(results.rich_table())
    console.print(results.rich_aggregated())
    typer.echo(f"written {out}/results.csv, results.json, results.md, convergence.png; cells in {out}/cells/")
    if results.meta.get("shard"):
        typer.echo(f"shard {results.meta['shard']}: the table holds the cells of every shard finished so far "
                   f"({results.meta.get('cells')})")
    if results.failed:
        typer.echo(f"{len(results.failed)} of {len(results.rows)} cells failed:", err=True)
        for line in results.failure_lines():
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)
