"""The ``qmczoo`` command line: a thin layer over :mod:`qmczoo.runs` and the registry.

Bad input (unknown molecule, ansatz or option, impossible spin...) is printed as one line
``error: ...`` on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import datetime
import functools
import os
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="qmczoo: neural-network wavefunctions for variational quantum Monte Carlo.")


def _friendly(fn):
    """Turn qmczoo's input errors into one-line messages and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from qmczoo.errors import QmczooError

        try:
            return fn(*args, **kwargs)
        except QmczooError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            typer.echo("interrupted: progress so far is checkpointed; continue with qmczoo train --resume DIR", err=True)
            raise typer.Exit(130)

    return wrapper


def _quiet_jax():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)


@app.command("list")
@_friendly
def list_cmd(systems: bool = typer.Option(False, "--systems", help="Also list the named molecules.")):
    """List the registered ansätze and layers (and, with --systems, named molecules)."""
    from rich.console import Console
    from rich.table import Table

    from qmczoo.registry import list_ansatze, list_layers

    console = Console()
    t = Table(title="ansätze", title_justify="left")
    for col in ("name", "presets", "description"):
        t.add_column(col)
    for name, e in sorted(list_ansatze().items()):
        t.add_row(name, ", ".join(e.get("presets") or {}), " ".join(str(e.get("description", "")).split()))
    console.print(t)
    t = Table(title="layers", title_justify="left")
    for col in ("name", "slot", "description"):
        t.add_column(col)
    for name, e in sorted(list_layers().items()):
        t.add_row(name, e.get("slot", ""), " ".join(str(e.get("description", "")).split()))
    console.print(t)
    if systems:
        from qmczoo.systems import get_system, molecule_names

        t = Table(title="named molecules (--system NAME)", title_justify="left")
        for col in ("name", "electrons", "reference energy (Ha)"):
            t.add_column(col)
        for name in molecule_names():
            s = get_system(name)
            ref = f"{s.reference_energy:.6f}" if s.reference_energy is not None else "-"
            t.add_row(name, f"{s.n_electrons} ({s.n_up}↑ {s.n_down}↓)", ref)
        console.print(t)


@app.command()
@_friendly
def info(name: str = typer.Argument(..., help="An ansatz, a layer or a named molecule.")):
    """Show what the registry knows about NAME: factory, paper, defaults and presets."""
    import yaml

    from qmczoo.errors import ConfigError
    from qmczoo.registry import entry

    try:
        kind, e = entry(name)
    except ConfigError:
        from qmczoo.errors import SystemSpecError
        from qmczoo.systems import get_system

        try:
            s = get_system(name)
        except SystemSpecError:
            raise
        typer.echo(s.describe())
        for sym, xyz in zip(s.symbols, s.coords):
            typer.echo(f"  {sym:<2} {xyz[0]:>12.6f} {xyz[1]:>12.6f} {xyz[2]:>12.6f}  (bohr)")
        if s.reference_energy is not None:
            typer.echo(f"reference energy: {s.reference_energy} Ha ({s.reference_source})")
        return
    shown = {k: (v if not callable(v) else f"{v.__module__}:{v.__qualname__}") for k, v in e.items()}
    typer.echo(f"{name} ({'ansatz' if kind == 'ansatze' else 'layer'})")
    typer.echo(yaml.safe_dump(shown, sort_keys=False, width=100).rstrip())


def _default_out(system: str, ansatz: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() else "_" for c in system)[:24] or "system"
    return Path("runs") / f"{safe}-{ansatz}-{stamp}"


