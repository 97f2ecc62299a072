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

from qmczoo.defaults import RUN_DEFAULTS

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
        except KeyboardInterrupt as exc:
            from qmczoo.runs import RunInterrupted

            if isinstance(exc, RunInterrupted) and exc.checkpointed:
                msg = (f"interrupted: progress so far is checkpointed; continue with "
                       f"qmczoo train --resume {exc.out_dir}")
            elif isinstance(exc, RunInterrupted):
                msg = (f"interrupted before the first checkpoint: nothing to continue from; "
                       f"qmczoo train --resume {exc.out_dir} starts the run again from the beginning")
            else:
                msg = "interrupted"
            typer.echo(msg, err=True)
            raise typer.Exit(130)

    return wrapper


def _quiet_jax():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)


@app.command("list")
@_friendly
def list_cmd(systems: bool = typer.Option(False, "--systems", help="Also list the named molecules."),
             layers_only: bool = typer.Option(False, "--layers", help="Only the layers, with slots, claims and options.")):
    """List the registered ansätze and layers (and, with --systems, named molecules)."""
    from rich.console import Console
    from rich.table import Table

    from qmczoo.registry import list_ansatze, list_layers

    console = Console()
    if not layers_only:
        t = Table(title="ansätze (qmczoo info NAME shows slots, options and presets)", title_justify="left")
        for col in ("name", "presets", "description", "paper"):
            t.add_column(col, no_wrap=col == "name")
        for name, e in sorted(list_ansatze().items()):
            t.add_row(name, ", ".join(e.get("presets") or {}), _one_line(e.get("description")),
                      _one_line(e.get("paper")))
        console.print(t)
    t = Table(title="layers (fill a slot with --set SLOT=NAME)", title_justify="left")
    columns = ("name", "slot", "description") + (("claims", "options", "paper") if layers_only else ())
    for col in columns:
        t.add_column(col, no_wrap=col in ("name", "slot"))
    for name, e in sorted(list_layers().items(), key=lambda kv: (kv[1].get("slot", ""), kv[0])):
        row = [name, e.get("slot", ""), _one_line(e.get("description"))]
        if layers_only:
            row += [_claims_text(e.get("claims")), _options_text(e.get("options")), _one_line(e.get("paper")) or "-"]
        t.add_row(*row)
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


def _one_line(text) -> str:
    return " ".join(str(text or "").split())


def _claims_text(claims) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in (claims or {}).items() if v) or "-"


def _options_text(options) -> str:
    import yaml

    return ", ".join(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                     for k, v in (options or {}).items()) or "-"


@app.command()
@_friendly
def info(name: str = typer.Argument(..., help="An ansatz, a layer or a named molecule.")):
    """Show what the registry knows about NAME: an ansatz's slots and fillers, options, presets
    and paper; a layer's slot, claims and options; a molecule's geometry and reference energy."""
    from qmczoo.errors import ConfigError
    from qmczoo.registry import entry, get_ansatz, list_ansatze

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
    factory = e.get("factory")
    factory = factory if isinstance(factory, str) else f"{factory.__module__}:{factory.__qualname__}"
    typer.echo(f"{name} ({'ansatz' if kind == 'ansatze' else 'layer'}): {_one_line(e.get('description'))}")
    if e.get("paper"):
        typer.echo(f"paper: {_one_line(e.get('paper'))}")
    typer.echo(f"factory: {factory}" + (" (a Haiku transform)" if e.get("framework") == "haiku" else ""))
    if e.get("plugin"):
        over = f"; overrides {e['overrides']}" if e.get("overrides") else ""
        typer.echo(f"from plug-in: {e['plugin']}{over}")
    if kind == "layers":
        users = [a for a, ae in sorted(list_ansatze().items()) if name in (ae.get("defaults") or {}).values()]
        typer.echo(f"slot: {e.get('slot')}")
        typer.echo(f"claims: {_claims_text(e.get('claims'))}")
        _echo_claims_when(e)
        typer.echo(f"options: {_options_text(e.get('options'))}")
        typer.echo(f"default filler in: {', '.join(users) or '-'}")
        return
    spec = get_ansatz(name)
    slots = e.get("slots") or {}
    if slots:
        typer.echo("slots (--set SLOT=LAYER; the filler's options as --set SLOT.KEY=VALUE):")
        for opt, slot_kind in slots.items():
            filler = spec.options[opt]
            own = {k.partition(".")[2]: v for k, v in spec.options.items() if k.startswith(opt + ".")}
            kind_text = "" if slot_kind == opt else f" ({slot_kind})"
            typer.echo(f"  {opt + kind_text:<26} {filler:<24} {_options_text(own) if own else ''}".rstrip())
    model = {k: v for k, v in spec.options.items() if "." not in k and k not in slots}
    typer.echo(f"options: {_options_text(model)}")
    typer.echo(f"claims: {_claims_text(e.get('claims'))}")
    _echo_claims_when(e)
    _echo_imposes(spec)
    if e.get("presets"):
        typer.echo("presets (--preset NAME):")
        for preset, values in e["presets"].items():
            typer.echo(f"  {preset}: {_options_text(values)}")


