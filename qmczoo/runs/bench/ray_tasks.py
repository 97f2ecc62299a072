"""The cells of a bench as Ray tasks: ``tasks`` shards (``run_bench(shard=(i, tasks))``) of one
bench, each a Ray task, on a local Ray instance or a cluster (``RAY_ADDRESS``, or ``ray.init``
called before). The bench folder must be reachable from every node (a shared file system).

    from qmczoo.runs.bench.ray_tasks import run_bench_on_ray
    res = run_bench_on_ray("ferminet,psiformer", "H2,LiH,Be", out_dir="/shared/bench/b", tasks=6,
                           task_resources={"num_gpus": 1}, preset="small", steps=2000)

Needs Ray (``pip install -e ".[ray]"``). The shards' rules hold (:func:`~qmczoo.runs.bench.runner.run_bench`):
every cell trained once, the folder's table whole once the last task is done.
"""

from __future__ import annotations

from pathlib import Path

from qmczoo.errors import ConfigError
from qmczoo.runs.bench.results import BenchResults, load_bench


def _shard_task(args, kwargs, i: int, tasks: int) -> int:
    """One Ray task: shard ``i`` of ``tasks``; returns the number of failed cells of the table it wrote."""
    from qmczoo.runs.bench.runner import run_bench

    return len(run_bench(*args, shard=(i, tasks), progress=False, **kwargs).failed)


def run_bench_on_ray(*args, out_dir: str | Path, tasks: int, task_resources: dict | None = None,
                     **kwargs) -> BenchResults:
    """:func:`~qmczoo.runs.bench.runner.run_bench` with its cells spread over ``tasks`` Ray tasks.

    Args:
      args, kwargs: as for ``run_bench`` (not ``shard``, ``progress``).
      out_dir: the bench folder, on a file system every Ray node sees.
      tasks: the number of Ray tasks (shards); at most the number of cells is useful.
      task_resources: Ray resources of each task (default ``{"num_cpus": 1}``; e.g.
        ``{"num_gpus": 1}`` for one GPU each).

    Returns:
      The bench's results once every task is done (``out_dir/results.json``).

    Raises:
      ConfigError: Ray is not installed, ``tasks`` is not a positive integer, or a task
        refused the bench (the first task's error, as one line).
    """
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        raise ConfigError(f"tasks must be a positive integer, got {tasks!r}")
    if "shard" in kwargs or "progress" in kwargs:
        raise ConfigError("run_bench_on_ray sets shard and progress itself")
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed: pip install -e '.[ray]' (or run `qmczoo bench --shard I/N` "
                          "as the jobs of a job array)") from None
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    remote = ray.remote(**(task_resources or {"num_cpus": 1}))(_shard_task)
    out = str(out_dir)
    refs = [remote.remote(args, {**kwargs, "out_dir": out}, i, tasks) for i in range(tasks)]
    try:
        ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ConfigError):
            raise ConfigError(str(cause)) from None
        raise
    return load_bench(out)


__all__ = ["run_bench_on_ray"]
