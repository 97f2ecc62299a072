"""``qmczoo evaluate``: the energy of a trained run with a reblocked error bar."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qmczoo import defaults

from qmczoo.cli.app import (COORDINATOR, DISTRIBUTED, NUM_PROCESSES, PROCESS_ID, app,
                            _friendly, _join_distributed, _quiet_jax)
from qmczoo.cli.train import _pes_table


@app.command()
@_friendly
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by qmczoo train."),
    steps: int = typer.Option(defaults.EVALUATE_STEPS, "--steps", help="Measurement steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Walkers (default: as trained)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    scan: Optional[str] = typer.Option(None, "--scan", show_default=False,
                                       help="Evaluate a PES run at these geometries instead (as qmczoo train --scan)."),
    geometries: Optional[Path] = typer.Option(None, "--geometries", show_default=False,
                                              help="Evaluate a PES run at the geometries of this YAML/xyz file."),
    devices: Optional[int] = typer.Option(None, "--devices", show_default=False,
                                          help="Spread the walkers over this many devices; the walkers must divide "
                                               "by it (default: every device)."),
    distributed: bool = DISTRIBUTED,
    coordinator: Optional[str] = COORDINATOR,
    num_processes: Optional[int] = NUM_PROCESSES,
    process_id: Optional[int] = PROCESS_ID,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Evaluate a trained run's energy with a reblocked error bar; writes evaluation.json.

    A run trained on several geometries (--scan/--geometries) is evaluated at each of them
    (or at the geometries given here): E ± sigma per geometry in pes.csv, the curve in pes.png.
    A run of several states (--states) prints each state's E ± sigma, the excitation energies,
    <S^2> and the overlaps of the states; states.csv and states.png.
    """
    _quiet_jax()
    _join_distributed(distributed, coordinator, num_processes, process_id)
    from qmczoo.engine.statistics import format_value
    from qmczoo.runs import evaluate_run

    result = evaluate_run(run_dir, steps, batch_size=batch_size, seed=seed, progress=progress, scan=scan,
                          geometries=geometries, devices=devices)
    if result.geometries:
        import json

        record = json.loads((Path(run_dir) / "evaluation.json").read_text())
        typer.echo(_pes_table(record["pes"]))
        if record.get("max_abs_error_mha") is not None:
            typer.echo(f"max |E - exact| {record['max_abs_error_mha']:.2f} mHa, mean {record['mean_abs_error_mha']:.2f} "
                       f"mHa over {record['geometries_with_reference']} geometries with a reference")
        typer.echo(f"written {Path(run_dir) / 'evaluation.json'}, {Path(run_dir) / 'pes.csv'}, "
                   f"{Path(run_dir) / 'pes.png'}")
        return
    if getattr(result, "states", None):
        import json

        from qmczoo.runs.states import states_table

        record = json.loads((Path(run_dir) / "evaluation.json").read_text())
        typer.echo(states_table(record))
        typer.echo(f"written {Path(run_dir) / 'evaluation.json'}, {Path(run_dir) / 'states.csv'}, "
                   f"{Path(run_dir) / 'states.png'}")
        return
    typer.echo(f"energy {format_value(result.energy, result.energy_error)} Ha "
               f"(± {result.energy_error:.2g}, block {result.block_size}{'' if result.converged else ', not converged'}), "
               f"variance {result.variance:.4g}, acceptance {result.acceptance:.2f}")
    typer.echo(f"written {Path(run_dir) / 'evaluation.json'}")
