"""qmczoo bench: a tiny bench end to end, resume, a failing cell, bad input."""

import csv
import json
import math
import time

import pytest
from typer.testing import CliRunner

from qmczoo import runs

from qmczoo.runs import bench
from qmczoo.runs.bench.spec import CELL_FILE
from qmczoo.cli import app
from qmczoo.errors import ConfigError

runner = CliRunner()

TINY = dict(preset="tiny", steps=5, pretrain_steps=0, batch_size=16, eval_steps=5, burn_in=10, mcmc_steps=5,
            checkpoint_every=2, hf_basis="cc-pvdz", optimizer="adam", monitor_walkers=0)
# (adam, no pretraining and no monitor chain: fewer, faster compilations than the defaults;
#  the bench's pretraining is the trainer's, tested in test_pretrain.py)
ARGS = ["--preset", "tiny", "--steps", "5", "--pretrain-steps", "0", "--batch-size", "16", "--eval-steps", "5",
        "--burn-in", "10", "--mcmc-steps", "5", "--checkpoint-every", "2", "--hf-basis", "cc-pvdz",
        "--optimizer", "adam", "--monitor-walkers", "0"]
# two variants that train, and one that fails while it runs (its settings are sound, so the bench's
# up-front checks pass it: the fixture makes its ansatz raise when it is built)
VARIANTS = "ferminet:determinants=1,ferminet:determinants=2,ferminet:determinants=3"
FAILURE = "the build failed (injected by the test: a cell that fails while it runs)"


def _failing_third_variant(mp):
    """Make the three-determinant FermiNet raise when it is built (a cell's run-time failure)."""
    from qmczoo.registry import AnsatzSpec

    original = AnsatzSpec.build

    def build(self, system, geometries=None):
        if self.name == "ferminet" and self.options.get("determinants") == 3:
            raise ConfigError(FAILURE)
        return original(self, system, geometries)

    mp.setattr(AnsatzSpec, "build", build)
    mp.setattr(AnsatzSpec, "__call__", build)


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def finished_bench(tmp_path_factory):
    """A bench interrupted in its second cell, then continued: ``(out, hows, info)``."""
    from qmczoo.engine.vmc import VMC

    out = tmp_path_factory.mktemp("bench") / "b"
    original, calls = VMC.step, {"n": 0}

    def flaky_step(self, state):
        calls["n"] += 1
        if calls["n"] == 8:  # cell 1 takes 5 steps; cell 2 is interrupted after its 2nd
            raise KeyboardInterrupt
        return original(self, state)

    mp = pytest.MonkeyPatch()
    mp.setattr(VMC, "step", flaky_step)
    try:
        with pytest.raises(KeyboardInterrupt):
            bench.run_bench(VARIANTS, "H2", out_dir=out, progress=False, **TINY)
    finally:
        mp.undo()
    first = out / "cells/ferminet_determinants=1/H2/seed0"
    second = out / "cells/ferminet_determinants=2/H2/seed0"
    info = {"first_mtime": (first / "checkpoint.msgpack").stat().st_mtime_ns,
            "second_log": runs.read_log(second),
            "second_marker": json.loads((second / CELL_FILE).read_text())}
    hows = []
    mp = pytest.MonkeyPatch()
    _failing_third_variant(mp)
    try:
        res = bench.run_bench(VARIANTS, "H2", out_dir=out, progress=False,
                              on_cell=lambda row, how: hows.append(how), **TINY)
    finally:
        mp.undo()
    info["results"] = res
    return out, hows, info


def test_interrupted_bench_resumes_the_interrupted_cell_and_skips_finished_ones(finished_bench):
    out, hows, info = finished_bench
    assert info["second_marker"]["status"] == "interrupted"
    assert list(info["second_log"]["step"]) == [1, 2]
    assert hows == ["skipped", "resumed", "failed"]
    first = out / "cells/ferminet_determinants=1/H2/seed0"
    assert (first / "checkpoint.msgpack").stat().st_mtime_ns == info["first_mtime"]
    log = runs.read_log(out / "cells/ferminet_determinants=2/H2/seed0")
    assert list(log["step"]) == [1, 2, 3, 4, 5]
    assert list(log["energy"][:2]) == list(info["second_log"]["energy"])  # kept, not recomputed