def _echo_claims_when(e: dict) -> None:
    for condition, extra in (e.get("claims_when") or {}).items():
        typer.echo(f"claims when {condition}: {_claims_text(extra)}")


def _echo_imposes(spec) -> None:
    """``imposes: ...`` (what psi is invariant under, derived from the fillers and claims) and a
    line for each kind of system on which it imposes more."""
    general = spec.imposes()
    typer.echo(f"imposes: {general.describe()}")
    labels = {"atom": "an atom", "linear": "a linear molecule", "planar": "a planar molecule"}
    for kind, label in labels.items():
        on_kind = spec.imposes(kind)
        if on_kind.consequences(kind) != general.consequences(kind):
            typer.echo(f"imposes on {label}: only {', '.join(on_kind.consequences(kind))} states")


def _echo_symmetry_warnings(system, spec, basis: str) -> None:
    """``warning: ...`` on stderr when the ansatz cannot represent the system's Hartree–Fock
    symmetry (:func:`qmczoo.symmetry.symmetry_warnings`)."""
    from qmczoo.symmetry import symmetry_warnings

    for line in symmetry_warnings(system, spec, basis=basis):
        typer.echo(f"warning: {line}", err=True)


def _default_out(system: str, ansatz: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() else "_" for c in system)[:24] or "system"
    return Path("runs") / f"{safe}-{ansatz}-{stamp}"


# the defaults of `qmczoo train`; the options default to None so that an explicit flag can be
# told apart from a default (needed to refuse flags that conflict with --resume / --config)
TRAIN_DEFAULTS = dict(system="LiH", ansatz="ferminet", preset="small", seed=0, charge=0, spin=None, unit=None,
                      lr=None, monitor_walkers=64, monitor_every=10, **RUN_DEFAULTS)
