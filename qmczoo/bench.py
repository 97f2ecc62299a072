"""Benchmarks: several ansätze on several systems, on equal terms, in one table and one plot.

Every cell (ansatz variant, system, seed) is an ordinary run folder
``DIR/cells/<ansatz-label>/<system>/seed<k>/`` written by :func:`qmczoo.runs.train`: the same
Hartree–Fock pretraining, sampler, trainer and settings for every ansatz, the same budget
(steps, or seconds of training loop, or both) and then a fixed-parameter evaluation of the
final parameters by the shared evaluator. ``qmczoo evaluate`` reads any cell.

A bench folder holds ``bench.yaml`` (its settings), ``hartree_fock.json`` (the UHF energies
used for the share of correlation energy), ``results.csv``, ``results.json``, ``results.md``
and ``convergence.png``. Running the same bench again skips finished cells and resumes an
interrupted one from its checkpoint; different settings in the same folder are refused.

Ansatz variants are written ``NAME[:KEY=VALUE[:KEY=VALUE...]]``; values are YAML, so lists
work (``ferminet:embedding.hidden_dims=[[64,8],[64,8]]``). Several variants are separated by commas;
an item ``KEY=VALUE`` after a comma continues the options of the variant before it, so
``ferminet:jastrow=ee_cusp_jastrow,determinants=4`` is one variant with two options.

From a notebook::

    from qmczoo.bench import run_bench
    res = run_bench("ferminet,ferminet:determinants=1", "H2,LiH", out_dir="bench/h2",
                    preset="small", steps=300)
    res.rows            # list of dicts, one per cell (columns: COLUMNS)
    res.to_dataframe()  # pandas, when installed
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from qmczoo.defaults import RUN_DEFAULTS
from qmczoo.errors import ConfigError

BENCH_FILE = "bench.yaml"
CELL_FILE = "bench_cell.json"
HF_FILE = "hartree_fock.json"
DEFAULT_HF_BASIS = "cc-pv5z"
_HF_FALLBACK_BASES = ("cc-pvqz", "cc-pvtz")
UNLIMITED_STEPS = 1_000_000  # the step cap when only a time budget is given

#: Columns of every result row (results.csv, results.json, BenchResults.rows).
COLUMNS = (
    "ansatz",             # variant label, e.g. "ferminet:determinants=4"
    "ansatz_name",        # registry name
    "system",
    "seed",
    "status",             # ok | failed
    "error",              # the failure's message ("" when ok)
    "energy",             # evaluated energy of the final parameters (Ha)
    "energy_error",       # its reblocked standard error (Ha)
    "variance",           # evaluated local-energy variance (Ha^2)
    "reference_energy",   # System.reference_energy (shared/reference/energies.yaml)
    "error_mha",          # 1000 (energy - reference_energy)
    "hf_energy",          # UHF energy (pyscf) in hf_basis
    "hf_basis",
    "correlation_pct",    # 100 (E_HF - E) / (E_HF - E_ref)
    "variational_ok",     # E >= E_ref - 3 sigma
    "n_params",
    "compile_seconds",    # wall time of the first training step (jit compilation)
    "seconds_per_step",   # mean wall time of the other training steps
    "steps",              # optimisation steps done
    "train_seconds",      # wall time of the training loop (the time budget counts this)
    "wall_seconds",       # wall time of the whole cell: HF, pretraining, training, evaluation
    "peak_rss_mib",       # peak resident memory of the bench process so far (process-wide)
    "device_peak_mib",    # peak device memory from jax, where the backend reports it
    "rejected_steps",     # steps rejected by the NaN guard
    "eval_steps",
    "run_dir",            # the cell's run folder, relative to the bench folder
)


# ----------------------------------------------------------------------------- parsing
def _split_top(text: str, seps: str) -> list[str]:
    """Split ``text`` at the characters in ``seps`` outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in seps and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if depth != 0 or quote:
        raise ConfigError(f"unbalanced brackets or quotes in {text!r}")
    parts.append("".join(cur))
    return parts


@dataclasses.dataclass(frozen=True)
class AnsatzVariant:
    """One ansatz column of a bench: a registry name with option overrides."""

    label: str
    name: str
    options: dict = dataclasses.field(hash=False)


