"""Checkpoints without pickle: the leaves of a state tree in one msgpack file.

The tree's *structure* is not stored: to restore, build a template state of the same shape
(e.g. a freshly initialised one) and the saved leaves are put back into it in order. That
works for any pytree (flax params, optax or kfac-jax optimizer states, walker states)
without registering their types with a serializer.
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
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
    payload = {
        "format": FORMAT,
        "metadata": metadata or {},
        "leaves": {str(i): leaf for i, leaf in enumerate(leaves)},
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
    leaves, treedef = jax.tree.flatten(template)
    saved = payload["leaves"]
    if len(saved) != len(leaves):
        raise ValueError(
            f"checkpoint {path} holds {len(saved)} arrays but the run expects {len(leaves)}: "
            "was it written by a different ansatz or optimizer configuration?"
        )
    restored = []
    for i, ref in enumerate(leaves):
        arr = np.asarray(saved[str(i)])
        if arr.shape != np.shape(ref):
            raise ValueError(f"checkpoint {path}: array {i} has shape {arr.shape}, expected {np.shape(ref)}")
        restored.append(jax.numpy.asarray(arr, dtype=getattr(ref, "dtype", arr.dtype)))
    return jax.tree.unflatten(treedef, restored), dict(payload.get("metadata", {}))
