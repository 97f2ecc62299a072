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
from qmczoo.layers.filler import NONE, Layer, _thaw, make_layer

ENTRY_POINT_GROUP = "qmczoo.registry"
OPTIONAL_SLOTS = ("jastrow", "backflow")  # slot kinds a user may leave empty (none)
_REGISTRY: dict[str, dict[str, dict]] | None = None


def _registry_file() -> Path:
    return Path(__file__).with_name("registry.yaml")


def _load() -> dict[str, dict[str, dict]]:
    global _REGISTRY
    if _REGISTRY is None:
        data = yaml.safe_load(_registry_file().read_text())
        registry = {"ansatze": dict(data.get("ansatze", {})), "layers": dict(data.get("layers", {}))}
        collisions = []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entries = ep.load()
                entries = entries() if callable(entries) else entries
                if not isinstance(entries, dict):
                    raise TypeError(f"expected a mapping with 'ansatze' and/or 'layers', got {type(entries).__name__}")
            except Exception as exc:  # a broken plug-in must not break the package
                import warnings

                warnings.warn(f"qmczoo plug-in {ep.name!r} ({ep.value}) failed to load: {exc}")
                continue
            for kind in ("ansatze", "layers"):
                for name, entry in (entries.get(kind) or {}).items():
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


@dataclasses.dataclass(frozen=True)
class AnsatzSpec:
    """A named ansatz with resolved options; call it with a system to build it.

    ``options`` is flat: the model's own options (``determinants``), each slot's filler
    (``embedding: schnet_embedding``) and the fillers' options as ``SLOT.KEY``
    (``embedding.width``). ``spec.module(system)`` gives the flax module, ``spec(system)`` /
    ``spec.build(system)`` the engine-facing :class:`~qmczoo.wavefunction.Wavefunction`.
    """

    name: str
    preset: str | None
    options: dict[str, Any]

    @property
    def _entry(self) -> dict:
        return _load()["ansatze"][self.name]

    @property
    def slots(self) -> dict[str, str]:
        """``{slot option: layer name}`` (``"none"`` for an empty optional slot)."""
        return {opt: self.options[opt] for opt in (self._entry.get("slots") or {})}

    def layers(self) -> dict[str, Layer | None]:
        """``{slot option: resolved Layer}`` (``None`` for an empty slot)."""
        kinds = self._entry.get("slots") or {}
        out = {}
        for opt, kind in kinds.items():
            name = self.options[opt]
            out[opt] = None if name == NONE else get_layer(
                name, kind, _layer_options(self.options, opt), where=f"slot {opt} of {self.name}")
        return out

    @property
    def claims(self) -> dict[str, list[str]]:
        """What the ansatz claims (``{"invariant": [...], "cusp": [...]}``), for its checks.

        Three parts: the registry entry's ``claims`` (and its ``claims_when`` for option values),
        which hold for its default fillers; a filler other than the default (or with other
        options) keeps them only if it claims at least what the default did (``invariant``
        covers ``preserves``), and an emptied slot (``none``) takes away what its default filler
        claimed (the cusps of a cusp Jastrow), nothing else. Then the invariances derived from
        the fillers (:func:`qmczoo.symmetry.derived_invariance`: FermiNet with an invariant
        embedding is invariant under rotations and inversion of electrons and nuclei together).
        Claims that hold only for a kind of system (``claims_when: system=atom``) are in
        :meth:`claims_for`.
        """
        return self.claims_for(None)

    def claims_for(self, system) -> dict[str, list[str]]:
        """:attr:`claims` plus the ``claims_when: system=KIND`` claims of the entry that hold for
        ``system`` (a :class:`~qmczoo.systems.System`, a kind name, or None for none of them);
        KIND is :func:`qmczoo.symmetry.system_kind` (atom, linear, planar, general)."""
        from qmczoo.symmetry import derived_invariance, system_kind

        e = self._entry
        kind = system if system is None or isinstance(system, str) else system_kind(system)
        claims = resolve_claims(e, self.options, kind, where=f"ansatz {self.name!r}")
        defaults = e.get("defaults") or {}
        for opt in e.get("slots") or {}:
            old, new = defaults.get(opt), self.options[opt]
            old_claims = layer_claims(old, self._default_filler_options(opt)) if old != NONE else {}
            if new == NONE:
                if old != NONE:
                    claims = {k: [c for c in v if c not in (old_claims.get(k) or [])] for k, v in claims.items()}
            elif not _claims_cover(layer_claims(new, _layer_options(self.options, opt)), old_claims):
                claims = {k: [] for k in claims}
        derived = derived_invariance(self)
        if derived:
            claims["invariant"] = list(claims.get("invariant") or []) + [
                g for g in derived if g not in (claims.get("invariant") or [])]
        return {k: v for k, v in claims.items() if v}

    def imposes(self, system=None):
        """What the ansatz imposes on psi (:class:`qmczoo.symmetry.Imposed`): the operations of
        electrons and nuclei together that leave psi invariant, from :meth:`claims_for`
        ``system`` (a System, a kind name or None); ``Imposed.on(system)`` lists the operations
        of a system's electrons that psi is then invariant under."""
        from qmczoo.symmetry import Imposed

        return Imposed.from_claims(self.claims_for(system))

    def _default_filler_options(self, slot_option: str) -> dict:
        """The ``SLOT.KEY`` options of the default filler of a slot (defaults, then the preset)."""
        e = self._entry
        merged = dict(e.get("defaults") or {})
        if self.preset is not None:
            merged.update((e.get("presets") or {}).get(self.preset) or {})
        return _layer_options(merged, slot_option)

    def module(self, system, geometries=None):
        """What the factory returns for ``system``: a flax module, a Haiku ``transform``, or a
        :class:`~qmczoo.wavefunction.GeometryAnsatz` (given ``geometries`` if it takes them)."""
        factory = resolve(self._entry["factory"])
        model_options = {k: copy.deepcopy(v) for k, v in self.options.items()
                         if "." not in k and k not in (self._entry.get("slots") or {})}
        if self.serves_many_geometries:
            model_options["geometries"] = geometries
        return factory(system, **model_options, **self.layers())

    @property
    def framework(self) -> str:
        """``"flax"`` (the factory returns a flax module) or ``"haiku"`` (a Haiku ``transform``)."""
        return self._entry.get("framework", "flax")

    @property
    def serves_many_geometries(self) -> bool:
        """Whether the factory takes the geometries it will serve (an ansatz with a geometry
        encoder, PESNet): only such an ansatz is trained on several geometries at once."""
        import inspect

        return "geometries" in inspect.signature(resolve(self._entry["factory"])).parameters

    def build(self, system, geometries=None):
        """The :class:`~qmczoo.wavefunction.Wavefunction` for ``system``; ``geometries``
        ``[G, M, 3]`` (bohr) for an ansatz that serves many (:attr:`serves_many_geometries`)."""
        from qmczoo.wavefunction import GeometryAnsatz, from_geometry_ansatz, from_haiku, from_module

        if self.framework == "haiku":
            return from_haiku(self.module(system), system.n_up, system.n_down, name=self.name,
                              takes_rng=bool(self._entry.get("apply_rng", True)))
        built = self.module(system, geometries)
        if isinstance(built, GeometryAnsatz):
            return from_geometry_ansatz(built, system.n_up, system.n_down, name=self.name)
        return from_module(built, system.n_up, system.n_down, name=self.name)

    __call__ = build

    def to_dict(self) -> dict:
        return {"name": self.name, "preset": self.preset, "options": copy.deepcopy(self.options)}