# CLI option -> TrainConfig field
_TRAIN_FIELDS = dict(steps="steps", seed="seed", batch_size="batch_size", optimizer="optimizer", lr="learning_rate",
                     pretrain_steps="pretrain_steps", mcmc_steps="mcmc_steps", burn_in="burn_in",
                     laplacian="laplacian", dtype="dtype", checkpoint_every="checkpoint_every",
                     monitor_walkers="monitor_walkers", monitor_every="monitor_every")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _capture_geometry_warnings(fn, *args, **kwargs):
    """Call ``fn``; print its GeometryWarnings as ``warning: ...`` lines on stderr."""
    import warnings

    from qmczoo.systems import GeometryWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GeometryWarning)
        result = fn(*args, **kwargs)
    for w in caught:
        if issubclass(w.category, GeometryWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _geometry_text(system, unit: str) -> str:
    atoms = ", ".join(f"{sym} ({x:.4f}, {y:.4f}, {z:.4f})" for sym, (x, y, z) in zip(system.symbols, system.coords))
    return f"geometry read in {unit}, in bohr: {atoms}"


def _conflicts(given: dict, stored_system, stored_spec, stored_config, allowed: tuple[str, ...]) -> list[str]:
    """``--flag value (stored: value)`` for every given option that differs from the stored run."""
    from qmczoo.registry import get_ansatz, parse_overrides
    from qmczoo.systems import get_system

    out = []
    system_keys = [k for k in ("system", "charge", "spin", "unit") if given.get(k) is not None]
    if system_keys:
        kw = {k: given[k] for k in ("charge", "spin", "unit") if given.get(k) is not None}
        spec = given.get("system") or stored_system
        try:
            same = get_system(spec, **kw) == stored_system
        except Exception:
            same = False
        if not same:
            out += [f"{_flag(k)} {given[k]}" for k in system_keys]
            out[-1] += f" (stored: {stored_system.name}, {stored_system.n_electrons} electrons, charge {stored_system.charge})"
    if given.get("ansatz") is not None and given["ansatz"] != stored_spec.name:
        out.append(f"--ansatz {given['ansatz']} (stored: {stored_spec.name})")
    if given.get("preset") is not None and given["preset"] != stored_spec.preset:
        out.append(f"--preset {given['preset']} (stored: {stored_spec.preset})")
    if given.get("set_"):
        overrides = parse_overrides(given["set_"])
        spec = get_ansatz(stored_spec.name, stored_spec.preset, **{**stored_spec.options, **overrides})
        for k, v in overrides.items():
            if spec.options[k] != stored_spec.options[k]:
                out.append(f"--set {k}={v} (stored: {stored_spec.options[k]})")
    for opt, field in _TRAIN_FIELDS.items():
        if opt in allowed or given.get(opt) is None:
            continue
        value, stored = given[opt], getattr(stored_config, field)
        if field == "learning_rate":
            stored = stored_config.lr
        if value != stored:
            out.append(f"{_flag(opt)} {value} (stored: {stored})")
    return out


@app.command()
@_friendly
def train(
    system: Optional[str] = typer.Option(None, "--system", "-s", show_default=False,
                                         help="Molecule name (qmczoo list --systems), xyz file, or inline "
                                              "'H 0 0 0; H 0 0 0.74' (default: LiH)."),
    ansatz: Optional[str] = typer.Option(None, "--ansatz", "-a", show_default=False,
                                         help="Registered ansatz (qmczoo list) (default: ferminet)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", show_default=False,
                                         help="Preset of the ansatz: tiny, small, paper (default: small)."),
    steps: Optional[int] = typer.Option(None, "--steps", show_default=False,
                                        help="Optimisation steps (with --resume: the new total) (default: 1200)."),
    seed: Optional[int] = typer.Option(None, "--seed", show_default=False, help="Random seed, 0 <= seed < 2**32 (default: 0)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Run folder, new or empty (default runs/SYSTEM-ANSATZ-TIME)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder."),
    config_file: Optional[Path] = typer.Option(None, "--config",
                                               help="Repeat a run: take system, ansatz and settings from its "
                                                    "config.yaml (or run folder) into a new --out."),
    charge: Optional[int] = typer.Option(None, "--charge", show_default=False, help="Total charge (default: 0)."),
    spin: Optional[int] = typer.Option(None, "--spin", help="n_up - n_down (default: lowest possible)."),
    unit: Optional[str] = typer.Option(None, "--unit", show_default=False,
                                       help="Unit of an xyz/inline geometry: angstrom (default, as in xyz files "
                                            "and pyscf) or bohr. Named molecules are in bohr."),
    set_: List[str] = typer.Option([], "--set", help="Override an ansatz option: key=value (repeatable)."),
    scan: Optional[str] = typer.Option(None, "--scan", show_default=False,
                                       help="Train on several geometries at once (--ansatz pesnet): NAME=START:STOP:COUNT "
                                            "of a coordinate, e.g. bond=0.8:4.0:17 (bohr; 'bond' for two atoms, "
                                            "'scale' for any molecule), or NAME=v1,v2,..."),
    geometries: Optional[Path] = typer.Option(None, "--geometries", show_default=False,
                                              help="Train on the geometries of a YAML or multi-frame xyz file "
                                                   "(--ansatz pesnet)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", show_default=False,
                                             help="Walkers (default: 256; over several geometries the total, "
                                                  "rounded up to a multiple of their number)."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", show_default=False, help="kfac, adam or sgd (default: kfac)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate, finite and > 0 (default per optimizer)."),
    pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", show_default=False,
                                                 help="Hartree-Fock pretraining steps (default: 500)."),
    mcmc_steps: Optional[int] = typer.Option(None, "--mcmc-steps", show_default=False,
                                             help="Metropolis steps per optimisation step (default: 10)."),
    burn_in: Optional[int] = typer.Option(None, "--burn-in", show_default=False,
                                          help="Metropolis steps before training (default: 100)."),
    laplacian: Optional[str] = typer.Option(None, "--laplacian", show_default=False, help="folx, jvp or hessian (default: folx)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", show_default=False, help="float32 or float64 (default: float32)."),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps", show_default=False,
                                             help="Evaluation steps after training: 0 (none) or >= 2 (default: 200)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", show_default=False,
                                                   help="Steps between checkpoints (default: 100)."),
    monitor_walkers: Optional[int] = typer.Option(None, "--monitor-walkers", show_default=False,
                                                  help="Walkers of the monitor chain, an honest energy while "
                                                       "training (0: off) (default: 64)."),
    monitor_every: Optional[int] = typer.Option(None, "--monitor-every", show_default=False,
                                                help="Steps between monitor-chain measurements (default: 10)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Train an ansatz on a molecule; writes config, log, checkpoints, plot and summary to a run folder.

    With --resume DIR the stored run continues (only --steps, --eval-steps and --progress may
    change; other options must match the stored run). With --config DIR/config.yaml --out NEW
    a stored run's settings start a new run (only --out, --steps, --eval-steps and --progress
    may change).
    """
    _quiet_jax()
    from qmczoo import runs
    from qmczoo.errors import ConfigError
    from qmczoo.registry import get_ansatz, parse_overrides
    from qmczoo.systems import read_system
    from qmczoo.train import TrainConfig

    given = dict(system=system, ansatz=ansatz, preset=preset, steps=steps, seed=seed, charge=charge, spin=spin,
                 unit=unit, set_=set_, batch_size=batch_size, optimizer=optimizer, lr=lr,
                 pretrain_steps=pretrain_steps, mcmc_steps=mcmc_steps, burn_in=burn_in, laplacian=laplacian,
                 dtype=dtype, checkpoint_every=checkpoint_every, monitor_walkers=monitor_walkers,
                 monitor_every=monitor_every)
    value = {k: (v if v is not None else TRAIN_DEFAULTS.get(k)) for k, v in given.items()}
    eval_steps = TRAIN_DEFAULTS["eval_steps"] if eval_steps is None else eval_steps
    runs._check_eval_steps(eval_steps)
    if resume is not None and config_file is not None:
        raise ConfigError("--resume and --config exclude each other: --resume continues a run, "
                          "--config starts a new one with a stored run's settings")
    if (resume is not None or config_file is not None) and (scan is not None or geometries is not None):
        raise ConfigError("--scan and --geometries start a new run: a resumed or repeated run keeps the "
                          "geometries stored in its config.yaml")
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise ConfigError(f"--out {out} conflicts with --resume {resume}: a resumed run stays in its folder")
        runs._check_out_dir(Path(resume), fresh=False)
        stored_system, stored_spec, stored = runs.load_run_config(resume)
        bad = _conflicts(given, stored_system, stored_spec, stored, allowed=("steps",))
        if bad:
            raise ConfigError(f"--resume {resume} continues the stored run; these options conflict with it: "
                              f"{'; '.join(bad)}. Drop them, or start a new run")
        total = steps if steps is not None else stored.steps
        TrainConfig(**{**stored.to_dict(), "steps": total})  # validate the new total
        unit_read = runs.read_config_file(resume).get("input_unit", "bohr")
        typer.echo(f"resuming {resume} | {stored_system.describe()} | {stored_spec.name} ({stored_spec.preset}) | "
                   f"{_geometry_text(stored_system, unit_read)} | up to step {total}")
        result = runs.train(out_dir=resume, resume=True, config=TrainConfig(steps=total),
                            progress=progress, eval_steps=eval_steps)
        _print_summary(result.summary, result.out_dir)
        return
    if config_file is not None:
        sys_obj, spec, stored = runs.load_run_config(config_file)
        scan_set = runs.load_run_geometries(config_file)
        bad = _conflicts(given, sys_obj, spec, stored, allowed=("steps",))
        if bad:
            raise ConfigError(f"--config {config_file} takes every setting from the stored run; these options "
                              f"conflict with it: {'; '.join(bad)}. Only --out, --steps, --eval-steps and "
                              "--progress may be given")
        config = TrainConfig(**{**stored.to_dict(), "steps": steps if steps is not None else stored.steps})
        unit_read = runs.read_config_file(config_file).get("input_unit", "bohr")
        if out is None:
            out = _default_out(sys_obj.name, spec.name)
        if runs._config_path(config_file).resolve().parent == Path(out).resolve():
            raise ConfigError(f"--out {out} is the stored run's own folder: choose a new folder "
                              "(or continue that run with --resume)")
    else:
        sys_obj, unit_read = _capture_geometry_warnings(read_system, value["system"], charge=value["charge"],
                                                        spin=value["spin"], unit=value["unit"])
        config = TrainConfig(steps=value["steps"], batch_size=value["batch_size"], optimizer=value["optimizer"],
                             learning_rate=value["lr"], mcmc_steps=value["mcmc_steps"], burn_in=value["burn_in"],
                             pretrain_steps=value["pretrain_steps"], laplacian=value["laplacian"],
                             dtype=value["dtype"], seed=value["seed"], checkpoint_every=value["checkpoint_every"],
                             monitor_walkers=value["monitor_walkers"], monitor_every=value["monitor_every"])
        spec = get_ansatz(value["ansatz"], value["preset"], **parse_overrides(set_))
        out = out or _default_out(sys_obj.name, spec.name)
    if config_file is None:
        scan_set = runs._geometry_set(sys_obj, scan, geometries, None)
        runs._check_geometries(spec, scan_set)
    runs._check_out_dir(Path(out), fresh=True)
    where = _geometry_text(sys_obj, unit_read)
    if scan_set is not None and scan_set.n_geometries > 1:
        where = f"{scan_set.n_geometries} geometries ({scan_set.labels[0]} ... {scan_set.labels[-1]})"
    typer.echo(f"{sys_obj.describe()} | {spec.name} ({spec.preset}) | {where} | run folder {out}")
    _echo_symmetry_warnings(sys_obj, spec, config.pretrain_basis)
    result = runs.train(sys_obj, spec, config, out, progress=progress, eval_steps=eval_steps, unit=unit_read,
                        geometries=scan_set)
    _print_summary(result.summary, result.out_dir)


def _print_summary(summary: dict, out: Optional[Path]):
    from qmczoo.statistics import format_value

    def finite(x):
        return x is not None and x == x and abs(x) != float("inf")

    if summary.get("energy_window_steps") and finite(summary.get("training_energy")):
        lines = [f"training energy (last {summary['energy_window_steps']} steps, optimistic early in training): "
                 f"{format_value(summary['training_energy'], summary['training_energy_error'])} Ha"]
    else:
        lines = ["no training steps: no training energy"]
    if finite(summary.get("monitor_energy")):
        lines.append(f"monitor-chain energy (same steps, walkers never used for an update): "
                     f"{format_value(summary['monitor_energy'], summary['monitor_energy_error'])} Ha")
    ev = summary.get("evaluation")
    if ev:
        lines.append(f"evaluated energy ({ev['steps']} steps x {ev['batch_size']} walkers): "
                     f"{format_value(ev['energy'], ev['energy_error'])} Ha, variance {ev['variance']:.4g}")
    if "reference_energy" in summary and finite(summary.get("error_vs_reference_mha")):
        lines.append(f"reference {summary['reference_energy']:.6f} Ha; {summary['energy_source']} energy "
                     f"differs by {summary['error_vs_reference_mha']:+.2f} mHa")
    sps = summary.get("seconds_per_step")
    timing = f"{sps:.3f} s/step" if finite(sps) else "no timing (fewer than 2 steps)"
    lines.append(f"{summary['steps']} steps, {timing}, {summary['rejected_steps']} rejected")
    if summary.get("pes"):
        lines.append(_pes_table(summary["pes"]))
    if out is not None:
        names = ("config.yaml", "train.csv", "train_geometries.csv", "checkpoint.msgpack", "energy.png", "summary.json",
                 "evaluation.json", "pes.csv", "pes.png")
        lines.append(f"files in {out}: " + " ".join(n for n in names if (Path(out) / n).exists()))
    typer.echo("\n".join(lines))


def _pes_table(rows: list) -> str:
    """A plain-text table of per-geometry results (rows of :func:`qmczoo.pes.pes_rows`)."""
    from qmczoo.statistics import format_value

    lines = [f"{'geometry':<14} {'E (Ha)':>16} {'E - exact (mHa)':>16}"]
    for r in rows:
        diff = "" if r["error_mha"] is None else f"{r['error_mha']:+.2f}"
        lines.append(f"{r['label']:<14} {format_value(r['energy'], r['energy_error']):>16} {diff:>16}")
    return "\n".join(lines)


@app.command()
@_friendly
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by qmczoo train."),
    steps: int = typer.Option(1000, "--steps", help="Measurement steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Walkers (default: as trained)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    scan: Optional[str] = typer.Option(None, "--scan", show_default=False,
                                       help="Evaluate a PES run at these geometries instead (as qmczoo train --scan)."),
    geometries: Optional[Path] = typer.Option(None, "--geometries", show_default=False,
                                              help="Evaluate a PES run at the geometries of this YAML/xyz file."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Evaluate a trained run's energy with a reblocked error bar; writes evaluation.json.

    A run trained on several geometries (--scan/--geometries) is evaluated at each of them
    (or at the geometries given here): E ± sigma per geometry in pes.csv, the curve in pes.png.
    """
    _quiet_jax()
    from qmczoo.runs import evaluate_run
    from qmczoo.statistics import format_value

    result = evaluate_run(run_dir, steps, batch_size=batch_size, seed=seed, progress=progress, scan=scan,
                          geometries=geometries)
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
    typer.echo(f"energy {format_value(result.energy, result.energy_error)} Ha "
               f"(± {result.energy_error:.2g}, block {result.block_size}{'' if result.converged else ', not converged'}), "
               f"variance {result.variance:.4g}, acceptance {result.acceptance:.2f}")
    typer.echo(f"written {Path(run_dir) / 'evaluation.json'}")


@app.command()
@_friendly
def bench(
    ansatz: List[str] = typer.Option(["all"], "--ansatz", "-a",
                                     help="Ansatz variants, comma-separated: NAME[:KEY=VALUE...], e.g. "
                                          "'ferminet,ferminet:determinants=1:jastrow=ee_cusp_jastrow'; 'all': every "
                                          "registered ansatz."),
    system: List[str] = typer.Option(["H2,LiH,Be"], "--system", "-s",
                                     help="Systems, comma-separated (names, xyz files, inline geometries)."),
    preset: Optional[str] = typer.Option("small", "--preset", "-p", help="Preset of every ansatz."),
    steps: Optional[int] = typer.Option(None, "--steps",
                                        help="Steps per cell (default 1200; with --time-budget alone: no cap)."),
    time_budget: Optional[str] = typer.Option(None, "--time-budget",
                                              help="Training wall time per cell: 90s, 10m, 1h30m, 600 (s)."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds, comma-separated: 0,1."),
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
    hf_basis: str = typer.Option("cc-pv5z", "--hf-basis",
                                 help="Basis of the UHF energy for the share of correlation energy ('none': skip)."),
    monitor_walkers: Optional[int] = typer.Option(None, "--monitor-walkers",
                                                  help="Walkers of the monitor chain (default: the trainer's)."),
    monitor_every: Optional[int] = typer.Option(None, "--monitor-every", help="Steps between monitor measurements."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed cells again from scratch."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Compare ansätze on equal terms: every (ansatz, system, seed) cell is pretrained, trained and
    evaluated with the same settings; writes results.csv/json/md and convergence.png to --out.

    Exit code 0 when every cell finished, 1 when a cell failed (it is in the table), 2 on bad input.
    """
    _quiet_jax()
    import shlex
    import sys

    from qmczoo.errors import ConfigError
    from qmczoo.registry import parse_overrides

    if out is None:
        raise ConfigError("--out DIR is required (the bench folder; run the same command again to continue)")
    from qmczoo.bench import parse_duration, run_bench

    parse_duration(time_budget)  # a bad budget fails before anything is imported or computed
    try:
        results = run_bench(list(ansatz), list(system), out_dir=out, preset=preset, steps=steps,
                            time_budget=time_budget, seeds=seeds, sets=parse_overrides(set_), batch_size=batch_size,
                            pretrain_steps=pretrain_steps, eval_steps=eval_steps, optimizer=optimizer,
                            learning_rate=lr, mcmc_steps=mcmc_steps, burn_in=burn_in, laplacian=laplacian,
                            dtype=dtype, checkpoint_every=checkpoint_every,
                            hf_basis=None if hf_basis.lower() == "none" else hf_basis,
                            monitor_walkers=monitor_walkers, monitor_every=monitor_every, retry_failed=retry_failed,
                            progress=progress, command=("qmczoo bench " + shlex.join(sys.argv[2:]))
                            if sys.argv[1:2] == ["bench"] else None)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished cells and checkpoints are kept; run the same command again to continue",
                   err=True)
        raise typer.Exit(130)
    from rich.console import Console

    Console(width=max(160, Console().width)).print(results.rich_table())
    typer.echo(f"written {out}/results.csv, results.json, results.md, convergence.png; cells in {out}/cells/")
    if results.failed:
        typer.echo(f"{len(results.failed)} of {len(results.rows)} cells failed:", err=True)
        for line in results.failure_lines():
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)


def main():
    app()


if __name__ == "__main__":
    main()