def test_bench_files_columns_and_failed_cell(finished_bench):
    out, _, info = finished_bench
    res = info["results"]
    for name in ("bench.yaml", "hartree_fock.json", "results.csv", "results.json", "results.md", "convergence.png"):
        assert (out / name).exists(), name
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == bench.COLUMNS
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert "injected by the test" in rows[2]["error"]
    data = json.loads((out / "results.json").read_text())
    assert [r["ansatz"] for r in data["rows"]] == VARIANTS.split(",")
    assert data["rows"] == res.rows
    for r in res.rows[:2]:
        assert math.isfinite(r["energy"]) and r["energy_error"] > 0
        assert r["steps"] == 5 and r["n_params"] > 0 and r["seconds_per_step"] > 0
        assert r["reference_energy"] == pytest.approx(-1.174475714)
        assert r["hf_energy"] == pytest.approx(-1.1287, abs=2e-3) and r["hf_basis"] == "UHF/cc-pvdz"
        assert r["error_mha"] == pytest.approx(1000 * (r["energy"] - r["reference_energy"]))
        assert isinstance(r["variational_ok"], bool) and r["peak_rss_mib"] > 0
        cell = out / r["run_dir"]
        assert (cell / "evaluation.json").exists()
        system, spec, config = runs.load_run_config(cell)  # an ordinary run folder
        assert system.name == "H2" and spec.name == "ferminet" and config.steps == 5
    assert res.rows[1]["n_params"] > res.rows[0]["n_params"]  # 2 determinants vs 1
    md = (out / "results.md").read_text()
    assert "| ansatz | system | seed | E (Ha) |" in md and "failed: ConfigError" in md and "UHF/cc-pvdz" in md
    assert bench.load_bench(out).rows == res.rows
    try:
        import pandas  # noqa: F401  (optional)
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            res.to_dataframe()
    else:
        df = res.to_dataframe()
        assert list(df.columns) == list(bench.COLUMNS) and len(df) == 3


def test_rerun_through_the_cli_recomputes_nothing(finished_bench, monkeypatch):
    out, _, _ = finished_bench

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(runs, "train", no_training)
    result = runner.invoke(app, ["bench", "--ansatz", VARIANTS, "--system", "H2", *ARGS, "--no-progress",
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output  # 1: a cell failed (and is in the table)
    assert "ferminet:determinants=2" in result.output and "injected by the test" in result.output
    assert "1 of 3 cells failed" in result.output


def test_other_settings_in_the_same_folder_are_refused(finished_bench):
    out, _, _ = finished_bench
    with pytest.raises(ConfigError, match="other settings"):
        bench.run_bench(VARIANTS, "H2", out_dir=out, progress=False, **{**TINY, "steps": 6})
    line = _one_error_line(runner.invoke(app, ["bench", "--ansatz", "ferminet", "--system", "H2", *ARGS,
                                               "--out", str(out)]))
    assert "other settings" in line and "ansatze" in line


@pytest.mark.parametrize("args, words", [
    (["--ansatz", "fermnet"], ["fermnet", "ferminet"]),
    (["--ansatz", "ferminet:determinants"], ["determinants", "KEY=VALUE"]),
    (["--ansatz", "determinants=2"], ["option"]),
    (["--ansatz", "ferminet,ferminet"], ["twice"]),
    (["--system", "H2,nonsense_molecule"], ["nonsense_molecule"]),
    (["--time-budget", "10x"], ["10x", "duration"]),
    (["--time-budget", "0s"], ["positive"]),
    (["--seeds", "0,a"], ["seeds"]),
    (["--eval-steps", "0"], ["eval-steps"]),
    # issue 29 -- 8: every cell's settings are checked before the first cell trains
    (["--ansatz", "ferminet,ferminet:determinants=0"], ["ferminet:determinants=0", "determinants", ">= 1"]),
    (["--ansatz", "ferminet,ferminet:envelope=cusp_jastrow"], ["cusp_jastrow", "envelope"]),
    (["--ansatz", "ferminet,ferminet:depth=3"], ["depth"]),
    (["--ansatz", "ferminet", "--preset", "huge"], ["huge", "tiny"]),
    (["--seeds", "0,99999999999999999999"], ["seed", "99999999999999999999"]),
    # 7: basis names pyscf does not know
    (["--hf-basis", "nonsense"], ["--hf-basis", "nonsense"]),
    (["--set", "hf_basis=nonsense"], ["hf_basis", "nonsense"]),
    # 6: input nested thousands deep
    (["--ansatz", "ferminet:determinants=" + "[" * 5000 + "]" * 5000], ["nested too deeply"]),
])
def test_bad_bench_input_is_one_error_line(tmp_path, args, words):
    base = {"--ansatz": "ferminet", "--system": "H2", "--pretrain-steps": "0"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["bench", *[x for kv in base.items() for x in kv], "--out", str(tmp_path / "b")]
    line = _one_error_line(runner.invoke(app, argv))
    for w in words:
        assert w.lower() in line.lower(), (w, line)
    assert not (tmp_path / "b").exists()


def test_missing_out_and_non_bench_folder_are_refused(tmp_path):
    assert "--out" in _one_error_line(runner.invoke(app, ["bench", "--ansatz", "ferminet", "--system", "H2"]))
    (tmp_path / "notes.txt").write_text("mine")
    line = _one_error_line(runner.invoke(app, ["bench", "--ansatz", "ferminet", "--system", "H2",
                                               "--out", str(tmp_path)]))
    assert "bench.yaml" in line


def test_parse_ansatz_variants_with_list_values():
    vs = bench.parse_ansatze("ferminet,ferminet:embedding.hidden_dims=[[8,2],[8,2]]:determinants=1,"
                             "ferminet:jastrow=ee_cusp_jastrow,determinants=4")
    assert [v.label for v in vs] == ["ferminet", "ferminet:embedding.hidden_dims=[[8,2],[8,2]]:determinants=1",
                                     "ferminet:jastrow=ee_cusp_jastrow:determinants=4"]
    assert vs[1].options == {"embedding.hidden_dims": [[8, 2], [8, 2]], "determinants": 1}
    assert vs[2].options == {"jastrow": "ee_cusp_jastrow", "determinants": 4}
    assert [v.label for v in bench.parse_ansatze(["all"])] == sorted(__import__("qmczoo").list_ansatze())


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400),
                                           ("600", 600), (" 2 min ", 120), (45, 45)])
