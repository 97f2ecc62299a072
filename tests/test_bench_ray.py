"""A bench's cells as Ray tasks (``qmczoo.runs.bench.ray_tasks``), on a local Ray instance.
Ray is an optional extra (``pip install -e ".[ray]"``): without it these tests are skipped,
except the one line that says how to install it."""

import json

import pytest

from qmczoo.errors import ConfigError
from qmczoo.runs.bench.ray_tasks import run_bench_on_ray
from qmczoo.runs.bench.spec import CELL_FILE
from test_bench import ARGS, TINY, _one_error_line


def test_without_ray_it_says_how_to_install_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"Ray is not installed.*\[ray\].*--shard"):
        run_bench_on_ray("ferminet", "H2", out_dir=tmp_path / "b", tasks=2, **TINY)
    with pytest.raises(ConfigError, match="positive integer"):
        run_bench_on_ray("ferminet", "H2", out_dir=tmp_path / "b", tasks=0, **TINY)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_two_ray_tasks_fill_one_bench_folder(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = run_bench_on_ray("ferminet", "H2", out_dir=tmp_path / "b", tasks=2, seeds="0,1", **TINY)
        with pytest.raises(ConfigError, match="other settings"):  # a task's refusal comes back as one error
            run_bench_on_ray("ferminet", "H2", out_dir=tmp_path / "b", tasks=2, seeds="0,1", **{**TINY, "steps": 6})
    finally:
        ray.shutdown()
    assert sorted(r["seed"] for r in results.rows) == [0, 1] and not results.failed
    for seed in (0, 1):
        cell = tmp_path / "b" / "cells" / "ferminet" / "H2" / f"seed{seed}"
        assert json.loads((cell / CELL_FILE).read_text())["status"] == "ok"


def test_ray_tasks_with_a_shard_is_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from qmczoo.cli import app

    result = CliRunner().invoke(app, ["bench", "--ansatz", "ferminet", "--system", "H2", "--ray-tasks", "2",
                                      "--shard", "0/2", "--out", str(tmp_path / "b")])
    assert _one_error_line(result) == "error: --ray-tasks makes the shards itself: leave out --shard and --distributed"
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_the_cli_runs_a_bench_as_ray_tasks(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from typer.testing import CliRunner

    from qmczoo.cli import app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = CliRunner().invoke(app, ["bench", "--ansatz", "ferminet", "--system", "H2", *ARGS, "--ray-tasks", "2",
                                          "--out", str(tmp_path / "b")])
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"]
