"""``qmczoo bench --shard I/N``: N jobs (a scheduler's job array) fill one bench folder together,
without losing or duplicating a cell; the folder's lock keeps an unsharded bench out while shards
run, and a cell another process holds is left to it."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from qmczoo import runs
from qmczoo.cli import app
from qmczoo.errors import ConfigError
from qmczoo.runs import bench
from qmczoo.runs.bench.spec import CELL_FILE, parse_shard
from test_bench import ARGS as BENCH_ARGS
from test_bench import TINY, _one_error_line

runner = CliRunner()

ARGS = ["--ansatz", "ferminet", "--system", "H2", *BENCH_ARGS]


def test_parse_shard():
    assert parse_shard(None) is None
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard(" 3 / 4 ") == (3, 4)
    assert parse_shard((1, 2)) == (1, 2)
    for bad in ("4/4", "-1/2", "0/0", "1", "a/b", "1/2/3", ""):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize("shard", ["2/2", "x/2", "1"])
def test_a_bad_shard_is_one_error_line_and_writes_nothing(tmp_path, shard):
    line = _one_error_line(runner.invoke(app, ["bench", *ARGS, "--shard", shard, "--out", str(tmp_path / "b")]))
    assert "--shard" in line
    assert not (tmp_path / "b").exists()


def test_shards_and_an_unsharded_bench_keep_out_of_each_other(tmp_path):
    """Shards hold the folder's lock shared: an unsharded bench (exclusive) is refused while one
    runs, and a shard is refused while an unsharded bench runs."""
    out = tmp_path / "b"
    out.mkdir()
    with runs.lock_run(out, shared=True), runs.lock_run(out, shared=True):  # two shards hold it together
        line = _one_error_line(runner.invoke(app, ["bench", *ARGS, "--out", str(out)]))
        assert "in use by another qmczoo process" in line
    with runs.lock_run(out):  # an unsharded bench
        line = _one_error_line(runner.invoke(app, ["bench", *ARGS, "--shard", "0/2", "--out", str(out)]))
        assert "in use by another qmczoo process" in line
    assert sorted(p.name for p in out.iterdir()) == [".qmczoo.lock"]


def test_a_cell_held_by_another_process_is_left_to_it(tmp_path):
    """A shard of another split (or any process) holding a cell's lock: the cell is not run, not
    marked failed, and not in the table; once free, the next shard run trains it."""
    out = tmp_path / "b"
    hows = []
    empty = bench.run_bench("ferminet", "H2", out_dir=out, progress=False, shard="1/2",  # a shard with no cell
                            on_cell=lambda row, how: hows.append(how), **TINY)
    assert empty.rows == [] and (out / "bench.yaml").exists() and (out / "hartree_fock.json").exists()
    cell = out / "cells" / "ferminet" / "H2" / "seed0"
    cell.mkdir(parents=True)
    with runs.lock_run(cell):
        results = bench.run_bench("ferminet", "H2", out_dir=out, progress=False, shard="0/1",
                                  on_cell=lambda row, how: hows.append(how), **TINY)
    assert hows == [] and results.rows == []
    assert not (cell / CELL_FILE).exists()
    assert json.loads((out / "results.json").read_text())["meta"]["cells"] == "0 of 1 finished"


def _bench_process(out, shard, log):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "qmczoo.cli", "bench", *ARGS, "--seeds", "0,1,2", "--shard", shard,
                             "--no-progress", "--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.slow
def test_two_shards_running_at_once_fill_one_bench_folder(tmp_path):
    """Two real processes, shards 0/2 and 1/2 of a three-cell bench, at the same time: every cell
    trained once, by its shard; the table of the last to finish holds all three; an unsharded
    bench afterwards finds every cell finished and trains nothing."""
    out = tmp_path / "b"
    logs = [open(tmp_path / f"shard{i}.log", "w+") for i in range(2)]  # noqa: SIM115
    procs = [_bench_process(out, f"{i}/2", logs[i]) for i in range(2)]
    for p, log in zip(procs, logs):
        p.wait(timeout=600)
        log.seek(0)
        text = log.read()
        assert p.returncode == 0, text[-3000:]
        assert "shard" in text and "of 3 finished" in text
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(r["seed"] for r in rows) == [0, 1, 2] and all(r["status"] == "ok" for r in rows)
    for seed in (0, 1, 2):
        cell = out / "cells" / "ferminet" / "H2" / f"seed{seed}"
        assert json.loads((cell / CELL_FILE).read_text())["status"] == "ok"
        assert list(runs.read_log(cell)["step"]) == [1, 2, 3, 4, 5]  # trained once, not twice
    hows = []
    results = bench.run_bench("ferminet", "H2", out_dir=out, progress=False, seeds="0,1,2",
                              on_cell=lambda row, how: hows.append(how), **TINY)
    assert hows == ["skipped"] * 3 and len(results.rows) == 3
