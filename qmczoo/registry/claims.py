"""What a layer or an ansatz entry claims (``claims``, and ``claims_when`` an option has a value
or the system is of a kind), resolved for given options; the claim variants the suite checks."""

from __future__ import annotations


import yaml

from qmczoo.errors import ConfigError
from qmczoo.layers.filler import NONE
from qmczoo.registry.catalogue import _load, entry


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
