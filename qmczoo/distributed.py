"""One run over several processes (hosts, or one process per GPU), on jax's distributed runtime.

Every process runs the same program on its own devices; together they form one mesh
(:mod:`qmczoo.engine.devices`) whose walkers are split over every device of every process.

    import qmczoo
    qmczoo.distributed.initialize()          # under SLURM or Open MPI: found from the environment
    qmczoo.distributed.initialize("node0:1234", num_processes=2, process_id=0)   # or given
    qmczoo.run_training("N2", "ferminet", out_dir="runs/n2")   # the same call in every process

``qmczoo train --distributed`` (and ``evaluate``, ``bench``) does the same from the command line.
Call :func:`initialize` before anything else touches jax.

How the processes share one run folder (every process is given the same ``--out``):

- process 0 (the *main* process) checks the folder, locks it and writes every file of the run;
- every other process works on a scratch copy of the folder of its own (the config and checkpoint
  of a resumed run are read from there, its own files written there), deleted at the end
  (:func:`worker_folder`); so the run's life (:mod:`qmczoo.runs.lifecycle`) is the same code in
  every process, and every collective (a checkpoint gathers the walkers of every process) is
  entered by all of them at the same step;
- a stop (Ctrl-C, a time budget) is agreed at a step boundary (:func:`any_process`), never acted
  on by one process alone; the NaN guard decides on replicated numbers, the same in every process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from qmczoo.errors import ConfigError

_INITIALIZED = False


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               local_device_ids=None) -> None:
    """Join this process to a distributed run (:func:`jax.distributed.initialize`).

    Args:
      coordinator: ``HOST:PORT`` of process 0's coordination service (None: from the cluster's
        environment, SLURM or Open MPI).
      num_processes, process_id: the number of processes and this one's index (None: from the
        environment).
      local_device_ids: the local devices this process uses (None: all of them).

    Raises :class:`~qmczoo.errors.ConfigError` (one line) when the arguments are incomplete and no
    cluster environment supplies them, or when jax was already started in this process.
    """
    global _INITIALIZED
    import jax

    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given) and not _cluster_environment():
        raise ConfigError("--distributed outside SLURM or Open MPI needs all of --coordinator HOST:PORT, "
                          "--num-processes P and --process-id I")
    if num_processes is not None and (num_processes < 1 or (process_id is not None
                                                             and not 0 <= process_id < num_processes)):
        raise ConfigError(f"--process-id must lie in 0..{num_processes - 1} for {num_processes} processes, "
                          f"got {process_id}")
    if not any(given) and not _cluster_environment():
        raise ConfigError("--distributed found no SLURM or Open MPI environment: give --coordinator HOST:PORT, "
                          "--num-processes P and --process-id I")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, local_device_ids=local_device_ids)
    except RuntimeError as exc:
        raise ConfigError(f"cannot start the distributed run: {' '.join(str(exc).split())[:300]}") from None
    _INITIALIZED = True


def _cluster_environment() -> bool:
    return any(k in os.environ for k in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "OMPI_MCA_orte_hnp_uri"))


def process_count() -> int:
    """Processes in this run (1 unless :func:`initialize` joined several)."""
    import jax

    return jax.process_count()


def is_main_process() -> bool:
    """Whether this is process 0, the one that writes the run's files."""
    import jax

    return jax.process_index() == 0


def any_process(*flags: bool) -> tuple[bool, ...]:
    """Each flag made True in every process when it is True in any process (a collective that
    every process must enter at the same point; with one process the flags as they are). With no
    flags: a barrier."""
    if process_count() == 1:
        return tuple(bool(f) for f in flags)
    from jax.experimental import multihost_utils

    gathered = np.asarray(multihost_utils.process_allgather(np.asarray([0, *flags], dtype=np.int32)))
    return tuple(bool(x) for x in gathered.reshape(-1, len(flags) + 1)[:, 1:].any(axis=0))


def from_main(tree):
    """Process 0's value of ``tree`` (numpy arrays and numbers) in every process; one process: ``tree``."""
    if process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(tree)


def fields_from_main(obj, names: tuple[str, ...]):
    """A dataclass ``obj`` with the fields ``names`` (arrays or numbers) replaced by process 0's
    values, in every process; one process: ``obj``."""
    if process_count() == 1:
        return obj
    values = from_main(tuple(np.asarray(getattr(obj, n)) for n in names))
    return dataclasses.replace(obj, **{n: (np.asarray(v) if np.ndim(v) else np.asarray(v).item())
                                      for n, v in zip(names, values)})


@contextlib.contextmanager
def worker_folder(out: Path | None, ignore: tuple[str, ...] = ()):
    """The folder this process writes a run (or bench) into: ``out`` itself in the main process
    (or with one process); elsewhere a scratch copy of ``out`` (its whole tree, less the files
    named in ``ignore``; empty if ``out`` does not exist), deleted on exit. With several
    processes every process waits here until all hold their folder, so that process 0 writes
    into ``out`` only once every copy is taken."""
    if out is None or is_main_process():
        any_process()
        yield out
        return
    scratch = Path(tempfile.mkdtemp(prefix="qmczoo-process-"))
    try:
        folder = scratch / "run"
        if Path(out).is_dir():
            shutil.copytree(out, folder, symlinks=True, ignore=shutil.ignore_patterns(*ignore))
        any_process()
        yield folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["any_process", "fields_from_main", "from_main", "initialize", "is_main_process", "process_count",
           "worker_folder"]
