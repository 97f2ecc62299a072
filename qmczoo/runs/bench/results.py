"""A bench's results: one row per cell, the table (markdown, rich, csv, json) and its notes."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
from pathlib import Path

from qmczoo.errors import ConfigError
from qmczoo.runs.bench.spec import UNLIMITED_STEPS

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
    "states",             # several states: "E_0(σ) [E_0 − exact, mHa]; E_1 ..." lowest first ("" for one state)
)


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
        return {"settings": self.settings, "meta": self.meta, "columns": list(COLUMNS), "rows": self.rows,
                "aggregated": self.aggregated()}

    def aggregated(self) -> list[dict]:
        """Seeds aggregated per (ansatz, system), with each paper's number beside ours
        (:func:`qmczoo.runs.bench.aggregate.aggregate`)."""
        from qmczoo.runs.bench.aggregate import aggregate

        return aggregate(self.rows)

    def _aggregated_rows(self) -> tuple[list[str], list[list[str]]]:
        from qmczoo.engine.statistics import format_value

        header = ["ansatz", "system", "seeds", "E mean ± spread (Ha)", "best E (Ha)", "best − E_ref (mHa)",
                  "variance (Ha²)", "published (Ha)", "seed-talk table (Ha)", "E_ref (Ha)", "flags"]
        out = []
        for a in self.aggregated():
            mean = "–" if a["energy_mean"] is None else (
                f"{a['energy_mean']:.5f}" + ("" if a["energy_spread"] is None else f" ± {a['energy_spread']:.5f}"))
            best = "–" if a["best_energy"] is None else format_value(
                a["best_energy"], a["best_error"] if a["best_error"] is not None else float("nan"))
            paper = "–" if a["published_energy"] is None else (
                f"{a['published_energy']:.6g}" if a["published_error"] is None
                else format_value(a["published_energy"], a["published_error"]))
            table = ", ".join(f"{v:.6g}" for v in a["table_values"]) or "–"
            out.append([a["ansatz"], a["system"], a["seeds"], mean, best, _fmt_num(a["error_mha_best"], "+.2f"),
                        _fmt_num(a["variance_mean"], ".4g"), paper, table, _fmt_num(a["reference_energy"], ".6f"),
                        a["flags"] or "–"])
        return header, out

    def _display_rows(self) -> tuple[list[str], list[list[str]]]:
        from qmczoo.engine.statistics import format_value

        from qmczoo.runs.bench.aggregate import cell_flags

        header = ["ansatz", "system", "seed", "E (Ha)", "E − E_ref (mHa)", "variance (Ha²)", "corr. energy (%)",
                  "params", "compile (s)", "s/step", "steps", "wall (s)", "peak RSS (MiB)", "E ≥ E_ref − 3σ",
                  "flags", "status"]
        several = self.settings.get("states", 1) > 1
        if several:
            header[3:5] = ["E_m (Ha) [E_m − exact, mHa], lowest first", "max |error| (mHa)"]
            header[13] = "each E_m ≥ exact − 3σ"
        out = []
        for r, flags in zip(self.rows, cell_flags(self.rows)):
            ok = r["status"] == "ok"
            energy = (format_value(r["energy"], r["energy_error"] if r["energy_error"] is not None else float("nan"))
                      if ok and r["energy"] is not None else "–")
            if several:
                energy = r.get("states") or "–"
            bound = "–" if r.get("variational_ok") is None else ("yes" if r["variational_ok"] else "**no**")
            status = "ok" if ok else f"failed: {r['error']}"
            out.append([r["ansatz"], r["system"], str(r["seed"]), energy, _fmt_num(r["error_mha"], "+.2f"),
                        _fmt_num(r["variance"], ".4g"), _fmt_num(r["correlation_pct"], ".1f"), _fmt_num(r["n_params"], ","),
                        _fmt_num(r["compile_seconds"], ".1f"), _fmt_num(r["seconds_per_step"], ".3f"),
                        _fmt_num(r["steps"], "d"), _fmt_num(r["wall_seconds"], ".0f"),
                        _fmt_num(r["peak_rss_mib"], ".0f"), bound, flags or "–", status])
        return header, out

    def notes(self) -> list[str]:
        """What the columns mean and where the numbers come from (for results.md)."""
        s = self.settings
        budget = f"{s['steps']} steps" if s.get("time_budget") is None else (
            f"{s['time_budget']:g} s of training loop per cell" +
            (f" or {s['steps']} steps, whichever comes first" if s["steps"] < UNLIMITED_STEPS else ""))
        bases = sorted({r["hf_basis"] for r in self.rows if r.get("hf_basis")})
        several = []
        if s.get("states", 1) > 1:
            several = [f"{s['states']} states per cell, objective {s['objective']}"
                       + (f" (alpha = {s['penalty']:g} Ha)" if s["objective"] == "penalty" else "")
                       + "; E_m: each state's evaluated energy, lowest first, with its difference to the exact "
                       "energy in brackets (`qmczoo/chemistry/data/excited_states.yaml`); max |error|: the largest "
                       "|difference| of a state energy or excitation energy; the correlation share is not defined."]
        return several + [
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
            "flags: `below-exact`, E below E_ref by more than 3σ (impossible for a variational energy); "
            "`high-variance`, a variance over 5× the median of the system's cells.",
            "Seeds aggregated: mean and sample spread over the finished seeds, the best (lowest) cell, the mean "
            "variance; published: the ansatz's own paper on that system, seed-talk table: the DeepWF and "
            "pair-product tables as the seed talk gives them (`qmczoo/chemistry/data/published.yaml`, from "
            "`shared/reference/energies.yaml`).",
        ]

    def to_markdown(self) -> str:
        esc = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = []
        for title, (header, rows) in (("Cells", self._display_rows()), ("Seeds aggregated", self._aggregated_rows())):
            lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
            lines.append("")
        lines += [f"- {n}" for n in self.notes()]
        if self.meta.get("shard"):
            lines.append(f"- Run in shards (`--shard I/N`): {self.meta.get('cells', '?')} cells when shard "
                         f"{self.meta['shard']} last wrote this table.")
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

    def rich_aggregated(self):
        """The seeds-aggregated table (with published values) for the terminal."""
        from rich.table import Table

        header, rows = self._aggregated_rows()
        t = Table(title="seeds aggregated, beside each paper's number", title_justify="left")
        for h in header:
            t.add_column(h, overflow="fold", no_wrap=h == "ansatz")
        for row in rows:
            t.add_row(*row, style="yellow" if row[-1] != "–" else None)
        return t

    def failure_lines(self) -> list[str]:
        """One line per failed cell: ``ansatz | system | seed N: error``."""
        return [f"{r['ansatz']} | {r['system']} | seed {r['seed']}: {r['error']}" for r in self.failed]

    def write(self, out_dir: str | Path | None = None) -> None:
        """Write results.json, results.csv and results.md into the bench folder."""
        from qmczoo.runs.folder import write_file

        out = Path(out_dir or self.out_dir)
        write_file(out / "results.json", json.dumps(self.to_json(), indent=2))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(COLUMNS)
        for r in self.rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in COLUMNS])
        write_file(out / "results.csv", buf.getvalue())
        write_file(out / "results.md", self.to_markdown())


def load_bench(out_dir: str | Path) -> BenchResults:
    """The :class:`BenchResults` stored in a bench folder's ``results.json``."""
    out = Path(out_dir)
    path = out / "results.json"
    if not path.exists():
        raise ConfigError(f"{out} holds no results.json (not a bench folder, or no cell finished yet)")
    data = json.loads(path.read_text())
    return BenchResults(rows=data["rows"], settings=data["settings"], out_dir=out, meta=data.get("meta", {}))