def _parse_option(text: str, where: str) -> tuple[str, Any, str]:
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise ConfigError(f"--ansatz option {text!r} in {where!r} is not KEY=VALUE")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse the value of {key!r} in {where!r}: {value!r}") from exc
    return key, parsed, f"{key}={value}"


def parse_ansatze(spec: str | Sequence[str]) -> list[AnsatzVariant]:
    """``"ferminet,ferminet:determinants=1:jastrow=ee_cusp_jastrow"`` -> a list of variants.

    ``all`` stands for every registered ansatz with its defaults. Unknown names, malformed
    options and duplicate variants raise :class:`ConfigError`; whether an option exists is
    checked per cell (a bad option fails that cell, not the bench).
    """
    from qmczoo.registry import get_ansatz, list_ansatze

    items = [spec] if isinstance(spec, str) else list(spec)
    raw: list[tuple[str, list[tuple[str, Any, str]]]] = []
    for item in items:
        for part in _split_top(str(item), ","):
            part = part.strip()
            if not part:
                raise ConfigError(f"empty entry in --ansatz {item!r}")
            head, *rest = [p.strip() for p in _split_top(part, ":")]
            if "=" in head:  # "KEY=VALUE" after a comma continues the previous variant
                if not raw:
                    raise ConfigError(f"--ansatz {item!r} starts with an option; write NAME:KEY=VALUE")
                raw[-1][1].extend(_parse_option(p, item) for p in [head, *rest])
                continue
            if head == "all":
                if rest:
                    raise ConfigError("'all' takes no options")
                raw.extend((name, []) for name in sorted(list_ansatze()))
                continue
            get_ansatz(head)  # unknown name: ConfigError listing what exists
            raw.append((head, [_parse_option(p, item) for p in rest]))
    if not raw:
        raise ConfigError("--ansatz names no ansatz")
    variants, seen = [], set()
    for name, opts in raw:
        label = ":".join([name] + [text for _, _, text in opts])
        if label in seen:
            raise ConfigError(f"ansatz variant {label!r} is given twice")
        seen.add(label)
        variants.append(AnsatzVariant(label=label, name=name, options={k: v for k, v, _ in opts}))
    return variants


def parse_systems(spec: str | Sequence[str]) -> list[tuple[str, Any]]:
    """``"H2,LiH,Be"`` (or a list) -> ``[(text, System), ...]``; bad systems raise."""
    from qmczoo.systems import get_system

    items = [spec] if isinstance(spec, str) else list(spec)
    out, names = [], set()
    for item in items:
        for text in _split_top(str(item), ","):
            text = text.strip()
            if not text:
                raise ConfigError(f"empty entry in --system {item!r}")
            system = get_system(text)
            if system.name in names:
                raise ConfigError(f"system {system.name!r} is given twice")
            names.add(system.name)
            out.append((text, system))
    if not out:
        raise ConfigError("--system names no system")
    return out


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """``"0,1"`` / ``[0, 1]`` / ``0`` -> ``[0, 1]``."""
    items = [spec] if isinstance(spec, int) else (spec.split(",") if isinstance(spec, str) else list(spec))
    seeds = []
    for s in items:
        try:
            seeds.append(int(str(s).strip()))
        except ValueError:
            raise ConfigError(f"--seeds expects integers separated by commas, got {spec!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must name distinct seeds, got {spec!r}")
    return seeds


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(hours?|hr|h|minutes?|min|m|seconds?|sec|s)?", re.I)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(spec: str | float | int | None) -> float | None:
    """``"10m"``, ``"90s"``, ``"1h30m"``, ``"1.5h"``, ``"600"`` (seconds) -> seconds (> 0)."""
    if spec is None:
        return None
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        seconds = float(spec)
    else:
        text = str(spec).strip().replace(" ", "")
        pos, seconds, matched = 0, 0.0, False
        while pos < len(text):
            m = _DURATION.match(text, pos)
            if not m or m.end() == pos:
                raise ConfigError(f"--time-budget {spec!r} is not a duration like 90s, 10m, 1h30m or 600")
            unit = (m.group(2) or "s")[0].lower()
            seconds += float(m.group(1)) * _UNIT_SECONDS[unit]
            pos, matched = m.end(), True
        if not matched:
            raise ConfigError(f"--time-budget {spec!r} is not a duration like 90s, 10m, 1h30m or 600")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--time-budget must be positive, got {spec!r}")
    return seconds


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "x"


