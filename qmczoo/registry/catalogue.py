"""The catalogue of ansätze and layers: loaded once from ``registry.yaml`` (shipped with the
package), from installed packages that declare a ``qmczoo.registry`` entry point (a mapping, or a
callable returning one, with ``ansatze`` and/or ``layers`` keys in the same format), and from
:func:`register_ansatz` / :func:`register_layer` calls at import time; names looked up in it.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import warnings
from importlib import metadata
from pathlib import Path
from typing import Callable

import yaml

from qmczoo.errors import ConfigError, QmczooWarning
from qmczoo.layers.filler import Layer, make_layer
from qmczoo.layers.options import check_option


ENTRY_POINT_GROUP = "qmczoo.registry"
OPTIONAL_SLOTS = ("jastrow", "backflow")  # slot kinds a user may leave empty (none)
_REGISTRY: dict[str, dict[str, dict]] | None = None


def _registry_file() -> Path:
    return Path(__file__).parent.with_name("registry.yaml")


class PluginWarning(QmczooWarning):
    """A plug-in (or one of its entries) that could not be loaded; it is left out."""


_BROKEN: dict[str, str] = {}  # names whose plug-in entry is malformed: {name: what is wrong}


def _entry_problem(kind: str, entry) -> str | None:
    """What is wrong with a plug-in's registry entry (None: nothing)."""
    if not isinstance(entry, dict):
        return f"the entry is a {type(entry).__name__}, not a mapping"
    factory = entry.get("factory")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        return f"factory must be 'package.module:attribute' or a callable, got {factory!r}"
    bad = [k for k in ("defaults", "presets", "options", "slots", "claims", "choices")
           if entry.get(k) is not None and not isinstance(entry[k], dict)]
    bad = bad or [f"preset {k!r}" for k, v in (entry.get("presets") or {}).items() if not isinstance(v, dict)]
    if bad:
        return f"{bad[0]} must be a mapping"
    return None if kind == "ansatze" or isinstance(entry.get("slot"), str) else "a layer entry needs its slot"


def _load() -> dict[str, dict[str, dict]]:
    global _REGISTRY
    if _REGISTRY is None:
        _BROKEN.clear()
        data = yaml.safe_load(_registry_file().read_text())
        registry = {"ansatze": dict(data.get("ansatze", {})), "layers": dict(data.get("layers", {}))}
        collisions = []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entries = ep.load()
                entries = entries() if callable(entries) else entries
                if not isinstance(entries, dict) or not all(isinstance(entries.get(k) or {}, dict)
                                                            for k in ("ansatze", "layers")):
                    raise TypeError("expected a mapping with 'ansatze' and/or 'layers' mappings")
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - a broken plug-in (even sys.exit) must not break the package
                warnings.warn(f"qmczoo plug-in {ep.name!r} ({ep.value}) failed to load and is left out: "
                              f"{type(exc).__name__}: {exc}", PluginWarning, stacklevel=2)
                continue
            for kind in ("ansatze", "layers"):
                for name, entry in (entries.get(kind) or {}).items():
                    problem = _entry_problem(kind, entry)
                    if problem is not None:
                        _BROKEN[str(name)] = (f"qmczoo plug-in {ep.value!r} registers "
                                              f"{'ansatz' if kind == 'ansatze' else 'layer'} {name!r} with a "
                                              f"malformed entry: {problem}")
                        warnings.warn(_BROKEN[str(name)] + "; left out", PluginWarning, stacklevel=2)
                        continue
                    entry = dict(entry, plugin=ep.value)
                    if name in registry[kind]:
                        if not entry.get("override"):
                            source = registry[kind][name].get("plugin") or "qmczoo itself"
                            collisions.append(f"plug-in {ep.value!r} registers {kind[:-1] if kind == 'layers' else 'ansatz'} "
                                              f"{name!r}, which {source} already registers")
                            continue
                        entry["overrides"] = registry[kind][name].get("plugin") or "built-in"
                    registry[kind][name] = entry
        if collisions:
            raise ConfigError("; ".join(collisions) + ". Rename the plug-in's entry, or add `override: true` "
                              "to it to replace the existing one on purpose (docs/plugins.md)")
        _REGISTRY = registry
    return _REGISTRY


def _unknown(kind: str, name: str, known) -> ConfigError:
    if isinstance(name, str) and name in _BROKEN:
        return ConfigError(_BROKEN[name])
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; available: {', '.join(known)}")


FRAMEWORKS = ("flax", "haiku")


