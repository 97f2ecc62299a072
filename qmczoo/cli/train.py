"""``qmczoo train``: a new run, a resumed one (``--resume``) or a repeated one (``--config``)."""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from qmczoo.cli.app import (COORDINATOR, DISTRIBUTED, NUM_PROCESSES, PROCESS_ID, app,
                            _capture_geometry_warnings, _friendly, _join_distributed, _quiet_jax)
from qmczoo import defaults
from qmczoo.defaults import RUN_DEFAULTS, shown


def _default_out(system: str, ansatz: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() else "_" for c in system)[:24] or "system"
    return Path("runs") / f"{safe}-{ansatz}-{stamp}"


# the defaults of `qmczoo train`; the options default to None so that an explicit flag can be
# told apart from a default (needed to refuse flags that conflict with --resume / --config)
TRAIN_DEFAULTS = dict(system=defaults.SYSTEM, ansatz=defaults.ANSATZ, preset=defaults.PRESET, charge=0, spin=None,
                      unit=None, ecp=None, ecp_atoms=None, lr=None, **RUN_DEFAULTS)
# CLI option -> TrainConfig field
_TRAIN_FIELDS = dict(steps="steps", seed="seed", batch_size="batch_size", optimizer="optimizer", lr="learning_rate",
                     pretrain_steps="pretrain_steps", mcmc_steps="mcmc_steps", burn_in="burn_in",
                     laplacian="laplacian", dtype="dtype", checkpoint_every="checkpoint_every",
                     monitor_walkers="monitor_walkers", monitor_every="monitor_every", states="states",
                     objective="objective", penalty="penalty")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _geometry_text(system, unit: str) -> str:
    atoms = ", ".join(f"{sym} ({x:.4f}, {y:.4f}, {z:.4f})" for sym, (x, y, z) in zip(system.symbols, system.coords))
    return f"geometry read in {unit}, in bohr: {atoms}"