# ----------------------------------------------------------------------------- settings
@dataclasses.dataclass
class BenchSettings:
    """Everything that must match for two runs to be one bench (stored in ``bench.yaml``)."""

    ansatze: list[str]
    systems: list[str]
    seeds: list[int]
    preset: str | None = "small"
    steps: int = RUN_DEFAULTS["steps"]
    time_budget: float | None = None
    sets: dict = dataclasses.field(default_factory=dict)
    batch_size: int = RUN_DEFAULTS["batch_size"]
    pretrain_steps: int = RUN_DEFAULTS["pretrain_steps"]
    eval_steps: int = RUN_DEFAULTS["eval_steps"]
    optimizer: str = RUN_DEFAULTS["optimizer"]
    learning_rate: float | None = None
    mcmc_steps: int = RUN_DEFAULTS["mcmc_steps"]
    burn_in: int = RUN_DEFAULTS["burn_in"]
    laplacian: str = RUN_DEFAULTS["laplacian"]
    dtype: str = RUN_DEFAULTS["dtype"]
    checkpoint_every: int = RUN_DEFAULTS["checkpoint_every"]
    hf_basis: str | None = DEFAULT_HF_BASIS
    monitor_walkers: int | None = None  # None: the trainer's default
    monitor_every: int | None = None

    def to_dict(self) -> dict:
        # through YAML and back, so that a stored copy compares equal
        return yaml.safe_load(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))

    def train_config(self, seed: int, steps: int | None = None):
        from qmczoo.train import TrainConfig

        extra = {k: getattr(self, k) for k in ("monitor_walkers", "monitor_every") if getattr(self, k) is not None}
        return TrainConfig(steps=self.steps if steps is None else steps, batch_size=self.batch_size,
                           optimizer=self.optimizer, learning_rate=self.learning_rate, mcmc_steps=self.mcmc_steps,
                           burn_in=self.burn_in, pretrain_steps=self.pretrain_steps, laplacian=self.laplacian,
                           dtype=self.dtype, seed=seed, checkpoint_every=self.checkpoint_every, **extra)


def _check_folder(out: Path, settings: BenchSettings) -> None:
    """Refuse a folder that holds something else, or a bench with other settings."""
    path = out / BENCH_FILE
    new = settings.to_dict()
    if path.exists():
        stored = (yaml.safe_load(path.read_text()) or {}).get("settings") or {}
        if stored != new:
            diff = [k for k in sorted(set(stored) | set(new)) if stored.get(k) != new.get(k)]
            shown = "; ".join(f"{k}: {stored.get(k)!r} there, {new.get(k)!r} now" for k in diff[:4])
            raise ConfigError(f"{out} holds a bench with other settings ({shown}); "
                              "use another --out or the same settings")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {BENCH_FILE}: choose a new or empty --out")
    else:
        from qmczoo import __version__

        out.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"qmczoo_version": __version__, "settings": new}, sort_keys=False))


# ----------------------------------------------------------------------------- results
def machine_description() -> str:
    """One line: cores, CPU, OS, jax backend."""
    import jax

    cpu = platform.processor() or platform.machine()
    return (f"{os.cpu_count()}-core {cpu}, {platform.system()} {platform.release()}, "
            f"jax {jax.__version__} on {jax.default_backend()}")


