"""Every bad input a hostile new user tried: one ``error:`` line, exit code 2, no traceback,
and no file written or changed (issue 18).

Most cases run in-process through typer's CliRunner; a few run in a real subprocess. A
"run folder" fixture is made without training (config.yaml plus a checkpoint of a fresh
state) so that the cases for --resume, --config and evaluate cost no training.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qmczoo import runs
from qmczoo.runs.run_config import save_config

from qmczoo.runs import checkpoint
from qmczoo.cli import app
from qmczoo.registry import get_ansatz
from qmczoo.chemistry.systems import get_system
from qmczoo.engine.vmc import VMC
from qmczoo.engine.config import TrainConfig

runner = CliRunner()
FAST = ["--preset", "tiny", "--steps", "4", "--pretrain-steps", "2", "--batch-size", "16", "--eval-steps", "0",
        "--burn-in", "2", "--no-progress"]


def _make_run(folder: Path, determinants: int = 2):
    """A run folder as ``qmczoo train`` leaves it after step 0, without training."""
    system = get_system("H2")
    spec = get_ansatz("ferminet", "tiny", determinants=determinants)
    config = TrainConfig(steps=4, batch_size=16, optimizer="adam", pretrain_steps=2, burn_in=2, dtype="float64")
    folder.mkdir(parents=True)
    save_config(folder, system, spec, config, "bohr")
    state = VMC(system, spec.build(system), config).initial_state()
    checkpoint.save(folder / runs.CHECKPOINT, state, {"step": 0})


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("stored")
    _make_run(base / "run")
    return base / "run"


def _make_finished_run(folder: Path, steps: int = 5):
    """A run folder as a finished ``steps``-step run leaves it (config, checkpoint at ``steps``,
    ``steps`` rows of train.csv, summary.json), without training."""
    from qmczoo.engine.vmc import StepStats
    from qmczoo.runs.train_log import append_rows

    system = get_system("H2")
    spec = get_ansatz("ferminet", "tiny", determinants=2)
    config = TrainConfig(steps=steps, batch_size=16, optimizer="adam", pretrain_steps=2, burn_in=2, dtype="float64")
    folder.mkdir(parents=True)
    save_config(folder, system, spec, config, "bohr")
    state = VMC(system, spec.build(system), config).initial_state()
    state = state.replace(step=state.step + steps)
    checkpoint.save(folder / runs.CHECKPOINT, state, {"step": steps})
    rows = [StepStats(step=k, energy=-1.1 - 0.001 * k, variance=0.1, acceptance=0.5, step_size=0.2, rejected=False)
            for k in range(1, steps + 1)]
    append_rows(folder / "train.csv", rows, 0.0, [0.1 * k for k in range(1, steps + 1)])
    (folder / "summary.json").write_text('{"steps": %d}' % steps)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("finished")
    _make_finished_run(base / "run")
    return base / "run"


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def _flip(path: Path, offset_from_end: int = 200, n: int = 64):
    data = bytearray(path.read_bytes())
    start = len(data) - offset_from_end
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# Each case: (id, how to prepare the work folder, arguments, words the error line must contain).
# `prepare(work)` may create files; `{run}` in an argument is the prepared run folder, `{work}` the folder.
def _copy_run(stored):
    def prepare(work):
        import shutil

        shutil.copytree(stored, work / "run")
    return prepare


def _corrupt(how):
    def prepare(work, stored):
        import shutil

        shutil.copytree(stored, work / "run")
        ck = work / "run" / runs.CHECKPOINT
        cfg = work / "run" / "config.yaml"
        if how == "empty":
            ck.write_bytes(b"")
        elif how == "truncated":
            ck.write_bytes(ck.read_bytes()[: len(ck.read_bytes()) // 2])
        elif how == "random":
            ck.write_bytes(np.random.default_rng(0).bytes(4096))
        elif how == "header":
            data = bytearray(ck.read_bytes())
            data[:8] = b"\xc1\xc1\xc1\xc1\xc1\xc1\xc1\xc1"
            ck.write_bytes(bytes(data))
        elif how == "flipped":
            _flip(ck)
        elif how == "directory":
            ck.unlink()
            ck.mkdir()
        elif how == "config-garbage":
            cfg.write_bytes(b"\x00\xff\xfe garbage: [unclosed\n\t- : :")
        elif how == "config-truncated":
            cfg.write_text(cfg.read_text()[:120])
        elif how == "config-list":
            cfg.write_text("- 1\n- 2\n")
        elif how == "config-mismatch":  # the stored run says 1 determinant, the checkpoint holds 2
            cfg.write_text(cfg.read_text().replace("determinants: 2", "determinants: 1"))
        elif how == "no-checkpoint":
            ck.unlink()
    return prepare


def _finished(how):
    """Copy the finished 5-step run into ``work/run`` and damage it as ``how`` says."""
    def prepare(work, finished):
        import shutil

        run = work / "run"
        shutil.copytree(finished, run)
        log = run / "train.csv"
        lines = log.read_text().splitlines(keepends=True)  # header, steps 1..5
        if how == "no-checkpoint":  # a finished run whose checkpoint was deleted
            (run / runs.CHECKPOINT).unlink()
        elif how == "no-checkpoint-no-summary":  # only the log tells that it ran
            (run / runs.CHECKPOINT).unlink()
            (run / "summary.json").unlink()
        elif how == "log-gap":
            log.write_text("".join(lines[:3] + lines[4:]))  # step 3 deleted
        elif how == "log-short":
            log.write_text("".join(lines[:4]))  # steps 4 and 5 missing
        elif how == "log-doubled":
            log.write_text("".join(lines + lines[1:]))  # two runs into one log: 1-5, 1-5
        elif how == "log-binary":
            log.write_bytes(b"\x00\x01\xfe\xff" * 64)
        elif how == "log-other-header":
            log.write_text("a,b,c\n1,2,3\n")
        elif how == "log-damaged-middle":
            log.write_text("".join(lines[:2] + ["2,-1.1,not-a-number\n"] + lines[3:]))
        elif how == "config-six-electrons":  # H2 with five up electrons: charge -4
            cfg = run / "config.yaml"
            cfg.write_text(cfg.read_text().replace("n_up: 1", "n_up: 5"))
        elif how == "config-unknown-key":
            cfg = run / "config.yaml"
            cfg.write_text(cfg.read_text() + "walkers_extra: 3\n")
        if how.startswith("log-"):
            (run / "summary.json").unlink()  # interrupted before its summary: resuming is allowed
    return prepare


def _link(name, run=True):
    """A run folder (copied) whose ``name`` is a symbolic link to a file outside it."""
    def prepare(work, stored):
        import shutil

        shutil.copytree(stored, work / "run")
        (work / "outside.txt").write_text("someone else's file\n")
        target = work / "run" / name
        if target.exists():
            target.unlink()
        target.symlink_to(work / "outside.txt")
    return prepare


def _deep_geometries(work):
    depth = 5000
    (work / "deep.yaml").write_text("geometries: " + "[" * depth + "]" * depth + "\n")


T = ["train", "--system", "H2", *FAST, "--out", "{work}/new"]
E = ["train", *FAST, "--out", "{work}/new"]  # effective core potentials (issue 33)
CASES = [
    ("ecp-unknown-name", None, E + ["--system", "Si", "--ecp", "nonsense"], ["unknown ECP", "nonsense"]),
    ("ecp-atom-not-covered", None, E + ["--system", "U", "--ecp", "ccecp", "--ecp-atoms", "U"],
     ["does not cover", "U"]),
    ("ecp-covers-no-atom", None, E + ["--system", "U", "--ecp", "ccecp"], ["does not cover", "U"]),
    ("ecp-no-valence-electrons", None, E + ["--system", "Si", "--ecp", "ccecp", "--charge", "4"],
     ["no valence electrons"]),
    ("ecp-atom-not-in-system", None, E + ["--system", "Si", "--ecp", "ccecp", "--ecp-atoms", "C"], ["C", "not in"]),
    ("ecp-atoms-without-ecp", None, E + ["--system", "Si", "--ecp-atoms", "Si"], ["--ecp"]),
    ("ecp-several-states", None, E + ["--system", "Be", "--ecp", "ccecp", "--states", "2"],
     ["--states 2", "effective core potential"]),
    # option values of the right name but the wrong type or range
    ("set-banana", None, T + ["--set", "determinants=banana"], ["determinants", "integer", "banana"]),
    ("set-zero", None, T + ["--set", "determinants=0"], ["determinants", ">= 1", "0"]),
    ("set-negative", None, T + ["--set", "determinants=-1"], ["determinants", "-1"]),
    ("set-float", None, T + ["--set", "determinants=2.5"], ["determinants", "2.5"]),
    ("set-zero-widths", None, T + ["--set", "embedding.hidden_dims=[[0,0]]"], ["hidden_dims", "positive"]),
    ("set-negative-width", None, T + ["--set", "embedding.hidden_dims=[[16,-4]]"], ["hidden_dims", "-4"]),
    ("set-widths-scalar", None, T + ["--set", "embedding.hidden_dims=5"], ["hidden_dims"]),
    ("set-bool-maybe", None, T + ["--set", "full_det=maybe"], ["full_det", "true or false", "maybe"]),
    ("set-bool-string", None, T + ["--set", "full_det='true'"], ["full_det", "true or false"]),
    ("set-slot-not-a-name", None, T + ["--set", "envelope=3"], ["envelope", "layer name"]),
    ("set-no-value", None, T + ["--set", "determinants"], ["key=value"]),
    # slots: unknown fillers, fillers of another slot, options a filler does not accept
    ("slot-unknown-layer", None, T + ["--set", "embedding=schnet_embeding"], ["schnet_embeding", "schnet_embedding"]),
    ("slot-wrong-kind", None, T + ["--set", "envelope=cusp_jastrow"], ["cusp_jastrow", "jastrow", "envelope"]),
    ("slot-required-empty", None, T + ["--set", "embedding=none"], ["embedding", "cannot be empty"]),
    ("slot-option-not-accepted", None, T + ["--set", "embedding=schnet_embedding", "--set", "embedding.hidden_dims=[[8,2]]"],
     ["schnet_embedding", "hidden_dims", "width"]),
    ("slot-option-wrong-type", None, T + ["--set", "embedding=schnet_embedding", "--set", "embedding.width=wide"],
     ["width", "integer", "wide"]),
    ("slot-option-of-empty-slot", None, T + ["--set", "jastrow.hidden=[8]"], ["jastrow", "none"]),
    ("slot-option-unknown-slot", None, T + ["--set", "backbone.width=3"], ["backbone.width"]),
    ("slot-option-without-slot", None, T + ["--set", "hidden_dims=[[8,2]]"], ["hidden_dims", "embedding.hidden_dims"]),
    ("choice-not-allowed", None, T + ["--set", "envelope_init=random"], ["envelope_init", "ones, hf", "random"]),
    ("layer-choice-not-allowed", None,
     ["train", "--system", "H2", "--ansatz", "paulinet", *FAST, "--out", "{work}/new", "--set",
      "antisymmetrizer.weight_init=zeros"], ["weight_init", "hf, uniform", "zeros"]),
    ("huge-anion", None, T + ["--charge", "-1000"], ["-1000", "electrons"]),
    ("seed-65-bits", None, T + ["--seed", str(2**65)], ["seed", str(2**65)]),
    ("seed-negative", None, T + ["--seed", "-1"], ["seed", "-1"]),
    ("out-is-a-file", lambda w: (w / "afile").write_text("mine"), T[:-1] + ["{work}/afile"], ["afile", "file"]),
    ("out-under-a-file", lambda w: (w / "afile").write_text("mine"), T[:-1] + ["{work}/afile/run"],
     ["afile", "file"]),
    ("batch-beyond-memory", None, T + ["--batch-size", str(10**12)], ["batch", "--batch-size"]),
    ("batch-zero", None, T + ["--batch-size", "0"], ["batch_size", ">= 1"]),
    ("lr-nan", None, T + ["--lr", "nan"], ["learning rate", "nan"]),
    ("lr-inf", None, T + ["--lr", "inf"], ["learning rate", "inf"]),
    ("lr-zero", None, T + ["--lr", "0"], ["learning rate", "> 0"]),
    ("lr-negative", None, T + ["--lr", "-1"], ["learning rate", "> 0"]),
    ("steps-negative", None, T + ["--steps", "-1"], ["steps", ">= 0"]),
    ("eval-steps-negative", None, T + ["--eval-steps", "-1"], ["evaluation steps", "-1"]),
    ("eval-steps-one", None, T + ["--eval-steps", "1"], ["evaluation steps", "at least 2"]),
    ("mcmc-steps-zero", None, T + ["--mcmc-steps", "0"], ["mcmc_steps"]),
    ("checkpoint-every-zero", None, T + ["--checkpoint-every", "0"], ["checkpoint_every"]),
    ("burn-in-negative", None, T + ["--burn-in", "-5"], ["burn_in"]),
    ("dtype-float16", None, T + ["--dtype", "float16"], ["float16"]),
    ("laplacian-unknown", None, T + ["--laplacian", "magic"], ["magic", "folx"]),
    ("unit-unknown", None, T + ["--unit", "furlong"], ["furlong"]),
    # folders that hold something else
    ("out-holds-another-run-and-a-user-file",
     lambda w: ((w / "new").mkdir(), (w / "new" / "config.yaml").write_text("someone: else\n"),
                (w / "new" / "notes.txt").write_text("mine")), T, ["already holds a run"]),
    ("out-holds-a-user-file", lambda w: ((w / "new").mkdir(), (w / "new" / "notes.txt").write_text("mine")), T,
     ["not empty", "notes.txt"]),
    # --resume / --config with settings that conflict with the stored run, or no run
    ("resume-dtype-conflict", "copy", ["train", "--resume", "{work}/run", "--dtype", "float32"],
     ["--dtype float32", "stored: float64"]),
    ("resume-set-conflict", "copy", ["train", "--resume", "{work}/run", "--set", "determinants=4"],
     ["determinants=4", "stored: 2"]),
    ("resume-batch-conflict", "copy", ["train", "--resume", "{work}/run", "--batch-size", "64"],
     ["--batch-size 64", "stored: 16"]),
    ("resume-system-conflict", "copy", ["train", "--resume", "{work}/run", "--system", "LiH"], ["--system LiH"]),
    ("resume-other-out", "copy", ["train", "--resume", "{work}/run", "--out", "{work}/elsewhere"], ["--out"]),
    ("resume-missing", None, ["train", "--resume", "{work}/nothing"], ["config.yaml"]),
    ("resume-and-config", "copy", ["train", "--resume", "{work}/run", "--config", "{work}/run/config.yaml"],
     ["--resume", "--config"]),
    ("config-with-conflicting-flag", "copy", ["train", "--config", "{work}/run/config.yaml", "--out",
                                              "{work}/new", "--lr", "0.5"], ["--lr 0.5"]),
    ("config-into-its-own-folder", "copy", ["train", "--config", "{work}/run/config.yaml", "--out", "{work}/run"],
     ["own folder"]),
    ("config-missing", None, ["train", "--config", "{work}/none/config.yaml", "--out", "{work}/new"], ["none"]),
    # evaluate
    ("evaluate-batch-zero", "copy", ["evaluate", "{work}/run", "--batch-size", "0", "--no-progress"],
     ["batch_size", ">= 1"]),
    ("evaluate-steps-one", "copy", ["evaluate", "{work}/run", "--steps", "1", "--no-progress"], ["steps", ">= 2"]),
    ("evaluate-seed-huge", "copy", ["evaluate", "{work}/run", "--seed", str(2**64), "--no-progress"], ["seed"]),
    ("evaluate-no-checkpoint", "no-checkpoint", ["evaluate", "{work}/run", "--no-progress"], ["train first"]),
    # damaged checkpoints and config files
    *[(f"checkpoint-{how}", how, ["evaluate", "{work}/run", "--steps", "2", "--no-progress"],
       ["checkpoint.msgpack"]) for how in ("empty", "truncated", "random", "header", "flipped", "directory")],
    ("resume-checkpoint-flipped", "flipped", ["train", "--resume", "{work}/run", "--no-progress"],
     ["checkpoint.msgpack", "checksum"]),
    *[(how, how, ["evaluate", "{work}/run", "--steps", "2", "--no-progress"], ["config.yaml"])
      for how in ("config-garbage", "config-truncated", "config-list")],
    ("config-checkpoint-mismatch", "config-mismatch", ["evaluate", "{work}/run", "--steps", "2", "--no-progress"],
     ["checkpoint", "expected"]),
    ("config-garbage-as-config", "config-garbage", ["train", "--config", "{work}/run/config.yaml", "--out",
                                                    "{work}/new"], ["config.yaml"]),
    # issue 29 -- 9: click's usage errors are one line with the usage hint
    ("charge-not-an-integer", None, ["train", "--charge", "1.5"], ["--charge", "integer", "qmczoo train --help"]),
    ("steps-not-an-integer", None, ["train", "--steps", "abc"], ["--steps", "integer", "qmczoo train --help"]),
    ("list-unknown-option", None, ["list", "--bogus"], ["--bogus", "qmczoo list --help"]),
    ("unknown-command", None, ["bogus"], ["bogus", "qmczoo --help"]),
    ("info-without-name", None, ["info"], ["name", "qmczoo info --help"]),
    # 7: a config file's system gets the command line's checks; unknown keys and basis names are refused
    ("config-six-electrons", _finished("config-six-electrons"),
     ["train", "--config", "{work}/run/config.yaml", "--out", "{work}/new"], ["charge -4", "electrons"]),
    ("config-unknown-key", _finished("config-unknown-key"),
     ["train", "--config", "{work}/run/config.yaml", "--out", "{work}/new"], ["unknown key", "walkers_extra"]),
    ("set-unused-basis", None, T + ["--set", "hf_basis=nonsense"], ["hf_basis", "nonsense", "basis"]),
    # 6: input nested thousands deep
    ("set-nested-too-deep", None, T + ["--set", "determinants=" + "[" * 5000 + "]" * 5000], ["nested too deeply"]),
    ("geometries-nested-too-deep", _deep_geometries,
     ["train", "--system", "H2", "--ansatz", "pesnet", *FAST, "--geometries", "{work}/deep.yaml", "--out",
      "{work}/new"], ["deep.yaml", "nested too deeply"]),
    # 4: a resume never starts a run with results again, nor rewrites a finished one without adding steps
    ("resume-results-without-checkpoint", _finished("no-checkpoint"), ["train", "--resume", "{work}/run"],
     ["holds results", "summary.json", "no checkpoint.msgpack", "--config"]),
    ("resume-log-without-checkpoint", _finished("no-checkpoint-no-summary"), ["train", "--resume", "{work}/run"],
     ["train.csv", "no checkpoint.msgpack"]),
    ("resume-fewer-steps", _finished(""), ["train", "--resume", "{work}/run", "--steps", "3"],
     ["already has 5 steps", "--steps 3"]),
    ("resume-finished-run", _finished(""), ["train", "--resume", "{work}/run"],
     ["already finished its 5 steps", "qmczoo evaluate"]),
    # 5: a damaged train.csv is checked against the checkpoint before a resume
    ("resume-log-gap", _finished("log-gap"), ["train", "--resume", "{work}/run", "--steps", "6"],
     ["train.csv", "skips steps", "move it away"]),
    ("resume-log-short", _finished("log-short"), ["train", "--resume", "{work}/run", "--steps", "6"],
     ["train.csv", "ends at step 3", "rows 4-5 are missing", "move it away"]),
    ("resume-log-doubled", _finished("log-doubled"), ["train", "--resume", "{work}/run", "--steps", "6"],
     ["train.csv", "repeats steps", "move it away"]),
    ("resume-log-binary", _finished("log-binary"), ["train", "--resume", "{work}/run", "--steps", "6"],
     ["train.csv", "binary", "move it away"]),
    ("resume-log-other-header", _finished("log-other-header"), ["train", "--resume", "{work}/run", "--steps", "6"],
     ["train.csv", "header"]),
    ("resume-log-damaged-middle", _finished("log-damaged-middle"),
     ["train", "--resume", "{work}/run", "--steps", "6"], ["train.csv", "damaged at line 3"]),
    # 3: a run folder whose files are symbolic links is refused (nothing written through them)
    *[(f"link-{name}-evaluate", _link(name), ["evaluate", "{work}/run", "--steps", "2", "--no-progress"],
       ["symbolic link", name]) for name in ("evaluation.json", "pes.csv", "summary.json", "energy.png",
                                            "checkpoint.msgpack.tmp", "evaluation.json.tmp", runs.LOCK_FILE)],
    *[(f"link-{name}-resume", _link(name), ["train", "--resume", "{work}/run", "--no-progress"],
       ["symbolic link", name]) for name in ("train.csv", "config.yaml", "checkpoint.msgpack.tmp",
                                            "train_geometries.csv")],
]


@pytest.mark.parametrize("case_id, prepare, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, stored_run, finished_run,
                                                               case_id, prepare, args, words):
    import inspect

    work = tmp_path / "work"
    work.mkdir()
    if prepare == "copy":
        _copy_run(stored_run)(work)
    elif isinstance(prepare, str):
        _corrupt(prepare)(work, stored_run)
    elif prepare is not None and "finished" in inspect.signature(prepare).parameters:
        prepare(work, finished_run)
    elif prepare is not None and "stored" in inspect.signature(prepare).parameters:
        prepare(work, stored_run)
    elif prepare is not None:
        prepare(work)
    monkeypatch.chdir(work)
    before = _snapshot(work)
    result = runner.invoke(app, [a.replace("{work}", str(work)) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for w in words:
        assert w.lower() in errors[0].lower(), (w, errors[0])
    after = _snapshot(work)
    # a lock file may be left in an existing run folder (it is empty and harmless); nothing else
    after = {k: v for k, v in after.items() if not k.endswith(runs.LOCK_FILE) or k in before}
    assert after == before, "files written or changed"


def test_at_least_thirty_bad_inputs_are_listed():
    assert len(CASES) >= 30


def test_a_folder_in_use_is_refused_in_a_real_process(tmp_path, stored_run):
    """The run-folder lock, with a real second process: one error line naming our pid."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(stored_run, run)
    with runs.lock_run(run):
        before = _snapshot(tmp_path)
        proc = subprocess.run([sys.executable, "-m", "qmczoo.cli", "evaluate", str(run), "--no-progress"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "in use by another qmczoo process" in lines[0] and f"pid {os.getpid()}" in lines[0]
    assert _snapshot(tmp_path) == before


def test_bad_inputs_in_a_real_process(tmp_path):
    """A seed beyond 64 bits through the real entry point (was an OverflowError): no traceback, exit 2."""
    for extra in (["--seed", str(2**70)],):
        proc = subprocess.run([sys.executable, "-m", "qmczoo.cli", "train", "--system", "H2", *FAST,
                               "--out", str(tmp_path / "new"), *extra],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
        assert list(tmp_path.iterdir()) == []


def test_plug_in_options_are_type_checked_by_their_defaults(monkeypatch):
    """The check lives in the registry, so entries from outside get it too."""
    from qmczoo import registry
    from qmczoo.errors import ConfigError

    entry = dict(factory="nowhere:factory", defaults={"width": 1.0, "layers": 2, "cusp": True,
                                                      "dims": [[8, 2]], "mode": "a", "extra": None})
    monkeypatch.setitem(registry._load()["ansatze"], "toy_plugin", entry)
    ok = get_ansatz("toy_plugin", width=2, layers=3, cusp=False, dims=[[4, 1], [4, 1]], mode="b", extra=[1])
    assert ok.options["width"] == 2.0 and ok.options["dims"] == [[4, 1], [4, 1]]
    for bad, words in [({"width": "wide"}, "finite number"), ({"width": float("nan")}, "finite number"),
                       ({"layers": 0}, ">= 1"), ({"layers": True}, "integer"), ({"cusp": "yes"}, "true or false"),
                       ({"dims": [[8]]}, "pairs"), ({"dims": []}, "pairs"), ({"mode": 1}, "string")]:
        with pytest.raises(ConfigError, match=words):
            get_ansatz("toy_plugin", **bad)
