"""Look ansätze and layers up by name, with presets and option checking.

Entries come from ``registry.yaml`` (shipped with the package), from installed packages
that declare a ``qmczoo.registry`` entry point (a mapping, or a callable returning one, with
``ansatze`` and/or ``layers`` keys in the same format), and from :func:`register_ansatz` /
:func:`register_layer` calls at import time.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import yaml

from qmczoo.errors import ConfigError

ENTRY_POINT_GROUP = "qmczoo.registry"
PRESET_NAMES = ("tiny", "small", "paper")
_REGISTRY: dict[str, dict[str, dict]] | None = None


def _registry_file() -> Path:
    return Path(__file__).with_name("registry.yaml")


def _load() -> dict[str, dict[str, dict]]:
    global _REGISTRY
    if _REGISTRY is None:
        data = yaml.safe_load(_registry_file().read_text())
        _REGISTRY = {"ansatze": dict(data.get("ansatze", {})), "layers": dict(data.get("layers", {}))}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entries = ep.load()
                entries = entries() if callable(entries) else entries
            except Exception as exc:  # a broken plug-in must not break the package
                import warnings

                warnings.warn(f"qmczoo plug-in {ep.name!r} failed to load: {exc}")
                continue
            for kind in ("ansatze", "layers"):
                for name, entry in (entries.get(kind) or {}).items():
                    _REGISTRY[kind][name] = dict(entry, plugin=ep.value)
    return _REGISTRY


def _unknown(kind: str, name: str, known) -> ConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; available: {', '.join(known)}")


def register_ansatz(name: str, factory: str | Callable, *, defaults: dict | None = None,
                    presets: dict | None = None, description: str = "", paper: str = "") -> None:
    """Add (or replace) an ansatz entry; ``factory(system, **options) -> flax module``."""
    _load()["ansatze"][name] = dict(factory=factory, defaults=dict(defaults or {}),
                                    presets=dict(presets or {}), description=description, paper=paper)


def register_layer(name: str, factory: str | Callable, *, slot: str, description: str = "") -> None:
    """Add (or replace) a layer entry."""
    _load()["layers"][name] = dict(factory=factory, slot=slot, description=description)


def list_ansatze() -> dict[str, dict]:
    """``{name: entry}`` for every registered ansatz."""
    return dict(_load()["ansatze"])


def list_layers() -> dict[str, dict]:
    """``{name: entry}`` for every registered layer."""
    return dict(_load()["layers"])


def entry(name: str) -> tuple[str, dict]:
    """``(kind, entry)`` for an ansatz or layer called ``name``."""
    reg = _load()
    for kind in ("ansatze", "layers"):
        if name in reg[kind]:
            return kind, reg[kind][name]
    raise _unknown("ansatz or layer", name, list(reg["ansatze"]) + list(reg["layers"]))


def resolve(target: str | Callable) -> Callable:
    """Import ``"package.module:attribute"`` (or return a callable unchanged)."""
    if callable(target):
        return target
    module_name, _, attr = str(target).partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import factory {target!r}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class AnsatzSpec:
    """A named ansatz with resolved options; call it with a system to build it.

    ``spec.module(system)`` gives the flax module, ``spec(system)`` / ``spec.build(system)``
    the engine-facing :class:`~qmczoo.wavefunction.Wavefunction`.
    """

    name: str
    preset: str | None
    options: dict[str, Any]

    def module(self, system):
        factory = resolve(_load()["ansatze"][self.name]["factory"])
        return factory(system, **copy.deepcopy(self.options))

    def build(self, system):
        from qmczoo.wavefunction import from_module

        return from_module(self.module(system), system.n_up, system.n_down, name=self.name)

    __call__ = build

    def to_dict(self) -> dict:
        return {"name": self.name, "preset": self.preset, "options": copy.deepcopy(self.options)}


def get_ansatz(name: str, preset: str | None = None, **options) -> AnsatzSpec:
    """Look up ansatz ``name``, apply ``preset`` then ``options`` over its defaults.

    Each option given is checked against the type of its default (:func:`check_option`).

    Raises:
      ConfigError: unknown name, preset or option (the message lists what exists), or an
        option value of the wrong type or range.
    """
    ansatze = _load()["ansatze"]
    if name not in ansatze:
        raise _unknown("ansatz", name, ansatze)
    e = ansatze[name]
    resolved = copy.deepcopy(e.get("defaults") or {})
    presets = e.get("presets") or {}
    if preset is not None:
        if preset not in presets:
            raise _unknown(f"preset of {name}", preset, presets)
        resolved.update(copy.deepcopy(presets[preset]))
    defaults = e.get("defaults") or {}
    for key, value in options.items():
        if key not in resolved:
            raise _unknown(f"option of {name}", key, resolved)
        resolved[key] = check_option(name, key, value, defaults.get(key, resolved[key]))
    return AnsatzSpec(name=name, preset=preset, options=resolved)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair_list(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(v) for v in p) for p in value))


def check_option(ansatz: str, key: str, value, default):
    """``value`` checked against the type of the option's ``default`` (from the registry).

    The default decides the type, so plug-in entries are checked the same way:

    * a bool default needs a bool (YAML ``true``/``false``/``yes``/``no``);
    * an int default needs an int (not a float or a bool), at least 1 when the default is
      at least 1 (counts such as ``determinants``), else at least 0;
    * a float default needs a finite number;
    * a str default needs a string;
    * a list of integer pairs (``hidden_dims``) needs a non-empty list of pairs of ints >= 1;
      any other list default needs a list;
    * a None default accepts anything (the factory checks it).

    Raises:
      ConfigError: ``option 'determinants' of ferminet expects an integer >= 1, got 'banana'``.
    """
    import math

    def bad(expects):
        return ConfigError(f"option {key!r} of {ansatz} expects {expects}, got {value!r}")

    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if _is_int(default):
        low = 1 if default >= 1 else 0
        if not _is_int(value):
            raise bad(f"an integer >= {low}")
        if value < low:
            raise bad(f"an integer >= {low}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, (list, tuple)):
        if _is_pair_list(default):
            if not _is_pair_list(value) or any(v < 1 for p in value for v in p):
                raise bad("a non-empty list of pairs of positive integers, e.g. [[64, 8], [64, 8]]")
            return [list(p) for p in value]
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return value
    return value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["determinants=4", "hidden_dims=[[32,4]]"]`` -> ``{"determinants": 4, ...}`` (YAML values)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse value of {key.strip()!r}: {value!r}") from exc
    return out