def _fmt_num(x, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return format(x, spec)


@dataclasses.dataclass
class BenchResults:
    """The rows of a bench (one dict per cell, keys :data:`COLUMNS`) and how it was run."""

    rows: list[dict]
    settings: dict
    out_dir: Path | None = None
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]

    def to_dataframe(self):
        """A pandas DataFrame of :attr:`rows` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pandas is optional
            raise ImportError("BenchResults.to_dataframe needs pandas (pip install pandas); "
                              "BenchResults.rows holds the same data") from exc
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def to_json(self) -> dict:
        return {"settings": self.settings, "meta": self.meta, "columns": list(COLUMNS), "rows": self.rows}

    def _display_rows(self) -> tuple[list[str], list[list[str]]]:
        from qmczoo.statistics import format_value

        header = ["ansatz", "system", "seed", "E (Ha)", "E − E_ref (mHa)", "corr. energy (%)", "params",
                  "compile (s)", "s/step", "steps", "wall (s)", "peak RSS (MiB)", "E ≥ E_ref − 3σ", "status"]
        out = []
        for r in self.rows:
            ok = r["status"] == "ok"
            energy = (format_value(r["energy"], r["energy_error"] if r["energy_error"] is not None else float("nan"))
                      if ok and r["energy"] is not None else "–")
            bound = "–" if r.get("variational_ok") is None else ("yes" if r["variational_ok"] else "**no**")
            status = "ok" if ok else f"failed: {r['error']}"
            out.append([r["ansatz"], r["system"], str(r["seed"]), energy, _fmt_num(r["error_mha"], "+.2f"),
                        _fmt_num(r["correlation_pct"], ".1f"), _fmt_num(r["n_params"], ","),
                        _fmt_num(r["compile_seconds"], ".1f"), _fmt_num(r["seconds_per_step"], ".3f"),
                        _fmt_num(r["steps"], "d"), _fmt_num(r["wall_seconds"], ".0f"),
                        _fmt_num(r["peak_rss_mib"], ".0f"), bound, status])
        return header, out

    def notes(self) -> list[str]:
        """What the columns mean and where the numbers come from (for results.md)."""
        s = self.settings
        budget = f"{s['steps']} steps" if s.get("time_budget") is None else (
            f"{s['time_budget']:g} s of training loop per cell" +
            (f" or {s['steps']} steps, whichever comes first" if s["steps"] < UNLIMITED_STEPS else ""))
        bases = sorted({r["hf_basis"] for r in self.rows if r.get("hf_basis")})
        return [
            f"Budget: {budget}; preset `{s['preset']}`, {s['batch_size']} walkers, {s['pretrain_steps']} "
            f"pretraining steps, optimizer {s['optimizer']}, {s['dtype']}, seeds {s['seeds']}"
            + (f", options {s['sets']}" if s.get("sets") else "") + ".",
            f"E: fixed-parameter evaluation of the final parameters ({s['eval_steps']} steps × "
            f"{s['batch_size']} walkers), reblocked standard error in brackets.",
            "E_ref: the reference energies of `shared/reference/energies.yaml` (as loaded by `qmczoo.get_system`).",
            "corr. energy: 100 (E_HF − E) / (E_HF − E_ref), with E_HF the UHF energy computed by pyscf in "
            f"{', '.join(bases) or s.get('hf_basis')} (the reference file has no Hartree–Fock energies).",
            "compile: wall time of the first training step; s/step: mean of the other steps; wall: the whole "
            "cell (Hartree–Fock, pretraining, training, evaluation).",
            "peak RSS: `ru_maxrss` of the bench process, which runs the cells one after another, so it is "
            "the peak so far (process-wide), not the cell's own.",
        ]

    def to_markdown(self) -> str:
        header, rows = self._display_rows()
        esc = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
        lines.append("")
        lines += [f"- {n}" for n in self.notes()]
        if self.meta:
            lines.append(f"- Run {self.meta.get('date', '?')} on {self.meta.get('machine', '?')}"
                         + (f": `{self.meta['command']}`" if self.meta.get("command") else "") + ".")
        return "\n".join(lines) + "\n"

    _repr_markdown_ = to_markdown

    def rich_table(self):
        from rich.table import Table

        header, rows = self._display_rows()
        t = Table(title=f"qmczoo bench{f' ({self.out_dir})' if self.out_dir else ''}", title_justify="left")
        for h in header:
            t.add_column(h, overflow="fold", no_wrap=h == "ansatz")
        for r, row in zip(self.rows, rows):
            row[-1] = "ok" if r["status"] == "ok" else "failed (below)"
            t.add_row(*[c.replace("**", "") for c in row], style=None if r["status"] == "ok" else "red")
        return t

    def failure_lines(self) -> list[str]:
        """One line per failed cell: ``ansatz | system | seed N: error``."""
        return [f"{r['ansatz']} | {r['system']} | seed {r['seed']}: {r['error']}" for r in self.failed]

    def write(self, out_dir: str | Path | None = None) -> None:
        """Write results.json, results.csv and results.md into the bench folder."""
        out = Path(out_dir or self.out_dir)
        (out / "results.json").write_text(json.dumps(self.to_json(), indent=2))
        with (out / "results.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for r in self.rows:
                w.writerow(["" if r.get(c) is None else r.get(c) for c in COLUMNS])
        (out / "results.md").write_text(self.to_markdown())


def load_bench(out_dir: str | Path) -> BenchResults:
    """The :class:`BenchResults` stored in a bench folder's ``results.json``."""
    out = Path(out_dir)
    path = out / "results.json"
    if not path.exists():
        raise ConfigError(f"{out} holds no results.json (not a bench folder, or no cell finished yet)")
    data = json.loads(path.read_text())
    return BenchResults(rows=data["rows"], settings=data["settings"], out_dir=out, meta=data.get("meta", {}))


