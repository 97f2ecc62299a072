"""Accuracy against wall time for qmczoo and the two anchors, judged by evaluated energies.

Each code trains LiH on the anchors' workload (``../shared/anchors``: 256 walkers, a FermiNet
of 4 layers of (128, 16), 8 dense determinants, 10 Metropolis steps per step, KFAC, float32,
500 Hartree-Fock pretraining steps) for the same wall-clock budget, one after another on the
same machine. Snapshots of the parameters are taken during training (FermiNet and DeepQMC:
their own checkpoints, written often; the snapshot at time T is the newest checkpoint written
at or before T seconds after the process started). After all training has finished, every
snapshot is evaluated with its own code's fixed-parameter mode:

- FermiNet: ``optim.optimizer=none``, restored from the checkpoint (walkers included);
- DeepQMC: its ``evaluate`` task on the checkpoint, keeping the checkpoint's walkers;
- qmczoo: ``qmczoo.engine.evaluate.evaluate`` (what ``qmczoo evaluate`` runs).

The first ``--eval-discard`` measured steps are dropped and the per-step mean energies are
reblocked by one routine (``qmczoo.engine.statistics.reblock``) for all three codes.

Prints one table (s/step, start-up, evaluated energy +- error at each snapshot, the time from
which the evaluated energy stays within 1.6 mHa of exact, each as a ratio to FermiNet) and
writes ``results.json``, ``table.md`` and ``evaluated.png`` to --out.

    python benchmarks/anchors_evaluated.py --budget 960 --every 240 --eval-steps 400

Needs the anchors built by ``../shared/anchors/setup.sh`` (``$ANCHORS``, default
``${TMPDIR:-/tmp}/anchors``). A code whose training is already in --out is not trained again
(delete its folder to redo it), so a crashed benchmark can be continued.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

EXACT = -8.070548  # LiH at 3.015 bohr, ../shared/reference/energies.yaml
TOLERANCE = 1.6e-3
HERE = Path(__file__).resolve().parent
ANCHORS = Path(os.environ.get("ANCHORS", Path(tempfile.gettempdir()) / "anchors"))
CODES = ("ferminet", "deepqmc", "qmczoo")
LABELS = {"ferminet": "FermiNet", "deepqmc": "DeepQMC", "qmczoo": "qmczoo"}

FERMINET_FLAGS = [
    "--config.system.molecule_name=LiH", "--config.system.bond_length=3.015",
    "--config.system.units=bohr", "--config.batch_size=256",
    "--config.network.ferminet.hidden_dims=((128,16),(128,16),(128,16),(128,16))",
    "--config.network.determinants=8", "--config.mcmc.steps=10", "--alsologtostderr",
]
DEEPQMC_FLAGS = [
    "ansatz=ferminet", "hamil/mol=LiH", "task.electron_batch_size=256",
    "ansatz.n_determinants=8", "ansatz.omni_factory.embedding_dim=128",
    "ansatz.omni_factory.gnn_factory.two_particle_stream_dim=16",
]


def _run(cmd: list[str], log: Path, timeout: float | None = None, cwd: Path | None = None) -> float:
    """Run ``cmd`` with output to ``log``; returns the process start time (epoch seconds).
    A run stopped by ``timeout`` is the budget ending, not a failure."""
    start = time.time()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            return start
    if proc.returncode != 0:
        raise SystemExit(f"error: {cmd[0]} failed (exit {proc.returncode}); see {log}")
    return start


def _readable_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _snapshots(files: list[tuple[int, Path]], start: float, budget: float, every: float):
    """Newest checkpoint at or before each multiple of ``every`` (seconds after ``start``):
    ``[(seconds, step, path)]``."""
    stamped = sorted((p.stat().st_mtime - start, step, p) for step, p in files)
    out = []
    for k in range(1, int(budget // every) + 1):
        before = [s for s in stamped if s[0] <= k * every + 1e-6]
        if before and (not out or before[-1][1] != out[-1][1]):
            out.append(before[-1])
    return out


def _marginal(times: dict[int, float]) -> tuple[float, float]:
    """(s/step between steps 60 and 260 or the nearest recorded, start-up = time of step 0
    extrapolated back) from ``{step: seconds since start}``."""
    steps = sorted(times)
    a = min(steps, key=lambda s: abs(s - 60))
    b = min(steps, key=lambda s: abs(s - 260))
    if b <= a:
        return float("nan"), float("nan")
    per = (times[b] - times[a]) / (b - a)
    return per, times[a] - a * per


# --- training --------------------------------------------------------------------------------

def train_ferminet(out: Path, budget: float, every: float) -> dict:
    save = out / "train"
    cmd = [str(ANCHORS / "venv-fn/bin/ferminet"), "--config",
           str(ANCHORS / "ferminet/ferminet/configs/diatomic.py"), *FERMINET_FLAGS,
           "--config.optim.optimizer=kfac", "--config.optim.iterations=10000000",
           "--config.pretrain.iterations=500", "--config.mcmc.burn_in=100",
           f"--config.log.save_path={save}", "--config.log.save_frequency=0.5"]
    start = _run(cmd, out / "train.log", timeout=budget)
    year = datetime.date.fromtimestamp(start).year
    times = {}
    for line in open(out / "train.log"):
        m = re.match(r"I(\d\d)(\d\d) (\d+):(\d+):([\d.]+) .*?\] Step (\d+):", line)
        if m:
            stamp = datetime.datetime(year, int(m[1]), int(m[2]), int(m[3]), int(m[4])).timestamp()
            times[int(m[6])] = stamp + float(m[5]) - start
    files = [(int(p.stem.rsplit("_", 1)[1]), p) for p in save.glob("qmcjax_ckpt_*.npz")
             if _readable_zip(p)]
    per, startup = _marginal(times)
    return {"start": start, "s_per_step": per, "startup": startup, "steps": max(times, default=0) + 1,
            "snapshots": [(t, s, str(p)) for t, s, p in _snapshots(files, start, budget, every)]}


def train_deepqmc(out: Path, budget: float, every: float) -> dict:
    work = out / "train"
    cmd = [str(ANCHORS / "venv-dq/bin/deepqmc"), "task=train_ferminet", *DEEPQMC_FLAGS,
           "task.steps=10000000", "task.pretrain_steps=500",
           "+task.chkpt_constructor.interval=100",
           f"task.workdir={work}", f"hydra.run.dir={work}/hydra"]
    start = _run(cmd, out / "train.log", timeout=budget, cwd=out)
    files = [(int(p.stem.split("-")[1]), p) for p in work.glob("hydra/training/chkpt-*.pt")]
    files = [(s, p) for s, p in files if s > 0]  # chkpt-0 precedes the optimisation
    times = {s: p.stat().st_mtime - start for s, p in files}
    per, startup = _marginal(times) if len(times) >= 2 else (float("nan"), float("nan"))
    return {"start": start, "s_per_step": per, "startup": startup, "steps": max(times, default=0),
            "restdir": str(work / "hydra/training"),
            "snapshots": [(t, s, str(p)) for t, s, p in _snapshots(files, start, budget, every)]}


def train_and_evaluate_qmczoo(out: Path, budget: float, every: float, eval_steps: int) -> dict:
    cmd = [sys.executable, str(HERE / "lih_kfac.py"), "--pretrain", "500", "--burn-in", "100",
           "--budget", str(budget), "--eval-every", str(every), "--eval-steps", str(eval_steps),
           "--no-final-evaluation", "--csv", str(out / "train.csv")]
    _run(cmd, out / "train.log")
    text = (out / "train.log").read_text()
    per = float(re.search(r"s/step \(steps 61-260\): ([\d.]+)", text)[1])
    startup = float(re.search(r"start-up before the first step.*?: ([\d.]+) s", text)[1])
    startup += float(re.search(r"first step \(compilation\): ([\d.]+) s", text)[1]) - per
    evaluated = [{"seconds": float(m[1]) * 60, "step": int(m[2]), "energy": float(m[3]),
                  "error": float(m[4])}
                 for m in re.finditer(r"evaluation at +([\d.]+) min \(step (\d+)\): (-?[\d.]+) \+- ([\d.]+)", text)]
    steps = int(re.search(r"(\d+) steps in", text)[1])
    return {"s_per_step": per, "startup": startup, "steps": steps, "evaluated": evaluated}


# --- evaluation ------------------------------------------------------------------------------

def _estimate(energies, discard: int) -> tuple[float, float]:
    from qmczoo.engine.statistics import reblock

    est = reblock(np.asarray(energies, dtype=np.float64)[discard:])
    return est.mean, est.error


def evaluate_ferminet(ckpt: Path, out: Path, steps: int, discard: int) -> tuple[float, float]:
    restore = out / "restore"
    restore.mkdir(parents=True, exist_ok=True)
    for old in restore.glob("*"):
        old.unlink()
    os.symlink(ckpt, restore / ckpt.name)
    cmd = [str(ANCHORS / "venv-fn/bin/ferminet"), "--config",
           str(ANCHORS / "ferminet/ferminet/configs/diatomic.py"), *FERMINET_FLAGS,
           "--config.optim.optimizer=none", f"--config.optim.iterations={steps + discard}",
           "--config.pretrain.iterations=0", f"--config.log.restore_path={restore}",
           f"--config.log.save_path={out / 'eval'}", "--config.log.save_frequency=100000"]
    _run(cmd, out / "eval.log")
    energies = np.genfromtxt(out / "eval/train_stats.csv", delimiter=",", names=True)["energy"]
    return _estimate(energies, discard)


def evaluate_deepqmc(ckpt: Path, restdir: str, out: Path, steps: int, discard: int) -> tuple[float, float]:
    import h5py

    cmd = [str(ANCHORS / "venv-dq/bin/deepqmc"), "task=evaluate", f"task.restdir={restdir}",
           f"+task.chkpt={ckpt.name}", f"+task.steps={steps + discard}", "task.keep_sampler_state=true",
           f"task.workdir={out}", f"hydra.run.dir={out}/hydra"]
    _run(cmd, out / "eval.log", cwd=out)
    with h5py.File(out / "hydra/evaluation/result.h5", "r") as f:
        energies = f["local_energy/mean"][:, 0, 0]
    return _estimate(energies, discard)


# --- report ----------------------------------------------------------------------------------

def stays_within(evaluated: list[dict]) -> float | None:
    """Seconds of the first snapshot from which every later evaluated energy is within 1.6 mHa."""
    inside = [abs(e["energy"] - EXACT) <= TOLERANCE for e in evaluated]
    return next((evaluated[i]["seconds"] for i in range(len(inside)) if all(inside[i:])), None)


def report(results: dict, out: Path) -> str:
    ref = results.get("ferminet", {})

    def grid(r):
        """One cell per snapshot: its evaluation, or None where it was not evaluated."""
        evaluated = r.get("evaluated", [])
        if "snapshots" not in r:
            return list(evaluated)
        by_step = {e["step"]: e for e in evaluated}
        return [by_step.get(step) for _, step, _ in r["snapshots"]]

    def within(r):
        """(seconds from which within 1.6 mHa, whether earlier snapshots went unevaluated
        so that the time is only an upper bound)."""
        evaluated = r.get("evaluated", [])
        good = stays_within(evaluated)
        cells = grid(r)
        first = next((i for i, c in enumerate(cells) if c is not None), 0)
        bounded = good is not None and first > 0 and evaluated and good == evaluated[0]["seconds"]
        return good, bounded

    n_snap = max(len(grid(r)) for r in results.values())

    def ratio(x, y):
        return f"{x / y:.2f}" if x is not None and y and np.isfinite(x) and np.isfinite(y) else "-"

    head = ["code", "s/step", "x FermiNet", "start-up (s)", "steps"]
    head += [f"snapshot {k + 1}: min, E - exact (mHa)" for k in range(n_snap)]
    head += ["within 1.6 mHa from (min)", "x FermiNet"]
    rows = []
    for code in CODES:
        r = results.get(code)
        if r is None:
            continue
        cells = [LABELS[code], f"{r['s_per_step']:.3f}", ratio(r["s_per_step"], ref.get("s_per_step")),
                 f"{r['startup']:.0f}", str(r["steps"])]
        snapshots = grid(r)
        for k, e in enumerate(snapshots):
            if e is None:
                cells.append(f"{r['snapshots'][k][0] / 60:.1f}: not evaluated")
            else:
                cells.append(f"{e['seconds'] / 60:.1f}: {1e3 * (e['energy'] - EXACT):+.2f} ± {1e3 * e['error']:.2f}")
        cells += [""] * (n_snap - len(snapshots))
        (good, bounded), (good_ref, bounded_ref) = within(r), within(ref)
        cells.append("not within" if good is None else f"{'≤ ' if bounded else ''}{good / 60:.1f}")
        cells.append("-" if bounded or bounded_ref else ratio(good, good_ref))
        rows.append(cells)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c) + " |" for c in rows]
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    _plot(results, out / "evaluated.png")
    return table


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.axhspan(-1.6, 1.6, color="0.9", label="±1.6 mHa")
    for code, r in results.items():
        ev = r.get("evaluated", [])
        if not ev:
            continue
        t = [e["seconds"] / 60 for e in ev]
        y = [1e3 * (e["energy"] - EXACT) for e in ev]
        err = [1e3 * e["error"] for e in ev]
        ax.errorbar(t, y, yerr=err, marker="o", capsize=3, label=LABELS[code])
    ax.axhline(0.0, color="0.5", lw=0.8)
    top = max([1e3 * (e["energy"] - EXACT) for r in results.values() for e in r.get("evaluated", [])] or [5.0])
    ax.set_ylim(-4.0, min(top + 3.0, 40.0))  # early snapshots far above exact leave the top
    ax.set_xlabel("wall time since process start (min)")
    ax.set_ylabel("evaluated E - exact (mHa)")
    ax.set_title("LiH, evaluated energies of snapshots (fixed parameters)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=960, help="training seconds per code")
    ap.add_argument("--every", type=float, default=240, help="seconds between snapshots")
    ap.add_argument("--eval-steps", type=int, default=400, help="measured steps per evaluation")
    ap.add_argument("--eval-discard", type=int, default=20,
                    help="anchors: first measured steps dropped (qmczoo burns in as many)")
    ap.add_argument("--codes", default=",".join(CODES), help="comma-separated subset of " + ",".join(CODES))
    ap.add_argument("--out", default=str(ANCHORS / "runs/evaluated"))
    ap.add_argument("--budget-for", action="append", default=[], metavar="CODE=SECONDS",
                    help="another training budget for one code (e.g. a longer one for the slower code, so that "
                         "its crossing is measured)")
    ap.add_argument("--eval-from", action="append", default=[], metavar="CODE=SECONDS",
                    help="evaluate only this anchor's snapshots from SECONDS on (FermiNet's own evaluation takes "
                         "minutes per snapshot); the table marks the others as not evaluated")
    args = ap.parse_args()
    codes = [c.strip() for c in args.codes.split(",")]
    bad = sorted(set(codes) - set(CODES))
    if bad:
        raise SystemExit(f"error: unknown code(s) {bad}; choose from {', '.join(CODES)}")
    for venv in ("venv-fn", "venv-dq"):
        if any(c != "qmczoo" for c in codes) and not (ANCHORS / venv).is_dir():
            raise SystemExit(f"error: {ANCHORS / venv} not found; build the anchors with ../shared/anchors/setup.sh")
    def per_code(items, flag, codes_allowed):
        found = {}
        for item in items:
            code, _, seconds = item.partition("=")
            try:
                found[code.strip()] = float(seconds)
            except ValueError:
                raise SystemExit(f"error: {flag} wants CODE=SECONDS, got {item!r}") from None
            if code.strip() not in codes_allowed:
                raise SystemExit(f"error: {flag} takes one of {', '.join(codes_allowed)}, got {item!r}")
        return found

    eval_from = per_code(args.eval_from, "--eval-from", CODES[:2])
    budgets = {code: args.budget for code in CODES} | per_code(args.budget_for, "--budget-for", CODES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    settings = {k: getattr(args, k) for k in ("budget", "every", "eval_steps", "eval_discard")}
    if args.budget_for:
        settings["budgets"] = budgets
    if results.get("settings", settings) != settings:
        raise SystemExit(f"error: {results_path} holds runs with other settings {results['settings']}; "
                         "use another --out")
    results["settings"] = settings

    def save():
        results_path.write_text(json.dumps(results, indent=1))

    # Train every code first (nothing else runs while one trains), then evaluate.
    for code in codes:
        if code in results:
            print(f"{LABELS[code]}: training found in {out / code}")
            continue
        folder = out / code
        folder.mkdir(exist_ok=True)
        print(f"{LABELS[code]}: training for {budgets[code]:.0f} s ...", flush=True)
        if code == "ferminet":
            results[code] = train_ferminet(folder, budgets[code], args.every)
        elif code == "deepqmc":
            results[code] = train_deepqmc(folder, budgets[code], args.every)
        else:
            results[code] = train_and_evaluate_qmczoo(folder, budgets[code], args.every, args.eval_steps)
        results[code]["budget"] = budgets[code]
        save()
    for code in codes:
        r = results[code]
        if "snapshots" not in r:  # qmczoo evaluates its snapshots as it trains
            continue
        r.setdefault("evaluated", [])
        done = {e["step"] for e in r["evaluated"]}
        for k, (seconds, step, ckpt) in enumerate(r["snapshots"]):
            if step in done or seconds < eval_from.get(code, 0.0):
                continue
            folder = out / code / f"eval_{k + 1}"
            folder.mkdir(exist_ok=True)
            print(f"{LABELS[code]}: evaluating step {step} ({seconds / 60:.1f} min) ...", flush=True)
            if code == "ferminet":
                energy, error = evaluate_ferminet(Path(ckpt), folder, args.eval_steps, args.eval_discard)
            else:
                energy, error = evaluate_deepqmc(Path(ckpt), r["restdir"], folder, args.eval_steps,
                                                 args.eval_discard)
            r["evaluated"].append({"seconds": seconds, "step": step, "energy": energy, "error": error})
            r["evaluated"].sort(key=lambda e: e["seconds"])
            save()
    for code in codes:
        for e in results[code]["evaluated"]:
            print(f"{LABELS[code]:9s} {e['seconds'] / 60:5.1f} min (step {e['step']:6d}): "
                  f"{e['energy']:.5f} ± {e['error']:.5f} Ha ({1e3 * (e['energy'] - EXACT):+.2f} mHa)")
    print(report({c: results[c] for c in CODES if c in results}, out))
    print(f"wrote {out / 'table.md'}, {out / 'evaluated.png'}, {results_path}")


if __name__ == "__main__":
    main()