def _layer_options(options: dict, slot_option: str) -> dict:
    prefix = slot_option + "."
    return {k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)}


def _merge_claims(a: dict, b: dict) -> dict:
    """``a`` with every claim of ``b`` added (lists united, order kept)."""
    out = {k: list(v or []) for k, v in a.items()}
    for k, v in (b or {}).items():
        out[k] = out.get(k, []) + [c for c in (v or []) if c not in out.get(k, [])]
    return out


SYSTEM_CONDITION = "system"
"""The key of a ``claims_when`` condition on the kind of system (``system=atom``)."""


def _condition_holds(condition: str, options: dict, system_kind: str | None, where: str) -> bool:
    key, sep, text = str(condition).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{where}: claims_when condition {condition!r} is not KEY=VALUE")
    if key == SYSTEM_CONDITION:
        return system_kind is not None and text.strip() == system_kind
    if key not in options:
        raise ConfigError(f"{where}: claims_when condition {condition!r} names no option of it; it has "
                          f"{', '.join(sorted(options)) or 'no options'}")
    return options[key] == yaml.safe_load(text)


def resolve_claims(entry: dict, options: dict | None = None, system_kind: str | None = None,
                   where: str = "entry") -> dict[str, list[str]]:
    """The claims of a registry entry for ``options`` (and a kind of system).

    ``entry["claims"]`` always hold; each ``entry["claims_when"]`` item ``"KEY=VALUE": claims``
    is added when option KEY has that value (YAML-parsed: ``lmax=0``, ``pair_inputs=false``)
    or, for ``system=KIND``, when ``system_kind`` is KIND. Options not given take the entry's
    defaults (``options`` of a layer, ``defaults`` of an ansatz).

    Raises:
      ConfigError: a condition that is not KEY=VALUE or names an option the entry does not have.
    """
    resolved = dict(entry.get("options") or entry.get("defaults") or {})
    resolved.update(options or {})
    claims = {k: list(v or []) for k, v in (entry.get("claims") or {}).items()}
    for condition, extra in (entry.get("claims_when") or {}).items():
        if _condition_holds(condition, resolved, system_kind, where):
            claims = _merge_claims(claims, extra or {})
    return claims


