"""A run folder on disk: which files it holds, its lock, and how files are written into it.

Safety rules every writer follows: a new run needs a new or empty folder (a folder holding
anything else is never written into); a lock file (``.qmczoo.lock``, ``fcntl.flock``) keeps a
second process out of a folder while a run trains or evaluates.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np

from qmczoo.errors import ConfigError

CHECKPOINT = "checkpoint.msgpack"
LOCK_FILE = ".qmczoo.lock"
# every file a run writes into its folder (a new run refuses a folder holding anything else)
RUN_FILES = ("config.yaml", "train.csv", "train.csv.tmp", CHECKPOINT, CHECKPOINT + ".tmp", "energy.png", "summary.json",
             "evaluation.json", LOCK_FILE, "train_geometries.csv", "train_geometries.csv.tmp", "pes.csv", "pes.png")


def json_safe(obj):
    """``obj`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, data: dict):
    path.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False))


def check_out_dir(out: Path, fresh: bool):
    """Refuse an ``out`` that is a file, lies under a file, or (for a new run) holds anything."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under {parent}, which is a file"
            raise ConfigError(f"run folder {out} {where}; choose a folder for --out")
    if not fresh or not out.exists():
        return
    try:
        present = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read run folder {out}: {exc}") from None
    if CHECKPOINT in present or "config.yaml" in present or "train.csv" in present:
        raise ConfigError(f"{out} already holds a run: resume it with --resume {out}, or choose another --out")
    if present:
        shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
        raise ConfigError(f"{out} is not empty ({shown}): a new run needs a new or empty folder; choose another --out")


@contextlib.contextmanager
def lock_run(out: str | Path):
    """Hold an exclusive lock on run folder ``out`` (``fcntl.flock`` on ``out/.qmczoo.lock``).

    Raises:
      ConfigError: another process holds it (the message names its pid).
    """
    import fcntl

    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot lock run folder {out}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            except OSError:
                pid = "unknown"
            raise ConfigError(f"run folder {out} is in use by another qmczoo process (pid {pid})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_run_files(out: Path, created: bool):
    """Undo a new run that failed before its first checkpoint: its own files (and the folder it made)."""
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            (out / name).unlink()
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()