def _conflicts(given: dict, stored_system, stored_spec, stored_config, allowed: tuple[str, ...]) -> list[str]:
    """``--flag value (stored: value)`` for every given option that differs from the stored run."""
    from qmczoo.chemistry.systems import get_system
    from qmczoo.registry import get_ansatz, parse_overrides

    out = []
    system_keys = [k for k in ("system", "charge", "spin", "unit", "ecp", "ecp_atoms") if given.get(k) is not None]
    if system_keys:
        kw = {k: given[k] for k in ("charge", "spin", "unit", "ecp", "ecp_atoms") if given.get(k) is not None}
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
                                              f"'H 0 0 0; H 0 0 0.74' (default: {defaults.SYSTEM})."),
    ansatz: Optional[str] = typer.Option(None, "--ansatz", "-a", show_default=False,
                                         help=f"Registered ansatz (qmczoo list) (default: {defaults.ANSATZ})."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", show_default=False,
                                         help=f"Preset of the ansatz: tiny, small, paper (default: {defaults.PRESET})."),
    steps: Optional[int] = typer.Option(None, "--steps", show_default=False,
                                        help=f"Optimisation steps (with --resume: the new total) {shown('steps')}."),
    seed: Optional[int] = typer.Option(None, "--seed", show_default=False, help=f"Random seed, 0 <= seed < 2**32 {shown('seed')}."),
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
    ecp: Optional[str] = typer.Option(None, "--ecp", show_default=False,
                                      help="Effective core potential: a pyscf name (ccecp, bfd, ...) or a file in "
                                           "pyscf's ECP format; valence electrons only (default: all-electron)."),
    ecp_atoms: Optional[str] = typer.Option(None, "--ecp-atoms", show_default=False,
                                            help="Elements that get the ECP, e.g. Si,C (default: every atom it "
                                                 "covers that has core electrons)."),
    set_: List[str] = typer.Option([], "--set", help="Override an ansatz option: key=value (repeatable)."),
    scan: Optional[str] = typer.Option(None, "--scan", show_default=False,
                                       help="Train on several geometries at once (--ansatz pesnet): NAME=START:STOP:COUNT "
                                            "of a coordinate, e.g. bond=0.8:4.0:17 (bohr; 'bond' for two atoms, "
                                            "'scale' for any molecule), or NAME=v1,v2,..."),
    geometries: Optional[Path] = typer.Option(None, "--geometries", show_default=False,
                                              help="Train on the geometries of a YAML or multi-frame xyz file "
                                                   "(--ansatz pesnet)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", show_default=False,
                                             help=f"Walkers {shown('batch_size')}; over several geometries the total, "
                                                  "rounded up to a multiple of their number."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", show_default=False, help=f"kfac, adam or sgd {shown('optimizer')}."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate, finite and > 0 (default per optimizer)."),
    pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", show_default=False,
                                                 help=f"Hartree-Fock pretraining steps {shown('pretrain_steps')}."),
    mcmc_steps: Optional[int] = typer.Option(None, "--mcmc-steps", show_default=False,
                                             help=f"Metropolis steps per optimisation step {shown('mcmc_steps')}."),
    burn_in: Optional[int] = typer.Option(None, "--burn-in", show_default=False,
                                          help=f"Metropolis steps before training {shown('burn_in')}."),
    laplacian: Optional[str] = typer.Option(None, "--laplacian", show_default=False, help=f"folx, jvp or hessian {shown('laplacian')}."),
    dtype: Optional[str] = typer.Option(None, "--dtype", show_default=False, help=f"float32 or float64 {shown('dtype')}."),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps", show_default=False,
                                             help=f"Evaluation steps after training: 0 (none) or >= 2 {shown('eval_steps')}."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", show_default=False,
                                                   help=f"Steps between checkpoints {shown('checkpoint_every')}."),
    monitor_walkers: Optional[int] = typer.Option(None, "--monitor-walkers", show_default=False,
                                                  help="Walkers of the monitor chain, an honest energy while "
                                                       f"training (0: off) {shown('monitor_walkers')}."),
    monitor_every: Optional[int] = typer.Option(None, "--monitor-every", show_default=False,
                                                help=f"Steps between monitor-chain measurements {shown('monitor_every')}."),
    states: Optional[int] = typer.Option(None, "--states", show_default=False,
                                         help="Train this many lowest states at once (excited states; each a copy "
                                              f"of the ansatz's parameters) {shown('states')}."),
    objective: Optional[str] = typer.Option(None, "--objective", show_default=False,
                                            help="With --states: nes (NES-VMC, sampling det[psi_i(x^j)]) or penalty "
                                                 f"(the overlap penalty method) {shown('objective')}."),
    penalty: Optional[float] = typer.Option(None, "--penalty", show_default=False,
                                            help=f"The penalty method's weight alpha, Ha {shown('penalty')}."),
    devices: Optional[int] = typer.Option(None, "--devices", show_default=False,
                                          help="Spread the walkers over this many devices (GPUs, or CPU devices "
                                               "with JAX_NUM_CPU_DEVICES); the batch must divide by it "
                                               "(default: every device; 1: one device). Not a setting of the run: "
                                               "a run resumes on any number."),
    distributed: bool = DISTRIBUTED,
    coordinator: Optional[str] = COORDINATOR,
    num_processes: Optional[int] = NUM_PROCESSES,
    process_id: Optional[int] = PROCESS_ID,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Train an ansatz on a molecule; writes config, log, checkpoints, plot and summary to a run folder.

    With --resume DIR the stored run continues (only --steps, --eval-steps and --progress may
    change; other options must match the stored run). With --config DIR/config.yaml --out NEW
    a stored run's settings start a new run (only --out, --steps, --eval-steps and --progress
    may change).
    """
    _quiet_jax()
    _join_distributed(distributed, coordinator, num_processes, process_id)
    from qmczoo import runs
    from qmczoo.runs.checks import (check_devices, check_eval_steps, check_serves_geometries, check_states,
                                    resolve_geometries, with_pretrain_basis)
    from qmczoo.runs.folder import check_out_dir
    from qmczoo.runs.resume import ResumeWarning, check_resume
    from qmczoo.runs.run_config import config_path, load_run_geometries
    from qmczoo.chemistry.systems import read_system
    from qmczoo.engine.config import TrainConfig
    from qmczoo.errors import ConfigError
    from qmczoo.registry import get_ansatz, parse_overrides

    given = dict(system=system, ansatz=ansatz, preset=preset, steps=steps, seed=seed, charge=charge, spin=spin,
                 unit=unit, ecp=ecp, ecp_atoms=ecp_atoms, set_=set_, batch_size=batch_size, optimizer=optimizer, lr=lr,
                 pretrain_steps=pretrain_steps, mcmc_steps=mcmc_steps, burn_in=burn_in, laplacian=laplacian,
                 dtype=dtype, checkpoint_every=checkpoint_every, monitor_walkers=monitor_walkers,
                 monitor_every=monitor_every, states=states, objective=objective, penalty=penalty)
    value = {k: (v if v is not None else TRAIN_DEFAULTS.get(k)) for k, v in given.items()}
    if resume is None and config_file is None:
        if value["states"] == 1 and (objective is not None or penalty is not None):
            raise ConfigError("--objective and --penalty choose how several states are trained: give --states K "
                              "(K >= 2) too")
        if penalty is not None and value["objective"] != "penalty":
            raise ConfigError("--penalty is the weight of --objective penalty; NES-VMC (the default) has none")
    eval_steps = TRAIN_DEFAULTS["eval_steps"] if eval_steps is None else eval_steps
    check_eval_steps(eval_steps)
    if resume is not None and config_file is not None:
        raise ConfigError("--resume and --config exclude each other: --resume continues a run, "
                          "--config starts a new one with a stored run's settings")
    if (resume is not None or config_file is not None) and (scan is not None or geometries is not None):
        raise ConfigError("--scan and --geometries start a new run: a resumed or repeated run keeps the "
                          "geometries stored in its config.yaml")
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise ConfigError(f"--out {out} conflicts with --resume {resume}: a resumed run stays in its folder")
        check_out_dir(Path(resume), fresh=False)
        stored_system, stored_spec, stored = runs.load_run_config(resume)
        bad = _conflicts(given, stored_system, stored_spec, stored, allowed=("steps",))
        if bad:
            raise ConfigError(f"--resume {resume} continues the stored run; these options conflict with it: "
                              f"{'; '.join(bad)}. Drop them, or start a new run")
        total = steps if steps is not None else stored.steps
        TrainConfig(**{**stored.to_dict(), "steps": total})  # validate the new total
        stored_set = load_run_geometries(resume)
        check_devices(stored, devices, 1 if stored_set is None else stored_set.n_geometries)
        check_resume(Path(resume), total)  # refuses what would overwrite results; warns of what it repairs
        unit_read = runs.read_config_file(resume).get("input_unit", "bohr")
        typer.echo(f"resuming {resume} | {stored_system.describe()} | {stored_spec.name} ({stored_spec.preset}) | "
                   f"{_geometry_text(stored_system, unit_read)} | up to step {total}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResumeWarning)  # said above already
            result = runs.train(out_dir=resume, resume=True, config=TrainConfig(steps=total),
                                progress=progress, eval_steps=eval_steps, devices=devices)
        _print_summary(result.summary, result.out_dir)
        return
    if config_file is not None:
        sys_obj, spec, stored = runs.load_run_config(config_file)
        scan_set = load_run_geometries(config_file)
        bad = _conflicts(given, sys_obj, spec, stored, allowed=("steps",))
        if bad:
            raise ConfigError(f"--config {config_file} takes every setting from the stored run; these options "
                              f"conflict with it: {'; '.join(bad)}. Only --out, --steps, --eval-steps and "
                              "--progress may be given")
        config = TrainConfig(**{**stored.to_dict(), "steps": steps if steps is not None else stored.steps})
        unit_read = runs.read_config_file(config_file).get("input_unit", "bohr")
        if out is None:
            out = _default_out(sys_obj.name, spec.name)
        if config_path(config_file).resolve().parent == Path(out).resolve():
            raise ConfigError(f"--out {out} is the stored run's own folder: choose a new folder "
                              "(or continue that run with --resume)")
    else:
        sys_obj, unit_read = _capture_geometry_warnings(read_system, value["system"], charge=value["charge"],
                                                        spin=value["spin"], unit=value["unit"], ecp=value["ecp"],
                                                        ecp_atoms=value["ecp_atoms"])
        config = TrainConfig(steps=value["steps"], batch_size=value["batch_size"], optimizer=value["optimizer"],
                             learning_rate=value["lr"], mcmc_steps=value["mcmc_steps"], burn_in=value["burn_in"],
                             pretrain_steps=value["pretrain_steps"], laplacian=value["laplacian"],
                             dtype=value["dtype"], seed=value["seed"], checkpoint_every=value["checkpoint_every"],
                             monitor_walkers=value["monitor_walkers"], monitor_every=value["monitor_every"],
                             states=value["states"], objective=value["objective"], penalty=value["penalty"])
        spec = get_ansatz(value["ansatz"], value["preset"], **parse_overrides(set_))
        out = out or _default_out(sys_obj.name, spec.name)
    if config_file is None:
        scan_set = resolve_geometries(sys_obj, scan, geometries, None)
        check_serves_geometries(spec, scan_set)
        check_states(sys_obj, config, scan_set, spec)
    check_devices(config, devices, 1 if scan_set is None else scan_set.n_geometries)
    check_out_dir(Path(out), fresh=True)
    where = _geometry_text(sys_obj, unit_read)
    if scan_set is not None and scan_set.n_geometries > 1:
        where = f"{scan_set.n_geometries} geometries ({scan_set.labels[0]} ... {scan_set.labels[-1]})"
    typer.echo(f"{sys_obj.describe()} | {spec.name} ({spec.preset}) | {where} | run folder {out}")
    _echo_symmetry_warnings(sys_obj, spec, with_pretrain_basis(config, spec).pretrain_basis)
    result = runs.train(sys_obj, spec, config, out, progress=progress, eval_steps=eval_steps, unit=unit_read,
                        geometries=scan_set, devices=devices)
    _print_summary(result.summary, result.out_dir)


def _print_summary(summary: dict, out: Optional[Path]):
    from qmczoo.engine.statistics import format_value

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
    memory = summary.get("peak_memory_mib")
    if memory:
        where = (f"{memory['device']:,.0f} MiB on the devices" if memory.get("device") is not None
                 else f"{memory['host']:,.0f} MiB resident, the whole process")
        timing += f", peak memory {where} (at most {memory['per_walker']:.2f} MiB per walker)"
    lines.append(f"{summary['steps']} steps, {timing}, {summary['rejected_steps']} rejected")
    if summary.get("pes"):
        lines.append(_pes_table(summary["pes"]))
    if summary.get("states"):
        from qmczoo.runs.states import states_table

        lines.append(states_table(summary["states"]))
    if out is not None:
        names = ("config.yaml", "train.csv", "train_geometries.csv", "checkpoint.msgpack", "energy.png", "summary.json",
                 "evaluation.json", "pes.csv", "pes.png", "train_states.csv", "states.csv", "states.png")
        lines.append(f"files in {out}: " + " ".join(n for n in names if (Path(out) / n).exists()))
    typer.echo("\n".join(lines))


def _pes_table(rows: list) -> str:
    """A plain-text table of per-geometry results (rows of :func:`qmczoo.runs.pes.pes_rows`)."""
    from qmczoo.engine.statistics import format_value

    lines = [f"{'geometry':<14} {'E (Ha)':>16} {'E - exact (mHa)':>16}"]
    for r in rows:
        diff = "" if r["error_mha"] is None else f"{r['error_mha']:+.2f}"
        lines.append(f"{r['label']:<14} {format_value(r['energy'], r['energy_error']):>16} {diff:>16}")
    return "\n".join(lines)


def _echo_symmetry_warnings(system, spec, basis: str) -> None:
    """``warning: ...`` on stderr when the ansatz cannot represent the system's Hartree–Fock
    symmetry (:func:`qmczoo.registry.state_check.symmetry_warnings`)."""
    from qmczoo.registry.state_check import symmetry_warnings

    for line in symmetry_warnings(system, spec, basis=basis):
        typer.echo(f"warning: {line}", err=True)
