"""``train.csv``: one row per training step, appended at each checkpoint, cut back on resume."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from qmczoo.engine.vmc import StepStats
from qmczoo.errors import ConfigError
from qmczoo.runs.folder import append_text, write_file

CSV_COLUMNS = ("step", "energy", "variance", "acceptance", "step_size", "wall_time", "rejected", "monitor_energy")


def _rows_text(rows: list[StepStats], offset: float, times: list[float], header: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    if header:
        w.writerow(CSV_COLUMNS)
    for s, t in zip(rows, times):
        w.writerow([s.step, repr(s.energy), repr(s.variance), f"{s.acceptance:.4f}", f"{s.step_size:.5g}",
                    f"{offset + t:.3f}", int(s.rejected), "" if s.monitor_energy is None else repr(s.monitor_energy)])
    return buf.getvalue()


def append_rows(path: Path, rows: list[StepStats], offset: float, times: list[float]):
    """Append one row per step (the header first into a new file); never through a link."""
    append_text(path, _rows_text(rows, offset, times, header=not path.exists()))


def read_log(out_dir: str | Path) -> dict[str, np.ndarray]:
    """``train.csv`` of a run folder as ``{column: array}`` (empty arrays if no steps yet).

    ``monitor_energy`` is NaN at steps where the monitor chain was not measured.
    """
    path = Path(out_dir) / "train.csv"
    if not path.exists():
        return {c: np.zeros(0) for c in CSV_COLUMNS}
    try:
        with path.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return {c: np.array([float(r.get(c) or "nan") for r in rows]) for c in CSV_COLUMNS}
    except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as exc:
        raise ConfigError(f"{path} is not a readable qmczoo training log ({type(exc).__name__}); move it away "
                          "to continue without it") from None


def _parse_row(row: list[str], width: int) -> bool:
    """Whether a CSV row is a complete training-log row (empty fields are allowed)."""
    try:
        [float(v) for v in row if v != ""]
        int(row[0])
    except (ValueError, IndexError):
        return False
    return len(row) == width


def check_log(out_dir: Path, last_step: int) -> tuple[list[list[str]] | None, str | None]:
    """Check ``train.csv`` against the checkpoint's step ``last_step`` before a resume.

    Returns ``(rows, note)``: the rows to keep (header first; None when there is no log with
    steps), and a note for the user when something was repaired or is missing. What can be
    repaired is: a last line cut short by a kill (dropped) and rows past ``last_step`` (the
    steps after the checkpoint are taken again). A missing log (or one without steps) before
    a checkpoint past step 0 is allowed with a note (the log restarts after the checkpoint:
    the run's earlier rows are gone, e.g. the file was moved away).

    Raises:
      ConfigError: a log that is not text, has another header, a damaged row before its last
        line, steps that repeat or skip, or that stops before ``last_step`` (rows missing);
        the message says what is wrong and how to continue.
    """
    path = Path(out_dir) / "train.csv"
    way_out = (f"move it away (e.g. mv {path} {path}.damaged) to continue the run with a new log from step "
               f"{last_step + 1}, or start a new run with --config {Path(out_dir) / 'config.yaml'} --out NEW")
    restart_note = (f"{path} holds no steps but the checkpoint is at step {last_step}: the log restarts at step "
                    f"{last_step + 1} (steps 1-{last_step} are not in it)")
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link: qmczoo never writes through a link in a run folder; "
                          "remove it, then resume again")
    if not path.exists():
        return None, (restart_note.replace("holds no steps", "is missing") if last_step > 0 else None)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        text = data.decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a qmczoo training log (binary data, not text): {way_out}") from None
    lines = text.splitlines(keepends=True)
    rows = list(csv.reader(line for line in lines))
    if not rows:
        return None, (restart_note if last_step > 0 else None)
    if tuple(rows[0]) != CSV_COLUMNS:
        raise ConfigError(f"{path} is not a qmczoo training log (its first line is not the header "
                          f"{','.join(CSV_COLUMNS)}): {way_out}")
    body, note = rows[1:], None
    if body and not _parse_row(body[-1], len(CSV_COLUMNS)):
        body = body[:-1]  # a last line cut short by a kill
        note = f"{path}: dropped its last line, cut short (the run was killed while writing it)"
    for i, row in enumerate(body):
        if not _parse_row(row, len(CSV_COLUMNS)):
            raise ConfigError(f"{path} is damaged at line {i + 2} ({','.join(row)[:60]!r}): {way_out}")
    steps = [int(r[0]) for r in body]
    for i in range(1, len(steps)):
        if steps[i] != steps[i - 1] + 1:
            what = "repeats" if steps[i] <= steps[i - 1] else "skips"
            raise ConfigError(f"{path} {what} steps (step {steps[i]} follows step {steps[i - 1]} at line {i + 2}): "
                              f"rows are missing or doubled; {way_out}")
    kept = [r for r in body if int(r[0]) <= last_step]
    if not kept:  # no steps, or only steps after the checkpoint (taken again now)
        if steps and steps[0] > last_step + 1:
            raise ConfigError(f"{path} starts at step {steps[0]} but the checkpoint is at step {last_step}: "
                              f"rows are missing; {way_out}")
        return [rows[0]], (restart_note if last_step > 0 else note)
    if int(kept[-1][0]) < last_step:
        raise ConfigError(f"{path} ends at step {int(kept[-1][0])} but the checkpoint is at step {last_step}: "
                          f"rows {int(kept[-1][0]) + 1}-{last_step} are missing; {way_out}")
    return [rows[0], *kept], note


def write_log_rows(out_dir: Path, rows: list[list[str]] | None) -> None:
    """Replace ``train.csv`` by ``rows`` (header first; None or no steps: remove the log)."""
    path = Path(out_dir) / "train.csv"
    if rows is None or len(rows) <= 1:
        if path.exists() and not path.is_symlink():
            path.unlink()
        return
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    write_file(path, buf.getvalue())  # replace, never rewrite in place: a kill keeps the old log


def truncate_log(out_dir: Path, last_step: int):
    """Keep the rows up to ``last_step`` (a resume continues from its checkpoint), after
    :func:`check_log` (which refuses a damaged log)."""
    rows, _ = check_log(out_dir, last_step)
    write_log_rows(out_dir, rows)