def layer_claims(name, options: dict | None = None) -> dict[str, list[str]]:
    """The claims of layer ``name`` with ``options`` (over its defaults), ``claims_when``
    included; ``{}`` for ``none`` or an unknown name."""
    if name == NONE or name not in _load()["layers"]:
        return {}
    return resolve_claims(_load()["layers"][name], options, where=f"layer {name!r}")


def claim_variants(name: str) -> list[dict]:
    """Option sets under which layer ``name``'s claims differ: ``{}`` (its defaults) and one per
    option condition of its ``claims_when`` that its defaults do not meet (``{"readout":
    "invariant"}``), or, for a true/false condition they meet, the other value (so that the
    claims left without it are checked too). A check can so run every claim the registry makes."""
    _, e = entry(name)
    defaults = e.get("options") or {}
    variants = [{}]
    for condition in e.get("claims_when") or {}:
        key, _, text = str(condition).partition("=")
        key, value = key.strip(), yaml.safe_load(text)
        if key == SYSTEM_CONDITION:
            continue
        if defaults.get(key) != value:
            variants.append({key: value})
        elif isinstance(value, bool):
            variants.append({key: not value})
    return variants


def _claims_cover(new: dict, old: dict) -> bool:
    """Whether ``new`` claims at least what ``old`` did (an ``invariant`` claim covers the weaker
    ``preserves`` claim of the same operation)."""
    have = {k: set(v or []) for k, v in new.items()}
    have["preserves"] = have.get("preserves", set()) | have.get("invariant", set())
    return all(set(v) <= have.get(k, set()) for k, v in old.items())


