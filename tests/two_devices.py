"""Runs and compiled programs on two CPU devices, for ``tests/test_devices.py``.

Started by that test as ``python tests/two_devices.py OUT_DIR`` with ``JAX_NUM_CPU_DEVICES=2``
(the device count is fixed when jax starts, so it cannot be changed inside the test process);
prints one JSON object on its last line. Every run here is float64, so that a reduction split
over two devices differs from the one-device sum by rounding only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from qmczoo import runs  # noqa: E402
from qmczoo.engine.config import TrainConfig  # noqa: E402

SMALL = dict(batch_size=16, burn_in=4, mcmc_steps=2, dtype="float64", monitor_walkers=8, monitor_every=1,
             checkpoint_every=1, seed=4)


def energies(folder: Path) -> list[float]:
    return [float(e) for e in runs.read_log(folder)["energy"]]


def sharded_over(array) -> int:
    return len(array.sharding.device_set)


def interrupted(tmp: Path, name: str, system: str, ansatz: str, config: TrainConfig, first: int, devices: tuple,
                **kw) -> dict:
    """The same run twice: on one device throughout, and ``first`` steps on ``devices[0]`` devices
    resumed to the end on ``devices[1]``; their per-step energies, and where the walkers lived."""
    runs.train(system, ansatz, config, tmp / f"{name}-ref", preset="tiny", progress=False, devices=1, **kw)
    part = runs.train(system, ansatz, TrainConfig(**{**config.to_dict(), "steps": first}), tmp / f"{name}-run",
                      preset="tiny", progress=False, devices=devices[0], **kw)
    walkers_on = sharded_over(part.state.walkers.r)
    monitor_on = sharded_over(part.state.monitor.r) if part.state.monitor is not None else None
    params_on = {sharded_over(x) for x in jax.tree.leaves(part.state.params)}
    resumed = runs.train(out_dir=tmp / f"{name}-run", resume=True, config=TrainConfig(steps=config.steps),
                         progress=False, devices=devices[1])
    return dict(reference=energies(tmp / f"{name}-ref"), run=energies(tmp / f"{name}-run"),
                walkers_on=walkers_on, monitor_on=monitor_on, params_on=sorted(params_on),
                resumed_walkers_on=sharded_over(resumed.state.walkers.r),
                summary_devices=[part.summary.get("devices"), resumed.summary.get("devices")])


GATHER = re.compile(r"=\s*(\(?[^=]*?)\s+all-gather(?:-start)?\(")
SHAPE = re.compile(r"[a-z]+\d*\[([\d,]*)\]")


def gathered_sizes(hlo: str) -> list[int]:
    """The element counts of the results of every all-gather in a compiled HLO module."""
    sizes = []
    for m in GATHER.finditer(hlo):
        for dims in SHAPE.findall(m.group(1)):
            sizes.append(int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1)
    return sizes


def compiled_gathers() -> dict:
    """The all-gathers XLA put into the sampler, the loss gradient and the local energy of
    FermiNet ``tiny`` on LiH with 32 walkers on two devices (chunks of 8 walkers)."""
    from qmczoo.engine.vmc import VMC
    from qmczoo.registry import get_ansatz
    from qmczoo.chemistry.systems import get_system

    system = get_system("LiH")
    config = TrainConfig(batch_size=32, dtype="float64", local_energy_chunk=8, monitor_walkers=0, pretrain_steps=0)
    vmc = VMC(system, get_ansatz("ferminet", "tiny").build(system), config, devices=2)
    state = vmc.initial_state(optimizer=False)
    key = jax.random.PRNGKey(0)
    programs = {
        "mcmc": vmc.mcmc.lower(state.params, state.walkers, key, vmc.R),
        "loss_gradient": jax.jit(jax.value_and_grad(vmc.loss, has_aux=True)).lower(
            state.params, key, (state.walkers.r, vmc.R)),
        "local_energy": jax.jit(vmc.batch_local_energy).lower(state.params, state.walkers.r, vmc.R),
    }
    return dict(batch=config.batch_size, walker_elements=config.batch_size * system.n_electrons * 3,
                gathers={name: gathered_sizes(lowered.compile().as_text()) for name, lowered in programs.items()})


def cli_errors(tmp: Path) -> dict:
    """``qmczoo train`` with a batch that does not divide by two devices, and with three devices."""
    from typer.testing import CliRunner

    from qmczoo.cli import app

    out = {}
    for name, extra in (("odd_batch", ["--batch-size", "15"]), ("too_many", ["--devices", "3"])):
        folder = tmp / f"cli-{name}"
        result = CliRunner().invoke(app, ["train", "--system", "H2", "--preset", "tiny", "--steps", "1",
                                          "--no-progress", "--out", str(folder), *extra])
        out[name] = dict(code=result.exit_code, output=result.output, written=folder.exists())
    return out


def main(tmp: str) -> None:
    tmp = Path(tmp)
    assert len(jax.devices()) == 2, jax.devices()
    result = dict(devices=len(jax.devices()))
    # FermiNet tiny on LiH, KFAC with pretraining: 2 steps on two devices, resumed on one
    result["kfac"] = interrupted(tmp, "kfac", "LiH", "ferminet",
                                 TrainConfig(steps=3, optimizer="kfac", pretrain_steps=2, **SMALL), 2, (2, 1))
    # PESNet tiny over three H2 geometries with Adam (three does not divide two; the 18 walkers do):
    # 1 step on one device, resumed on two
    result["pes"] = interrupted(tmp, "pes", "H2", "pesnet",
                                TrainConfig(steps=3, optimizer="adam", pretrain_steps=0,
                                            **{**SMALL, "batch_size": 18, "monitor_walkers": 6}), 1, (1, 2),
                                scan="bond=1.0:2.0:3")
    result["programs"] = compiled_gathers()
    result["cli"] = cli_errors(tmp)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
