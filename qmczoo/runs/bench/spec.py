"""What a bench is: its ansatz variants, systems, seeds, budget and shared settings (``bench.yaml``).

Ansatz variants are written ``NAME[:KEY=VALUE[:KEY=VALUE...]]``; values are YAML, so lists
work (``ferminet:embedding.hidden_dims=[[64,8],[64,8]]``). Several variants are separated by commas;
an item ``KEY=VALUE`` after a comma continues the options of the variant before it, so
``ferminet:jastrow=ee_cusp_jastrow,determinants=4`` is one variant with two options.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Sequence

import yaml

from qmczoo import defaults
from qmczoo.defaults import RUN_DEFAULTS
from qmczoo.errors import ConfigError

BENCH_FILE = "bench.yaml"
CELL_FILE = "bench_cell.json"
HF_FILE = "hartree_fock.json"
_WRITTEN = (BENCH_FILE, HF_FILE, "results.csv", "results.json", "results.md", "convergence.png")
TABLE_LOCK = ".qmczoo-table.lock"  # the shards of a bench take turns writing its table (runs.folder.wait_for_lock)
#: every file a bench writes into its folder (and their temporary files), besides the lock
BENCH_FILES = (*_WRITTEN, *(name + ".tmp" for name in _WRITTEN), ".qmczoo.lock", TABLE_LOCK)
DEFAULT_HF_BASIS = defaults.BENCH_HF_BASIS
_HF_FALLBACK_BASES = ("cc-pvqz", "cc-pvtz")
UNLIMITED_STEPS = 1_000_000  # the step cap when only a time budget is given


SUITES = {
    "papers": {"ansatze": "all", "systems": "H2,Li,LiH,Be"},
    "papers-large": {"ansatze": "all", "systems": "H2,Li,LiH,Be,B,C"},
}
"""Named comparisons (``qmczoo bench --suite NAME``): every ansatz on the systems of
``shared/reference/energies.yaml`` that a 2-core CPU runs in minutes (``papers``), or with the
first-row atoms that take longer (``papers-large``); each cell beside its paper's number."""


def suite_defaults(suite: str | None) -> dict[str, str]:
    """The ansätze and systems of a named suite (None: the bench's own defaults)."""
    if suite is None:
        return {"ansatze": "all", "systems": defaults.BENCH_SYSTEMS}
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    return SUITES[suite]


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
    except RecursionError:
        raise ConfigError(f"the value of {key!r} in --ansatz is nested too deeply to read") from None
    return key, parsed, f"{key}={value}"


def parse_ansatze(spec: str | Sequence[str]) -> list[AnsatzVariant]:
    """``"ferminet,ferminet:determinants=1:jastrow=ee_cusp_jastrow"`` -> a list of variants.

    ``all`` stands for every registered ansatz with its defaults. Unknown names, malformed
    options and duplicate variants raise :class:`ConfigError`; whether an option exists (and
    fits its ansatz, preset and slot) is checked by :func:`~qmczoo.runs.bench.run_bench` for
    every cell before the first one starts.
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
    from qmczoo.chemistry.systems import get_system

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


def parse_shard(spec: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"1/4"`` / ``(1, 4)`` -> ``(1, 4)``: this process runs the cells ``k`` with ``k % 4 == 1``
    (cells in the bench's order, 0-based); None: every cell."""
    if spec is None:
        return None
    try:
        i, n = (str(spec).split("/") if isinstance(spec, str) else list(spec))
        i, n = int(str(i).strip()), int(str(n).strip())
    except (ValueError, TypeError):
        raise ConfigError(f"--shard expects I/N (this job's index from 0 and the number of jobs), e.g. 0/4, "
                          f"got {spec!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard I/N needs N >= 1 and 0 <= I < N (the index counts from 0), got {spec!r}")
    return i, n


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


@dataclasses.dataclass
class BenchSettings:
    """Everything that must match for two runs to be one bench (stored in ``bench.yaml``)."""

    ansatze: list[str]
    systems: list[str]
    seeds: list[int]
    preset: str | None = defaults.PRESET
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
    monitor_walkers: int | None = None  # None: the trainer's default (TrainConfig)
    monitor_every: int | None = None
    states: int = RUN_DEFAULTS["states"]  # > 1: every cell trains this many lowest states
    objective: str = RUN_DEFAULTS["objective"]
    penalty: float = RUN_DEFAULTS["penalty"]

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if self.states == 1:  # a ground-state bench: stored as before these settings existed
            for key in ("states", "objective", "penalty"):
                data.pop(key)
        # through YAML and back, so that a stored copy compares equal
        return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))

    def train_config(self, seed: int, steps: int | None = None):
        from qmczoo.engine.config import TrainConfig

        extra = {k: getattr(self, k) for k in ("monitor_walkers", "monitor_every") if getattr(self, k) is not None}
        return TrainConfig(steps=self.steps if steps is None else steps, batch_size=self.batch_size,
                           optimizer=self.optimizer, learning_rate=self.learning_rate, mcmc_steps=self.mcmc_steps,
                           burn_in=self.burn_in, pretrain_steps=self.pretrain_steps, laplacian=self.laplacian,
                           dtype=self.dtype, seed=seed, checkpoint_every=self.checkpoint_every, states=self.states,
                           objective=self.objective, penalty=self.penalty, **extra)
