"""Checkpoints without pickle: the leaves of a state tree in one msgpack file.

The tree's *types* are not stored: to restore, build a template state of the same shape
(e.g. a freshly initialised one) and the saved leaves are put back into it in order. That
works for any pytree (flax params, optax or kfac-jax optimizer states, walker states)
without registering their types with a serializer. Each leaf's path (``jax.tree_util.keystr``)
is stored too, and loading checks paths, shapes and dtypes against the template, so a
checkpoint of a different model or precision is refused instead of filled in by position.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

FORMAT = "qmczoo-checkpoint-1"


def save(path: str | os.PathLike, tree, metadata: dict | None = None) -> None:
    """Write ``tree``'s leaves (and small ``metadata``) to ``path`` atomically."""
    with_paths = jax.tree_util.tree_leaves_with_path(tree)
    payload = {
        "format": FORMAT,
        "metadata": metadata or {},
        "leaves": {str(i): np.asarray(leaf) for i, (_, leaf) in enumerate(with_paths)},
        "paths": {str(i): jax.tree_util.keystr(path) for i, (path, _) in enumerate(with_paths)},
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    os.replace(tmp, path)


def load(path: str | os.PathLike, template):
    """Read ``path`` into a tree shaped like ``template``; returns ``(tree, metadata)``."""
    payload = serialization.msgpack_restore(Path(path).read_bytes())
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a qmczoo checkpoint")
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    saved, saved_paths = payload["leaves"], payload.get("paths", {})
    if len(saved) != len(with_paths):
        raise ValueError(
            f"checkpoint {path} holds {len(saved)} arrays but the run expects {len(with_paths)}: "
            "was it written by a different ansatz or optimizer configuration?"
        )
    restored = []
    for i, (key_path, ref) in enumerate(with_paths):
        arr = np.asarray(saved[str(i)])
        where = jax.tree_util.keystr(key_path)
        if str(i) in saved_paths and saved_paths[str(i)] != where:
            raise ValueError(f"checkpoint {path}: array {i} is {saved_paths[str(i)]}, the run expects {where}")
        if arr.shape != np.shape(ref):
            raise ValueError(f"checkpoint {path}: {where} has shape {arr.shape}, expected {np.shape(ref)}")
        ref_dtype = getattr(ref, "dtype", None)
        if ref_dtype is not None and np.dtype(ref_dtype) != arr.dtype:
            raise ValueError(f"checkpoint {path}: {where} is {arr.dtype}, the run expects {ref_dtype} "
                             "(a checkpoint of a run in another precision?)")
        restored.append(jax.numpy.asarray(arr, dtype=ref_dtype or arr.dtype))
    return jax.tree.unflatten(treedef, restored), dict(payload.get("metadata", {}))
