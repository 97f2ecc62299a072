"""Geometry-dependent parameters: declared where a layer uses them, supplied by a geometry encoder.

A layer that can take some of its parameters from a geometry encoder (PESNet) asks for them
with :func:`geometry_value` at the place it uses them::

    sigma = geometry_value(self, "sigma", (m, k), nn.initializers.ones, per_nucleus=True)
    if sigma is None:   # no encoder: an ordinary parameter, with its usual KFAC registration
        sigma = self.param("sigma", nn.initializers.ones, (m, k))

* Run on its own (FermiNet), the layer gets ``None`` and makes its own parameter: nothing
  changes for it.
* Under :func:`declaring`, the call *declares* the value (its shape, and the initialiser's
  value as a starting point) in the collection :data:`DECLARED_PER_NUCLEUS` or
  :data:`DECLARED_GLOBAL`; a PES ansatz runs one such declaration pass when it is built and
  gives its encoder one output head per declared value.
* Applied with the collection :data:`SUPPLIED` (``{"params": ..., SUPPLIED: values}``, the
  tree the encoder returns, with the declared tree's structure), the call returns the supplied
  value and the layer creates no parameter of its own for it.

``per_nucleus`` values have the nucleus axis first (``[M, ...]``): the encoder computes row
``I`` from nucleus ``I``'s embedding, so that the value follows the nucleus when identical
nuclei are permuted. Global values (any shape) come from the encoder's global vector.

Nothing filters the parameter tree by name: which values an encoder supplies is whatever the
layers declared.
"""

from __future__ import annotations

import contextlib
import contextvars

from qmczoo.wavefunction import SUPPLIED  # noqa: F401  (the contract names the collection)

DECLARED_PER_NUCLEUS = "geometry_per_nucleus"
DECLARED_GLOBAL = "geometry_global"

_declaring = contextvars.ContextVar("qmczoo_declaring_geometry_values", default=False)


@contextlib.contextmanager
def declaring():
    """Within this block, :func:`geometry_value` declares what it is asked for (while a module
    is initialised with the declaration collections mutable)."""
    token = _declaring.set(True)
    try:
        yield
    finally:
        _declaring.reset(token)


def geometry_value(module, name: str, shape: tuple, init, *, per_nucleus: bool):
    """The encoder-supplied value of ``name`` ``shape``, or ``None`` if no encoder supplies it.

    Args:
      module: the flax module asking (inside its ``@nn.compact`` call).
      name: the value's name within the module (unique there).
      shape: its shape; for ``per_nucleus`` the first axis is the nucleus axis ``M``.
      init: the initialiser the layer's own parameter would use (``init(key, shape)``); its
        value is the declared starting point.
      per_nucleus: row ``I`` belongs to nucleus ``I`` (see the module docstring).
    """
    if module.has_variable(SUPPLIED, name):
        value = module.get_variable(SUPPLIED, name)
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{module.name}.{name}: the encoder supplied shape {tuple(value.shape)}, "
                             f"the layer needs {tuple(shape)}")
        return value
    if _declaring.get():
        collection = DECLARED_PER_NUCLEUS if per_nucleus else DECLARED_GLOBAL
        if module.is_mutable_collection(collection):
            module.variable(collection, name, lambda: init(module.make_rng("params"), tuple(shape)))
    return None
