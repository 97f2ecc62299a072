"""A slot filler resolved through the registry (pure Python: no jax import, so the CLI starts fast).

See :mod:`qmczoo.layers.slots` for the slots and what goes in and out of each.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

NONE = "none"
"""The filler name of an optional slot left empty (e.g. ``--set jastrow=none``)."""


def _accepted_keywords(factory: Callable) -> set[str] | None:
    """Names ``factory`` accepts as keywords (``None``: anything, it takes ``**kwargs``)."""
    if dataclasses.is_dataclass(factory):
        return {f.name for f in dataclasses.fields(factory) if f.init and f.name not in ("parent", "name")}
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


@dataclasses.dataclass(frozen=True)
class Layer:
    """A slot filler resolved through the registry: its name, factory and options.

    Attributes:
      name: the registry name (as ``qmczoo list`` shows it).
      slot: the slot it fills.
      factory: the flax module class or function from the registry entry.
      options: ``((key, value), ...)`` the layer's own options (registry defaults, then the
        ansatz's preset, then the user's ``--set SLOT.KEY=VALUE``), already type-checked.
    """

    name: str
    slot: str
    factory: Any
    options: tuple = ()

    @property
    def option_dict(self) -> dict[str, Any]:
        return {k: _thaw(v) for k, v in self.options}

    def build(self, name: str | None = None, **context):
        """The filler itself: ``factory(**context it accepts, **options)``.

        For a flax module class, ``name`` names the submodule; for a function (a features
        filler, say) the result is the function with its options bound.
        """
        accepted = _accepted_keywords(self.factory)
        kwargs = {k: v for k, v in context.items() if accepted is None or k in accepted}
        kwargs.update(self.option_dict)
        if isinstance(self.factory, type):
            if name is not None:
                kwargs["name"] = name
            return self.factory(**kwargs)

        def bound(*args):
            return self.factory(*args, **kwargs)

        bound.__name__ = self.name
        return bound


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value):
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def make_layer(name: str, slot: str, factory, options: dict | None = None) -> Layer:
    """A :class:`Layer` with ``options`` frozen (hashable, so flax modules can hold it)."""
    return Layer(name=name, slot=slot, factory=factory,
                 options=tuple(sorted((k, _freeze(v)) for k, v in (options or {}).items())))
