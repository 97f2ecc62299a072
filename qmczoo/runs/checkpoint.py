"""Checkpoints without pickle: the leaves of a state tree in one msgpack file.

The tree's *types* are not stored: to restore, build a template state of the same shape
(e.g. a freshly initialised one) and the saved leaves are put back into it in order. That
works for any pytree (flax params, optax or kfac-jax optimizer states, walker states)
without registering their types with a serializer. Each leaf's path (``jax.tree_util.keystr``)
is stored too, and loading checks paths, shapes and dtypes against the template, so a
checkpoint of a different model or precision is refused instead of filled in by position.

Integrity: the file is ``{"format", "sha256", "body"}`` where ``body`` is the msgpack of the
metadata, leaves and paths and ``sha256`` its digest, verified on load; so an empty,
truncated, random or bit-flipped file is refused with a :class:`CheckpointError` that names
the file instead of loading garbage. Files of the first format (no checksum) still load.
Writes go to a temporary file that is flushed to disk (``fsync``) before it is renamed over
the old checkpoint, so a kill at any moment leaves either the old or the new checkpoint. The
temporary file is created with ``O_EXCL | O_NOFOLLOW`` (a planted link is refused, never
written through) and removed again when the write fails (a full disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from qmczoo.errors import ConfigError
from qmczoo.runs.folder import _link_error, _open_new

FORMAT = "qmczoo-checkpoint-2"
_OLD_FORMATS = ("qmczoo-checkpoint-1",)


class CheckpointError(ConfigError):
    """A checkpoint file that cannot be read or does not fit the run."""


def _test_kill(event: str) -> None:
    """Test hook: ``QMCZOO_TEST_KILL=event:n`` kills this process (SIGKILL) at the n-th ``event``."""
    spec = os.environ.get("QMCZOO_TEST_KILL")
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != event:
        return
    _KILL_COUNTS[event] = _KILL_COUNTS.get(event, 0) + 1
    if _KILL_COUNTS[event] == int(count or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_KILL_COUNTS: dict[str, int] = {}


def save(path: str | os.PathLike, tree, metadata: dict | None = None) -> None:
    """Write ``tree``'s leaves (and small ``metadata``) to ``path`` atomically and durably.

    Arrays spread over devices are written whole (the walkers of every device, and of every
    process of a distributed run: then every process must call this at the same step)."""
    from qmczoo.engine.devices import to_host

    with_paths = jax.tree_util.tree_leaves_with_path(tree)
    body = serialization.msgpack_serialize({
        "metadata": metadata or {},
        "leaves": {str(i): to_host(leaf) for i, (_, leaf) in enumerate(with_paths)},
        "paths": {str(i): jax.tree_util.keystr(path) for i, (path, _) in enumerate(with_paths)},
    })
    data = serialization.msgpack_serialize(
        {"format": FORMAT, "sha256": hashlib.sha256(body).hexdigest(), "body": body})
    path = Path(path)
    if path.is_symlink():
        raise _link_error(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = _open_new(tmp)  # O_EXCL | O_NOFOLLOW: a link planted as the temporary file is refused
    try:
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            _test_kill("checkpoint-partial")
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        _test_kill("checkpoint-before-rename")
        os.replace(tmp, path)
    except BaseException:  # a full disk, an interrupt: no half-written temporary file is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    _test_kill("checkpoint-after-rename")


def _read_payload(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a directory, not a file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if not raw:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): not a qmczoo checkpoint")
    try:
        payload = serialization.msgpack_restore(raw)
    except Exception as exc:  # msgpack raises many types for garbage (ValueError, UnicodeDecodeError...)
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated "
                              f"({type(exc).__name__}: {str(exc)[:80]})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not a qmczoo checkpoint")
    fmt = payload.get("format")
    if fmt in _OLD_FORMATS:
        return payload
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not a qmczoo checkpoint")
    body, digest = payload.get("body"), payload.get("sha256")
    if not isinstance(body, bytes) or not isinstance(digest, str):
        raise CheckpointError(f"checkpoint {path} is corrupt (no payload or checksum)")
    if hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt: its checksum does not match its data")
    try:
        inner = serialization.msgpack_restore(body)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt ({type(exc).__name__})") from None
    if not isinstance(inner, dict) or not isinstance(inner.get("leaves"), dict):
        raise CheckpointError(f"checkpoint {path} is corrupt (no arrays)")
    return inner


def load(path: str | os.PathLike, template):
    """Read ``path`` into a tree shaped like ``template``; returns ``(tree, metadata)``.

    Raises:
      CheckpointError: (a :class:`~qmczoo.errors.ConfigError`) for a file that is empty,
        truncated, corrupt, not a checkpoint, or of another model, optimizer or precision.
    """
    payload = _read_payload(Path(path))
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    saved, saved_paths = payload["leaves"], payload.get("paths", {})
    if len(saved) != len(with_paths):
        raise CheckpointError(
            f"checkpoint {path} holds {len(saved)} arrays but the run expects {len(with_paths)}: "
            "was it written by a different ansatz or optimizer configuration?"
        )
    restored = []
    for i, (key_path, ref) in enumerate(with_paths):
        if str(i) not in saved:
            raise CheckpointError(f"checkpoint {path} is corrupt: array {i} is missing")
        arr = np.asarray(saved[str(i)])
        where = jax.tree_util.keystr(key_path)
        if str(i) in saved_paths and saved_paths[str(i)] != where:
            raise CheckpointError(f"checkpoint {path}: array {i} is {saved_paths[str(i)]}, the run expects {where}")
        if arr.shape != np.shape(ref):
            raise CheckpointError(f"checkpoint {path}: {where} has shape {arr.shape}, expected {np.shape(ref)}")
        ref_dtype = getattr(ref, "dtype", None)
        if ref_dtype is not None and np.dtype(ref_dtype) != arr.dtype:
            raise CheckpointError(f"checkpoint {path}: {where} is {arr.dtype}, the run expects {ref_dtype} "
                                  "(a checkpoint of a run in another precision?)")
        restored.append(jax.numpy.asarray(arr, dtype=ref_dtype or arr.dtype))
    metadata = payload.get("metadata", {})
    return jax.tree.unflatten(treedef, restored), dict(metadata if isinstance(metadata, dict) else {})


def saved_step(path: str | os.PathLike) -> int:
    """The optimisation step a checkpoint was written at (its metadata), checksum verified.

    Raises:
      CheckpointError: a damaged file, or one without a step.
    """
    metadata = _read_payload(Path(path)).get("metadata")
    step = metadata.get("step") if isinstance(metadata, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {path} does not record its step")
    return step
