"""A run folder on disk: which files it holds, its lock, and how files are written into it.

Safety rules every writer follows: a new run needs a new or empty folder (a folder holding
anything else is never written into); a lock file (``.qmczoo.lock``, ``fcntl.flock``) keeps a
second process out of a folder while a run trains or evaluates; and no file is ever written
*through* a symbolic link. Every file a run or a bench writes goes through :func:`write_file`
(a temporary file created with ``O_EXCL | O_NOFOLLOW`` beside the target, then
``os.replace``, which replaces a link instead of following it) or :func:`append_text`
(``O_NOFOLLOW``), and :func:`check_no_links` refuses a folder whose own files are links before
anything runs: in a shared folder a planted link could otherwise make someone's run overwrite
any file they can write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
from pathlib import Path

import numpy as np

from qmczoo.errors import ConfigError

CHECKPOINT = "checkpoint.msgpack"
LOCK_FILE = ".qmczoo.lock"
# every file a run writes into its folder (a new run refuses a folder holding anything else)
_OWN_FILES = ("config.yaml", "train.csv", CHECKPOINT, "energy.png", "summary.json", "evaluation.json",
              "train_geometries.csv", "pes.csv", "pes.png")
RUN_FILES = (*_OWN_FILES, *(name + ".tmp" for name in _OWN_FILES), LOCK_FILE)


class LinkError(ConfigError):
    """A file qmczoo would write in a run or bench folder is a symbolic link: refused."""


def _link_error(path: Path) -> LinkError:
    return LinkError(f"{path} is a symbolic link: qmczoo never writes through a link in a run or bench folder "
                     "(it could overwrite a file elsewhere); remove the link, then run the command again")


def check_no_links(folder: Path, names=RUN_FILES) -> None:
    """Refuse ``folder`` if any of the files qmczoo writes there (``names``) is a symbolic link."""
    links = [name for name in names if (Path(folder) / name).is_symlink()]
    if links:
        shown = ", ".join(links[:4]) + (", ..." if len(links) > 4 else "")
        raise LinkError(f"{folder} holds symbolic links where qmczoo writes its files ({shown}): qmczoo never "
                        "writes through a link in a run or bench folder (it could overwrite a file elsewhere); "
                        "remove the links, then run the command again")


def _open_new(tmp: Path) -> int:
    """A new file ``tmp`` (a stale regular one from a killed write is removed first), opened for
    writing with ``O_EXCL | O_NOFOLLOW``: never a file that a link points to."""
    if tmp.is_symlink():
        raise _link_error(tmp)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a temporary file left by a killed write (unlink never follows a link)
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:  # something appeared there since: someone else is writing here
        raise ConfigError(f"cannot create {tmp}: it appeared while qmczoo was writing; is another process "
                          "writing into this folder?") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(tmp) from None
        raise


def write_file(path: str | os.PathLike, data: bytes | str, durable: bool = False) -> None:
    """Replace ``path`` by ``data`` (text is UTF-8) without ever following a symbolic link.

    The data goes to ``path + ".tmp"`` (created with ``O_EXCL | O_NOFOLLOW``), which then
    replaces ``path`` (``os.replace``: a link at ``path`` is replaced, never followed), so a
    kill leaves the old file or the new one. ``durable``: fsync the file before the rename.
    A failed write (a full disk) removes the temporary file and raises the ``OSError``.

    Raises:
      LinkError: ``path`` or its temporary file is a symbolic link.
    """
    path = Path(path)
    if path.is_symlink():
        raise _link_error(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(path.name + ".tmp")
    fd = _open_new(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing), refusing a symbolic link (``O_NOFOLLOW``)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(path) from None
        raise
    with os.fdopen(fd, "a", encoding="utf-8", newline="") as f:
        f.write(text)


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
    """``data`` as JSON (non-finite floats as null) into ``path`` through :func:`write_file`."""
    write_file(path, json.dumps(json_safe(data), indent=2, allow_nan=False))


def check_out_dir(out: Path, fresh: bool):
    """Refuse an ``out`` that is a file, lies under a file, holds links where a run writes its
    files, or (for a new run) holds anything."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under {parent}, which is a file"
            raise ConfigError(f"run folder {out} {where}; choose a folder for --out")
    if not out.exists():
        return
    check_no_links(out)
    if not fresh:
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


class FolderBusyError(ConfigError):
    """Another process holds the folder's lock."""


_HELD: set[str] = set()  # lock files held with hand_down: a lock_run nested inside passes


@contextlib.contextmanager
def lock_run(out: str | Path, shared: bool = False, hand_down: bool = False):
    """Hold a lock on run folder ``out`` (``fcntl.flock`` on ``out/.qmczoo.lock``).

    Exclusive by default; ``shared``: a lock that other shared holders may hold too (the shards of
    one bench) and that keeps exclusive holders out. ``hand_down``: calls of ``lock_run`` on the same
    folder made while this one holds it pass through (a bench cell is locked while the run inside
    it takes its own lock); any other second lock is refused, in this process as in another.

    Raises:
      FolderBusyError: another process holds it (the message names its pid).
    """
    import fcntl

    path = Path(out) / LOCK_FILE
    key = os.path.realpath(path)
    if key in _HELD:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(path) from None
        raise ConfigError(f"cannot lock run folder {out}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            except OSError:
                pid = "unknown"
            raise FolderBusyError(f"run folder {out} is in use by another qmczoo process (pid {pid})") from None
        if not shared:
            os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        if hand_down:
            _HELD.add(key)
        try:
            yield
        finally:
            if hand_down:
                _HELD.discard(key)
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def wait_for_lock(path: str | Path):
    """Hold an exclusive ``flock`` on the file ``path`` (created if missing), waiting for it: the
    short writes that the shards of one bench make into their shared folder (its table, its
    Hartree–Fock cache) take turns."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(Path(path)) from None
        raise ConfigError(f"cannot lock {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_run_files(out: Path, created: bool):
    """Undo a new run that failed before its first checkpoint: its own files (and the folder it made)."""
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            (out / name).unlink()
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()