# ----------------------------------------------------------------------------- cells
def hartree_fock_energies(systems: list, basis: str | None, out: Path | None = None) -> dict[str, dict]:
    """UHF energies ``{system name: {"energy", "basis"}}`` (cached in ``out/hartree_fock.json``).

    Uses ``basis``, or the next of cc-pVQZ, cc-pVTZ where pyscf lacks it for an element.
    """
    from qmczoo.pretrain import run_hartree_fock

    path = out / HF_FILE if out is not None else None
    cache = json.loads(path.read_text()) if path is not None and path.exists() else {}
    for system in systems:
        if basis is None or system.name in cache:
            continue
        entry = {"energy": None, "basis": None, "error": ""}
        for b in (basis, *[x for x in _HF_FALLBACK_BASES if x != basis]):
            try:
                entry = {"energy": run_hartree_fock(system, b).energy, "basis": f"UHF/{b}", "error": ""}
                break
            except Exception as exc:  # a basis missing for an element: try the next
                entry["error"] = f"{type(exc).__name__}: {exc}"
        cache[system.name] = entry
    if path is not None:
        path.write_text(json.dumps(cache, indent=2))
    return cache


def _n_params(params) -> int:
    import jax

    return int(sum(getattr(x, "size", 1) for x in jax.tree.leaves(params)))


def _memory() -> tuple[float, float | None]:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
    device = None
    try:
        import jax

        stats = jax.devices()[0].memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            device = stats["peak_bytes_in_use"] / 2**20
    except Exception:
        pass
    return rss_mib, device


def _empty_row(variant: AnsatzVariant, system, seed: int, run_dir: str) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(ansatz=variant.label, ansatz_name=variant.name, system=system.name, seed=seed, status="failed",
               error="", reference_energy=system.reference_energy, run_dir=run_dir)
    return row


def _finish_row(row: dict, result, log: dict, hf: dict | None, wall: float) -> dict:
    ev = result.evaluation
    e, sigma, ref = float(ev.energy), float(ev.energy_error), row["reference_energy"]
    if not math.isfinite(e):
        raise FloatingPointError(f"the evaluated energy is {e} (NaN or inf)")
    import numpy as np

    wall_times = np.asarray(log["wall_time"], dtype=float)
    # the first step's wall time is its compilation (also when the cell was resumed later);
    # seconds per step from this call's summary, or from the log when this call took no step
    compile_seconds = float(wall_times[0]) if wall_times.size else result.summary.get("compile_seconds")
    per_step = result.summary.get("seconds_per_step")
    if (per_step is None or not math.isfinite(per_step)) and wall_times.size > 1:
        per_step = float(np.median(np.diff(wall_times)))
    row.update(status="ok", error="", energy=e, energy_error=sigma, variance=float(ev.variance),
               n_params=_n_params(result.state.params), compile_seconds=compile_seconds,
               seconds_per_step=per_step, steps=int(result.state.step),
               train_seconds=float(log["wall_time"][-1]) if log["wall_time"].size else 0.0,
               wall_seconds=wall, rejected_steps=int(result.state.n_rejected), eval_steps=int(ev.steps))
    if ref is not None:
        row["error_mha"] = 1000.0 * (e - ref)
        row["variational_ok"] = bool(e >= ref - 3.0 * (sigma if math.isfinite(sigma) else 0.0))  # no sigma: E >= E_ref
        if hf and hf.get("energy") is not None and hf["energy"] > ref:
            row.update(hf_energy=hf["energy"], hf_basis=hf["basis"],
                       correlation_pct=100.0 * (hf["energy"] - e) / (hf["energy"] - ref))
    for k, v in row.items():  # NaN is not JSON: an unknown number is None
        if isinstance(v, float) and not math.isfinite(v):
            row[k] = None
    return row