def get_ansatz(name: str, preset: str | None = None, **options) -> AnsatzSpec:
    """Look up ansatz ``name``, apply ``preset`` then ``options`` over its defaults.

    Options are the model's own (``determinants=4``), slot fillers by layer name
    (``embedding="schnet_embedding"``, ``jastrow="none"``) and a filler's own options as
    ``"SLOT.KEY"`` (``**{"embedding.width": 32}``). When a slot gets another filler, the
    defaults' and preset's options for the old filler are dropped and the new filler's
    registry defaults apply. Every value is checked against the type of its default
    (:func:`check_option`) and every filler against its slot, before anything is built.

    Raises:
      ConfigError: unknown name, preset, option or layer (the message lists what exists), a
        layer that fills another slot, or an option value of the wrong type or range.
    """
    ansatze = _load()["ansatze"]
    if name not in ansatze:
        raise _unknown("ansatz", name, ansatze)
    e = ansatze[name]
    slots = e.get("slots") or {}
    framework = e.get("framework", "flax")
    if framework not in FRAMEWORKS:
        raise ConfigError(f"ansatz {name!r} names framework {framework!r}; qmczoo knows {', '.join(FRAMEWORKS)}")
    if framework == "haiku" and slots:
        raise ConfigError(f"ansatz {name!r} is a Haiku ansatz but declares slots; slots are filled with "
                          "flax layers, so only a flax ansatz can have them")
    defaults = e.get("defaults") or {}
    resolved = copy.deepcopy(defaults)
    presets = e.get("presets") or {}
    if preset is not None:
        if preset not in presets:
            raise _unknown(f"preset of {name}", preset, presets)
        resolved.update(copy.deepcopy(presets[preset]))
    configured = {opt: resolved.get(opt) for opt in slots}
    layer_keys = {k: v for k, v in options.items() if k.partition(".")[0] in slots and "." in k}
    for key, value in options.items():
        if key in layer_keys:
            continue
        if key not in resolved or "." in key:
            owners = [k for k in resolved if k.endswith("." + key)]
            if owners:
                raise ConfigError(f"option {key!r} of {name} is an option of a slot filler: "
                                  f"use {' or '.join(repr(k) for k in owners)}")
            raise _unknown(f"option of {name}", key, [k for k in resolved if "." not in k])
        if key in slots:
            resolved[key] = value
        else:
            resolved[key] = check_option(name, key, value, defaults.get(key, resolved[key]),
                                         (e.get("choices") or {}).get(key))
    for key in layer_keys:
        if "." in key and key.partition(".")[0] not in slots:
            raise _unknown(f"option of {name}", key, resolved)
    out = {k: v for k, v in resolved.items() if "." not in k}
    for opt, kind in slots.items():
        filler = resolved[opt]
        if filler == NONE:
            if configured[opt] != NONE and kind not in OPTIONAL_SLOTS:
                raise ConfigError(f"slot {opt} of {name} cannot be empty; {kind} layers: "
                                  f"{', '.join(sorted(list_layers(kind)))}")
            if _layer_options(layer_keys, opt):
                raise ConfigError(f"slot {opt} of {name} is empty (none): it takes no options "
                                  f"({', '.join(sorted(_layer_options(layer_keys, opt)))})")
            continue
        given = {} if filler != configured[opt] else _layer_options(resolved, opt)
        given.update(_layer_options(layer_keys, opt))
        layer = get_layer(filler, kind, given, where=f"slot {opt} of {name}")
        out.update({f"{opt}.{k}": _thaw(v) for k, v in layer.options})
    return AnsatzSpec(name=name, preset=preset, options=out)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair_list(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(v) for v in p) for p in value))


def check_option(ansatz: str, key: str, value, default, choices=None):
    """``value`` checked against the type of the option's ``default`` (from the registry).

    The default decides the type, so plug-in entries are checked the same way:

    * a bool default needs a bool (YAML ``true``/``false``/``yes``/``no``);
    * an int default needs an int (not a float or a bool), at least 1 when the default is
      at least 1 (counts such as ``determinants``), else at least 0;
    * a float default needs a finite number;
    * a str default needs a string;
    * a list of integer pairs (``hidden_dims``) needs a non-empty list of pairs of ints >= 1;
      any other list default needs a list;
    * a None default accepts anything (the factory checks it);
    * ``choices`` (from the entry's ``choices`` mapping), if given, lists the allowed values
      (they replace the rules above: ``lmax`` may be 0 although its default is 1).

    Raises:
      ConfigError: ``option 'determinants' of ferminet expects an integer >= 1, got 'banana'``.
    """
    import math

    def bad(expects):
        return ConfigError(f"option {key!r} of {ansatz} expects {expects}, got {value!r}")

    if choices is not None:  # the listed values are the allowed ones (lmax: [0, 1, 2, 3] with default 1)
        if value not in choices or isinstance(value, bool) != isinstance(default, bool):
            raise bad(f"one of {', '.join(map(str, choices))}")
        return value
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
    """``["determinants=4", "embedding.hidden_dims=[[32,4]]"]`` -> ``{"determinants": 4, ...}`` (YAML values)."""
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
