"""Checks of a run's settings that must pass before anything is written."""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from qmczoo.chemistry.system import System
from qmczoo.engine.config import TrainConfig
from qmczoo.errors import ConfigError
from qmczoo.registry import AnsatzSpec


def check_serves_geometries(spec: AnsatzSpec, gset) -> None:
    """Several geometries need an ansatz that serves many; refuse any other, with the way out."""
    if gset is None or gset.n_geometries == 1 or spec.serves_many_geometries:
        return
    raise ConfigError(f"{spec.name} cannot share one network across {gset.n_geometries} geometries (it has no "
                      "geometry encoder): use --ansatz pesnet, or train one run per geometry")


def check_eval_steps(eval_steps):
    if isinstance(eval_steps, bool) or not isinstance(eval_steps, (int, np.integer)):
        raise ConfigError(f"eval_steps must be an integer, got {eval_steps!r}")
    if eval_steps < 0 or eval_steps == 1:
        raise ConfigError(f"evaluation steps must be 0 (no evaluation) or at least 2, got {eval_steps}")


def check_resources(system: System, spec: AnsatzSpec, config: TrainConfig):
    """Cheap checks of what would otherwise fail deep inside the run (after files are written)."""
    itemsize = 8 if config.dtype == "float64" else 4
    n = system.n_electrons
    # walkers plus the two-electron features of one pass: a lower bound of what a step needs
    need = config.batch_size * config.states * n * (3 + 4 * n) * itemsize  # a walker holds one set per state
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    if total and jax.default_backend() == "cpu" and need > total:
        raise ConfigError(f"a batch of {config.batch_size} walkers of {n} electrons needs at least "
                          f"{need / 2**30:.3g} GiB, more than this machine's {total / 2**30:.3g} GiB; "
                          "use a smaller --batch-size")
    config = with_pretrain_basis(config, spec)
    check_basis_options(system, spec, config)
    if config.pretrain_steps > 0:
        mol = system.to_pyscf(config.pretrain_basis)  # a bad basis name is a SystemSpecError
        if max(system.n_up, system.n_down) > mol.nao:
            raise ConfigError(f"{system.name} with {system.n_up} up and {system.n_down} down electrons does not fit "
                              f"in the {mol.nao} orbitals of basis {config.pretrain_basis!r} used for pretraining")


def check_devices(config: TrainConfig, devices: int | None, n_geometries: int = 1) -> int:
    """The number of devices a run uses (None: all), checked against its walker counts (the
    batch and the monitor chain, rounded up per geometry as the VMC does): one ``ConfigError``
    line before anything is written."""
    from qmczoo.engine.devices import check_walker_counts, resolve_device_count
    from qmczoo.engine.vmc import walkers_per_geometry

    count = resolve_device_count(devices)
    g = max(1, n_geometries)
    check_walker_counts(g * walkers_per_geometry(config.batch_size, g),
                        g * walkers_per_geometry(config.monitor_walkers, g) if config.monitor_walkers else 0, count)
    return count


def with_pretrain_basis(config: TrainConfig, spec: AnsatzSpec) -> TrainConfig:
    """``config`` with its pretraining basis settled: as given, else the ansatz's ``hf_basis``
    option (the basis of the Hartree–Fock orbitals it starts from or fits its envelopes to, so
    that the targets are those very orbitals), else cc-pVDZ."""
    if config.pretrain_basis is not None:
        return config
    from qmczoo.engine.config import DEFAULT_PRETRAIN_BASIS

    return dataclasses.replace(config, pretrain_basis=spec.options.get("hf_basis") or DEFAULT_PRETRAIN_BASIS)


def check_basis_options(system: System, spec: AnsatzSpec, config: TrainConfig) -> None:
    """Every basis-set name of the run (the ansatz's ``*basis`` options, used or not, and the
    pretraining basis) must be one pyscf knows: a misspelt name is refused before anything runs."""
    from qmczoo.chemistry.basis_names import check_basis_name

    for key, value in spec.options.items():
        if key.rpartition(".")[2].endswith("basis"):
            check_basis_name(value, f"option {key} of {spec.name}", system.symbols)
    check_basis_name(with_pretrain_basis(config, spec).pretrain_basis, "pretrain_basis", system.symbols)


def out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def resolve_geometries(system: System, scan, geometries, unit):
    """The run's :class:`~qmczoo.chemistry.geometry_set.GeometrySet`, or None for the system's own geometry."""
    from qmczoo.chemistry.geometry_set import GeometrySet, geometry_set

    if isinstance(geometries, GeometrySet):
        if scan is not None:
            raise ConfigError("give either a scan or geometries, not both")
        return geometries
    if scan is None and geometries is None:
        return None
    return geometry_set(system, scan=scan, geometries=geometries, unit=unit)


def check_states(system: System, config: TrainConfig, gset=None, spec: AnsatzSpec | None = None) -> None:
    """Several states (``config.states > 1``): all-electron, one geometry only, and, with pretraining, enough
    Hartree–Fock determinants in the pretraining basis for every state (the basis as
    :func:`with_pretrain_basis` settles it for ``spec``, cc-pVDZ without a spec)."""
    if config.states == 1:
        return
    if getattr(system, "ecp", None) is not None:
        from qmczoo.engine.states.vmc import STATES_WITH_ECP

        raise ConfigError(STATES_WITH_ECP.format(k=config.states))
    if gset is not None and gset.n_geometries > 1:
        raise ConfigError(f"--states {config.states} trains several states at one geometry; a scan over "
                          f"{gset.n_geometries} geometries is not supported (train one run per geometry)")
    if config.pretrain_steps > 0:
        from qmczoo.chemistry.excitations import check_pretrainable_states

        from qmczoo.engine.config import DEFAULT_PRETRAIN_BASIS

        basis = (with_pretrain_basis(config, spec).pretrain_basis if spec is not None
                 else config.pretrain_basis or DEFAULT_PRETRAIN_BASIS)
        check_pretrainable_states(system, basis, config.states)