@app.command()
@_friendly
def train(
    system: str = typer.Option("LiH", "--system", "-s",
                               help="Molecule name (qmczoo list --systems), xyz file, or inline 'H 0 0 0; H 0 0 1.4'."),
    ansatz: str = typer.Option("ferminet", "--ansatz", "-a", help="Registered ansatz (qmczoo list)."),
    preset: Optional[str] = typer.Option("small", "--preset", "-p", help="Preset of the ansatz: tiny, small, paper."),
    steps: int = typer.Option(2000, "--steps", help="Optimisation steps (with --resume: the new total)."),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/SYSTEM-ANSATZ-TIME)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder."),
    charge: int = typer.Option(0, "--charge", help="Total charge."),
    spin: Optional[int] = typer.Option(None, "--spin", help="n_up - n_down (default: lowest possible)."),
    unit: str = typer.Option("bohr", "--unit", help="Unit of an xyz/inline geometry: bohr or angstrom."),
    set_: List[str] = typer.Option([], "--set", help="Override an ansatz option: key=value (repeatable)."),
    batch_size: int = typer.Option(256, "--batch-size", "-b", help="Walkers."),
    optimizer: str = typer.Option("kfac", "--optimizer", help="kfac, adam or sgd."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default per optimizer)."),
    pretrain_steps: int = typer.Option(500, "--pretrain-steps", help="Hartree-Fock pretraining steps."),
    mcmc_steps: int = typer.Option(10, "--mcmc-steps", help="Metropolis steps per optimisation step."),
    burn_in: int = typer.Option(100, "--burn-in", help="Metropolis steps before training."),
    laplacian: str = typer.Option("folx", "--laplacian", help="folx, jvp or hessian."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
    eval_steps: int = typer.Option(200, "--eval-steps", help="Evaluation steps after training (0: none)."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every"),
    monitor_walkers: int = typer.Option(64, "--monitor-walkers",
                                        help="Walkers of the monitor chain, an honest energy while training (0: off)."),
    monitor_every: int = typer.Option(5, "--monitor-every", help="Steps between monitor-chain measurements."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Train an ansatz on a molecule; writes config, log, checkpoints, plot and summary to a run folder."""
    _quiet_jax()
    from qmczoo import runs
    from qmczoo.registry import get_ansatz, parse_overrides
    from qmczoo.systems import get_system
    from qmczoo.train import TrainConfig

    if resume is not None:
        result = runs.train(out_dir=resume, resume=True, config=TrainConfig(steps=steps),
                            progress=progress, eval_steps=eval_steps)
    else:
        sys_obj = get_system(system, charge=charge, spin=spin, unit=unit)
        config = TrainConfig(steps=steps, batch_size=batch_size, optimizer=optimizer, learning_rate=lr,
                             mcmc_steps=mcmc_steps, burn_in=burn_in, pretrain_steps=pretrain_steps,
                             laplacian=laplacian, dtype=dtype, seed=seed, checkpoint_every=checkpoint_every,
                             monitor_walkers=monitor_walkers, monitor_every=monitor_every)
        spec = get_ansatz(ansatz, preset, **parse_overrides(set_))
        out = out or _default_out(sys_obj.name, ansatz)
        typer.echo(f"{sys_obj.describe()} | {ansatz} ({preset}) | run folder {out}")
        result = runs.train(sys_obj, spec, config, out, progress=progress, eval_steps=eval_steps)
    _print_summary(result.summary, result.out_dir)


def _print_summary(summary: dict, out: Optional[Path]):
    from qmczoo.statistics import format_value

    lines = [f"training energy (last {summary['energy_window_steps']} steps, optimistic early in training): "
             f"{format_value(summary['training_energy'], summary['training_energy_error'])} Ha"]
    if "monitor_energy" in summary:
        lines.append(f"monitor-chain energy (same steps, walkers never used for an update): "
                     f"{format_value(summary['monitor_energy'], summary['monitor_energy_error'])} Ha")
    ev = summary.get("evaluation")
    if ev:
        lines.append(f"evaluated energy ({ev['steps']} steps x {ev['batch_size']} walkers): "
                     f"{format_value(ev['energy'], ev['energy_error'])} Ha, variance {ev['variance']:.4g}")
    if "reference_energy" in summary:
        lines.append(f"reference {summary['reference_energy']:.6f} Ha; {summary['energy_source']} energy "
                     f"differs by {summary['error_vs_reference_mha']:+.2f} mHa")
    lines.append(f"{summary['steps']} steps, {summary['seconds_per_step']:.3f} s/step, "
                 f"{summary['rejected_steps']} rejected")
    if out is not None:
        lines.append(f"files in {out}: config.yaml train.csv checkpoint.msgpack energy.png summary.json"
                     + (" evaluation.json" if ev else ""))
    typer.echo("\n".join(lines))


@app.command()
@_friendly
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by qmczoo train."),
    steps: int = typer.Option(1000, "--steps", help="Measurement steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Walkers (default: as trained)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Evaluate a trained run's energy with a reblocked error bar; writes evaluation.json."""
    _quiet_jax()
    from qmczoo.runs import evaluate_run
    from qmczoo.statistics import format_value

    result = evaluate_run(run_dir, steps, batch_size=batch_size, seed=seed, progress=progress)
    typer.echo(f"energy {format_value(result.energy, result.energy_error)} Ha "
               f"(± {result.energy_error:.2g}, block {result.block_size}{'' if result.converged else ', not converged'}), "
               f"variance {result.variance:.4g}, acceptance {result.acceptance:.2f}")
    typer.echo(f"written {Path(run_dir) / 'evaluation.json'}")


def main():
    app()


if __name__ == "__main__":
    main()