def test_parse_duration(text, seconds):
    assert bench.parse_duration(text) == seconds


def test_time_budget_stops_training_then_checkpoints(tmp_path, monkeypatch):
    from qmczoo.engine.vmc import VMC, StepStats
    from qmczoo.engine.config import TrainConfig

    def slow_fake_step(self, state):  # no compilation: the budget logic alone
        time.sleep(0.05)
        return state.replace(step=state.step + 1), StepStats(int(state.step) + 1, -1.0, 0.1, 0.5, 0.1, False)

    monkeypatch.setattr(VMC, "step", slow_fake_step)
    config = TrainConfig(steps=10_000, batch_size=8, optimizer="adam", pretrain_steps=0, burn_in=0,
                         checkpoint_every=1000)
    result = runs.train("H2", "ferminet", config, tmp_path / "run", preset="tiny", progress=False,
                        time_budget=0.3)
    done = int(result.state.step)
    assert 2 <= done < 50
    assert runs.read_log(tmp_path / "run")["step"][-1] == done
    assert (tmp_path / "run" / "checkpoint.msgpack").exists()


# ----------------------------------------------------------------------------- issue 29: the bench folder

def _snapshot(root):
    import hashlib

    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


BENCH = ["bench", "--ansatz", "ferminet", "--system", "H2", *ARGS, "--no-progress"]


def _started_bench(tmp_path, monkeypatch):
    """A bench folder as a bench interrupted before its first cell leaves it (no training)."""
    from qmczoo.runs.bench import runner as bench_runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(bench_runner, "_run_cell", interrupted)
        result = runner.invoke(app, [*BENCH, "--out", str(tmp_path / "b")])
    assert result.exit_code == 130, result.output
    assert (tmp_path / "b" / "bench.yaml").exists()
    return tmp_path / "b"


def test_a_second_bench_in_a_busy_folder_is_one_error_line(tmp_path):
    """Two benches into one folder corrupted it: the second is refused while the first holds the lock."""
    out = tmp_path / "b"
    out.mkdir()
    with runs.lock_run(out):  # the first bench (a real second process is refused the same way: flock)
        before = _snapshot(tmp_path)
        line = _one_error_line(runner.invoke(app, [*BENCH, "--out", str(out)]))
        assert "in use by another qmczoo process" in line
        assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("damage, words", [
    ("out-is-a-file", ["is a file"]),
    ("bench-yaml-garbage", ["bench.yaml", "not readable"]),
    ("bench-yaml-list", ["bench.yaml", "not a qmczoo bench file"]),
    ("cell-json-garbage", ["bench_cell.json", "damaged", "run that cell again"]),
    ("cell-json-list", ["bench_cell.json", "not a bench cell record"]),
    ("results-md-link", ["symbolic link", "results.md"]),
])
def test_a_damaged_bench_folder_is_one_error_line(tmp_path, monkeypatch, damage, words):
    if damage == "out-is-a-file":
        out = tmp_path / "b"
        out.write_text("mine")
    else:
        out = _started_bench(tmp_path, monkeypatch)
        cell = out / "cells" / "ferminet" / "H2" / "seed0"
        if damage == "bench-yaml-garbage":
            (out / "bench.yaml").write_bytes(b"settings: [unclosed\n\x00")
        elif damage == "bench-yaml-list":
            (out / "bench.yaml").write_text("- 1\n- 2\n")
        elif damage.startswith("cell-json"):
            cell.mkdir(parents=True)
            (cell / CELL_FILE).write_text("{not json" if damage == "cell-json-garbage" else "[1, 2]")
        elif damage == "results-md-link":
            (tmp_path / "outside.md").write_text("someone else's file")
            (out / "results.md").symlink_to(tmp_path / "outside.md")
    before = _snapshot(tmp_path)
    line = _one_error_line(runner.invoke(app, [*BENCH, "--out", str(out)]))
    for w in words:
        assert w.lower() in line.lower(), (w, line)
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.endswith(runs.LOCK_FILE) or k in before}
    assert after == before
