"""An ansatz by name with resolved options (:class:`AnsatzSpec`, :func:`get_ansatz`), and the
``--set KEY=VALUE`` pairs that override them (:func:`parse_overrides`)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import yaml

from qmczoo.errors import ConfigError
from qmczoo.layers.filler import NONE, Layer, _thaw
from qmczoo.layers.options import check_option
from qmczoo.registry.catalogue import FRAMEWORKS, OPTIONAL_SLOTS, _load, _unknown, get_layer, list_layers, resolve
from qmczoo.registry.claims import _claims_cover, _layer_options, layer_claims, resolve_claims


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
        the fillers (:func:`qmczoo.registry.symmetry.derived_invariance`: FermiNet with an invariant
        embedding is invariant under rotations and inversion of electrons and nuclei together).
        Claims that hold only for a kind of system (``claims_when: system=atom``) are in
        :meth:`claims_for`.
        """
        return self.claims_for(None)

    def claims_for(self, system) -> dict[str, list[str]]:
        """:attr:`claims` plus the ``claims_when: system=KIND`` claims of the entry that hold for
        ``system`` (a :class:`~qmczoo.systems.System`, a kind name, or None for none of them);
        KIND is :func:`qmczoo.registry.symmetry.system_kind` (atom, linear, planar, general)."""
        from qmczoo.registry.symmetry import derived_invariance, system_kind

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
        """What the ansatz imposes on psi (:class:`qmczoo.registry.symmetry.Imposed`): the operations of
        electrons and nuclei together that leave psi invariant, from :meth:`claims_for`
        ``system`` (a System, a kind name or None); ``Imposed.on(system)`` lists the operations
        of a system's electrons that psi is then invariant under."""
        from qmczoo.registry.symmetry import Imposed

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
        except RecursionError:
            raise ConfigError(f"the value of --set {key.strip()} is nested too deeply to read") from None
    return out