def _run_cell(variant: AnsatzVariant, system, seed: int, settings: BenchSettings, cell: Path, rel: str,
              hf: dict | None, retry_failed: bool) -> tuple[dict, str]:
    """Train (or resume) and evaluate one cell; returns ``(row, how)`` with how in
    done/failed/skipped/resumed. Exceptions other than KeyboardInterrupt fail the cell only."""
    from qmczoo import runs
    from qmczoo.registry import get_ansatz

    marker = cell / CELL_FILE
    prior = json.loads(marker.read_text()) if marker.exists() else {}
    if prior.get("status") == "ok" or (prior.get("status") == "failed" and not retry_failed):
        return prior["row"], "skipped"
    if prior.get("status") == "failed":
        shutil.rmtree(cell)
        prior = {}
    wall_before = float(prior.get("wall_seconds", 0.0))
    row = _empty_row(variant, system, seed, rel)
    start = time.perf_counter()
    how = "done"
    try:
        if (cell / runs.CHECKPOINT).exists() and (cell / "config.yaml").exists():
            how = "resumed"
            log = runs.read_log(cell)
            budget, steps = settings.time_budget, settings.steps
            if budget is not None:
                budget -= float(log["wall_time"][-1]) if log["wall_time"].size else 0.0
                if budget <= 0:  # the budget ran out before the interruption: evaluate only
                    budget, steps = None, min(steps, int(log["step"][-1]))
            result = runs.train(out_dir=cell, resume=True, config=settings.train_config(seed, steps),
                                progress=False, eval_steps=settings.eval_steps, time_budget=budget)
        else:
            if cell.exists():  # stopped before its first checkpoint: start again
                shutil.rmtree(cell)
                wall_before = 0.0
            spec = get_ansatz(variant.name, settings.preset, **{**settings.sets, **variant.options})
            result = runs.train(system, spec, settings.train_config(seed), cell, progress=False,
                                eval_steps=settings.eval_steps, time_budget=settings.time_budget)
        row = _finish_row(row, result, runs.read_log(cell), hf, wall_before + time.perf_counter() - start)
    except KeyboardInterrupt:
        if cell.exists():
            marker.write_text(json.dumps({"status": "interrupted",
                                          "wall_seconds": wall_before + time.perf_counter() - start}))
        raise
    except Exception as exc:  # noqa: BLE001 - a failing cell must not stop the others
        row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        row["wall_seconds"] = wall_before + time.perf_counter() - start
        how = "failed"
    row["peak_rss_mib"], row["device_peak_mib"] = _memory()
    cell.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"status": row["status"], "row": row}, indent=2))
    return row, how


def _curves(out: Path, rows: list[dict]) -> list[dict]:
    """Energy curves of the cells: the monitor chain's energies where the trainer logged them
    (walkers never used for an update: honest), else the training walkers' energies."""
    import numpy as np

    from qmczoo.runs import read_log

    curves = []
    for r in rows:
        log = read_log(out / r["run_dir"])
        if not log["step"].size:
            continue
        monitor = log.get("monitor_energy")
        use_monitor = monitor is not None and int(np.isfinite(monitor).sum()) >= 2
        keep = np.isfinite(monitor) if use_monitor else slice(None)
        curves.append({"label": r["ansatz"], "system": r["system"], "seed": r["seed"], "step": log["step"][keep],
                       "wall_time": log["wall_time"][keep], "energy": (monitor if use_monitor else log["energy"])[keep],
                       "kind": "monitor chain" if use_monitor else "training walkers",
                       "evaluation": (r["energy"], r["energy_error"] if r["energy_error"] is not None else math.nan)
                       if r["status"] == "ok" else None})
    return curves