def _add(kind: str, name: str, entry: dict, override: bool) -> None:
    table = _load()[kind]
    if name in table and not override:
        raise ConfigError(f"{'ansatz' if kind == 'ansatze' else 'layer'} {name!r} is already registered; "
                          "pick another name, or pass override=True to replace it")
    if name in table:
        entry["overrides"] = table[name].get("plugin") or "built-in"
    table[name] = entry


def register_ansatz(name: str, factory: str | Callable, *, defaults: dict | None = None,
                    presets: dict | None = None, description: str = "", paper: str = "",
                    slots: dict | None = None, claims: dict | None = None, framework: str = "flax",
                    apply_rng: bool = True, override: bool = False, claims_when: dict | None = None) -> None:
    """Add an ansatz entry; ``factory(system, **options)`` returns a flax module, or with
    ``framework="haiku"`` a Haiku ``transform``-ed function ``f(r, R) -> (sign, log|psi|)``
    (``apply_rng=False`` for ``hk.without_apply_rng``).

    ``slots`` maps option names to slot kinds (``{"embedding": "embedding"}``); the defaults
    then name the layer filling each (see ``docs/slots.md``). A name that is already registered
    is refused unless ``override=True``. ``claims_when`` maps ``"OPTION=VALUE"`` or
    ``"system=KIND"`` to claims that hold only then (see :func:`resolve_claims`).
    """
    if framework not in FRAMEWORKS:
        raise ConfigError(f"ansatz {name!r}: unknown framework {framework!r}; choose one of {', '.join(FRAMEWORKS)}")
    _add("ansatze", name, dict(factory=factory, defaults=dict(defaults or {}), presets=dict(presets or {}),
                               description=description, paper=paper, slots=dict(slots or {}),
                               claims=dict(claims or {}), claims_when=dict(claims_when or {}), framework=framework,
                               apply_rng=apply_rng), override)


def register_layer(name: str, factory: str | Callable, *, slot: str, description: str = "",
                   options: dict | None = None, claims: dict | None = None, paper: str = "",
                   override: bool = False, claims_when: dict | None = None) -> None:
    """Add a layer entry; ``options`` lists every option the layer accepts, with defaults.
    ``claims_when`` maps ``"OPTION=VALUE"`` to claims that hold only for that value. A name that
    is already registered is refused unless ``override=True``."""
    _add("layers", name, dict(factory=factory, slot=slot, description=description, options=dict(options or {}),
                              claims=dict(claims or {}), claims_when=dict(claims_when or {}), paper=paper), override)


def list_ansatze() -> dict[str, dict]:
    """``{name: entry}`` for every registered ansatz."""
    return dict(_load()["ansatze"])


def list_layers(slot: str | None = None) -> dict[str, dict]:
    """``{name: entry}`` for every registered layer (of ``slot``, if given)."""
    return {k: e for k, e in _load()["layers"].items() if slot is None or e.get("slot") == slot}


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


def get_layer(name: str, slot: str, options: dict | None = None, *, where: str = "") -> Layer:
    """The layer ``name`` as a filler of ``slot``, with ``options`` checked against its entry.

    Args:
      name: a registered layer name (``qmczoo list --layers``).
      slot: the slot kind it must fill (see :data:`qmczoo.layers.slots.SLOTS`).
      options: the layer's own options (over the defaults of its registry entry).
      where: context for error messages, e.g. ``"slot embedding of ferminet"``.

    Raises:
      ConfigError: unknown layer, a layer of another slot, an option the layer does not
        accept, or an option value of the wrong type.
    """
    if not isinstance(name, str):
        raise ConfigError(f"{where or 'slot ' + slot} expects a layer name, got {name!r}")
    where = f" ({where})" if where else ""
    layers = _load()["layers"]
    fits = list_layers(slot)
    if name not in layers:
        raise _unknown(f"{slot} layer{where}", name, fits)
    e = layers[name]
    if e.get("slot") != slot:
        raise ConfigError(f"layer {name!r} fills slot {e.get('slot')!r}, not {slot!r}{where}; "
                          f"{slot} layers: {', '.join(sorted(fits))}")
    defaults = e.get("options") or {}
    resolved = copy.deepcopy(defaults)
    for key, value in (options or {}).items():
        if key not in defaults:
            raise ConfigError(f"layer {name!r}{where} does not accept option {key!r}; it accepts: "
                              f"{', '.join(sorted(defaults)) or 'no options'}")
        resolved[key] = check_option(name, key, value, defaults[key], (e.get("choices") or {}).get(key))
    return make_layer(name, slot, resolve(e["factory"]), resolved)
