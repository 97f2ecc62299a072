"""Evaluating a trained run folder: fixed-parameter sampling of its checkpoint, ``evaluation.json``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qmczoo import defaults
from qmczoo.engine.states import make_vmc
from qmczoo.engine.vmc import EVALUATION_KEY_TAG, walkers_per_geometry
from qmczoo.errors import ConfigError
from qmczoo.runs import checkpoint
from qmczoo.runs.checks import (check_devices, check_resources, check_serves_geometries, out_of_memory,
                                resolve_geometries)
from qmczoo.distributed import is_main_process, process_count, worker_folder
from qmczoo.runs.folder import CHECKPOINT, LOCK_FILE, check_out_dir, lock_run, write_json
from qmczoo.runs.progress import Progress
from qmczoo.runs.run_config import load_run_config, load_run_geometries

EVALUATION_BURN_IN = 20  # unmeasured Metropolis calls (of mcmc_steps each) before an evaluation measures


def evaluate_run(out_dir: str | Path, steps: int = defaults.EVALUATE_STEPS, *, batch_size: int | None = None, seed: int | None = None,
                 burn_in: int = EVALUATION_BURN_IN, progress: bool = True, scan: str | None = None,
                 geometries=None, devices: int | None = None):
    """Evaluate the energy of a trained run folder; writes ``evaluation.json``.

    Uses the checkpoint's parameters and walkers (re-sampled from them if ``batch_size``
    differs from training). ``steps`` >= 2, ``batch_size`` >= 1, ``burn_in`` >= 0 and
    ``0 <= seed < 2**32`` are checked first; the folder is locked while it runs.

    A run trained on several geometries is evaluated on each (E ± sigma per geometry in
    ``evaluation.json``, ``pes.csv`` and ``pes.png``); ``scan``/``geometries`` (as for
    :func:`train`) evaluate it at other geometries instead, from freshly sampled walkers.
    ``devices``: how many devices the walkers are spread over (None: all; the walkers must
    divide by it).
    """
    args = dict(batch_size=batch_size, seed=seed, burn_in=burn_in, progress=progress, scan=scan, geometries=geometries,
                devices=devices)
    if process_count() == 1:
        return _evaluate_in(out_dir, steps, **args)
    out = Path(out_dir)  # several processes: process 0 writes the folder, the others a copy of it
    with worker_folder(out, ignore=(LOCK_FILE,)) as folder:
        args["progress"] = progress and is_main_process()
        return _evaluate_in(folder, steps, **args)


def _evaluate_in(out_dir, steps, *, batch_size, seed, burn_in, progress, scan, geometries, devices):
    """:func:`evaluate_run` in this process, on ``out_dir``."""
    for name, value, low in (("steps", steps, 2), ("batch_size", batch_size, 1), ("seed", seed, 0),
                             ("burn_in", burn_in, 0)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"evaluation {name} must be an integer, got {value!r}")
        if value < low:
            raise ConfigError(f"evaluation {name} must be >= {low}, got {value}")
    if seed is not None and seed >= 2**32:
        raise ConfigError(f"seed must be below 2**32 = {2**32}, got {seed}")
    out = Path(out_dir)
    check_out_dir(out, fresh=False)
    system, spec, config = load_run_config(out)
    if not (out / CHECKPOINT).exists():
        raise ConfigError(f"{out} has no {CHECKPOINT}: train first")
    if batch_size is not None:
        check_resources(system, spec, dataclasses.replace(config, batch_size=batch_size, pretrain_steps=0))
    trained_on = load_run_geometries(out)
    at = resolve_geometries(system, scan, geometries, None)
    if at is not None:
        check_serves_geometries(spec, at)
        if config.states > 1 and (at.n_geometries > 1 or not np.allclose(at.positions[0], system.positions)):
            raise ConfigError(f"{out} holds {config.states} states trained at one geometry; it is evaluated there "
                              "only (drop --scan/--geometries)")
    evaluated_on = at if at is not None else trained_on
    n_geometries = 1 if evaluated_on is None else evaluated_on.n_geometries
    check_devices(dataclasses.replace(config, batch_size=batch_size or config.batch_size), devices, n_geometries)
    if batch_size is not None:  # the trained machinery must hold the checkpoint's walkers too
        check_devices(config, devices, 1 if trained_on is None else trained_on.n_geometries)
    with lock_run(out):
        try:
            return _evaluate_run(out, steps, batch_size=batch_size, seed=seed, burn_in=burn_in, progress=progress,
                                 trained_on=trained_on, at=at, devices=devices)
        except jax.errors.JaxRuntimeError as exc:
            if out_of_memory(exc):
                raise ConfigError(f"out of memory with {batch_size} walkers: use a smaller --batch-size") from None
            raise


def _evaluate_run(out_dir: str | Path, steps: int = defaults.EVALUATE_STEPS, *, batch_size: int | None = None, seed: int | None = None,
                  burn_in: int = EVALUATION_BURN_IN, progress: bool = True, trained_on=None, at=None,
                  devices: int | None = None):
    from qmczoo.engine.evaluate import evaluate
    from qmczoo.runs.pes import error_summary, write_pes

    out = Path(out_dir)
    system, spec, config = load_run_config(out)
    if not (out / CHECKPOINT).exists():
        raise ConfigError(f"{out} has no {CHECKPOINT}: train first")
    trained = None if trained_on is None or trained_on.n_geometries == 1 else trained_on.positions
    wf = spec.build(system, geometries=trained)  # built as trained (its static frame comes from these)
    vmc = make_vmc(system, wf, config, geometries=trained, devices=devices)
    template = vmc.initial_state()
    state, _ = checkpoint.load(out / CHECKPOINT, template)
    walkers = state.walkers
    key = jax.random.PRNGKey(config.seed if seed is None else seed)
    key = jax.random.fold_in(key, EVALUATION_KEY_TAG)
    gset = trained_on if trained is not None else None
    if at is not None and (trained_on is None or not np.array_equal(at.positions, trained_on.positions)):
        gset = at if at.n_geometries > 1 else None  # other geometries: a VMC for them, fresh walkers
        vmc = make_vmc(at.system, wf, dataclasses.replace(config, batch_size=batch_size or config.batch_size),
                       geometries=None if gset is None else at.positions, devices=devices)
        walkers = vmc._walkers(key, vmc.batch_size).replace(step_size=jnp.full(
            () if gset is None else (at.n_geometries,), float(np.mean(walkers.step_size)), vmc.dtype))
        burn_in = max(burn_in, 100)
    elif batch_size is not None and batch_size != walkers.r.shape[0]:  # the same machinery, other walkers
        count = vmc.n_geometries * walkers_per_geometry(batch_size, vmc.n_geometries)
        walkers = vmc._walkers(key, count).replace(step_size=walkers.step_size)
        burn_in = max(burn_in, 100)
    if config.states > 1:
        from qmczoo.engine.states.evaluate import evaluate_states as evaluate
    with Progress(progress) as bars:
        bar = bars.task("evaluate", steps)
        result = evaluate(vmc, state.params, walkers, steps, key, burn_in=burn_in,
                          progress=lambda i, e: bar(info=f"E={e:.5f}"))
    record = result.to_dict()
    record["trained_steps"] = int(state.step)
    evaluated_system = vmc.system
    if config.states > 1:  # each state against its own reference; the sum has none
        from qmczoo.runs.states import plot_states, states_record, write_states_csv

        record.update(states_record(result, evaluated_system))
        write_states_csv(out, record)
        plot_states(out, record, title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}, "
                                       f"{config.states} states ({config.objective})")
    elif gset is None and evaluated_system.reference_energy is not None:
        record["reference_energy"] = evaluated_system.reference_energy
        record["error_vs_reference_mha"] = 1000.0 * (result.energy - evaluated_system.reference_energy)
    if gset is not None:
        rows = write_pes(out, gset, result, title=f"{spec.name} ({spec.preset or 'custom'}) on {system.name}")
        record["pes"] = rows
        record.update(error_summary(rows))
        record["geometry_set"] = gset.to_dict()
    write_json(out / "evaluation.json", record)
    return result