# ----------------------------------------------------------------------------- the bench
def run_bench(ansatze: str | Sequence[str] = "all", systems: str | Sequence = "H2,LiH,Be", *,
              out_dir: str | Path, preset: str | None = "small", steps: int | None = None,
              time_budget: str | float | None = None, seeds: str | int | Sequence[int] = 0,
              sets: dict | None = None, batch_size: int = RUN_DEFAULTS["batch_size"],
              pretrain_steps: int = RUN_DEFAULTS["pretrain_steps"], eval_steps: int = RUN_DEFAULTS["eval_steps"],
              optimizer: str = RUN_DEFAULTS["optimizer"], learning_rate: float | None = None,
              mcmc_steps: int = RUN_DEFAULTS["mcmc_steps"], burn_in: int = RUN_DEFAULTS["burn_in"],
              laplacian: str = RUN_DEFAULTS["laplacian"], dtype: str = RUN_DEFAULTS["dtype"],
              checkpoint_every: int = RUN_DEFAULTS["checkpoint_every"],
              hf_basis: str | None = DEFAULT_HF_BASIS, monitor_walkers: int | None = None,
              monitor_every: int | None = None, retry_failed: bool = False, progress: bool = True,
              command: str | None = None, on_cell: Callable[[dict, str], None] | None = None) -> BenchResults:
    """Train and evaluate every (ansatz variant, system, seed) cell under one budget.

    Args:
      ansatze: variants, ``"ferminet,ferminet:determinants=1"`` or a list (see the module
        docstring); ``"all"``: every registered ansatz.
      systems: molecule names, xyz files or inline geometries, comma-separated or a list.
      out_dir: the bench folder (new, empty, or holding this same bench to continue it).
      preset: the preset every ansatz is built with (``None``: its defaults).
      steps: optimisation steps per cell (default 1200; with only a ``time_budget``, no cap).
      time_budget: seconds of training loop per cell (``"10m"``, ``"90s"``, ``600``...);
        training stops at the budget or at ``steps``, whichever comes first.
      seeds: one seed or several; every cell of a seed starts from that seed.
      sets: option overrides applied to every ansatz (a variant's own options win).
      batch_size ... checkpoint_every, monitor_walkers, monitor_every: the shared
        :class:`~qmczoo.train.TrainConfig` settings (monitor_*: None keeps the trainer's default).
      eval_steps: evaluation steps of the final parameters (at least 2).
      hf_basis: basis of the UHF energy for the share of correlation energy (None: skip).
      retry_failed: run failed cells again (from scratch) instead of reporting the old failure.
      progress: a rich progress display across cells (per-cell progress bars stay off).
      command: the command line, recorded in results.md.
      on_cell: ``on_cell(row, how)`` after each cell (how: done, resumed, skipped, failed).

    Returns:
      :class:`BenchResults`; the same data is in ``out_dir/results.{json,csv,md}``.
    """
    budget = parse_duration(time_budget)
    if steps is None:
        steps = RUN_DEFAULTS["steps"] if budget is None else UNLIMITED_STEPS
    if int(steps) < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    if int(eval_steps) < 2:
        raise ConfigError(f"a bench evaluates every cell: --eval-steps must be >= 2, got {eval_steps}")
    variants = parse_ansatze(ansatze)
    system_list = parse_systems(systems)
    seed_list = parse_seeds(seeds)
    settings = BenchSettings(ansatze=[v.label for v in variants], systems=[t for t, _ in system_list],
                             seeds=seed_list, preset=preset, steps=int(steps), time_budget=budget,
                             sets=dict(sets or {}), batch_size=batch_size, pretrain_steps=pretrain_steps,
                             eval_steps=eval_steps, optimizer=optimizer, learning_rate=learning_rate,
                             mcmc_steps=mcmc_steps, burn_in=burn_in, laplacian=laplacian, dtype=dtype,
                             checkpoint_every=checkpoint_every, hf_basis=hf_basis,
                             monitor_walkers=monitor_walkers, monitor_every=monitor_every)
    settings.train_config(seed_list[0])  # bad training settings fail here, before any cell
    out = Path(out_dir)
    _check_folder(out, settings)

    labels: dict[str, str] = {}
    for v in variants:
        folder = _safe(v.label)
        while folder in labels.values():
            folder += "_"
        labels[v.label] = folder
    sys_folders: dict[str, str] = {}
    for _, s in system_list:
        folder = _safe(s.name)
        while folder in sys_folders.values():
            folder += "_"
        sys_folders[s.name] = folder
    cells = [(v, s, seed) for _, s in system_list for v in variants for seed in seed_list]

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_description(), "command": command or ""}
    results = BenchResults(rows=[], settings=settings.to_dict(), out_dir=out, meta=meta)

    from contextlib import nullcontext

    display = nullcontext()
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        display = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TextColumn("{task.description}"), refresh_per_second=2)
    with display as bar:
        task = bar.add_task("Hartree–Fock energies", total=len(cells)) if progress else None
        hf = hartree_fock_energies([s for _, s in system_list], hf_basis, out)
        _warn_symmetry(variants, [s for _, s in system_list], settings, bar.console if progress else None)
        for variant, system, seed in cells:
            rel = f"cells/{labels[variant.label]}/{sys_folders[system.name]}/seed{seed}"
            if progress:
                bar.update(task, description=f"{variant.label} | {system.name} | seed {seed}")
            row, how = _run_cell(variant, system, seed, settings, out / rel, rel, hf.get(system.name),
                                 retry_failed)
            results.rows.append(row)
            results.write()
            if progress:
                bar.advance(task)
                bar.console.print(_cell_line(row, how))
            if on_cell is not None:
                on_cell(row, how)
        if progress:
            bar.update(task, description="convergence plot")
        try:
            from qmczoo.plotting import plot_bench

            refs = {s.name: s.reference_energy for _, s in system_list}
            plot_bench(_curves(out, results.rows), out / "convergence.png", references=refs)
        except Exception as exc:  # the table matters more than the picture
            results.meta["plot_error"] = f"{type(exc).__name__}: {exc}"
            results.write()
        if progress:
            bar.update(task, description="done")
    return results


def _warn_symmetry(variants, systems, settings: BenchSettings, console=None) -> None:
    """A ``warning:`` line for each (variant, system) whose ansatz imposes a symmetry that the
    system's Hartree–Fock state lacks (:func:`qmczoo.symmetry.symmetry_warnings`); on ``console``
    (the progress display) or stderr. A variant that fails to resolve is left to its cell."""
    import sys

    from qmczoo.registry import get_ansatz
    from qmczoo.symmetry import symmetry_warnings

    basis = settings.train_config(settings.seeds[0]).pretrain_basis
    for variant in variants:
        for system in systems:
            try:
                spec = get_ansatz(variant.name, settings.preset, **{**settings.sets, **variant.options})
                lines = symmetry_warnings(system, spec, basis=basis)
            except Exception:  # noqa: BLE001 - a warning must not stop the bench; the cell reports errors
                continue
            for line in lines:
                if console is not None:
                    console.print(f"warning: {line}", style="yellow", markup=False, soft_wrap=True)
                else:
                    print(f"warning: {line}", file=sys.stderr)


def _cell_line(row: dict, how: str) -> str:
    from rich.markup import escape

    from qmczoo.statistics import format_value

    where = escape(f"{row['ansatz']} | {row['system']} | seed {row['seed']}")
    if row["status"] != "ok":
        return f"[red]✗ {where}: {escape(row['error'])}[/red]" + (" (recorded earlier)" if how == "skipped" else "")
    diff = f", {row['error_mha']:+.2f} mHa" if row.get("error_mha") is not None else ""
    note = {"skipped": " (finished earlier)", "resumed": " (resumed from checkpoint)"}.get(how, "")
    return (f"[green]✓[/green] {where}: E = {format_value(row['energy'], row['energy_error'])} Ha{diff}, "
            f"{row['steps']} steps in {row['wall_seconds']:.0f} s{note}")


__all__ = ["run_bench", "load_bench", "BenchResults", "BenchSettings", "AnsatzVariant", "COLUMNS",
           "parse_ansatze", "parse_systems", "parse_seeds", "parse_duration", "hartree_fock_energies"]
